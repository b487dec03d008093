"""GradInvDiff's profile: the names the tables use, the typed ``settings`` of
``papermill_runs/gradinvdiff/<profile>.yaml`` (:class:`Profile`, defaults: the smoke profile),
and the data roles and priors the cells need.

Each of the paper's datasets is a *role* filled by the first dataset present of a list (real
MedMNIST first, then embedded stand-ins). LiTS is evaluated, as in the paper, on slices along
three planes and averaged: a role may list ``planes``, each a dataset plus an optional class
filter (the embedded ``brain_mri`` labels are its planes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gradinv import attacks, data, options
from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.common import first_available
from gradinv.experiments.engine import FrozenDict
from gradinv.experiments.tuning import Grid, same_budget
from gradinv.priors import TrainConfig, ensure_prior, prior_name

PAPER = "gradinvdiff"
METHODS = ("dlg", "idlg", "ig", "ggdm", "gradinvdiff")
LABELS = {
    "dlg": "DLG",
    "idlg": "iDLG",
    "ig": "IG",
    "ggdm": "GGDM",
    "gradinvdiff": "GradInvDiff",
    "ggdm_x0": "GGDM-x0",  # beyond the paper: GGDM guided through the x0 estimate
}
#: method key -> (attack, Config overrides): variants beyond the paper's five
VARIANT_OF: dict[str, tuple[str, dict[str, Any]]] = {"ggdm_x0": ("ggdm", {"guide_on": "x0"})}
GUIDED = ("ggdm", "gradinvdiff")
#: beyond the paper: a role whose targets come from another source than its prior's
#: training data (head MR slices of another subject, from pydicom's data, attacked with the
#: prior trained on the MNI152 brain template), reported beside the in-source roles
OTHER_SOURCE = "Head MR (brain prior)"
NETWORKS = {"lenet7": "LeNet", "resnet18": "ResNet"}
#: Table 2's variants of GradInvDiff: Config overrides, a defense, a batch size
VARIANTS: dict[str, dict[str, Any]] = {
    "GradInvDiff": {},
    "w/o AMO": {"amo": False},
    "w/o GANI": {"gani": False},
    "noise N(0, 0.01^2)": {"defense": "dp_gaussian", "defense_options": {"variance": 1e-4}},
    "batch 4": {"batch": 4},
    "batch 8": {"batch": 8},
}
#: what every reconstruction is scored by (:func:`gradinv.metrics.evaluate`)
METRICS = ("mse", "psnr", "ssim", "lpips")


@dataclass(frozen=True)
class Plane:
    """One slice set of a role: a dataset and, optionally, the class that selects it;
    ``prior``: the dataset whose diffusion prior the attacker uses when it is not the
    plane's own (a role whose targets come from another source than the prior's training
    data: another scan, subject or package)."""

    dataset: str
    label: int | None = None
    name: str = ""
    prior: str | None = None

    @property
    def prior_dataset(self) -> str:
        """The dataset the attacker's prior was trained on (``public`` split)."""
        return self.prior or self.dataset


@dataclass(frozen=True)
class Planes:
    """A role filled by several slice sets, averaged as the paper averages LiTS's planes."""

    planes: tuple[Plane, ...]

    def __post_init__(self) -> None:
        planes = tuple(_plane(p) for p in self.planes)
        if not planes:
            raise GradInvError("a planes option lists at least one plane")
        object.__setattr__(self, "planes", planes)


def _plane(value: Any) -> Plane:
    if isinstance(value, Plane):
        return value
    if isinstance(value, Mapping):
        return options.build(Plane, value, "a plane of settings.datasets")
    raise GradInvError(f"a plane is a mapping {{dataset, label, name}}, not {value!r}")


#: a role's option: a dataset name, or several planes
DataOption = str | Planes


@dataclass(frozen=True)
class PriorSettings:
    """How a missing prior is trained (:class:`gradinv.priors.TrainConfig`; ``None``: its
    default)."""

    steps: int = 4000
    batch_size: int = 32
    lr: float = 5e-4
    block_out_channels: tuple[int, ...] | None = None
    layers_per_block: int | None = None
    checkpoint_every: int | None = None

    def train_config(self, dataset: str, size: int) -> TrainConfig:
        given = {k: v for k, v in asdict(self).items() if v is not None}
        return TrainConfig(dataset=dataset, size=size, **given)


@dataclass(frozen=True)
class AttackOverrides(profiles.AttackOverrides):
    """Config overrides per attack (the paper's values are each Config's defaults); checked
    against each attack's Config when the profile loads."""

    dlg: Mapping[str, Any] = FrozenDict({"iterations": 10})
    idlg: Mapping[str, Any] = FrozenDict({"iterations": 10})
    ig: Mapping[str, Any] = FrozenDict({"iterations": 200})
    ggdm: Mapping[str, Any] = FrozenDict({"steps": 50})
    gradinvdiff: Mapping[str, Any] = FrozenDict({"steps": 50})


