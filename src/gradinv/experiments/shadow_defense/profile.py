"""The shadow-defense study's names and typed profile (shadow_defense.txt, Sec. 5.1):
the rows of Tables 1-5 and Fig. 8 (:func:`method`), and :class:`Profile`, the ``settings``
of ``papermill_runs/shadow_defense/<profile>.yaml`` (defaults: the smoke profile), loaded
with ``profiles.load("shadow_defense", name, Profile)`` so that a misspelt key anywhere in
the file is an error naming the key and the file.

A method is one FL configuration (Sec. 3.1, 5.1): FedAvg or SCAFFOLD, at most one gradient
defense (Sec. 2, Tables 1-2), image-level DP (Sec. 5.2.2, Table 4) or the shadow defense
(Sec. 4) with its ablations (Table 3), terminal round ``r_shadow`` (Table 5) and noise
schedule (eq. 18, Fig. 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gradinv import options
from gradinv.defenses.shadow import ShadowConfig
from gradinv.errors import GradInvError
from gradinv.experiments.engine import FrozenDict
from gradinv.experiments.engine.cells import thaw
from gradinv.options import build as build_config
from gradinv.options import option_hints

PAPER = "shadow_defense"
#: attack kind -> registered attack (Sec. 5.2: model-based GIA of Jeon et al. = GIAS;
#: optimisation-based GIA of Hatamizadeh et al. = the BN-prior attack of the NVFlare recipe)
ATTACKS = {"model": "gias", "optimisation": "bn_prior"}
#: Tables 1-2, in the paper's row order
TABLE12 = ("FedAvg", "SCAFFOLD", "DP", "GS", "GC", "Soteria", "OUTPOST", "Censor", "Ours")
#: the SOTA defenses of Tables 1-2 (Sec. 5.2.1); "‡" marks Ours against every one
SOTA = ("DP", "GS", "GC", "Soteria", "OUTPOST", "Censor")
#: Table 3: method -> ShadowConfig override
ABLATIONS = {
    "w/o PT z": {"pretrain_latents": False},
    "w/o FT S": {"finetune_shadow": False},
    "w/o Equ": {"equalize": False},
    "w/o CAM": {"cam_reduction": False},
}
#: Fig. 8: method -> noise schedule (eq. 18); "Increase" is the paper's choice, i.e. "Ours"
SCHEDULE_METHODS = {"Fix": "fixed", "Decrease": "decrease", "Increase": "increase"}
#: Table 4's image-level DP rows
IMAGE_DP = ("Img DP (w)", "Img DP (s)")


# -- the profile -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    """One dataset role (ChestXRay, EyePACS): its datasets, the first present one used
    (real folders first), its channels and the GAN of the shadow model and of GIAS."""

    datasets: tuple[str, ...] = ("covid_radiography", "chest_xray")
    channels: int = 1
    gan: str = "gan-chest_xray-32"


@dataclass(frozen=True)
class Pretrain:
    """The stand-in for ImageNet weights: the model pre-trained on ``dataset``."""

    dataset: str = "natural_color"
    epochs: int = 4


@dataclass(frozen=True)
class Clients:
    """Sec. 5.1's nine client sizes scaled by ``scale`` (at least one image each)."""

    scale: float = 0.03


@dataclass(frozen=True)
class FederationSettings:
    """Sec. 5.1: rounds, SGD lr, local epochs; where gradient defenses act; FedAvg weights;
    the rounds after which the task lr is multiplied by ``lr_gamma`` (the authors' code:
    40 and 80 of 100; the text is silent)."""

    rounds: int = 3
    lr: float = 1e-2
    local_epochs: int = 1
    defense_on: str = "update"
    weighting: str = "samples"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1


@dataclass(frozen=True)
class AttackBudgets:
    """Config overrides of the two attacks (checked against each Config when loaded)."""

    gias: Mapping[str, Any] = FrozenDict({"restarts": 1, "iterations": 10, "gias_iterations": 10})
    bn_prior: Mapping[str, Any] = FrozenDict({"iterations": 20, "warmup": 2})

    def __post_init__(self) -> None:
        from gradinv import attacks

        for name in ("gias", "bn_prior"):
            value = getattr(self, name) or {}
            if not isinstance(value, Mapping):
                raise GradInvError(f"attacks.{name} is a mapping of Config overrides")
            options.parse_overrides(attacks.get(name).Config, value, f"attacks.{name}")
            object.__setattr__(self, name, FrozenDict(dict(value)))


@dataclass(frozen=True)
class ImageDP:
    """Table 4: sigma of the weak and strong image-level Gaussian noise (the paper gives
    no scale)."""

    weak: float = 0.05
    strong: float = 0.3


def _smoke_roles() -> dict[str, Role]:
    return {"ChestXRay": Role()}


def _smoke_defenses() -> dict[str, dict[str, Any]]:
    return {
        "DP": {"name": "dp_clip", "clip_norm": 1.0, "noise_multiplier": 0.1},
        "GS": {"name": "pruning", "percent": 90},
        "GC": {"name": "gc", "threshold": 0.01},
        "Soteria": {"name": "soteria"},
        "OUTPOST": {"name": "outpost"},
        "Censor": {"name": "censor", "trials": 3},
    }


