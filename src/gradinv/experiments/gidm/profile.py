"""GIDM's profile: the names its tables use, the attack *variants* of Figs. 5-10, and the
typed ``settings`` of ``papermill_runs/gidm/<profile>.yaml`` (:class:`Profile`; defaults:
the smoke profile).

Each of the paper's datasets (CelebA, LSUN-Bedroom; sec. 4.1) is a *role*: the first
dataset present of a list (real data first), the DDPM that plays the federation's starting
model, and optionally the class the clients' images are drawn from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.common import first_available
from gradinv.experiments.engine import FrozenDict

PAPER = "gidm"

#: variant -> (attack, what the server knows of {eps, t}, Config overrides)
VARIANTS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "dlg_dm": ("dlg_dm", ("eps", "t"), {}),  # Fig. 5: baselines given eps and t (sec. 4.2)
    "invg_dm": ("invg_dm", ("eps", "t"), {}),
    "gidm_known": ("gidm", ("eps", "t"), {}),  # Fig. 7: known {eps, t}
    "gidm": ("gidm", (), {}),  # Fig. 5: GIDM, neither known
    "t_unknown": ("gidm", ("eps",), {}),  # Fig. 8: t unknown, eps known
    "eps_unknown": ("gidm", ("t",), {}),  # Fig. 9: eps unknown, t known
    "fixed_t": ("gidm", (), {"optimise_t": False}),  # Fig. 10: w/o optimising t
    "fixed_eps": ("gidm", (), {"optimise_eps": False}),  # Fig. 10: w/o optimising eps
    # beyond the paper: what the authors' code runs as "unknown" (true t, true eps + 1e-4,
    # neither optimised), and GIDM without its generative phase (what the prior buys)
    "code_like": (
        "gidm",
        ("eps", "t"),
        {"eps_offset": 1e-4, "optimise_eps": False, "optimise_t": False},
    ),
    "finetune_only": ("gidm", (), {"generative": False}),
}
LABELS = {
    "dlg_dm": "DLG-dm",
    "invg_dm": "InvG-dm",
    "generative": "Generative",
    "gidm_known": "GIDM (eps, t known)",
    "gidm": "GIDM",
    "t_unknown": "t unknown (eps known)",
    "eps_unknown": "eps unknown (t known)",
    "fixed_t": "w/o optimising t",
    "fixed_eps": "w/o optimising eps",
    "code_like": "code's 'unknown' (true t, eps + 1e-4)",
    "finetune_only": "fine-tune only (no prior)",
}
#: Fig. 5's attacks, per role, in the table's order
FIG5 = ("dlg_dm", "invg_dm", "gidm_known", "gidm")
#: Figs. 8-10's variants (on the profile's ``ablation_roles``), in the ablation table's order
ABLATION = ("gidm_known", "t_unknown", "eps_unknown", "fixed_t", "fixed_eps", "gidm",
            "code_like", "finetune_only")  # fmt: skip
#: the variants whose intermediate images Figs. 7-9 show (first role only)
SNAPSHOTS = ("gidm_known", "gidm", "t_unknown", "eps_unknown")
#: Sec. 4.3's metrics, in Fig. 5's order
METRICS = ("mse", "ssim", "psnr", "lpips")
#: reverse steps of the "prior sample" floor (ancestral DDPM sampling)
FLOOR_STEPS = 100


class Unit(NamedTuple):
    """One attacked image of a role: the federation draw ``seed`` (the clients' images and the
    federation's sampling) and the attacked ``client``'s report in the attack round."""

    seed: int
    client: int


@dataclass(frozen=True)
class Role:
    """One of the paper's datasets: the datasets that may fill it (the first present is
    used), the DDPM the federation starts from (a registry name or a folder) and the class
    the clients' images come from (``None``: all)."""

    datasets: tuple[str, ...]
    prior: str
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.datasets:
            raise GradInvError("a role lists at least one dataset")

    def dataset(self) -> str:
        """The first of :attr:`datasets` present on this machine."""
        return first_available(self.datasets)


def _smoke_roles() -> dict[str, Role]:
    return {
        "CelebA": Role(("celeba", "faces"), "faces-32", "face"),
        "LSUN-Bedroom": Role(("brain_mri",), "brain_mri-32"),
    }