@dataclass(frozen=True)
class Table1:
    """Table 1: which roles, which networks (a list: every role; a mapping: network -> its
    roles, ``None`` for every role), which methods, and ``network_images``: network -> at
    most this many private images per plane (a costly victim on fewer images than the
    profile's ``images``)."""

    roles: tuple[str, ...] = ("Acevedo-20", "ChestX-ray8", "LiTS", "Head MR (brain prior)")
    networks: Mapping[str, tuple[str, ...] | None] = field(default_factory=lambda: {"lenet7": None})
    methods: tuple[str, ...] = ("dlg", "idlg", "ig", "ggdm", "gradinvdiff", "ggdm_x0")
    network_images: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        nets = self.networks
        if isinstance(nets, str) or not isinstance(nets, Mapping | Sequence):
            raise GradInvError("table1.networks is a list of networks or a mapping")
        if not isinstance(nets, Mapping):
            nets = dict.fromkeys(nets)
        out: dict[str, tuple[str, ...] | None] = {}
        for net, roles in nets.items():
            out[str(net)] = None if roles is None else tuple(map(str, roles))
            unknown = sorted(set(out[net] or ()) - set(self.roles))
            if unknown:
                raise GradInvError(f"table1.networks.{net}: role(s) {unknown} not in table1.roles")
        object.__setattr__(self, "networks", out)
        unknown = sorted(set(self.methods) - set(LABELS))
        if unknown:
            raise GradInvError(f"table1.methods: unknown {unknown}; known: {list(LABELS)}")
        caps = {str(k): int(v) for k, v in dict(self.network_images).items()}
        if sorted(set(caps) - set(out)) or any(v < 1 for v in caps.values()):
            raise GradInvError(
                f"table1.network_images {caps}: each key a network of table1.networks "
                f"({list(out)}), each value at least 1"
            )
        object.__setattr__(self, "network_images", FrozenDict(caps))

    def images(self, network: str, default: int) -> int:
        """Private images per plane attacked through ``network`` (``default``: the
        profile's ``images``)."""
        return min(default, self.network_images.get(network, default))