@dataclass(frozen=True)
class Profile:
    """``settings`` of ``papermill_runs/shadow_defense/<profile>.yaml``; the defaults are the
    smoke profile's values. ``defenses``: Tables 1-2 label -> a registered gradient defense
    (``name``) and its options; ``shadow``: ShadowConfig / noise_maps.Config overrides."""

    lpips: str | None = "alex"
    size: int = 32
    model: str = "resnet8"
    pretrain: Pretrain = field(default_factory=Pretrain)
    roles: Mapping[str, Role] = field(default_factory=_smoke_roles)
    clients: Clients = field(default_factory=Clients)
    federation: FederationSettings = field(default_factory=FederationSettings)
    attack_rounds: tuple[int, ...] = (1, 3)
    attack_clients: tuple[int, ...] = (3, 8)
    attack_images: int = 2
    attacks: AttackBudgets = field(default_factory=AttackBudgets)
    defenses: Mapping[str, Mapping[str, Any]] = field(default_factory=_smoke_defenses)
    shadow: Mapping[str, Any] = FrozenDict(
        {"latent_epochs": 40, "finetune_epochs": 3, "r_shadow": 1}
    )
    image_dp: ImageDP = field(default_factory=ImageDP)
    finetune_r_shadow: tuple[int, ...] = (1, 3)
    figure_round: int = 2
    cam_top: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.roles, Mapping) or not self.roles:
            raise GradInvError("settings.roles maps each role to {datasets, channels, gan}")
        roles = {}
        for name, spec in self.roles.items():
            if isinstance(spec, Role):
                roles[str(name)] = spec
            elif isinstance(spec, Mapping):
                roles[str(name)] = options.build(Role, spec, f"settings.roles.{name}")
            else:
                raise GradInvError(f"settings.roles.{name} is a mapping, not {spec!r}")
        object.__setattr__(self, "roles", roles)
        if not isinstance(self.defenses, Mapping):
            raise GradInvError("settings.defenses maps a label to {name, options}")
        defs = {}
        for label, spec in self.defenses.items():
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise GradInvError(f"settings.defenses.{label} needs a 'name' (a defense)")
            defs[str(label)] = FrozenDict(dict(spec))
        object.__setattr__(self, "defenses", defs)
        shadow = dict(self.shadow or {})
        shadow_config(shadow, 0)  # unknown fields are errors now, not in a cell
        object.__setattr__(self, "shadow", FrozenDict(shadow))
        if self.size < 1 or self.attack_images < 1 or self.federation.rounds < 1:
            raise GradInvError("size, attack_images and federation.rounds must be at least 1")
        late = [r for r in self.attack_rounds if not 1 <= r <= self.federation.rounds]
        if late:
            raise GradInvError(
                f"attack_rounds {late} outside 1..{self.federation.rounds} (federation.rounds)"
            )

    def settings(self) -> dict[str, Any]:
        """The profile as the plain mapping the cell functions read (JSON values)."""
        return thaw(asdict(self))


# -- methods -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One FL configuration: aggregation plus at most one gradient, image or shadow defense."""

    label: str
    algorithm: str = "fedavg"
    defense: dict[str, Any] | None = None  # {"name": registered defense, **options}
    shadow: dict[str, Any] | None = None  # ShadowConfig overrides; None: no shadow defense
    image_noise: float | None = None  # sigma of image-level Gaussian noise (Table 4)

    def spec(self) -> dict[str, Any]:
        """What the federation depends on (the label does not: "Increase" is "Ours")."""
        return {
            "algorithm": self.algorithm,
            "defense": self.defense,
            "shadow": self.shadow,
            "image_noise": self.image_noise,
        }


def method(settings: Profile | Mapping[str, Any], label: str) -> Method:
    """The :class:`Method` called ``label`` under the profile (or its ``settings()``)."""
    s = settings.settings() if isinstance(settings, Profile) else thaw(settings)
    shadow = dict(s.get("shadow", {}))
    if label == "FedAvg":
        return Method(label)
    if label == "SCAFFOLD":
        return Method(label, algorithm="scaffold")
    if label in s.get("defenses", {}):
        return Method(label, defense=dict(s["defenses"][label]))
    if label in ("Ours", "Increase"):
        return Method(label, shadow=shadow)
    if label in ABLATIONS:
        return Method(label, shadow={**shadow, **ABLATIONS[label]})
    if label in SCHEDULE_METHODS:
        return Method(label, shadow={**shadow, "schedule": SCHEDULE_METHODS[label]})
    if label.startswith("Img DP"):
        strength = "weak" if "(w)" in label else "strong"
        return Method(label, image_noise=float(s["image_dp"][strength]))
    if label.startswith("r_shadow="):
        return Method(label, shadow={**shadow, "r_shadow": int(label.split("=")[1])})
    raise GradInvError(f"unknown method {label!r}; Tables 1-2 rows are {TABLE12}")


def shadow_config(overrides: Mapping[str, Any], seed: int) -> ShadowConfig:
    """A :class:`ShadowConfig` from profile overrides, as the registry's ``shadow`` defense
    builds it (:func:`gradinv.defenses.build_data`): noise-map fields go to its ``noise``
    (:class:`~gradinv.defenses.shadow.noise_maps.Config`)."""
    valid = option_hints(ShadowConfig, exclude=("seed",))  # incl. the noise-map fields
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise GradInvError(
            f"unknown shadow setting(s) {unknown}; use ShadowConfig or noise_maps.Config fields"
        )
    return build_config(ShadowConfig, dict(overrides), "the shadow defense", seed=seed)
