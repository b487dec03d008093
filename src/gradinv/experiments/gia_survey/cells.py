"""The survey's cells: what each unit of work is, and the pure functions that compute them.

Every function here rebuilds what it needs from ``cell.settings`` and ``cell.seed`` alone
(the device comes from :func:`gradinv.experiments.common.cell_device`), so any process can
compute a cell and the run store can keep it:

* ``attack`` (:func:`run_attack_cell`): one attack on one private batch of one dataset,
  attacking a freshly initialised victim of the cell's seed through one defense: Figs. 3, 4,
  6 and 7 and the attack x defense table. A noise defense's cell also records its noise
  level in units of the victim's gradient (noise norm / gradient norm). Cells with the same spec are one cell, so Fig. 4's
  attack on the undefended image is also level 0 of Figs. 6-7 and a column of the table.
* ``floors`` (:func:`run_floors_cell`): the two data floors of one private batch (public
  mean, nearest public image; the survey's attacks use no prior), with the private images
  when a figure shows them.

Every section runs on the profile's units (:func:`~gradinv.experiments.gia_survey.profile.
unit_seeds`: each seed draws one private image and one victim); Table I on
``table1.seeds`` FedAvg runs.
* ``snapshots`` (:func:`run_snapshots_cell`): Fig. 5, one variant (plain, quantised codes,
  dequantised) of the attack with its image at each snapshot iteration.
* ``federation`` (:func:`run_federation_cell`): Table I, one FedAvg run of LeNet-5 on one
  role with one baseline defense.

The private images come from a dataset's ``train`` split (never ``public``). Arrays are kept
only where a figure shows them (``keep``).
"""

from __future__ import annotations

from typing import Any

import torch

from gradinv.experiments.common import build_case, cell_device, private_batch, run_attack
from gradinv.experiments.engine import Cell, Result
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.gia_survey.profile import (
    FIG5_VARIANTS,
    FL_METHODS,
    METRICS,
    PAPER,
    Profile,
    attack_options,
    dataset_for,
    image_size,
    unit_seeds,
)

#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__


def attack_cell(
    dataset: str,
    attack: str,
    profile: Profile,
    seed: int = 0,
    *,
    batch: int = 1,
    defense: str = "none",
    defense_options: dict[str, Any] | None = None,
    keep: bool = False,
) -> Cell:
    """The cell of ``attack`` (its victim and Config overrides from the profile) on the
    seeded private batch of ``dataset`` through ``defense``; ``keep``: store the
    reconstruction (a figure shows it)."""
    model, opts = attack_options(profile, attack)
    settings = {
        "dataset": dataset,
        "model": model,
        "size": image_size(profile, dataset),
        "batch": batch,
        "attack": attack,
        "options": opts,
        "defense": defense,
        "defense_options": dict(defense_options or {}),
        "keep": keep,
    }
    return Cell(PAPER, "attack", f"{_HERE}:run_attack_cell", settings, seed)


def floors_cell(dataset: str, profile: Profile, seed: int = 0, *, batch: int = 1) -> Cell:
    """The cell of the data floors of the seeded private batch of ``dataset`` (the batch
    every attack cell of that dataset, size, batch and seed targets); it keeps the private
    images, which every figure shows as its ground truth."""
    settings = {"dataset": dataset, "size": image_size(profile, dataset), "batch": batch,
                "keep": True}  # fmt: skip
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, seed)


def _figure_cell(cell: Cell, shown: dict[str, Cell]) -> Cell:
    """``cell``, or the same work with ``keep`` when a figure shows it (one cell, not two)."""
    s = thaw(cell.settings)
    kept = Cell(cell.paper, cell.kind, cell.function, {**s, "keep": True}, cell.seed)
    return shown.get(kept.key, cell)


def _unique(cells: list[Cell]) -> list[Cell]:
    return list({c.key: c for c in cells}.values())


# -- the cells of each figure and table ----------------------------------------------------
def fig4_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 4: per unit, every attack of ``grid_attacks`` on a single private image, then
    its floors (the images of the first unit are kept for the figure)."""
    dataset = dataset_for(profile.fig4.dataset, profile)
    return [
        cell
        for s in unit_seeds(profile, seed, grid=True)
        for cell in (
            *(attack_cell(dataset, a, profile, s, keep=s == seed) for a in profile.grid_attacks),
            floors_cell(dataset, profile, s),
        )
    ]


def fig3_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 3: per unit, every attack of ``grid_attacks`` on one private batch (R-GAP,
    defined for batch size 1 only, has no cell when the batch is larger), then the floors
    of the batch."""
    cfg = profile.fig3
    dataset = dataset_for(cfg.dataset, profile)
    attacks = [a for a in profile.grid_attacks if not (a == "rgap" and cfg.batch > 1)]
    return [
        cell
        for s in unit_seeds(profile, seed, grid=True)
        for cell in (
            *(attack_cell(dataset, a, profile, s, batch=cfg.batch, keep=s == seed)
              for a in attacks),
            floors_cell(dataset, profile, s, batch=cfg.batch),
        )
    ]  # fmt: skip


