"""Drivers for GradInvDiff (Wang et al., "GradInvDiff: Stealing Medical Privacy in Federated
Learning via Diffusion-Based Gradient Inversion", MICCAI 2025; gradinvdiff.txt).

**Profile.** :class:`Profile` types ``papermill_runs/gradinvdiff/<profile>.yaml``'s
``settings`` (load it with ``profiles.load("gradinvdiff", name, Profile)``); its defaults are
the smoke profile's values; a misspelt key is a one-line error naming it and the file.

**Cells.** Every unit of work is a :class:`~gradinv.experiments.engine.Cell` that a pure,
module-level function computes from ``cell.settings`` and ``cell.seed`` alone, so the run
store keeps it and a rerun resumes:

* ``attack`` (:func:`run_attack_cell`): one method on one private batch of one plane of a
  role, attacking one network: Table 1's cells, and Table 2's variants (ablations, gradient
  noise, batch size). The private batch is image ``image`` (seed ``seed + image``) of the
  plane's private *test* split, the victim a freshly initialised network of the same seed.
* ``floors`` (:func:`run_floors_cell`): the floors of one private image
  (:mod:`gradinv.experiments.floors`), shared by every network and table that attacks it.
* ``paths`` (:func:`run_paths_cell`): Fig. 2's reverse sampling paths.
* ``samples`` (:func:`run_samples_cell`): unguided samples of one prior.

:func:`table1_cells`, :func:`table2_cells`, :func:`fig2_cells` and :func:`sample_cells` list
them; ``run_cells`` returns their records; :func:`table1_rows`, :func:`table2_rows`,
:func:`fig3_grid`, :func:`fig2_paths` and :func:`prior_samples` assemble tables and figures
from the records. Arrays are kept only where a figure shows them (Fig. 3: the first image of
each role on the first network; Fig. 2; the prior samples). The device is not part of a
cell (:func:`gradinv.experiments.common.use_device`).

**Claims.** :func:`table1_verdicts` and :func:`table2_verdicts` judge the paper's claims with
:func:`gradinv.experiments.claims.judge` on the per-image rows (units: image index and
plane; arms: methods, floors, variants); the paper's numbers come from
``papermill_runs/gradinvdiff/reported.csv`` (:func:`~gradinv.experiments.claims.load_reported`).

**Data.** Each of the paper's datasets is a *role* filled by the first dataset present of a
list (real MedMNIST first, then embedded stand-ins). LiTS is evaluated, as in the paper, on
slices along three planes and averaged: a role may list ``planes``, each a dataset plus an
optional class filter (the embedded ``brain_mri`` labels are its planes). Victims are drawn
from the private *test* split; the attacker's priors and RLU's auxiliary data use the
*public* split (public data of the same modality, Sec. 2.1), content-disjoint from it
(DATASETS.md; ``gradinv datasets --overlap`` measures how close they come). Every table
carries the floors (public mean, nearest public image, unguided prior sample): a
reconstruction shows a leak only above them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import torch

from gradinv import data, options
from gradinv.errors import GradInvError
from gradinv.experiments import claims
from gradinv.experiments.claims import Claim, Verdict
from gradinv.experiments.common import (
    build_case,
    cell_device,
    first_available,
    private_batch,
    run_attack,
)
from gradinv.experiments.engine import Cell, FrozenDict, Record, Result, frame
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.floors import (
    FLOORS,
    NEAREST_PUBLIC,
    PRIOR_SAMPLE,
    PUBLIC_MEAN,
    floor_images,
    is_floor,
    score_floors,
)
from gradinv.pipeline import defense_label
from gradinv.priors import SamplePath, TrainConfig, ensure_prior, prior_name

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
#: unguided samples per prior in the "diffusion prior" section
SAMPLES_PER_PRIOR = 8
#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__
METRICS = ("mse", "psnr", "ssim", "lpips")


# -- profile ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plane:
    """One slice set of a role: a dataset and, optionally, the class that selects it."""

    dataset: str
    label: int | None = None
    name: str = ""


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
class AttackOverrides:
    """Config overrides per attack (the paper's values are each Config's defaults); checked
    against each attack's Config when the profile loads."""

    dlg: Mapping[str, Any] = FrozenDict({"iterations": 10})
    idlg: Mapping[str, Any] = FrozenDict({"iterations": 10})
    ig: Mapping[str, Any] = FrozenDict({"iterations": 200})
    ggdm: Mapping[str, Any] = FrozenDict({"steps": 50})
    gradinvdiff: Mapping[str, Any] = FrozenDict({"steps": 50})

    def __post_init__(self) -> None:
        from gradinv import attacks

        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise GradInvError(f"attacks.{f.name} is a mapping of Config overrides")
            parsed = options.parse_overrides(
                attacks.get(f.name).Config, value, f"attacks.{f.name} (attack {f.name!r})"
            )
            object.__setattr__(self, f.name, FrozenDict(parsed))

    def of(self, attack: str) -> dict[str, Any]:
        return thaw(getattr(self, attack))


