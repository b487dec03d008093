"""GradInvDiff's cells: what each unit of work is, and the pure functions that compute them.

Every function here rebuilds what it needs from ``cell.settings`` and ``cell.seed`` alone
(the device comes from :func:`gradinv.experiments.common.cell_device`), so any process can
compute a cell and the run store can keep it:

* ``attack`` (:func:`run_attack_cell`): one method on one private batch of one plane of a
  role, attacking one network: Table 1's cells, and Table 2's variants (ablations, gradient
  noise, batch size). The private batch is image ``image`` (seed ``seed + image``) of the
  plane's private *test* split, the victim a freshly initialised network of the same seed;
  the attacker's prior and RLU's auxiliary data come from the *public* split. Tuning cells
  are the same work on *public* images (``split``), one per value of a method's grid
  (:class:`~gradinv.experiments.gradinvdiff.profile.Tuning`); the evaluation cells carry
  the value tuning chose (``tuned``), so their keys say which one made them.
* ``floors`` (:func:`run_floors_cell`): the floors of one private image (public mean,
  nearest public image, unguided prior sample), shared by every network and table that
  attacks it.
* ``paths`` (:func:`run_paths_cell`): Fig. 2's reverse sampling paths.
* ``samples`` (:func:`run_samples_cell`): unguided samples of one prior.

Arrays are kept only where a figure shows them (Fig. 3: the first image of each plane on the
first network; Fig. 2; the prior samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from gradinv.experiments.common import build_case, cell_device, private_batch, run_attack
from gradinv.experiments.engine import Cell, Record, Result, RunStore
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.floors import floor_images, score_floors
from gradinv.experiments.gradinvdiff.profile import (
    GUIDED,
    LABELS,
    METRICS,
    PAPER,
    VARIANT_OF,
    VARIANTS,
    Plane,
    Profile,
    attack_options,
    networks_and_roles,
    planes_for,
    present_datasets,
    sampling_steps,
)
from gradinv.experiments.tuning import best_values
from gradinv.priors import SamplePath, prior_name

#: ``(role, network, method) -> {option: value}`` chosen by tuning
Tuned = Mapping[tuple[str, str, str], Mapping[str, Any]]
#: unguided samples per prior in the "diffusion prior" section
SAMPLES_PER_PRIOR = 8
#: where the cell functions live (what ``Cell.function`` names)
_HERE = __name__


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
    tuned: Mapping[str, Any] | None = None,
    split: str = "test",
) -> Cell:
    """The cell of ``method`` (or Table 2's ``variant`` of GradInvDiff) on batch ``image``
    of ``plane``'s ``split`` (``test``: private; ``public``: tuning), attacking ``network``
    with the Config options ``tuned`` chose; ``keep``: store the reconstruction."""
    attack, extra = VARIANT_OF.get(method, (method, {}))
    prior = prior_name(plane.prior_dataset, profile.size)
    opts = {**attack_options(attack, profile, prior, plane.dataset), **extra, **(tuned or {})}
    settings: dict[str, Any] = {
        "role": role,
        "dataset": plane.dataset,
        "label": plane.label,
        "plane": plane.name,
        "network": network,
        "size": profile.size,
        "batch": 1,
        "image": image,
        "split": split,
        "tuned": dict(tuned or {}),
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
        "prior": prior_name(plane.prior_dataset, profile.size),
        "steps": sampling_steps(profile),
        "keep": image == 0,
    }
    return Cell(PAPER, "floors", f"{_HERE}:run_floors_cell", settings, seed)


def tuning_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Tuning: every value of each tuned method's grid on ``tuning.images`` public images of
    the first plane of every role x network of Table 1 (and of Table 2 and Fig. 2)."""
    grids = profile.tuning.grids
    present = present_datasets()
    out = []
    for role, network in tuned_pairs(profile):
        plane = planes_for(role, profile, present)[0]
        for method, grid in grids.items():
            out += [
                attack_cell(role, plane, network, method, k, profile, seed,
                            tuned={grid.option: value}, split="public")
                for value in grid.values
                for k in range(profile.tuning.images)
            ]  # fmt: skip
    return out


def tuned_pairs(profile: Profile) -> list[tuple[str, str]]:
    """The ``(role, network)`` pairs whose guided methods need a tuned value: Table 1's,
    Table 2's and Fig. 2's."""
    pairs = [(r, n) for n, roles in networks_and_roles(profile.table1).items() for r in roles]
    pairs += [(profile.table2.role, n) for n in profile.table2.networks]
    pairs.append((profile.fig2.role, profile.fig2.network))
    return list(dict.fromkeys(pairs))


def tuned_options(records: Iterable[Record], profile: Profile) -> Tuned:
    """``(role, network, method) -> {option: value}``: per pair of :func:`tuned_pairs`, the
    value of each method's grid with the best mean PSNR on the public tuning images
    (:func:`gradinv.experiments.tuning.best_values`)."""
    rows = tuning_rows(records)
    if rows.empty:
        return {}
    best = best_values(rows, ["role", "network", "method"], profile.tuning.grids)
    return {key: {profile.tuning.grids[key[2]].option: v} for key, v in best.items()}


def tuning_rows(records: Iterable[Record]) -> pd.DataFrame:
    """One row per tuning record: role, network, method, option, value, image, metrics."""
    rows = []
    for rec in records:
        s = rec.cell.settings
        if rec.cell.kind != "attack" or s.get("split") != "public":
            continue
        ((option, value),) = s["tuned"].items()
        rows.append({"role": s["role"], "network": s["network"], "method": s["method"],
                     "option": option, "value": value, "image": s["image"],
                     **{m: rec.metrics[m] for m in METRICS if m in rec.metrics}})  # fmt: skip
    return pd.DataFrame(rows)


def _tuned(
    tuned: Tuned | None, profile: Profile, role: str, network: str, method: str
) -> dict[str, Any] | None:
    """The tuned options of one method (``{}``: the method is not tuned; ``None``: it is,
    but its tuning has not run yet)."""
    if method not in profile.tuning.grids:
        return {}
    return None if tuned is None else tuned.get((role, network, method))


def table1_cells(profile: Profile, seed: int = 0, tuned: Tuned | None = None) -> list[Cell]:
    """Table 1: every method on every image of every plane of every role x network, each
    image followed by its floors; Fig. 3 keeps the first image of each plane on the first
    network. A tuned method (``profile.tuning.grids``) runs with its ``tuned`` value and
    has no cells until tuning has chosen one (``tuned``: :func:`tuned_options`)."""
    present = present_datasets()
    nets = networks_and_roles(profile.table1)
    first = next(iter(nets))
    out = []
    for network, roles in nets.items():
        for role in roles:
            for plane in planes_for(role, profile, present):
                for k in range(profile.table1.images(network, profile.images)):
                    keep = network == first and k == 0
                    for m in profile.table1.methods:
                        opts = _tuned(tuned, profile, role, network, m)
                        if opts is not None:
                            out.append(attack_cell(role, plane, network, m, k, profile, seed,
                                                   keep=keep, tuned=opts))  # fmt: skip
                    out.append(floors_cell(plane, k, profile, seed))
    return out


def table2_cells(profile: Profile, seed: int = 0, tuned: Tuned | None = None) -> list[Cell]:
    """Table 2: every variant of GradInvDiff (with its ``tuned`` value) on
    ``table2_images`` private batches of the role's first plane, per network, then the
    floors of those images; none for a network whose tuning has not run."""
    t2 = profile.table2
    plane = planes_for(t2.role, profile)[0]
    out = []
    for network in t2.networks:
        opts = _tuned(tuned, profile, t2.role, network, "gradinvdiff")
        if opts is None:
            continue
        for variant in t2.variants:
            out += [
                attack_cell(t2.role, plane, network, "gradinvdiff", k, profile, seed, variant,
                            tuned=opts)
                for k in range(profile.table2_images)
            ]  # fmt: skip
        out += [floors_cell(plane, k, profile, seed) for k in range(profile.table2_images)]
    return out


def fig2_cells(profile: Profile, seed: int = 0, tuned: Tuned | None = None) -> list[Cell]:
    """Fig. 2: one cell, the three reverse paths for the first private image of the role,
    the guided ones with their ``tuned`` values (no cell until tuning has run)."""
    cfg = profile.fig2
    plane = planes_for(cfg.role, profile)[0]
    prior = prior_name(plane.prior_dataset, profile.size)
    steps = sampling_steps(profile)
    chosen = {m: _tuned(tuned, profile, cfg.role, cfg.network, m) for m in GUIDED}
    if any(v is None for v in chosen.values()):
        return []
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
        "options": {
            m: {**attack_options(m, profile, prior, plane.dataset), **chosen[m]} for m in GUIDED
        },  # fmt: skip
    }
    return [Cell(PAPER, "paths", f"{_HERE}:run_paths_cell", settings, seed)]


