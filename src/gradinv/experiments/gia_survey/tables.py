"""The survey's tables and figures, assembled from the records of its cells, and "paper vs
this run" beside ``papermill_runs/gia_survey/reported.csv``.

Each function takes the records of a section's cells (``run(fig4_cells(profile, seed))``)
with the profile and seed that made them, and returns what the notebook shows: images for a
figure and a DataFrame whose rows are the attacks, then the data floors of the same private
images (``public mean``, ``nearest public``; defense ``none``, since they see no gradient).
A reconstruction shows a leak only above them; the claims read the floors only as the
floor an attack must beat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from gradinv.experiments import claims
from gradinv.experiments.engine import Cell, Record
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.engine.tables import as_tensor
from gradinv.experiments.floors import NEAREST_PUBLIC, PUBLIC_MEAN, split_floors
from gradinv.experiments.gia_survey import cells as C
from gradinv.experiments.gia_survey.profile import (
    FIG5_VARIANTS,
    FL_METHODS,
    METRICS,
    PAPER,
    Profile,
    dataset_for,
)
from gradinv.pipeline import defense_label

#: the floors of the survey's tables (its attacks use no prior: no prior-sample floor)
SURVEY_FLOORS = (PUBLIC_MEAN, NEAREST_PUBLIC)
#: Table I's columns in the paper, per role
PAPER_COLUMN = {"mnist_like": "MNIST", "fashion": "Fashion-MNIST", "cifar_like": "CIFAR-10"}
#: Figs. 6-7: the defense and option each sweep varies
SWEEPS = {
    "gaussian": ("dp_gaussian", "variance"),
    "laplacian": ("dp_laplacian", "variance"),
    "pruning": ("pruning", "percent"),
}


def _index(records: Iterable[Record]) -> dict[str, Record]:
    return {r.key: r for r in records}


def _found(index: Mapping[str, Record], cell: Cell) -> Record:
    rec = index.get(cell.key)
    if rec is None:
        raise KeyError(f"no record of {cell.label()}: pass the records of this section's cells")
    return rec


def attack_row(rec: Record, **extra: Any) -> dict[str, Any]:
    """One attack's row: ``attack``, ``defense``, ``extra``, :data:`METRICS` and ``seconds``
    (the cell's wall time: victim, observation, attack and scoring)."""
    s = rec.cell.settings
    row = {
        "attack": s["attack"],
        "defense": defense_label(s["defense"], thaw(s["defense_options"])),
    }
    row.update(extra)
    row.update({m: rec.metrics[m] for m in METRICS if m in rec.metrics})
    row["seconds"] = rec.seconds
    return row


def floor_rows(rec: Record, **extra: Any) -> list[dict[str, Any]]:
    """The floors' rows of one floors record (``method`` names the floor, as in every
    paper's tables)."""
    dataset = rec.cell.settings["dataset"]
    rows = []
    for name in SURVEY_FLOORS:
        if name in rec.metrics:
            scores = {m: rec.metrics[name][m] for m in METRICS if m in rec.metrics[name]}
            rows.append({"attack": name, "defense": "none", "dataset": dataset, **extra,
                         "method": name, **scores, "seconds": 0.0})  # fmt: skip
    return rows


def attack_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` that are attacks, not floors."""
    return split_floors(table, key="attack")[0]


def _grid(
    cells: Sequence[Cell], index: Mapping[str, Record], model_column: str = "class"
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Ground truth and reconstructions of the attack cells of ``cells``, their rows, then the
    rows of the floors cell (the last)."""
    floors = _found(index, cells[-1])
    images = {"ground truth": as_tensor(floors.arrays["private"])}
    rows = []
    for cell in cells[:-1]:
        rec = _found(index, cell)
        s = rec.cell.settings
        model = rec.metrics["model_class"] if model_column == "class" else s["model"]
        rows.append(attack_row(rec, dataset=s["dataset"], model=model))
        if "reconstruction" in rec.arrays:
            images[s["attack"]] = as_tensor(rec.arrays["reconstruction"])
    return images, [*rows, *floor_rows(floors)]


def fig4(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 4: ``(images, table)``: the private image and every attack's reconstruction,
    then the PSNR / SSIM / LPIPS table with the floors of the image."""
    images, rows = _grid(C.fig4_cells(profile, seed), _index(records))
    return images, pd.DataFrame(rows)


def fig3(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 3: ``(images, table)`` for the batch; R-GAP (batch size 1 only) keeps an empty
    row with a note where the batch is larger."""
    cells = C.fig3_cells(profile, seed)
    images, rows = _grid(cells, _index(records))
    ran = [c.settings["attack"] for c in cells[:-1]]
    dataset = dataset_for(profile.fig3.dataset, profile)
    out = []
    for attack in profile.grid_attacks:
        if attack in ran:
            out.append(rows[ran.index(attack)])
        else:
            out.append({"attack": attack, "dataset": dataset, "note": "batch size 1 only"})
    return images, pd.DataFrame([*out, *rows[len(ran) :]])


def fig5(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 5: ``(images, snapshots, table)``: per variant the image at each snapshot
    iteration, and the final scores with the floors of the image."""
    index = _index(records)
    cells = C.fig5_cells(profile, seed)
    floors = _found(index, cells[-1])
    images = {"ground truth": as_tensor(floors.arrays["private"])}
    rows = []
    for cell in cells[:-1]:
        rec = _found(index, cell)
        s = rec.cell.settings
        images[s["variant"]] = as_tensor(rec.arrays["frames"])
        rows.append(attack_row(rec, dataset=s["dataset"], variant=s["variant"]))
    rows += [{**r, "variant": r["attack"]} for r in floor_rows(floors)]
    return images, list(profile.fig5.snapshots), pd.DataFrame(rows)


def _sweep(
    records: Iterable[Record], role: str, sweep: str, levels: Sequence[float], attack: str,
    profile: Profile, seed: int,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:  # fmt: skip
    defense, option = SWEEPS[sweep]
    cells = C.sweep_cells(role, attack, defense, option, tuple(levels), profile, seed)
    index = _index(records)
    floors = _found(index, cells[-1])
    images = {"ground truth": as_tensor(floors.arrays["private"])}
    rows = []
    for level, cell in zip([0.0, *levels], cells[:-1], strict=True):
        rec = _found(index, cell)
        images[f"{option}={level:g}"] = as_tensor(rec.arrays["reconstruction"])
        rows.append(attack_row(rec, dataset=cell.settings["dataset"], level=level))
    return images, pd.DataFrame([*rows, *floor_rows(floors)])  # the floors have no level


def fig6(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 6: ``{"gaussian": (images, table), "laplacian": (...)}``, one row per variance
    (0: undefended), then the floors."""
    cfg, records = profile.fig6, list(records)
    return {
        kind: _sweep(records, cfg.dataset, kind, cfg.variances, cfg.attack, profile, seed)
        for kind in ("gaussian", "laplacian")
    }


def fig7(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 7: ``{role: (images, table)}``, one row per pruning percentage, then the floors."""
    cfg, records = profile.fig7, list(records)
    return {
        role: _sweep(records, role, "pruning", cfg.percents, cfg.attack, profile, seed)
        for role in cfg.datasets
    }


def defense_table(records: Iterable[Record], profile: Profile, seed: int = 0) -> pd.DataFrame:
    """Beyond the paper: every attack x defense level (the victim's ``model`` key), then the
    floors of the image."""
    _, rows = _grid(C.defense_table_cells(profile, seed), _index(records), model_column="key")
    return pd.DataFrame(rows)


def table1(records: Iterable[Record], profile: Profile, seed: int = 0) -> pd.DataFrame:
    """Table I: per role and method the final and best test accuracy (%) of FedAvg; a role
    with no data on this machine keeps its rows with a note."""
    index = _index(records)
    rows = []
    for role, dataset in C.table1_roles(profile).items():
        if dataset is None:
            note = f"none of the datasets {list(profile.datasets[role])} is present"
            rows += [{"dataset_role": role, "method": m, "note": note} for m in FL_METHODS]
            continue
        for method in FL_METHODS:
            rec = _found(index, C.federation_cell(role, dataset, method, profile, seed))
            rows.append({"dataset_role": role, "dataset": dataset, "method": method,
                         "accuracy": rec.metrics["accuracy"],
                         "best_accuracy": rec.metrics["best_accuracy"]})  # fmt: skip
    return pd.DataFrame(rows)


# -- per-unit rows for the claims --------------------------------------------------------------
def unit_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Every record as one long row per (cell, arm): the unit columns ``seed`` and ``image``
    (a batch's first image index: the survey attacks one private batch per seed), the cell's
    kind, dataset, attack, defense label, the defense's level and metrics; floors records
    give one row per floor (``attack`` = the floor)."""
    rows = []
    for rec in records:
        s = rec.cell.settings
        base = {"seed": rec.cell.seed, "image": 0, "kind": rec.cell.kind, "dataset": s["dataset"]}
        if rec.cell.kind in ("attack", "snapshots"):
            opts = thaw(s["defense_options"])
            level = next((float(v) for v in opts.values() if not isinstance(v, bool)), 0.0)
            rows.append({**base, "attack": s["attack"], "batch": s.get("batch", 1),
                         "defense": defense_label(s["defense"], opts), "level": level,
                         "variant": s.get("variant"),
                         **{m: rec.metrics[m] for m in METRICS if m in rec.metrics}})  # fmt: skip
        elif rec.cell.kind == "floors":
            for name in SURVEY_FLOORS:
                rows.append({**base, "attack": name, "batch": s["batch"], "defense": "none",
                             "level": 0.0, **rec.metrics[name]})  # fmt: skip
        elif rec.cell.kind == "federation":
            rows.append({**base, "role": s["role"], "method": s["method"],
                         "accuracy": rec.metrics["accuracy"],
                         "num_classes": rec.metrics["num_classes"]})  # fmt: skip
    return pd.DataFrame(rows)


# -- paper vs this run -------------------------------------------------------------------------
def reported_index(reported: pd.DataFrame | None, table: str) -> dict[tuple[str, str, str], float]:
    """``(row, column, metric) -> value`` of one table of ``reported.csv``."""
    rep = claims.load_reported(PAPER) if reported is None else reported
    rep = rep[rep["table"] == table]
    return {(r.row, r.column, r.metric): float(r.value) for r in rep.itertuples(index=False)}


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: the bootstrap interval of the mean (NaN under two values)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan, 0
    if x.size < 2:
        return float(x.mean()), math.nan, math.nan, 1
    low, high = claims.bootstrap_ci(x)
    return float(x.mean()), low, high, int(x.size)


def compare_table1(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table I cell: the paper's accuracy (%) beside this run's
    mean over seeds, its interval and ``n`` (``rows``: :func:`unit_rows` of the federation
    records)."""
    paper = reported_index(reported, "Table I")
    rows = rows[rows["kind"] == "federation"]
    out = []
    for (role, method), grp in rows.groupby(["role", "method"], sort=False):
        mean, low, high, n = mean_interval(grp["accuracy"].tolist())
        out.append({"method": method, "dataset": role,
                    "paper": paper.get((method, PAPER_COLUMN.get(role, role), "accuracy_pct"),
                                       math.nan),
                    "this run": mean, "low": low, "high": high, "n": n})  # fmt: skip
    return pd.DataFrame(out)


def stop_levels(rows: pd.DataFrame, success_psnr: float) -> pd.DataFrame:
    """Per sweep (dataset, defense) and unit: the smallest level whose PSNR is below
    ``success_psnr`` (NaN: no level stopped the attack) and the largest level at or above
    it (NaN: none), from the attack rows of a sweep (:func:`unit_rows`)."""
    out = []
    rows = rows[(rows["kind"] == "attack") & (rows["level"] > 0)]
    for (dataset, defense, attack, seed), grp in rows.groupby(
        ["dataset", rows["defense"].str.split("(").str[0], "attack", "seed"], sort=False
    ):
        stopped = grp[grp["psnr"] < success_psnr]["level"]
        leaked = grp[grp["psnr"] >= success_psnr]["level"]
        out.append({"dataset": dataset, "defense": defense, "attack": attack, "seed": seed,
                    "stops from": stopped.min() if len(stopped) else math.nan,
                    "leaks up to": leaked.max() if len(leaked) else math.nan})  # fmt: skip
    return pd.DataFrame(out)


def compare_thresholds(
    sweeps: Mapping[str, pd.DataFrame],
    success_psnr: float,
    reported: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Paper vs this run for Figs. 6-7: the smallest level that stops the attack (PSNR below
    ``success_psnr``) and the largest that does not, paper beside this run's mean over seeds
    with ``n``; ``sweeps``: the paper's row name (``Gaussian``, ``CIFAR-10``...) -> the
    :func:`unit_rows` of that sweep's records."""
    out = []
    for name, rows in sweeps.items():
        fig = "Fig. 7" if rows["defense"].str.startswith("pruning").any() else "Fig. 6"
        paper = reported_index(reported, fig)
        levels = stop_levels(rows, success_psnr)
        levels = levels[levels["defense"] != "none"]
        for col, said in (("stops from", "smallest"), ("leaks up to", "largest")):
            key = next(((r, c, m) for (r, c, m) in paper if r == name and c.startswith(said)), None)
            mean, low, high, n = mean_interval(levels[col].dropna().tolist())
            out.append({"figure": fig, "sweep": name, "level": col,
                        "paper": paper[key] if key else math.nan, "this run": mean,
                        "low": low, "high": high, "n": n,
                        "seeds where none": int(levels[col].isna().sum())})  # fmt: skip
    return pd.DataFrame(out)


# -- generated summary -------------------------------------------------------------------------
def summary_markdown(
    profile: Profile,
    fig5_table: pd.DataFrame,
    sweeps: Mapping[str, pd.DataFrame],
    table1_table: pd.DataFrame,
    verdicts: Sequence[claims.Verdict] = (),
) -> str:
    """The notebook's closing summary, generated from this run's tables: the profile's
    scale, the first level that stops the attack in each sweep, Fig. 5's final PSNR per
    variant, Table I's accuracy drops, and the count of each verdict."""
    iters = {a: profile.attacks.of(a)[1].get("iterations") for a in ("dlg", "ig")}
    lines = [
        f"**Scale**: {profile.size} px images, {iters['dlg']} DLG / {iters['ig']} IG "
        f"iterations, FedAvg for {profile.table1.rounds} rounds on "
        f"{profile.table1.train_n or 'all'} training images per role; an attack succeeds "
        f"at {profile.success_psnr:g} dB PSNR.",
        "",
        "**Sweeps** (PSNR in dB per level; the first level below the threshold stops the attack):",
        "",
    ]
    for name, table in sweeps.items():
        att = attack_rows(table)
        shown = ", ".join(
            f"{lv:g}: {p:.1f}" for lv, p in zip(att["level"], att["psnr"], strict=True)
        )
        stopped = att[(att["level"] > 0) & (att["psnr"] < profile.success_psnr)]["level"]
        first = f"stopped from {stopped.min():g}" if len(stopped) else "never stopped"
        best = table[table["attack"] == NEAREST_PUBLIC]["psnr"]
        floor = f"; nearest public {best.iloc[0]:.1f}" if len(best) else ""
        lines.append(f"- {name}: {shown} ({first}{floor})")
    att = attack_rows(fig5_table)
    lines += ["", "**Fig. 5** (final PSNR in dB): " + ", ".join(
        f"{v.replace(chr(10), ' ')} {p:.1f}" for v, p in zip(att["variant"], att["psnr"], strict=True)
    )]  # fmt: skip
    acc = table1_table.dropna(subset=["accuracy"]) if "accuracy" in table1_table else None
    if acc is not None and len(acc):
        lines += ["", "**Table I** (accuracy drop from Base FL, points; negative: a gain):", ""]
        for role, grp in acc.groupby("dataset_role", sort=False):
            by = grp.set_index("method")["accuracy"]
            base = by.get("Base FL", math.nan)
            drops = ", ".join(f"{m} {base - a:+.1f}" for m, a in by.items() if m != "Base FL")
            lines.append(f"- {role} (Base FL {base:.1f} %): {drops}")
    if verdicts:
        lines += ["", claims.count_line(verdicts)]
    return "\n".join(lines)


__all__ = [
    "FIG5_VARIANTS",
    "PAPER_COLUMN",
    "SURVEY_FLOORS",
    "SWEEPS",
    "attack_row",
    "attack_rows",
    "compare_table1",
    "compare_thresholds",
    "defense_table",
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
    "floor_rows",
    "mean_interval",
    "reported_index",
    "stop_levels",
    "summary_markdown",
    "table1",
    "unit_rows",
]
