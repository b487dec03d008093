"""GGSS-R's profile: the names the tables use, the typed ``settings`` of
``papermill_runs/ggss_r/<profile>.yaml`` (:class:`Profile`, defaults: the smoke profile), and
the data roles and attack options the cells need.

The paper's prior is trained on FFHQ and attacks CelebA, LSUN and ImageNet, none of which it
saw. We keep that mismatch: one prior (``prior``, trained on the *public* split of one
dataset, as is the GAN of the GAN baselines) attacks three *roles*, each filled by the first
dataset present of a list (real data first, then embedded stand-ins), always from the
private *test* split, content-disjoint from ``public`` (``gradinv datasets --overlap``).
Images are converted to the prior's channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from gradinv import attacks
from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.common import first_available
from gradinv.experiments.engine import FrozenDict

PAPER = "ggss_r"
#: attack key -> the label of the paper's tables
LABELS = {
    "dlg": "DLG",
    "ig": "IG",
    # GI (b8) is Yin et al.'s GradInversion: GGSS-R's baselines (GI, GIAS, GGL, GIFD) are
    # GIFD's list, and GIFD's code runs "GI" as its GAN-free ``yin`` method
    # (configs_gan_free.yml: Adam lr 0.1, TV 1e-4, image norm 1e-6, group 0.01, no BN
    # statistics, 15000 iterations, 4 restarts), although GGSS-R's text groups it with the
    # GAN-based attacks
    "gradinversion": "GI",
    "gias": "GIAS",
    "ggl": "GGL",
    "gifd": "GIFD",
    "finetuned_diff": "FinetunedDiff",
    "ggss_r": "GGSS-R",
}
#: victim key -> the label of Table 1 and Table 8
MODEL_LABELS = {
    "resnet18": "ResNet18",
    "mlp5": "MLP-5",
    "vgg16": "VGGNet16",
    "cnn": "CNN",
    "mlp4": "MLP-4",
    "mlp3": "MLP-3",
}
#: the paper's three target datasets, each a role filled by a dataset present here
ROLES = ("CelebA", "LSUN", "ImageNet")
#: what every reconstruction is scored by (:func:`gradinv.metrics.evaluate`)
METRICS = ("mse", "psnr", "ssim", "lpips")
#: gradient noises of Tables 2 (Gaussian) and 7 (Laplacian)
NOISES = ("gaussian", "laplacian")


@dataclass(frozen=True)
class AttackOverrides(profiles.AttackOverrides):
    """Config overrides per attack (the paper's values are each Config's defaults); checked
    against each attack's Config when the profile loads (an attack not installed here keeps
    its overrides unchecked: its rows say "not run")."""

    ggss_r: Mapping[str, Any] = FrozenDict({"steps": 25})  # our default: 100 DDIM steps
    dlg: Mapping[str, Any] = FrozenDict({"iterations": 20})
    ig: Mapping[str, Any] = FrozenDict({"iterations": 200})
    gradinversion: Mapping[str, Any] = FrozenDict({"iterations": 200})
    gias: Mapping[str, Any] = FrozenDict({"restarts": 1, "iterations": 100, "gias_iterations": 100})
    ggl: Mapping[str, Any] = FrozenDict({"iterations": 30, "population": 16})
    gifd: Mapping[str, Any] = FrozenDict({"restarts": 1, "iterations": 50})
    finetuned_diff: Mapping[str, Any] = FrozenDict({"iterations": 20})

    def checks(self, attack: str) -> bool:
        return available(attack)


@dataclass(frozen=True)
class RV:
    """The RV estimate of eqs. 18-19: ``images`` private images (one batch), ``directions``
    random orthonormal directions (the paper's N and K were lost from the text copy)."""

    images: int = 2
    directions: int = 4


VICTIM_MODES = ("train", "eval")


@dataclass(frozen=True)
class Victims:
    """The attacked models (every table's, and RV's): freshly initialised (``epochs`` 0) or
    trained for ``epochs`` on the role's *public* split with the pre-training recipe of
    :mod:`gradinv.models.pretrain` (cached per model, dataset, size and seed), then in
    ``mode`` (``eval``: BatchNorm uses running statistics). Sec. 5.3 computes RV "given a
    model trained on a dataset D" and attacks the same model; a fresh train-mode ResNet18
    with batch 1 has an RV four orders of magnitude above the paper's."""

    epochs: int = 0
    mode: str = "train"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise GradInvError(f"victims.epochs must be >= 0, got {self.epochs}")
        if self.mode not in VICTIM_MODES:
            raise GradInvError(f"victims.mode is one of {VICTIM_MODES}, got {self.mode!r}")


@dataclass(frozen=True)
class Table1:
    """Table 1: which roles, which victims."""

    roles: tuple[str, ...] = ROLES
    models: tuple[str, ...] = tuple(MODEL_LABELS)

    def __post_init__(self) -> None:
        _known("table1.models", self.models, MODEL_LABELS)


@dataclass(frozen=True)
class Noise:
    """Tables 2 and 7: the victim, ``images`` private images per level (``None``: the
    profile's ``images``) and each noise's variances (the paper's were lost)."""

    model: str = "cnn"
    images: int | None = None
    variances: Mapping[str, tuple[float, ...]] = field(
        default_factory=lambda: dict.fromkeys(NOISES, (1e-4, 1e-3, 1e-2, 1e-1))
    )

    def __post_init__(self) -> None:
        _known("noise.model", (self.model,), MODEL_LABELS)
        if not isinstance(self.variances, Mapping):
            raise GradInvError("noise.variances maps each noise to its variances")
        _known("noise.variances", tuple(self.variances), NOISES)
        parsed = {
            str(k): tuple(float(v) for v in (vs if isinstance(vs, Sequence) else [vs]))
            for k, vs in self.variances.items()
        }
        object.__setattr__(self, "variances", FrozenDict(parsed))


@dataclass(frozen=True)
class Baselines:
    """Tables 3 and 4: the victim, Table 4's gradient noise ``(kind, variance)``, the
    methods, GGSS-R included, and ``images`` private images (``None``: the profile's
    ``images``), each attacked once (seed 0)."""

    model: str = "cnn"
    noise: tuple[str, float] = ("gaussian", 1e-2)  # Table 4: the third level of Table 2
    methods: tuple[str, ...] = tuple(LABELS)
    images: int | None = None

    def __post_init__(self) -> None:
        _known("baselines.model", (self.model,), MODEL_LABELS)
        _known("baselines.noise", (self.noise[0],), NOISES)
        _known("baselines.methods", self.methods, LABELS)
        _at_least_one("baselines.images", self.images)


@dataclass(frozen=True)
class Table5:
    """Table 5: batch sizes (the paper's four values were lost), methods, and ``images``
    private batches per size (``None``: as many as Tables 3 and 4)."""

    batches: tuple[int, ...] = (1, 2, 4)
    methods: tuple[str, ...] = ("dlg", "ig", "ggss_r")
    images: int | None = None

    def __post_init__(self) -> None:
        _known("table5.methods", self.methods, LABELS)
        _at_least_one("table5.images", self.images)


@dataclass(frozen=True)
class Table6:
    """Table 6: GGSS-R's guidance rate g of eq. 17, on ``images`` private images (``None``:
    the profile's ``images``)."""

    model: str = "cnn"
    images: int | None = None
    rates: tuple[float, ...] = (0.01, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)

    def __post_init__(self) -> None:
        _known("table6.model", (self.model,), MODEL_LABELS)


@dataclass(frozen=True)
class Table8:
    """Table 8: the victims whose conditional step is timed, and how many steps."""

    models: tuple[str, ...] = tuple(MODEL_LABELS)
    steps: int = 5

    def __post_init__(self) -> None:
        _known("table8.models", self.models, MODEL_LABELS)
        if self.steps < 1:
            raise GradInvError(f"table8.steps must be at least 1, got {self.steps}")


def _smoke_datasets() -> dict[str, tuple[str, ...]]:
    return {"CelebA": ("chest_xray",), "LSUN": ("brain_mri",), "ImageNet": ("faces",)}


@dataclass(frozen=True)
class Profile:
    """``settings`` of ``papermill_runs/ggss_r/<profile>.yaml``; the defaults are the smoke
    profile's values (but ``noise.images`` and ``table6.images``, which the smoke profile
    sets to 3 and the paper profile leaves to ``images``).

    A *unit* of Tables 1, 2/7 and 6 is a private image and an attack seed: each image is
    attacked ``seeds`` times (GGSS-R's DDIM noise and, under a noise defense, the gradient
    noise drawn anew), every victim, level and rate with the same seeds, so units pair
    across them."""

    size: int = 32  # paper: 256 px; the shipped priors are 32 px
    images: int = 1  # private images per cell (the paper does not say)
    seeds: int = 1  # attack seeds per private image, Tables 1, 2/7 and 6 (paper silent)
    prior: str = "chest_xray-32"  # paper: a DDPM trained on FFHQ faces
    gan: str | None = "gan-chest_xray-32"  # the GAN baselines' generator
    lpips: str | None = "alex"
    datasets: Mapping[str, tuple[str, ...]] = field(default_factory=_smoke_datasets)
    attacks: AttackOverrides = field(default_factory=AttackOverrides)
    rv: RV = field(default_factory=RV)
    victims: Victims = field(default_factory=Victims)
    table1: Table1 = field(default_factory=Table1)
    noise: Noise = field(default_factory=Noise)
    baselines: Baselines = field(default_factory=Baselines)
    table5: Table5 = field(default_factory=Table5)
    table6: Table6 = field(default_factory=Table6)
    table8: Table8 = field(default_factory=Table8)

    def __post_init__(self) -> None:
        if self.size < 1 or self.images < 1 or self.seeds < 1:
            raise GradInvError("size, images and seeds must be at least 1")
        parsed = profiles.dataset_options(self.datasets)
        _known("settings.datasets", tuple(parsed), ROLES)
        missing = sorted(set(ROLES) - set(parsed))
        if missing:
            raise GradInvError(f"settings.datasets: no option for role(s) {missing}")
        _known("table1.roles", self.table1.roles, parsed)
        object.__setattr__(self, "datasets", parsed)

    @property
    def noise_images(self) -> int:
        return self.noise.images if self.noise.images is not None else self.images

    @property
    def table6_images(self) -> int:
        return self.table6.images if self.table6.images is not None else self.images

    @property
    def baseline_images(self) -> int:
        return self.baselines.images if self.baselines.images is not None else self.images

    @property
    def table5_images(self) -> int:
        return self.table5.images if self.table5.images is not None else self.baseline_images


_known = profiles.check_known


def _at_least_one(key: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise GradInvError(f"{key} must be at least 1 (or omitted), got {value}")


# -- data roles and attack options ------------------------------------------------------------
def dataset_for(role: str, profile: Profile) -> str:
    """The first dataset present among the role's options."""
    return first_available(profile.datasets[role])


@cache
def prior_channels(prior: str) -> int:
    """Channels of the prior called ``prior`` (targets are converted to them)."""
    from gradinv.priors import load_prior

    return load_prior(prior, "cpu").image_shape[0]


def available(method: str) -> bool:
    """Whether ``method`` is implemented in this installation (else its row says so)."""
    try:
        attacks.get(method)
    except GradInvError:  # not registered, or its module is missing
        return False
    return True


def attack_options(method: str, profile: Profile) -> dict[str, Any]:
    """The profile's Config overrides of ``method``, plus its generative prior if it has one."""
    opts = profile.attacks.of(method)
    names = {f.name for f in dataclasses.fields(attacks.get(method).Config)}
    if "prior" in names:
        opts.setdefault("prior", profile.prior)
    if "gan" in names:
        opts.setdefault("gan", profile.gan)
    return opts


def ggss_r_steps(profile: Profile) -> int:
    """GGSS-R's reverse steps: also the floors' prior sample's and the prior samples'."""
    opts = profile.attacks.of("ggss_r")
    return int(opts.get("steps", attacks.get("ggss_r").Config.steps))