def sample_cells(profile: Profile, seed: int = 0) -> list[Cell]:
    """Unguided samples of the prior of each role's first plane (a prior two roles share,
    once, under the first role)."""
    present = present_datasets()
    out, seen = [], set()
    for role in profile.datasets:
        dataset = planes_for(role, profile, present)[0].prior_dataset
        if dataset in seen:
            continue
        seen.add(dataset)
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
def all_cells(profile: Profile, seed: int = 0, stores: Sequence[RunStore] = ()) -> list[Cell]:
    """Every cell of the notebook, most valuable first (tuning, Table 1, then Table 2,
    Fig. 2 and the prior samples): what the ``gpu`` script computes in that order. The
    cells that use a tuned value are listed once every tuning cell is in one of ``stores``
    (the values come from there): compute, then list again (``gradinv store compute``
    does)."""
    tuning = tuning_cells(profile, seed)
    found = [next((r for st in stores if (r := st.get(c)) is not None), None) for c in tuning]
    tuned = tuned_options(found, profile) if all(r is not None for r in found) else None
    return [
        *tuning,
        *table1_cells(profile, seed, tuned),
        *table2_cells(profile, seed, tuned),
        *fig2_cells(profile, seed, tuned),
        *sample_cells(profile, seed),
    ]


def run_attack_cell(cell: Cell) -> Result:
    """Build the victim and its private batch, run the attack on what it sends, score it."""
    s = thaw(cell.settings)
    case = build_case(
        s["dataset"], s["network"], s["size"], s["batch"], cell.seed + s["image"],
        device=cell_device(), split=s["split"], label=s["label"],
    )  # fmt: skip
    run = run_attack(
        case,
        s["attack"],
        s["defense"],
        s["defense_options"] or None,
        oracle_labels=s["oracle_labels"],
        **s["options"],
    )
    # metrics are deterministic (timings would make two runs' records differ and every
    # store merge a conflict): the cell's wall time is the record's ``seconds``
    metrics = {**run.metrics, "label_accuracy": run.scores.label_accuracy}
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
