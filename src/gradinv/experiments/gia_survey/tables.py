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

import functools
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from gradinv.defenses.accounting import guarantee
from gradinv.experiments import claims
from gradinv.experiments.claims import mean_interval
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
    WHERE_LABEL,
    Profile,
    dataset_for,
    unit_seeds,
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


def _section(records: Iterable[Record], cells: Sequence[Cell]) -> list[Record]:
    """The records of ``cells`` (a section's), in their order; a missing one is an error."""
    index = _index(records)
    return [_found(index, c) for c in cells]


def summarise(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` (in order of appearance): the mean of each metric over the units,
    PSNR's 95 % bootstrap interval (``psnr low``/``psnr high``, NaN under two units) and
    ``n``; the mean noise level in units of the gradient (``noise/gradient``) where the
    rows have one."""
    out = []
    for key, grp in rows.groupby(list(by), sort=False, dropna=False):
        entry = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        mean, low, high, n = mean_interval(grp["psnr"].tolist())
        entry.update({"psnr": mean, "psnr low": low, "psnr high": high, "n": n})
        for col in ("ssim", "lpips", "mse", "noise_to_signal", "seconds"):
            if col in grp and grp[col].notna().any():
                entry["noise/gradient" if col == "noise_to_signal" else col] = grp[col].mean()
        out.append(entry)
    return pd.DataFrame(out)


def attack_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` that are attacks, not floors."""
    return split_floors(table, key="attack")[0]


def _attacks_then_floors(table: pd.DataFrame) -> pd.DataFrame:
    is_floor = table["attack"].isin(SURVEY_FLOORS)
    return pd.concat([table[~is_floor], table[is_floor]], ignore_index=True)


def _grid(
    cells: Sequence[Cell], records: Iterable[Record], seed: int, by: Sequence[str]
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Ground truth and reconstructions of unit ``seed`` (the figure), and the table of
    every unit of ``cells`` summarised by ``by``, attacks then floors."""
    recs = _section(records, cells)
    images: dict[str, torch.Tensor] = {}
    for rec in recs:
        if rec.cell.seed != seed:
            continue
        if "private" in rec.arrays:
            images = {"ground truth": as_tensor(rec.arrays["private"]), **images}
        elif "reconstruction" in rec.arrays:
            images[rec.cell.settings["attack"]] = as_tensor(rec.arrays["reconstruction"])
    table = summarise(unit_rows(recs), by)
    return images, _attacks_then_floors(table)


def fig4(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 4: ``(images, table)``: unit ``seed``'s private image and every attack's
    reconstruction, then the PSNR / SSIM / LPIPS table over the units (mean, PSNR interval,
    ``n``) with the floors of the same images."""
    return _grid(
        C.fig4_cells(profile, seed), records, seed, ["attack", "defense", "dataset", "model"]
    )


def fig3(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 3: ``(images, table)`` for the batch; R-GAP (batch size 1 only) keeps an empty
    row with a note where the batch is larger."""
    images, table = _grid(
        C.fig3_cells(profile, seed), records, seed, ["attack", "defense", "dataset", "model"]
    )
    missing = [a for a in profile.grid_attacks if a not in set(table["attack"])]
    dataset = dataset_for(profile.fig3.dataset, profile)
    notes = pd.DataFrame([{"attack": a, "dataset": dataset, "note": "batch size 1 only"}
                          for a in missing])  # fmt: skip
    return images, _attacks_then_floors(pd.concat([table, notes], ignore_index=True))


def fig5(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 5: ``(images, snapshots, table)``: per variant unit ``seed``'s image at each
    snapshot iteration, and the final scores over the units with the floors."""
    recs = _section(records, C.fig5_cells(profile, seed))
    images: dict[str, torch.Tensor] = {}
    for rec in recs:
        if rec.cell.seed == seed and "private" in rec.arrays:
            images = {"ground truth": as_tensor(rec.arrays["private"]), **images}
        elif rec.cell.seed == seed and "frames" in rec.arrays:
            images[rec.cell.settings["variant"]] = as_tensor(rec.arrays["frames"])
    rows = unit_rows(recs)
    rows["variant"] = rows["variant"].fillna(rows["attack"])
    table = _attacks_then_floors(summarise(rows, ["variant", "attack"]))
    return images, list(profile.fig5.snapshots), table


def _sweep(
    records: Iterable[Record], role: str, sweep: str, levels: Sequence[float], attack: str,
    profile: Profile, seed: int,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:  # fmt: skip
    defense, option = SWEEPS[sweep]
    cells = [
        c for s in unit_seeds(profile, seed)
        for c in C.sweep_cells(role, attack, defense, option, tuple(levels), profile, s,
                               keep=s == seed)
    ]  # fmt: skip
    recs = _section(records, cells)
    first = C.sweep_cells(role, attack, defense, option, tuple(levels), profile, seed)
    index = _index(recs)
    images = {"ground truth": as_tensor(_found(index, first[-1]).arrays["private"])}
    for level, cell in zip([0.0, *levels], first[:-1], strict=True):
        images[f"{option}={level:g}"] = as_tensor(_found(index, cell).arrays["reconstruction"])
    table = _attacks_then_floors(
        summarise(unit_rows(recs), ["attack", "level", "defense", "dataset"])
    )
    if sweep != "pruning":
        note = guarantee(defense, {}, releases=1).split(":")[0]
        table["guarantee"] = [note if d != "none" else "" for d in table["defense"]]
    return images, table


def fig6(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 6: ``{"gaussian, <attack>": (images, table), "laplacian, <attack>": ...}`` per
    attack of ``fig6.attacks``: one row per variance (0: undefended) over the units, with
    the noise in units of the victim's gradient and its formal guarantee (none: the noise
    is not calibrated to a clipped sensitivity), then the floors."""
    cfg, records = profile.fig6, list(records)
    return {
        f"{kind}, {attack}": _sweep(records, cfg.dataset, kind, cfg.variances, attack, profile,
                                    seed)
        for attack in cfg.attacks
        for kind in ("gaussian", "laplacian")
    }  # fmt: skip


def fig7(records: Iterable[Record], profile: Profile, seed: int = 0):
    """Fig. 7: ``{"<role>, <attack>": (images, table)}``, one row per pruning percentage
    over the units, then the floors."""
    cfg, records = profile.fig7, list(records)
    return {
        f"{role}, {attack}": _sweep(records, role, "pruning", cfg.percents, attack, profile, seed)
        for attack in cfg.attacks
        for role in cfg.datasets
    }


def defense_table(records: Iterable[Record], profile: Profile, seed: int = 0) -> pd.DataFrame:
    """Beyond the paper: every attack x defense level over the units (mean, PSNR interval,
    ``n``), then the floors of the same images."""
    recs = _section(records, C.defense_table_cells(profile, seed))
    table = summarise(unit_rows(recs), ["attack", "defense", "dataset", "model"])
    return _attacks_then_floors(table)


def method_label(method: str, where: str | None) -> str:
    """Table I's row name: the paper's method, with where its noise acts."""
    spec = FL_METHODS[method]
    if spec is None or spec[2] != "noise_where" or where is None:
        return method
    return f"{method}, {WHERE_LABEL[where]}"


def table1(records: Iterable[Record], profile: Profile, seed: int = 0) -> pd.DataFrame:
    """Table I: per role and method (a noise method once per placement) the final test
    accuracy (%) of FedAvg, mean over ``table1.seeds`` runs with its interval and ``n``,
    the best accuracy, and the noise's formal guarantee; a role with no runs keeps its rows
    with the reason."""
    recs = _section(records, C.table1_cells(profile, seed))
    rows = unit_rows(recs)
    out = []
    for role, (dataset, note) in C.table1_roles(profile).items():
        for method, where in C.table1_methods(profile):
            label = method_label(method, where)
            entry = {"dataset_role": role, "dataset": dataset, "method": label}
            if dataset is None:
                out.append({**entry, "note": note})
                continue
            grp = rows[(rows["role"] == role) & (rows["method"] == label)]
            mean, low, high, n = mean_interval(grp["accuracy"].tolist())
            spec = FL_METHODS[method]
            said = guarantee(spec[0], spec[1], releases=profile.table1.rounds) if spec else ""
            out.append({**entry, "accuracy": mean, "low": low, "high": high, "n": n,
                        "best_accuracy": grp["best_accuracy"].mean(),
                        "guarantee": said.split(":")[0]})  # fmt: skip
    return pd.DataFrame(out)


# -- per-unit rows for the claims --------------------------------------------------------------
def unit_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Every record as one long row per (cell, arm): the unit columns ``seed`` and ``image``
    (a batch's first image index: the survey attacks one private batch per seed), the cell's
    kind, dataset, attack, defense label, the defense's level, metrics, the victim's
    ``model`` key and the cell's ``seconds``; floors records give one row per floor
    (``attack`` = the floor); federation records one row with ``method`` (the paper's
    method with where its noise acts: :func:`method_label`) and ``accuracy``."""
    rows = []
    for rec in records:
        s = rec.cell.settings
        base = {"seed": rec.cell.seed, "image": 0, "kind": rec.cell.kind, "dataset": s["dataset"]}
        if rec.cell.kind in ("attack", "snapshots"):
            opts = thaw(s["defense_options"])
            level = next((float(v) for v in opts.values() if not isinstance(v, bool)), 0.0)
            scores = {m: rec.metrics[m] for m in (*METRICS, "noise_to_signal") if m in rec.metrics}
            rows.append({**base, "attack": s["attack"], "batch": s.get("batch", 1),
                         "defense": defense_label(s["defense"], opts), "level": level,
                         "variant": s.get("variant"), "model": s["model"], **scores,
                         "seconds": rec.seconds})  # fmt: skip
        elif rec.cell.kind == "floors":
            for name in SURVEY_FLOORS:
                rows.append({**base, "attack": name, "batch": s["batch"], "defense": "none",
                             "level": 0.0, **rec.metrics[name], "seconds": 0.0})  # fmt: skip
        elif rec.cell.kind == "federation":
            rows.append({**base, "role": s["role"], "base_method": s["method"],
                         "where": s["where"], "method": method_label(s["method"], s["where"]),
                         "accuracy": rec.metrics["accuracy"],
                         "best_accuracy": rec.metrics["best_accuracy"],
                         "num_classes": rec.metrics["num_classes"]})  # fmt: skip
    return pd.DataFrame(rows)


# -- paper vs this run -------------------------------------------------------------------------
#: ``reported_index(reported, table)``: one table of this paper's ``reported.csv``
reported_index = functools.partial(claims.reported_index, PAPER)


def compare_table1(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table I cell: the paper's accuracy (%) beside this run's
    mean over seeds, its interval and ``n`` (``rows``: :func:`unit_rows` of the federation
    records; a noise method once per placement, beside the paper's one number)."""
    paper = reported_index(reported, "Table I")
    rows = rows[rows["kind"] == "federation"]
    out = []
    for (role, method, base), grp in rows.groupby(["role", "method", "base_method"], sort=False):
        mean, low, high, n = mean_interval(grp["accuracy"].tolist())
        out.append({"method": method, "dataset": role,
                    "paper": paper.get((base, PAPER_COLUMN.get(role, role), "accuracy_pct"),
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


def success_matrix(rows: pd.DataFrame, success_psnr: float) -> pd.DataFrame:
    """Units x defended levels of one sweep (one dataset, defense and attack): True where
    the attack succeeded (PSNR at or above ``success_psnr``); units missing a level are
    dropped."""
    rows = rows[(rows["kind"] == "attack") & (rows["level"] > 0)]
    wide = rows.pivot_table(index="seed", columns="level", values="psnr", aggfunc="mean")
    return wide.dropna() >= success_psnr


def measured_threshold(
    success: pd.DataFrame, rate: float = 0.5, resamples: int = 2000, seed: int = 0,
    confidence: float = claims.CONFIDENCE,
) -> tuple[float, float, float, int]:  # fmt: skip
    """``(threshold, low, high, n)``: the smallest level at which the attack's success rate
    over the units falls below ``rate`` (``inf``: no level of the sweep stops it), and the
    percentile interval of that level over ``resamples`` bootstrap resamples of the units
    (``success``: :func:`success_matrix`). A level on the sweep's grid, so the interval is
    two grid levels (equal when every resample agrees)."""
    x = success.to_numpy(dtype=float)
    levels = np.asarray(success.columns, dtype=float)
    n = x.shape[0]
    if n == 0:
        return math.nan, math.nan, math.nan, 0

    def first_below(rates: np.ndarray) -> np.ndarray:
        below = rates < rate
        idx = np.where(below.any(axis=-1), below.argmax(axis=-1), -1)
        return np.where(idx >= 0, levels[np.maximum(idx, 0)], math.inf)

    point = float(first_below(x.mean(axis=0)))
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = first_below(x[draws].mean(axis=1))
    tail = (1.0 - confidence) / 2.0
    low = float(np.quantile(boot, tail, method="lower"))
    high = float(np.quantile(boot, 1.0 - tail, method="higher"))
    return point, low, high, n


def compare_thresholds(
    sweeps: Mapping[str, pd.DataFrame],
    success_psnr: float,
    reported: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Paper vs this run for Figs. 6-7, per sweep and attack: the paper's smallest level
    that stops the attack beside this run's measured threshold (the first level where the
    success rate over the units falls below one half, ``inf``: none does) with its
    bootstrap interval and ``n`` (:func:`measured_threshold`), and the noise there in units
    of the victim's gradient; ``sweeps``: the paper's name of each sweep (``Gaussian``,
    ``CIFAR-10``...) -> the :func:`unit_rows` of its records."""
    out = []
    for name, rows in sweeps.items():
        fig = "Fig. 7" if rows["defense"].str.startswith("pruning").any() else "Fig. 6"
        paper = reported_index(reported, fig)
        stops = next((v for (r, c, _), v in paper.items() if r == name and c.startswith("smallest")),
                     math.nan)  # fmt: skip
        for attack in [a for a in dict.fromkeys(rows["attack"]) if a not in SURVEY_FLOORS]:
            mine = rows[rows["attack"] == attack]
            level, low, high, n = measured_threshold(success_matrix(mine, success_psnr))
            there = mine[mine["level"] == level]
            ratio = there["noise_to_signal"].mean() if "noise_to_signal" in there else math.nan
            out.append({"figure": fig, "sweep": name, "attack": attack,
                        "paper stops from": stops, "this run stops from": level,
                        "low": low, "high": high, "n": n,
                        "noise/gradient there": ratio})  # fmt: skip
    return pd.DataFrame(out)


# -- generated summary -------------------------------------------------------------------------
def summary_markdown(
    profile: Profile,
    fig5_table: pd.DataFrame,
    sweeps: Mapping[str, pd.DataFrame],
    table1_table: pd.DataFrame,
    verdicts: Sequence[claims.Verdict] = (),
    thresholds: pd.DataFrame | None = None,
) -> str:
    """The notebook's closing summary, generated from this run's tables: the profile's
    scale, the first level that stops the attack in each sweep, Fig. 5's final PSNR per
    variant, Table I's accuracy drops, and the count of each verdict."""
    iters = {a: profile.attacks.of(a)[1].get("iterations") for a in ("idlg", "ig")}
    t1 = profile.table1
    lines = [
        f"**Scale**: {profile.size} px images, {profile.seeds} unit(s) (private image and "
        f"victim), {iters['idlg']} iDLG / {iters['ig']} IG iterations; FedAvg for "
        f"{t1.rounds} rounds on {t1.train_n or 'all'} training images per role, "
        f"{t1.seeds} seed(s); an attack succeeds at {profile.success_psnr:g} dB PSNR.",
        "",
        "**Sweeps** (mean PSNR in dB per level over the units; the first level whose mean is "
        "below the threshold):",
        "",
    ]
    for name, table in sweeps.items():
        att = attack_rows(table)
        shown = ", ".join(
            f"{lv:g}: {p:.1f}" for lv, p in zip(att["level"], att["psnr"], strict=True)
        )
        stopped = att[(att["level"] > 0) & (att["psnr"] < profile.success_psnr)]["level"]
        first = f"mean below it from {stopped.min():g}" if len(stopped) else "never below it"
        best = table[table["attack"] == NEAREST_PUBLIC]["psnr"]
        floor = f"; nearest public {best.iloc[0]:.1f}" if len(best) else ""
        lines.append(f"- {name}: {shown} ({first}{floor})")
    if thresholds is not None and len(thresholds):
        lines += ["", "**Measured thresholds** (first level where the success rate falls "
                  "below one half; 95 % bootstrap interval over the units):", ""]  # fmt: skip
        for r in thresholds.to_dict("records"):
            ratio = r["noise/gradient there"]
            noise = f", noise/gradient {ratio:.3g}" if math.isfinite(ratio) else ""
            lines.append(f"- {r['sweep']}, {r['attack']}: {r['this run stops from']:g} "
                         f"[{r['low']:g}, {r['high']:g}], n = {r['n']}{noise} "
                         f"(paper {r['paper stops from']:g})")  # fmt: skip
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
    "attack_rows",
    "compare_table1",
    "compare_thresholds",
    "defense_table",
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
    "mean_interval",
    "measured_threshold",
    "method_label",
    "reported_index",
    "stop_levels",
    "success_matrix",
    "summarise",
    "summary_markdown",
    "table1",
    "unit_rows",
]