@dataclass(frozen=True)
class Table1:
    """Table 1: which roles, which networks (a list: every role; a mapping: network -> its
    roles, ``None`` for every role), which methods."""

    roles: tuple[str, ...] = ("Acevedo-20", "ChestX-ray8", "LiTS")
    networks: Mapping[str, tuple[str, ...] | None] = field(
        default_factory=lambda: {"lenet7": None, "resnet18": ("Acevedo-20",)}
    )
    methods: tuple[str, ...] = ("dlg", "idlg", "ig", "ggdm", "gradinvdiff", "ggdm_x0")

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
        elif all(p.dataset in present for p in option.planes):
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
            prior_for(plane.dataset, profile, device)
        first[role] = prior_name(planes[0].dataset, profile.size)
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


# -- cells --------------------------------------------------------------------------------------
def attack_cell(
    role: str,
    plane: Plane,
    network: str,
    method: str,
    image: int,
    profile: Profile,
    seed: int = 0,
    variant: str | None = None,
    keep: bool = False,
) -> Cell:
    """The cell of ``method`` (or Table 2's ``variant`` of GradInvDiff) on private batch
    ``image`` of ``plane``, attacking ``network``; ``keep``: store the reconstruction."""
    attack, extra = VARIANT_OF.get(method, (method, {}))
    prior = prior_name(plane.dataset, profile.size)
    opts = {**attack_options(attack, profile, prior, plane.dataset), **extra}
    settings: dict[str, Any] = {
        "role": role,
        "dataset": plane.dataset,
        "label": plane.label,
        "plane": plane.name,
        "network": network,
        "size": profile.size,
        "batch": 1,
        "image": image,
        "method": method,
        "attack": attack,
        "defense": "none",
        "defense_options": {},
        "oracle_labels": profile.oracle_labels,
        "keep": keep,
    }
    if variant is not None:
        change = dict(VARIANTS[variant])
        settings["variant"] = variant
        settings["batch"] = change.pop("batch", 1)
        settings["defense"] = change.pop("defense", "none")
        settings["defense_options"] = change.pop("defense_options", {})
        opts.update(change)
    settings["options"] = opts
    return Cell(PAPER, "attack", f"{_HERE}:run_attack_cell", settings, seed)


def floors_cell(plane: Plane, image: int, profile: Profile, seed: int = 0) -> Cell:
    """The cell of the floors of private image ``image`` of ``plane`` (network-free: every
    network and table attacking that image shares it); the first image keeps its images."""
    settings = {
        "dataset": plane.dataset,
        "label": plane.label,
        "size": profile.size,
        "image": image,
        "prior": prior_name(plane.dataset, profile.size),
        "steps": sampling_steps(profile),
        "keep": image == 0,
    }
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, seed)