@dataclass(frozen=True)
class Federation:
    """Algorithm 1: ``clients`` x ``images_per_client`` private test-split images, FedSGD for
    ``rounds`` rounds at global step ``lr``; the server attacks the reports of
    ``attack_clients`` in ``attack_round`` (each a different private image; sec. 4.1 attacks
    "one random client"). ``init``: ``random`` (Algorithm 1 from scratch; the role's DDPM
    stands in for ``theta*``) or ``pretrained`` (continue the role's DDPM; ``theta*`` = the
    federation's final model)."""

    clients: int = 4
    images_per_client: int = 4
    rounds: int = 2  # paper: 50 (sec. 4.1)
    lr: float = 1e-4  # the paper does not give it
    batch_size: int = 1  # Algorithm 1: one x0 per client and round
    attack_round: int = 2
    attack_clients: tuple[int, ...] = (0,)
    init: Literal["random", "pretrained"] = "random"

    def __post_init__(self) -> None:
        if min(self.clients, self.images_per_client, self.rounds, self.batch_size) < 1:
            raise GradInvError("clients, images_per_client, rounds and batch_size must be >= 1")
        if not 1 <= self.attack_round <= self.rounds:
            raise GradInvError(f"attack_round {self.attack_round} is not in 1..{self.rounds}")
        clients = list(self.attack_clients)
        if not clients or len(set(clients)) < len(clients):
            raise GradInvError(f"attack_clients must be distinct and not empty, got {clients}")
        if not all(0 <= k < self.clients for k in clients):
            raise GradInvError(f"attack_clients {clients} are not all in 0..{self.clients - 1}")


@dataclass(frozen=True)
class AttackOverrides(profiles.AttackOverrides):
    """Config overrides per attack (the paper's values are each Config's defaults), checked
    against each attack's Config when the profile loads."""

    gidm: Mapping[str, Any] = FrozenDict(
        {"generative_iterations": 10, "finetune_iterations": 80, "sampling_steps": 6,
         "interval": 10}
    )  # fmt: skip
    dlg_dm: Mapping[str, Any] = FrozenDict({"iterations": 90})
    invg_dm: Mapping[str, Any] = FrozenDict({"iterations": 90})


@dataclass(frozen=True)
class Profile:
    """``settings`` of ``papermill_runs/gidm/<profile>.yaml``; the defaults are the smoke
    profile's values.

    The *unit* of every table and claim is one attacked image, ``(role, seed, client)``:
    ``seeds`` federation draws per role (the clients' images and the federation's sampling;
    seeds ``seed .. seed + seeds - 1``) times the ``federation.attack_clients`` of each.
    ``ablation_roles``: the roles Figs. 8-10's variants run on (``first`` as the paper's
    CelebA example, or ``all``)."""

    lpips: str | None = "alex"  # LPIPS network of sec. 4.3's fourth metric
    seeds: int = 1
    ablation_roles: Literal["first", "all"] = "first"
    snapshot_every: int = 10  # intermediate images for Figs. 7-9, every this many iterations
    floor_steps: int = FLOOR_STEPS
    roles: Mapping[str, Role] = field(default_factory=_smoke_roles)
    federation: Federation = field(default_factory=Federation)
    attacks: AttackOverrides = field(default_factory=AttackOverrides)

    def __post_init__(self) -> None:
        if not isinstance(self.roles, Mapping) or not self.roles:
            raise GradInvError("settings.roles maps each of the paper's datasets to a role")
        roles = {
            str(name): role
            if isinstance(role, Role)
            else options.build(Role, role or {}, f"settings.roles.{name}")
            for name, role in self.roles.items()
        }
        object.__setattr__(self, "roles", roles)
        if self.snapshot_every < 0 or self.floor_steps < 1 or self.seeds < 1:
            raise GradInvError("snapshot_every must be >= 0, floor_steps and seeds >= 1")

    @property
    def role_names(self) -> list[str]:
        return list(self.roles)

    @property
    def ablation_role_names(self) -> list[str]:
        """The roles Figs. 8-10's variants run on."""
        return self.role_names if self.ablation_roles == "all" else self.role_names[:1]

    def units(self, seed: int = 0) -> list[Unit]:
        """Every role's attacked images, federation draw by federation draw: the first is
        the one the figures show."""
        clients = self.federation.attack_clients
        return [Unit(s, k) for s in range(seed, seed + self.seeds) for k in clients]