def snapshots_cell(variant: str, profile: Profile, seed: int = 0) -> Cell:
    """Fig. 5: the cell of one variant (:data:`FIG5_VARIANTS`) of its attack on a single
    private image, run to the last snapshot and keeping the image at each."""
    cfg = profile.fig5
    dataset = dataset_for(cfg.dataset, profile)
    defense, defense_options, field = FIG5_VARIANTS[variant]
    attack = cfg.attack if field is None else getattr(cfg, field)
    model, opts = attack_options(profile, attack)
    if field == "cosine_attack":
        opts = {**opts, "distance": "layer_cosine"}
    settings = {
        "dataset": dataset,
        "model": model,
        "size": image_size(profile, dataset),
        "attack": attack,
        "options": {**opts, "iterations": max(cfg.snapshots), "snapshot_every": 1},
        "defense": defense,
        "defense_options": defense_options,
        "snapshots": list(cfg.snapshots),
        "variant": variant,
    }
    return Cell(PAPER, "snapshots", f"{_HERE}:run_snapshots_cell", settings, seed)


def fig5_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 5: per unit, every variant, then the floors of the image."""
    dataset = dataset_for(profile.fig5.dataset, profile)
    return [
        cell
        for s in unit_seeds(profile, seed)
        for cell in (
            *(snapshots_cell(v, profile, s) for v in FIG5_VARIANTS),
            floors_cell(dataset, profile, s),
        )
    ]


def sweep_cells(
    role: str,
    attack: str,
    defense: str,
    option: str,
    levels: tuple[float, ...],
    profile: Profile,
    seed: int = 0,
    keep: bool = True,
) -> list[Cell]:
    """``attack`` on one private image of ``role`` undefended (level 0), then through
    ``defense`` at each ``option`` level, then the floors of the image (Figs. 6-7): one
    unit (``seed``); ``keep`` the reconstructions (a figure shows the first unit's)."""
    dataset = dataset_for(role, profile)
    return [
        attack_cell(dataset, attack, profile, seed, keep=keep),
        *(
            attack_cell(
                dataset,
                attack,
                profile,
                seed,
                defense=defense,
                defense_options={option: level},
                keep=keep,
            )
            for level in levels
        ),  # fmt: skip
        floors_cell(dataset, profile, seed),
    ]


def fig6_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 6: per unit and attack, Gaussian (a) and Laplacian (b) gradient noise of each
    variance."""
    cfg = profile.fig6
    return _unique(
        [
            c
            for s in unit_seeds(profile, seed)
            for attack in cfg.attacks
            for kind in ("gaussian", "laplacian")
            for c in sweep_cells(
                cfg.dataset,
                attack,
                f"dp_{kind}",
                "variance",
                cfg.variances,
                profile,
                s,
                keep=s == seed,
            )
        ]
    )


def fig7_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Fig. 7: per unit and attack, gradient pruning of each percentage, on each role of
    ``fig7.datasets``."""
    cfg = profile.fig7
    return _unique(
        [
            c
            for s in unit_seeds(profile, seed)
            for attack in cfg.attacks
            for role in cfg.datasets
            for c in sweep_cells(
                role, attack, "pruning", "percent", cfg.percents, profile, s, keep=s == seed
            )
        ]
    )


def defense_table_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Beyond the paper: per unit, every attack of ``defense_table.attacks`` at every
    defense level on one private image, then its floors. A cell a figure also shows is that
    figure's cell."""
    cfg = profile.defense_table
    dataset = dataset_for(cfg.dataset, profile)
    shown = {
        c.key: c
        for c in (
            *fig4_cells(profile, seed),
            *fig6_cells(profile, seed),
            *fig7_cells(profile, seed),
        )
    }
    return [
        cell
        for s in unit_seeds(profile, seed, grid=True)
        for cell in (
            *(
                _figure_cell(
                    attack_cell(dataset, attack, profile, s, defense=level.defense,
                                defense_options=thaw(level.options)),
                    shown,
                )
                for attack in cfg.attacks
                for level in cfg.levels
            ),
            floors_cell(dataset, profile, s),
        )
    ]  # fmt: skip


def table1_methods(profile: Profile) -> list[tuple[str, str | None]]:
    """Table I's rows: ``(method, where)`` for every method of :data:`FL_METHODS`, a noise
    method once per placement of ``table1.noise_where`` (``where`` ``None``: no defense)."""
    cfg = profile.table1
    out: list[tuple[str, str | None]] = []
    for method, spec in FL_METHODS.items():
        if spec is None:
            out.append((method, None))
        elif spec[2] == "noise_where":
            out += [(method, where) for where in cfg.noise_where]
        else:
            out.append((method, getattr(cfg, spec[2])))
    return out


def federation_cell(
    role: str, dataset: str, method: str, profile: Profile, seed: int = 0,
    where: str | None = None,
) -> Cell:  # fmt: skip
    """Table I: the cell of one FedAvg run of LeNet-5 on ``dataset`` (filling ``role``)
    with the baseline defense of ``method`` (:data:`FL_METHODS`) acting ``where``
    (``None``: the profile's first placement for it)."""
    cfg = profile.table1
    spec = FL_METHODS[method]
    settings: dict[str, Any] = {
        "role": role,
        "dataset": dataset,
        "method": method,
        "defense": None,
        "defense_options": {},
        "where": None,
        "size": cfg.size,
        "train_n": cfg.train_n,
        "test_n": cfg.test_n,
        "clients": cfg.clients,
        "rounds": cfg.rounds,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
    }
    if spec is not None:
        name, opts, field = spec
        placement = getattr(cfg, field)
        if where is None:
            where = placement[0] if isinstance(placement, tuple) else placement
        settings.update(defense=name, defense_options=opts, where=where)
    return Cell(PAPER, "federation", f"{_HERE}:run_federation_cell", settings, seed)


def table1_roles(profile: Profile) -> dict[str, tuple[str | None, str]]:
    """Table I's roles -> ``(dataset, note)``: the dataset filling each, or ``None`` with
    the reason the role has no runs (no data on this machine, or only a stand-in for a
    role of ``table1.needs_real``)."""
    from gradinv import data

    kinds = {row["name"]: row["kind"] for row in data.info()}
    out: dict[str, tuple[str | None, str]] = {}
    for role in profile.table1.datasets:
        try:
            dataset = dataset_for(role, profile)
        except Exception:  # a role with no data on this machine keeps its rows, with a note
            out[role] = (None, f"none of the datasets {list(profile.datasets[role])} is present")
            continue
        if role in profile.table1.needs_real and kinds.get(dataset) != "real":
            out[role] = (None, f"only the stand-in {dataset} is present; the paper's accuracy "
                         "needs the real dataset (see DATASETS.md)")  # fmt: skip
        else:
            out[role] = (dataset, "")
    return out


def table1_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Table I: every row of :func:`table1_methods` on every role with a dataset, for each
    of ``table1.seeds`` seeds (seed first)."""
    methods = table1_methods(profile)
    return [
        federation_cell(role, dataset, method, profile, s, where)
        for s in range(seed, seed + profile.table1.seeds)
        for role, (dataset, _) in table1_roles(profile).items()
        if dataset is not None
        for method, where in methods
    ]


def all_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Every cell of the notebook, most valuable first: the defense sweeps the claims are
    about (Figs. 6, 7, 5), Table I, the attack x defense table, then the attack grids
    (Figs. 4, 3). A cell two sections share is listed once."""
    return _unique(
        [
            *fig6_cells(profile, seed),
            *fig7_cells(profile, seed),
            *fig5_cells(profile, seed),
            *table1_cells(profile, seed),
            *defense_table_cells(profile, seed),
            *fig4_cells(profile, seed),
            *fig3_cells(profile, seed),
        ]
    )


# -- cell functions (pure: everything from cell.settings and cell.seed) ----------------------
def run_attack_cell(cell: Cell) -> Result:
    """Build the victim and its private batch, observe it through the defense, run the
    attack, score it. Metrics: :data:`METRICS` and the victim's class name."""
    s = thaw(cell.settings)
    case = build_case(s["dataset"], s["model"], s["size"], s["batch"], cell.seed,
                      device=cell_device())  # fmt: skip
    run = run_attack(case, s["attack"], s["defense"], s["defense_options"] or None, **s["options"])
    # metrics are deterministic (timings would make two runs' records differ and every
    # store merge a conflict): the cell's wall time is the record's ``seconds``
    metrics = {m: run.metrics[m] for m in METRICS if m in run.metrics}
    metrics["model_class"] = case.model.__class__.__name__
    if "variance" in s["defense_options"]:
        metrics["noise_to_signal"] = _noise_to_signal(case, float(s["defense_options"]["variance"]))
    arrays = {"reconstruction": run.reconstruction.images.detach().cpu()} if s["keep"] else {}
    return Result(metrics, arrays)


def _noise_to_signal(case: Any, variance: float) -> float:
    """The expected noise norm / gradient norm of noise of ``variance`` per entry on the
    gradient ``case``'s client shares (:func:`gradinv.defenses.noise.expected_noise_to_signal`)."""
    from gradinv.defenses.noise import expected_noise_to_signal
    from gradinv.pipeline import observe

    return expected_noise_to_signal(tuple(observe(case).gradients), variance)


def run_floors_cell(cell: Cell) -> Result:
    """Each floor's metrics (:func:`gradinv.experiments.floors.score_floors`) and, with
    ``keep``, the private batch."""
    from gradinv.experiments.floors import floor_images, score_floors

    s = thaw(cell.settings)
    _, images, _ = private_batch(s["dataset"], s["size"], s["batch"], cell.seed)
    floors = floor_images(images, s["dataset"], None, cell.seed)
    metrics = {
        row["method"]: {k: v for k, v in row.items()
                        if k not in ("attack", "defense", "method", "seconds")}
        for row in score_floors(floors, images)
    }  # fmt: skip
    return Result(metrics, {"private": images.detach().cpu()} if s["keep"] else {})


def run_snapshots_cell(cell: Cell) -> Result:
    """Fig. 5: one variant of the attack, its metrics and its image at every snapshot
    iteration (oldest first). Snapshots are recorded every iteration while the optimiser
    runs; one that stopped early (converged) shows its final image at the later ones."""
    s = thaw(cell.settings)
    case = build_case(s["dataset"], s["model"], s["size"], 1, cell.seed, device=cell_device())
    snaps = s["snapshots"]
    frames: dict[int, torch.Tensor] = {}

    def keep(it: int, record: dict) -> None:
        if it in snaps and "images" in record:
            frames[it] = record["images"].cpu()

    run = run_attack(case, s["attack"], s["defense"], s["defense_options"] or None,
                     callback=keep, **s["options"])  # fmt: skip
    row = [frames.get(it, run.reconstruction.images.detach().cpu()) for it in snaps]
    metrics = {m: run.metrics[m] for m in METRICS if m in run.metrics}
    return Result(metrics, {"frames": torch.cat(row)})


def run_federation_cell(cell: Cell) -> Result:
    """Table I: FedAvg of LeNet-5 on a seeded subset of the role's dataset split IID over
    the clients, eq. 3's mean of client models with one shuffling stream for all clients;
    the defense on every local step's gradient (``where: step``) or on the shared update
    (``update``). Metrics: the final and best test accuracy (%), the accuracy after every
    round and the number of classes."""
    from gradinv import data, defenses, models
    from gradinv.fl import FederationConfig, accuracy_evaluator, partition_iid, run_federated
    from gradinv.utils import seed_everything

    s = thaw(cell.settings)
    seed, dev = cell.seed, cell_device()
    federation = FederationConfig(
        rounds=s["rounds"],
        lr=s["lr"],
        local_epochs=1,
        batch_sizes=s["batch_size"],
        aggregate="models",
        shuffle="shared",
        seed=seed,
        progress=False,
    )
    train = _subset(data.load(s["dataset"], "train", s["size"]), s["train_n"], seed)
    test = _subset(data.load(s["dataset"], "test", s["size"]), s["test_n"], seed)
    shards = partition_iid(len(train.labels), s["clients"], torch.Generator().manual_seed(seed))
    clients = [(train.images[k].to(dev), train.labels[k].to(dev)) for k in shards]
    seed_everything(seed)
    net = models.build("lenet5", train.images.shape[1], train.num_classes, s["size"]).to(dev)
    step = update = None
    if s["defense"] is not None:
        guard = defenses.build(s["defense"], seed=seed, **s["defense_options"])
        step, update = (guard, None) if s["where"] == "step" else (None, guard)
    run = run_federated(
        net,
        clients,
        federation,
        defense=step,
        update_transform=update,
        evaluate=accuracy_evaluator(test.images.to(dev), test.labels.to(dev)),
    )
    accuracy = [float(h["accuracy"]) for h in run.history]
    return Result(
        {
            "accuracy": accuracy[-1],
            "best_accuracy": max(accuracy),
            "history": accuracy,
            "num_classes": int(train.num_classes),
        }
    )


def _subset(ds: Any, n: int | None, seed: int) -> Any:
    """At most ``n`` images of ``ds`` (seeded); small stand-in sets are used whole."""
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    ds.images, ds.labels = ds.images[idx], ds.labels[idx]
    return ds