def table1_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 1: every method on every image of every plane of every role x network, each
    image followed by its floors; Fig. 3 keeps the first image of each plane on the first
    network."""
    present = present_datasets()
    nets = networks_and_roles(profile.table1)
    first = next(iter(nets))
    out = []
    for network, roles in nets.items():
        for role in roles:
            for plane in planes_for(role, profile, present):
                for k in range(profile.images):
                    keep = network == first and k == 0
                    out += [
                        attack_cell(role, plane, network, m, k, profile, seed, keep=keep)
                        for m in profile.table1.methods
                    ]
                    out.append(floors_cell(plane, k, profile, seed))
    return out


def table2_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table 2: every variant of GradInvDiff on ``table2_images`` private batches of the
    role's first plane, per network, then the floors of those images."""
    t2 = profile.table2
    plane = planes_for(t2.role, profile)[0]
    out = []
    for network in t2.networks:
        for variant in t2.variants:
            out += [
                attack_cell(t2.role, plane, network, "gradinvdiff", k, profile, seed, variant)
                for k in range(profile.table2_images)
            ]
        out += [floors_cell(plane, k, profile, seed) for k in range(profile.table2_images)]
    return out


def fig2_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 2: one cell, the three reverse paths for the first private image of the role."""
    cfg = profile.fig2
    plane = planes_for(cfg.role, profile)[0]
    prior = prior_name(plane.dataset, profile.size)
    steps = sampling_steps(profile)
    settings = {
        "role": cfg.role,
        "dataset": plane.dataset,
        "label": plane.label,
        "network": cfg.network,
        "size": profile.size,
        "image": 0,
        "prior": prior,
        "steps": steps,
        "every": max(1, (steps or 1000) // cfg.snapshots),
        "guided": list(GUIDED),
        "options": {m: attack_options(m, profile, prior, plane.dataset) for m in GUIDED},
    }
    return [Cell(PAPER, "paths", f"{_HERE}:run_paths_cell", settings, seed)]


def sample_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Unguided samples of the prior of each role's first plane."""
    present = present_datasets()
    out = []
    for role in profile.datasets:
        dataset = planes_for(role, profile, present)[0].dataset
        settings = {
            "role": role,
            "dataset": dataset,
            "prior": prior_name(dataset, profile.size),
            "n": SAMPLES_PER_PRIOR,
            "steps": sampling_steps(profile),
        }
        out.append(Cell(PAPER, "samples", f"{_HERE}:run_samples_cell", settings, seed))
    return out


# -- cell functions (pure: everything from cell.settings and cell.seed) -------------------
def run_attack_cell(cell: Cell) -> Result:
    """Build the victim and its private batch, run the attack on what it sends, score it."""
    s = thaw(cell.settings)
    case = build_case(
        s["dataset"], s["network"], s["size"], s["batch"], cell.seed + s["image"],
        device=cell_device(), split="test", label=s["label"],
    )  # fmt: skip
    run = run_attack(
        case,
        s["attack"],
        s["defense"],
        s["defense_options"] or None,
        oracle_labels=s["oracle_labels"],
        **s["options"],
    )
    metrics = {**run.metrics, "label_accuracy": run.scores.label_accuracy, "seconds": run.seconds}
    arrays = {"reconstruction": run.reconstruction.images.detach().cpu()} if s["keep"] else {}
    return Result(metrics, arrays)


def run_floors_cell(cell: Cell) -> Result:
    """Each floor's metrics (and, with ``keep``, the private image and the floors' images)."""
    s = thaw(cell.settings)
    seed = cell.seed + s["image"]
    _, images, _ = private_batch(s["dataset"], s["size"], 1, seed, split="test", label=s["label"])
    floors = floor_images(images, s["dataset"], s["prior"], seed, s["steps"], label=s["label"])
    metrics = {
        row["method"]: {m: row[m] for m in METRICS if m in row}
        for row in score_floors(floors, images)
    }
    arrays = {"private": images, **floors} if s["keep"] else {}
    return Result(metrics, arrays)