@dataclass(frozen=True)
class Table2:
    """Table 2 on one role: GradInvDiff's variants (:data:`VARIANTS`) on each network;
    ``images`` private batches per variant (``None``: the profile's ``images``; the smoke
    profile sets 3, the paper profile leaves it to ``images``, hence this default)."""

    role: str = "Acevedo-20"
    networks: tuple[str, ...] = ("lenet7",)
    images: int | None = None
    variants: tuple[str, ...] = tuple(VARIANTS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise GradInvError(f"table2.variants: unknown {unknown}; known: {list(VARIANTS)}")
        if self.images is not None and self.images < 1:
            raise GradInvError(f"table2.images must be at least 1, got {self.images}")


def _default_grids() -> dict[str, Grid]:
    return {
        "ggdm": Grid("gamma", (10.0,)),
        "ggdm_x0": Grid("gamma", (10.0,)),
        "gradinvdiff": Grid("amo_lr", (0.01,)),
    }


@dataclass(frozen=True)
class Tuning:
    """The guided methods' free options, tuned per role and victim on ``images`` *public*
    images of the role's first plane (never on the private test images they are evaluated
    on): ``grids`` maps a method to the option and values tried (:class:`~gradinv.
    experiments.tuning.Grid`), every method with as many values (the same budget). The
    value with the best mean PSNR is used in every table and figure."""

    images: int = 1
    grids: Mapping[str, Grid] = field(default_factory=_default_grids)

    def __post_init__(self) -> None:
        if self.images < 1:
            raise GradInvError(f"tuning.images must be at least 1, got {self.images}")
        grids = {}
        for method, grid in dict(self.grids).items():
            if method not in LABELS:
                raise GradInvError(
                    f"tuning.grids: unknown method {method!r}; known: {list(LABELS)}"
                )
            if isinstance(grid, Mapping):
                grid = options.build(Grid, grid, f"tuning.grids.{method}")
            attack, fixed = VARIANT_OF.get(method, (method, {}))
            for value in grid.values:  # an option the method's Config lacks is an error now
                attacks.make_config(attack, **{**fixed, grid.option: value})
            grids[method] = grid
        same_budget(grids)
        object.__setattr__(self, "grids", FrozenDict(grids))


@dataclass(frozen=True)
class Fig2:
    """Fig. 2: the role and network of the private image; snapshots per path."""

    role: str = "ChestX-ray8"
    network: str = "lenet7"
    snapshots: int = 6


def _smoke_datasets() -> dict[str, tuple[DataOption, ...]]:
    def planes(dataset: str, labelled: bool) -> Planes:
        names = ("axial", "coronal", "sagittal")
        return Planes(
            tuple(Plane(dataset, i if labelled else None, n) for i, n in enumerate(names))
        )

    lits = Planes(
        tuple(
            Plane(d, None, n)
            for d, n in (
                ("organamnist", "axial"),
                ("organcmnist", "coronal"),
                ("organsmnist", "sagittal"),
            )
        )
    )
    return {
        "Acevedo-20": ("bloodmnist", "microscopy"),
        "ChestX-ray8": ("chestmnist", "chest_xray"),
        "LiTS": (lits, planes("brain_mri", labelled=True)),
        OTHER_SOURCE: (Planes((Plane("mr", 2, "head", prior="brain_mri"),)),),
    }


@dataclass(frozen=True)
class Profile:
    """``settings`` of ``papermill_runs/gradinvdiff/<profile>.yaml``; the defaults are the
    smoke profile's values (but ``table2.images``: see :class:`Table2`)."""

    size: int = 32  # paper: 64 px (Acevedo-20, LiTS), 224 px (ChestX-ray8)
    images: int = 1  # private images per cell (LiTS: per plane)
    oracle_labels: bool = False  # true: every attack gets the true labels (RLU off)
    prior: PriorSettings = field(default_factory=PriorSettings)
    datasets: Mapping[str, tuple[DataOption, ...]] = field(default_factory=_smoke_datasets)
    attacks: AttackOverrides = field(default_factory=AttackOverrides)
    table1: Table1 = field(default_factory=Table1)
    table2: Table2 = field(default_factory=Table2)
    fig2: Fig2 = field(default_factory=Fig2)
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        if self.size < 1 or self.images < 1:
            raise GradInvError("size and images must be at least 1")
        if not isinstance(self.datasets, Mapping):
            raise GradInvError("settings.datasets maps each role to its dataset options")
        parsed = {str(role): _data_options(role, opts) for role, opts in self.datasets.items()}
        object.__setattr__(self, "datasets", parsed)
        used = {
            "table1.roles": self.table1.roles,
            "table2.role": (self.table2.role,),
            "fig2.role": (self.fig2.role,),
        }
        for where, roles in used.items():
            unknown = sorted(set(roles) - set(parsed))
            if unknown:
                raise GradInvError(f"{where}: role(s) {unknown} not in datasets {list(parsed)}")

    @property
    def table2_images(self) -> int:
        return self.table2.images if self.table2.images is not None else self.images


def _data_options(role: str, value: Any) -> tuple[DataOption, ...]:
    if isinstance(value, str | Planes | Mapping):
        value = [value]
    out: list[DataOption] = []
    for option in value:
        if isinstance(option, str | Planes):
            out.append(option)
        elif isinstance(option, Mapping):
            out.append(options.build(Planes, option, f"settings.datasets.{role}"))
        else:
            raise GradInvError(
                f"settings.datasets.{role}: an option is a dataset name or {{planes: [...]}}, "
                f"not {option!r}"
            )
    if not out:
        raise GradInvError(f"settings.datasets.{role} lists no dataset")
    return tuple(out)


# -- data roles and priors ------------------------------------------------------------------
def present_datasets() -> set[str]:
    """Names of the datasets present on this machine."""
    return {row["name"] for row in data.info() if row["present"]}


def planes_for(role: str, profile: Profile, present: set[str] | None = None) -> list[Plane]:
    """The slice sets of ``role``: the first option of its list whose datasets are present
    (``present``: :func:`present_datasets`, computed when not given)."""
    choices = profile.datasets[role]
    present = present_datasets() if present is None else present
    for option in choices:
        if isinstance(option, str):
            if option in present:
                return [Plane(option, None, option)]
        elif all({p.dataset, p.prior_dataset} <= present for p in option.planes):
            return list(option.planes)
    tried = [o if isinstance(o, str) else "+".join(p.dataset for p in o.planes) for o in choices]
    first_available(tried)  # raises MissingAssetError naming what to install
    raise AssertionError("unreachable")


def prior_for(dataset: str, profile: Profile, device: str = "cpu") -> str:
    """Name of the prior of ``dataset`` at the profile's size, trained first if missing."""
    ensure_prior(profile.prior.train_config(dataset, profile.size), device=device)
    return prior_name(dataset, profile.size)


def ensure_priors(profile: Profile, device: str = "cpu") -> dict[str, str]:
    """Train every prior the profile's cells need that is missing (in this process, once,
    before the cells run); returns role -> the prior of its first plane."""
    present = present_datasets()
    roles = {*profile.datasets, *profile.table1.roles, profile.table2.role, profile.fig2.role}
    first = {}
    for role in profile.datasets:
        if role not in roles:
            continue
        planes = planes_for(role, profile, present)
        for plane in planes:
            prior_for(plane.prior_dataset, profile, device)
        first[role] = prior_name(planes[0].prior_dataset, profile.size)
    return first


def sampling_steps(profile: Profile) -> int | None:
    """GradInvDiff's reverse steps (``None``: all ``T``): also the floors' prior sample's
    and the unguided paths' steps."""
    return profile.attacks.gradinvdiff.get("steps")


def attack_options(method: str, profile: Profile, prior: str, aux_dataset: str) -> dict[str, Any]:
    """The profile's overrides of ``method``'s Config, plus the prior and RLU's aux data."""
    opts = profile.attacks.of(method)
    if method in GUIDED:
        opts.update(prior=prior, aux_dataset=aux_dataset)
    return opts


def networks_and_roles(table1: Table1) -> dict[str, list[str]]:
    """``table1.networks`` as network -> roles (``None``: every role of ``table1.roles``)."""
    return {n: list(r) if r else list(table1.roles) for n, r in table1.networks.items()}