def run_paths_cell(cell: Cell) -> Result:
    """Fig. 2: unguided DDPM, GGDM and GradInvDiff from the same seed on one private image;
    each path's snapshots (oldest first) and the private image."""
    from gradinv import attacks, defenses
    from gradinv.fl import observe
    from gradinv.priors import load_prior

    s = thaw(cell.settings)
    device = cell_device()
    case = build_case(
        s["dataset"], s["network"], s["size"], 1, cell.seed + s["image"],
        device=device, split="test", label=s["label"],
    )  # fmt: skip
    observed = observe(case, defenses.build("none"))
    paths = {"DDPM": SamplePath()}
    load_prior(s["prior"], device).sample(
        1, steps=s["steps"], seed=cell.seed, path=paths["DDPM"], snapshot_every=s["every"]
    )
    for method in s["guided"]:
        opts = {**s["options"][method], "snapshot_every": s["every"]}
        rec = attacks.run(method, case.model, observed, **opts)
        paths[LABELS[method]] = rec.extras["path"]
    arrays = {"private": case.images.detach().cpu()}
    arrays.update({name: torch.cat([x.detach().cpu() for x in p.x]) for name, p in paths.items()})
    metrics = {"paths": list(paths), "steps": {name: list(p.steps) for name, p in paths.items()}}
    return Result(metrics, arrays)


def run_samples_cell(cell: Cell) -> Result:
    """``n`` unguided samples of the prior, from the cell's seed."""
    from gradinv.priors import load_prior

    s = thaw(cell.settings)
    prior = load_prior(s["prior"], cell_device())
    samples = prior.sample(s["n"], steps=s["steps"], seed=cell.seed)
    return Result({"steps_done": prior.meta.get("steps_done")}, {"samples": samples.cpu()})


# -- tables and figures from the records -----------------------------------------------------
def _of(records: Iterable[Record], kind: str) -> list[Record]:
    return [r for r in records if r.cell.kind == kind]


def _image_key(settings: Mapping[str, Any], seed: int) -> tuple[Any, ...]:
    return (settings["dataset"], settings["label"], settings["size"], settings["image"], seed)


def _floor_rows(record: Record, **extra: Any) -> list[dict[str, Any]]:
    """The rows :func:`~gradinv.experiments.floors.score_floors` gave for this image."""
    return [
        {"attack": name, "defense": "none", **extra, "method": name, **record.metrics[name],
         "seconds": 0.0}
        for name in FLOORS
        if name in record.metrics
    ]  # fmt: skip


def _attack_rows(records: Sequence[Record], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per attack record (via :func:`engine.frame`): ``attack``, ``defense``, the
    ``columns`` of the cell, the metrics and the attack's seconds."""
    if not records:
        return []
    df = frame(records)
    rows = []
    for rec, r in zip(records, df.to_dict("records"), strict=True):
        s = rec.cell.settings
        row = {
            "attack": s["attack"],
            "defense": defense_label(s["defense"], thaw(s["defense_options"])),
        }
        for col in columns:
            value = r[col]
            row[col] = {
                "network": NETWORKS.get(value, value),
                "method": LABELS.get(value, value),
            }.get(col, value)
        row.update({m: r[m] for m in METRICS if m in r})
        row["seconds"] = r["seconds"]
        rows.append(row)
    return rows


def _floors_index(records: Iterable[Record]) -> dict[tuple[Any, ...], Record]:
    return {_image_key(r.cell.settings, r.cell.seed): r for r in _of(records, "floors")}


def table1_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Table 1's per-image rows from the records of :func:`table1_cells`: every method, then
    the floors of that image (``method`` = floor name), per network, role, plane and image."""
    records = list(records)
    attacks_ = [r for r in _of(records, "attack") if "variant" not in r.cell.settings]
    floors = _floors_index(records)
    cols = ["role", "network", "dataset", "plane", "image", "method"]
    rows: list[dict[str, Any]] = []
    group: tuple[Any, ...] | None = None
    last: Record | None = None
    for rec, row in zip(attacks_, _attack_rows(attacks_, cols), strict=True):
        here = (row["network"], row["role"], row["plane"], row["image"])
        if group is not None and here != group and last is not None:
            rows += _group_floors(last, floors)
        rows.append(row)
        group, last = here, rec
    if last is not None:
        rows += _group_floors(last, floors)
    return pd.DataFrame(rows)


def _group_floors(rec: Record, floors: Mapping[tuple[Any, ...], Record]) -> list[dict[str, Any]]:
    s = rec.cell.settings
    found = floors.get(_image_key(s, rec.cell.seed))
    if found is None:
        return []
    cell = {
        "role": s["role"],
        "network": NETWORKS.get(s["network"], s["network"]),
        "dataset": s["dataset"],
        "plane": s["plane"],
        "image": s["image"],
    }
    return _floor_rows(found, **cell)


def table2_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Table 2's per-image rows from the records of :func:`table2_cells`: every variant per
    network, then the floors of the network's images (``variant`` = floor name)."""
    records = list(records)
    attacks_ = [r for r in _of(records, "attack") if "variant" in r.cell.settings]
    floors = _floors_index(records)
    rows: list[dict[str, Any]] = []
    by_net: dict[str, list[tuple[Record, dict[str, Any]]]] = {}
    for rec, row in zip(
        attacks_, _attack_rows(attacks_, ["variant", "network", "image"]), strict=True
    ):
        by_net.setdefault(row["network"], []).append((rec, row))
    for net, pairs in by_net.items():
        rows += [row for _, row in pairs]
        seen: dict[int, Record] = {}
        for rec, row in pairs:
            seen.setdefault(row["image"], rec)
        for image, rec in seen.items():
            found = floors.get(_image_key(rec.cell.settings, rec.cell.seed))
            if found is not None:
                rows += [
                    {**r, "variant": r["method"]}
                    for r in _floor_rows(found, network=net, image=image)
                ]
    return pd.DataFrame(rows)


def fig3_grid(records: Iterable[Record]) -> dict[str, dict[str, torch.Tensor]]:
    """Fig. 3 from Table 1's records: per role (and plane, where a role has several) the
    private image, every method's reconstruction and the floors, for the kept cells."""
    records = list(records)
    floors = _floors_index(records)
    kept = [r for r in _of(records, "attack") if "reconstruction" in r.arrays]
    planes: dict[str, set[str]] = {}
    for r in _of(records, "attack"):
        planes.setdefault(r.cell.settings["role"], set()).add(r.cell.settings["plane"])
    grid: dict[str, dict[str, torch.Tensor]] = {}
    for rec in kept:
        s = rec.cell.settings
        key = f"{s['role']} ({s['plane']})" if len(planes[s["role"]]) > 1 else s["role"]
        if key not in grid:
            found = floors.get(_image_key(s, rec.cell.seed))
            grid[key] = {"ground truth": _tensor(found.arrays["private"])} if found else {}
        grid[key][LABELS.get(s["method"], s["method"])] = _tensor(rec.arrays["reconstruction"])
    for rec in kept:  # the floors after every method
        s = rec.cell.settings
        key = f"{s['role']} ({s['plane']})" if len(planes[s["role"]]) > 1 else s["role"]
        found = floors.get(_image_key(s, rec.cell.seed))
        if found is not None:
            for name in FLOORS:
                if name in found.arrays and name not in grid[key]:
                    grid[key][name] = _tensor(found.arrays[name])
    return grid


def fig2_paths(records: Iterable[Record]) -> tuple[torch.Tensor, dict[str, SamplePath]]:
    """The private image and the reverse paths (DDPM, GGDM, GradInvDiff) of Fig. 2's cell."""
    (rec,) = _of(records, "paths")
    paths = {}
    for name in rec.metrics["paths"]:
        x = _tensor(rec.arrays[name])
        paths[name] = SamplePath(steps=list(rec.metrics["steps"][name]), x=list(x.split(1)))
    return _tensor(rec.arrays["private"]), paths


def prior_samples(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """Role -> ``{prior, samples, steps_done}`` from the records of :func:`sample_cells`."""
    return {
        r.cell.settings["role"]: {
            "prior": r.cell.settings["prior"],
            "samples": _tensor(r.arrays["samples"]),
            "steps_done": r.metrics.get("steps_done"),
        }
        for r in _of(records, "samples")
    }


def _tensor(array: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(array))


def summarise(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean PSNR/SSIM/LPIPS over images (and LiTS planes, as the paper averages them)."""
    cols = [c for c in METRICS[1:] if c in df]
    return df.groupby(list(by), sort=False)[cols].mean().reset_index()


# -- paper vs this run --------------------------------------------------------------------------
def _reported_index(reported: pd.DataFrame | None, table: str) -> dict[tuple[str, str, str], float]:
    """``(row, column, metric) -> value`` of one table of ``reported.csv``."""
    rep = claims.load_reported(PAPER) if reported is None else reported
    rep = rep[rep["table"] == table]
    return {
        (r.row, r.column, r.metric): float(r.value)
        for r in rep.itertuples(index=False)
    }  # fmt: skip


def _compare(ours: pd.DataFrame, paper: Mapping[tuple[str, str, str], float], keys: list[str],
             row: str, column: Any) -> pd.DataFrame:  # fmt: skip
    out = []
    for r in ours.to_dict("records"):
        col = column(r)
        if col is None or not any((r[row], col, m) in paper for m in METRICS):
            continue
        entry = {k: r[k] for k in keys}
        entry["n"] = int(r["n"])
        for m in METRICS[1:]:
            entry[f"{m.upper()} paper"] = paper.get((r[row], col, m), math.nan)
            entry[f"{m.upper()} run"] = round(r[m], 3) if m in r else math.nan
        out.append(entry)
    return pd.DataFrame(out)


def compare_table1(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table 1 cell: means over images and planes, with ``n``
    (rows of ``reported.csv``; floors have none)."""
    attacks_ = df[~df["method"].map(is_floor)]
    ours = summarise(attacks_, ["method", "role", "network"])
    ours["n"] = attacks_.groupby(["method", "role", "network"], sort=False).size().to_numpy()
    out = _compare(ours, _reported_index(reported, "Table 1"), ["method", "role", "network"],
                   "method", lambda r: f"{r['role']}/{r['network']}")  # fmt: skip
    return out.rename(columns={"role": "dataset"})


def compare_table2(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table 2 cell, with ``n``."""
    attacks_ = df[~df["variant"].map(is_floor)]
    ours = summarise(attacks_, ["variant", "network"])
    ours["n"] = attacks_.groupby(["variant", "network"], sort=False).size().to_numpy()
    paper = _reported_index(reported, "Table 2")
    columns = {c for _, c, _ in paper}

    def column(r: Mapping[str, Any]) -> str | None:
        found = sorted(c for c in columns if c.endswith(f"/{r['network']}"))
        return found[0] if found else None

    return _compare(ours, paper, ["variant", "network"], "variant", column)


# -- claims ----------------------------------------------------------------------------------------
#: PSNR of an exact reconstruction is infinite; the claims cap it here (our choice)
PSNR_CAP = 60.0
#: per unit, the best of the three floors (highest PSNR/SSIM, lowest LPIPS)
BEST_FLOOR = "best floor"
#: our reading of Table 2's "only a marginal performance drop" under gradient noise: less
#: than this many dB of PSNR (the paper's drops, in reported.csv, are about 1 dB)
MARGINAL_DROP_DB = 2.5
_BATCH = {"GradInvDiff": 1, "batch 4": 4, "batch 8": 8}


def _with_best_floor(rows: pd.DataFrame, arm: str, unit: Sequence[str]) -> pd.DataFrame:
    """``rows`` with PSNR capped at :data:`PSNR_CAP` and one :data:`BEST_FLOOR` row per unit."""
    rows = rows.copy()
    rows["psnr"] = rows["psnr"].clip(upper=PSNR_CAP)
    floors = rows[rows[arm].map(is_floor)]
    if floors.empty:
        return rows
    best = floors.groupby(list(unit), sort=False).agg(
        {m: ("min" if m in ("lpips", "mse") else "max") for m in METRICS if m in rows}
    )
    best = best.reset_index()
    best[arm] = BEST_FLOOR
    return pd.concat([rows, best], ignore_index=True)


def _reported_text(
    paper: Mapping[tuple[str, str, str], float], metric: str, column: str, *arms: str
) -> str:
    """What the paper reports for ``arms`` in ``column`` (``"A 20.7 vs B 19.4 dB"``); a
    floor is never reported."""
    shown = [f"{a} {paper[(a, column, metric)]:g}" for a in arms if (a, column, metric) in paper]
    if not shown:
        return "not reported"
    missing = " (floors not reported)" if any(a == BEST_FLOOR for a in arms) else ""
    return " vs ".join(shown) + (" dB" if metric == "psnr" else "") + missing


def _exceeds(
    cid: str, text: str, arms: tuple[str, str], metric: str, reported: str, margin: float = 0.0
) -> Claim:
    return Claim(
        cid,
        PAPER,
        text,
        "exceeds",
        arms,
        metric=metric,
        higher_is_better=metric != "lpips",
        margin=margin,
        reported=reported,
        units="dB" if metric == "psnr" else "",
    )


#: Table 1's claims per role x network and metric: (id, text, arms)
T1_CLAIMS = (
    ("floors", "GradInvDiff beats every floor (public mean, nearest public, prior sample)",
     ("GradInvDiff", BEST_FLOOR)),
    ("ggdm", "GradInvDiff beats GGDM", ("GradInvDiff", "GGDM")),
    ("ig", "GradInvDiff beats IG", ("GradInvDiff", "IG")),
)  # fmt: skip
_NOISY = "noise N(0, 0.01^2)"
#: Table 2's claims per network, on PSNR: (id, text, arms, margin)
T2_CLAIMS = (
    ("floors", "GradInvDiff beats every floor", ("GradInvDiff", BEST_FLOOR), 0.0),
    ("wo-amo", "removing AMO lowers PSNR", ("GradInvDiff", "w/o AMO"), 0.0),
    ("wo-gani", "removing GANI lowers PSNR", ("GradInvDiff", "w/o GANI"), 0.0),
    ("amo-over-gani", "removing AMO hurts more than removing GANI", ("w/o GANI", "w/o AMO"), 0.0),
    ("noise-lowers", f"gradient noise {_NOISY} lowers PSNR", ("GradInvDiff", _NOISY), 0.0),
    ("noise-marginal", f"gradient noise {_NOISY} costs less than {MARGINAL_DROP_DB:g} dB "
     "(\"only a marginal performance drop\")", (_NOISY, "GradInvDiff"), -MARGINAL_DROP_DB),
)  # fmt: skip


def table1_claims(
    rows: pd.DataFrame, reported: pd.DataFrame | None = None
) -> list[tuple[Claim, pd.DataFrame]]:
    """Table 1's claims (:data:`T1_CLAIMS`) per role x network, in PSNR and in LPIPS, each
    with the rows it is judged on (units: plane and image; arm: ``method``, with a
    :data:`BEST_FLOOR` row per unit). Claims whose arms this run lacks are left out."""
    paper = _reported_index(reported, "Table 1")
    out = []
    for (role, net), grp in rows.groupby(["role", "network"], sort=False):
        table = _with_best_floor(grp, "method", ["plane", "image"])
        arms = set(table["method"])
        for metric in ("psnr", "lpips"):
            for cid, text, pair in T1_CLAIMS:
                if set(pair) <= arms:
                    claim = _exceeds(
                        f"t1/{role}/{net}/{cid}/{metric}",
                        f"{text} in {metric.upper()} (Table 1, {role} / {net})",
                        pair,
                        metric,
                        _reported_text(paper, metric, f"{role}/{net}", *pair),
                    )
                    out.append((claim, table))
    return out


def table2_claims(
    rows: pd.DataFrame, reported: pd.DataFrame | None = None
) -> list[tuple[Claim, pd.DataFrame]]:
    """Table 2's claims per network on PSNR (unit: image index; arm: ``variant``):
    :data:`T2_CLAIMS`, then "PSNR falls with the batch size" (a trend over B = 1, 4, 8)."""
    paper = _reported_index(reported, "Table 2")
    columns = sorted({c for _, c, _ in paper})
    out = []
    for net, grp in rows.groupby("network", sort=False):
        table = _with_best_floor(grp, "variant", ["image"])
        arms = set(table["variant"])
        col = next((c for c in columns if c.endswith(f"/{net}")), "")
        for cid, text, pair, margin in T2_CLAIMS:
            if set(pair) <= arms:
                reported_ = _reported_text(paper, "psnr", col, *pair)
                claim = _exceeds(f"t2/{net}/{cid}", f"{text} (Table 2, {net})", pair, "psnr",
                                 reported_, margin)  # fmt: skip
                out.append((claim, table))
        batches = table[table["variant"].isin(list(_BATCH))].copy()
        if batches["variant"].nunique() >= 2:
            batches["level"] = batches["variant"].map(_BATCH)
            batches["variant"] = "GradInvDiff"
            shown = [f"{paper[(n, col, 'psnr')]:g}" for n in _BATCH if (n, col, "psnr") in paper]
            claim = Claim(
                f"t2/{net}/batch",
                PAPER,
                f"PSNR falls with the batch size, B = 1, 4, 8 (Table 2, {net})",
                "trend",
                ("GradInvDiff",),
                metric="psnr",
                direction="down",
                reported=" -> ".join(shown) + " dB" if shown else "not reported",
            )
            out.append((claim, batches))
    return out


def table1_verdicts(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> list[Verdict]:
    """:func:`table1_claims` judged (units: plane and image)."""
    return [
        claims.judge(c, d, unit=["plane", "image"], arm="method")
        for c, d in table1_claims(rows, reported)
    ]


def table2_verdicts(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> list[Verdict]:
    """:func:`table2_claims` judged (unit: image index)."""
    return [
        claims.judge(c, d, unit="image", arm="variant", level="level")
        for c, d in table2_claims(rows, reported)
    ]


# -- generated summary -------------------------------------------------------------------------
def summary_markdown(
    t1_rows: pd.DataFrame, t2_rows: pd.DataFrame, verdicts: Sequence[Verdict] = ()
) -> str:
    """The notebook's closing summary, generated from this run's rows (mean PSNR, n images):
    per Table 1 cell the headline attacks beside the floors, then Table 2's variants, then
    the count of each verdict."""
    keep = ["GradInvDiff", "GGDM", "IG", NEAREST_PUBLIC, PRIOR_SAMPLE, PUBLIC_MEAN]
    lines = ["**Table 1** (mean PSNR in dB over n private images; floors in italics):", ""]
    for (role, net), grp in t1_rows.groupby(["role", "network"], sort=False):
        stats = grp.groupby("method", sort=False)["psnr"].agg(["mean", "count"])
        parts = [
            (
                f"*{m}* {stats.loc[m, 'mean']:.1f}"
                if is_floor(m)
                else f"{m} {stats.loc[m, 'mean']:.1f}"
            )
            for m in keep
            if m in stats.index
        ]
        n = int(stats["count"].max())
        lines.append(f"- {role} / {net} (n = {n}): " + ", ".join(parts))
    stats = t2_rows.groupby(["network", "variant"], sort=False)["psnr"].agg(["mean", "count"])
    lines += ["", "**Table 2** (mean PSNR in dB, n private batches):", ""]
    for (net, variant), r in stats.iterrows():
        label = f"*{variant}*" if is_floor(variant) else variant
        lines.append(f"- {net}, {label}: {r['mean']:.1f} (n = {int(r['count'])})")
    if verdicts:
        counts = pd.Series([v.verdict for v in verdicts]).value_counts()
        told = ", ".join(f"{int(counts.get(lab, 0))} {lab}" for lab in claims.LABELS)
        lines += ["", f"**Claims** ({len(verdicts)}, `claims.md`): {told}."]
    return "\n".join(lines)
