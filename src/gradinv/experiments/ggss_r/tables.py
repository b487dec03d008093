"""GGSS-R's tables and figures, assembled from the records of its cells, and "paper vs this
run" beside ``papermill_runs/ggss_r/reported.csv`` (mean, 95 % bootstrap interval of the
PSNR, n units and how many private images they cover, per line).

Rows are per unit: a private image (``image``) and an attack seed (``seed``). An image's
seeds are not independent draws of the image population, so intervals resample images,
each carrying the mean over its seeds.

Every table of reconstruction quality carries, per set of private images, the floors
(``method`` = "public mean", "nearest public", "prior sample" of the GGSS-R prior), scored
like the attacks: a reconstruction shows a leak only above them. Floors use no gradient, so
where several cells share the same private images (every victim of a Table 1 role, every
noise level, every guidance rate) one set of floor rows stands for all of them and leaves
that cell key empty (``None``/NaN: ``model``, ``variance``, ``guidance rate``); in the
baselines tables they carry ``status = "floor"``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gradinv.errors import GradInvError
from gradinv.experiments import claims
from gradinv.experiments.claims import Verdict
from gradinv.experiments.common import repo_root
from gradinv.experiments.engine import Record
from gradinv.experiments.engine.tables import as_tensor, of_kind
from gradinv.experiments.floors import (
    FLOORS,
    NEAREST_PUBLIC,
    PRIOR_SAMPLE,
    floor_mask,
    is_floor,
    split_floors,
)
from gradinv.experiments.ggss_r.budgets import budget_share
from gradinv.experiments.ggss_r.profile import LABELS, METRICS, MODEL_LABELS, PAPER

# -- records -> per-image rows ----------------------------------------------------------------


def _batch_key(s: Mapping[str, Any], seed: int) -> tuple[Any, ...]:
    """What identifies a private batch: the floors of an attack cell share it."""
    return (s["dataset"], s["size"], s["channels"], s["batch"], s["image"], seed)


def _floors_of(records: Iterable[Record]) -> dict[tuple[Any, ...], Record]:
    return {_batch_key(r.cell.settings, r.cell.seed): r for r in of_kind(records, "floors")}


def _floor_rows(record: Record | None, **cell: Any) -> list[dict[str, Any]]:
    """The floor rows of one private batch (:func:`gradinv.experiments.floors.floor_rows`'
    layout), ``cell`` the table's keys."""
    if record is None:
        return []
    return [
        {"attack": name, "defense": "none", **cell, "method": name, **record.metrics[name],
         "seconds": 0.0}
        for name in FLOORS
        if name in record.metrics
    ]  # fmt: skip


def _scores(record: Record) -> dict[str, float]:
    return {m: record.metrics[m] for m in METRICS if m in record.metrics}


def rvs(records: Iterable[Record]) -> dict[str, float]:
    """Victim label -> its RV, from the ``rv`` records."""
    return {MODEL_LABELS[r.cell.settings["model"]]: r.metrics["rv"] for r in of_kind(records, "rv")}


def victims_table(records: Iterable[Record]) -> pd.DataFrame:
    """The trained victims: per role and model, the public images it was trained on and its
    accuracy there and on the private test split (empty for fresh victims)."""
    rows = [
        {"role": r.cell.settings["role"], "dataset": r.cell.settings["dataset"],
         "model": MODEL_LABELS[r.cell.settings["model"]], "epochs": r.cell.settings["epochs"],
         **r.metrics, "seconds": r.seconds}
        for r in of_kind(records, "victim")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def table1_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Table 1's per-unit rows: per role, the victims in increasing RV, each (image, seed)
    unit's GGSS-R row (``seconds``: the cell's wall time; ``s/step`` that over its reverse
    steps), the floors of each image after the first victim's rows (``model`` and ``seed``
    empty)."""
    records = list(records)
    rv, floors = rvs(records), _floors_of(records)
    attacks_ = of_kind(records, "attack")
    rows = []
    for role in dict.fromkeys(r.cell.settings["role"] for r in attacks_):
        mine = [r for r in attacks_ if r.cell.settings["role"] == role]
        models = sorted(dict.fromkeys(MODEL_LABELS[r.cell.settings["model"]] for r in mine),
                        key=rv.get)  # fmt: skip
        for i, model in enumerate(models):
            for rec in sorted(
                (r for r in mine if MODEL_LABELS[r.cell.settings["model"]] == model),
                key=lambda r: (r.cell.settings["image"], r.cell.settings["attack_seed"]),
            ):
                s = rec.cell.settings
                rows.append(
                    {"role": role, "dataset": s["dataset"], "model": model,
                     "method": LABELS[s["method"]], "rv": rv[model], "image": s["image"],
                     "seed": s["attack_seed"], **_scores(rec), "seconds": rec.seconds,
                     "s/step": rec.seconds / max(1, rec.metrics["history"])}
                )  # fmt: skip
                if i == 0 and s["attack_seed"] == 0:  # the images do not depend on the victim
                    rows += _floor_rows(floors.get(_batch_key(s, rec.cell.seed)), role=role,
                                        dataset=s["dataset"], model=None, image=s["image"])  # fmt: skip
    return pd.DataFrame(rows)


def fig5a_grid(records: Iterable[Record]) -> dict[str, dict[str, torch.Tensor]]:
    """Fig. 5(a): per role, the private image and GGSS-R's reconstruction per victim (kept
    cells), victims in increasing RV, labelled with their RV."""
    records = list(records)
    rv = rvs(records)
    kept = [r for r in of_kind(records, "attack") if "reconstruction" in r.arrays]
    grid: dict[str, dict[str, torch.Tensor]] = {}
    for rec in sorted(kept, key=lambda r: rv[MODEL_LABELS[r.cell.settings["model"]]]):
        s = rec.cell.settings
        model = MODEL_LABELS[s["model"]]
        cell = grid.setdefault(s["role"], {"ground truth": as_tensor(rec.arrays["private"])})
        cell[f"{model} (RV {rv[model]:.3g})"] = as_tensor(rec.arrays["reconstruction"])
    order = list(dict.fromkeys(r.cell.settings["role"] for r in kept))
    return {role: grid[role] for role in order}


def noise_rows(
    records: Iterable[Record],
) -> tuple[pd.DataFrame, dict[str, dict[float, list[float]]]]:
    """Tables 2 and 7's per-unit rows (final and peak-along-the-path scores; per noise, the
    floors of each image once, ``variance`` and ``seed`` empty), and for Fig. 5 the PSNR of
    ``x0(x_t)`` at every step of the first unit (image 0, seed 0), per noise and variance."""
    records = list(records)
    floors = _floors_of(records)
    attacks_ = [r for r in of_kind(records, "attack") if r.cell.settings["path"]]
    rows, paths = [], {}
    for kind in dict.fromkeys(_noise(r.cell.settings)[0] for r in attacks_):
        mine = [r for r in attacks_ if _noise(r.cell.settings)[0] == kind]
        paths[kind] = {}
        firsts: dict[int, Record] = {}
        for rec in mine:
            s = rec.cell.settings
            variance = _noise(s)[1]
            curve = list(rec.metrics["path psnr"])
            rows.append(
                {"noise": kind, "variance": variance, "image": s["image"],
                 "seed": s["attack_seed"], "method": LABELS[s["method"]], **_scores(rec),
                 "peak psnr": max(curve), "peak step": curve.index(max(curve)),
                 "path steps": len(curve)}
            )  # fmt: skip
            if s["image"] == s["attack_seed"] == 0:
                paths[kind][variance] = curve
            firsts.setdefault(s["image"], rec)
        for image, rec in sorted(firsts.items()):  # every variance attacked the same images
            found = floors.get(_batch_key(rec.cell.settings, rec.cell.seed))
            rows += _floor_rows(found, noise=kind, variance=None, image=image)
    return pd.DataFrame(rows), paths


def _noise(s: Mapping[str, Any]) -> tuple[str, float]:
    """``(kind, variance)`` of an attack cell's gradient noise (``("none", 0.0)``: none)."""
    if s["noise"] is None:
        return "none", 0.0
    return str(s["noise"][0]), float(s["noise"][1])


def baseline_rows(records: Iterable[Record], methods: Sequence[str]) -> pd.DataFrame:
    """Tables 3-5's per-image rows, per batch size: every method of ``methods`` (one not run
    here keeps a row with ``status = "not run"``) with the share of its own paper's budget
    it ran (``budget``, :func:`~gradinv.experiments.ggss_r.budgets.budget_share`), then the
    floors of each private batch (``status = "floor"``)."""
    records = list(records)
    attacks_ = of_kind(records, "attack")
    rows = []
    for batch in dict.fromkeys(r.cell.settings["batch"] for r in of_kind(records, "floors")):
        for method in methods:
            mine = [r for r in attacks_
                    if r.cell.settings["method"] == method and r.cell.settings["batch"] == batch]  # fmt: skip
            if not mine:
                rows.append({"method": LABELS[method], "batch": batch, "status": "not run"})
            for rec in mine:
                s = rec.cell.settings
                rows.append(
                    {"method": LABELS[method], "batch": batch, "image": s["image"],
                     "seed": s["attack_seed"], "status": "ran", **_scores(rec),
                     "budget": budget_share(method, s["options"]), "seconds": rec.seconds}
                )  # fmt: skip
        for rec in of_kind(records, "floors"):
            s = rec.cell.settings
            if s["batch"] == batch:
                rows += _floor_rows(rec, batch=batch, image=s["image"], status="floor")
    return pd.DataFrame(rows)


def table6_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Table 6's per-unit rows per guidance rate, then the floors of those images once
    (``guidance rate`` and ``seed`` empty)."""
    records = list(records)
    rows = []
    for rec in of_kind(records, "attack"):
        s = rec.cell.settings
        rows.append(
            {"guidance rate": s["options"]["guidance_rate"], "image": s["image"],
             "seed": s["attack_seed"], "method": LABELS[s["method"]], **_scores(rec)}
        )  # fmt: skip
    for rec in of_kind(records, "floors"):
        rows += _floor_rows(rec, **{"guidance rate": None}, image=rec.cell.settings["image"])
    return pd.DataFrame(rows)


def cost_measurements(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Per victim of the ``cost`` records: seconds per conditional step, seconds of one SGD
    training step, peak accelerator memory (``None`` on a CPU): what the benchmark keeps."""
    return [
        {"model": rec.cell.settings["model"], "s/step": rec.timings["s/step"],
         "training step": rec.timings["training step"], "peak MiB": rec.metrics.get("peak MiB")}
        for rec in of_kind(records, "cost")
    ]  # fmt: skip


def benchmark_path(device: str, root: str | Path | None = None) -> Path:
    """Where ``benchmarks/bench_ggss_r_step.py`` writes its output for a ``device`` kind
    (``"cpu"``, ``"cuda"``)."""
    return Path(root or repo_root()) / "benchmarks" / f"ggss-r-step-{device}.json"


def load_benchmark(device: str, root: str | Path | None = None) -> dict[str, Any]:
    """The benchmark's output for ``device`` (``measurements``, ``machine``, ``steps``, ...);
    a clear error naming the command when it has not been run on such a device."""
    path = benchmark_path(device, root)
    if not path.is_file():
        raise GradInvError(
            f"no Table 8 benchmark for {device} ({path}); run "
            f"`python benchmarks/bench_ggss_r_step.py --device {device}` on that machine"
        )
    return json.loads(path.read_text())


def table8(
    measurements: Iterable[Mapping[str, Any]], reported: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Table 8 from ``measurements`` (:func:`cost_measurements`, or the benchmark's):
    seconds per conditional step and peak accelerator memory of GGSS-R per victim, the step
    as a multiple of one SGD training step of the victim, and the paper's numbers (A100,
    256 px)."""
    paper = reported_index(reported, "Table 8")
    rows = []
    for m in measurements:
        model = MODEL_LABELS[m["model"]]
        peak = m.get("peak MiB")
        rows.append(
            {"model": model, "s/step run": m["s/step"],
             "peak MiB run": math.nan if peak is None else peak,
             "x training step": m["s/step"] / m["training step"],
             "s/step paper": paper.get((model, "GGSS-R", "seconds_per_step"), math.nan),
             "peak MiB paper": paper.get((model, "GGSS-R", "peak_gpu_mib"), math.nan)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def prior_samples(records: Iterable[Record]) -> torch.Tensor:
    """The unguided samples of the prior (the ``samples`` record)."""
    (rec,) = of_kind(records, "samples")
    return as_tensor(rec.arrays["samples"])


# -- summaries ----------------------------------------------------------------------------------
def attack_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without its floor rows."""
    return split_floors(df)[0]


def best_floor(df: pd.DataFrame, among: Sequence[str] = (NEAREST_PUBLIC, PRIOR_SAMPLE)):
    """The floor of ``among`` with the highest mean PSNR in ``df`` and that PSNR;
    ``("-", nan)`` when ``df`` has none of them."""
    if "method" not in df:
        return "-", float("nan")
    fl = df[floor_mask(df) & df["method"].isin(list(among))]
    if fl.empty:
        return "-", float("nan")
    means = fl.groupby("method")["psnr"].mean()
    return str(means.idxmax()), float(means.max())


def summarise(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean MSE/PSNR/SSIM/LPIPS (and RV, seconds) over private images; grouped by
    ``method`` too when ``df`` has one (floors apart), empty keys (floors) kept."""
    by = list(by)
    if "method" in df and "method" not in by:
        by.append("method")
    cols = [c for c in ("rv", "mse", "psnr", "ssim", "lpips", "seconds") if c in df]
    return df.groupby(by, sort=False, dropna=False)[cols].mean().reset_index()


def _stats(rows: pd.DataFrame) -> dict[str, Any]:
    """``n`` scored units, the ``images`` they cover and the 95 % bootstrap interval of the
    mean PSNR over images, each image carrying the mean over its seeds (NaN below two
    images)."""
    scored = rows[pd.to_numeric(rows["psnr"], errors="coerce").map(math.isfinite)]
    per_image = scored.groupby("image")["psnr"].mean()
    _, low, high, images = claims.mean_interval(per_image.tolist())
    return {"n": len(scored), "images": images, "PSNR low": low, "PSNR high": high}


#: ``reported_index(reported, table)``: one table of this paper's ``reported.csv``
reported_index = functools.partial(claims.reported_index, PAPER)


# -- paper vs this run --------------------------------------------------------------------------
def compare_table1(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table 1 cell (means over images, n, the PSNR interval),
    with the best floor of the role's images (nearest public or prior sample, run only: the
    paper reports none)."""
    paper = reported_index(reported, "Table 1")
    ran = attack_rows(df)
    ours = summarise(ran, ["role", "model"])
    best = {role: best_floor(grp) for role, grp in df.groupby("role", sort=False)}
    rows = []
    for r in ours.to_dict("records"):
        got = ran[(ran["role"] == r["role"]) & (ran["model"] == r["model"])]
        p = {
            m: paper.get((r["model"], r["role"], m), math.nan)
            for m in ("rv", "mse", "psnr", "lpips")
        }
        rows.append(
            {"dataset": r["role"], "model": r["model"], "RV paper": p["rv"], "RV run": r["rv"],
             "MSE paper": p["mse"], "MSE run": r["mse"], "PSNR paper": p["psnr"],
             "PSNR run": r["psnr"], **_stats(got), "LPIPS paper": p["lpips"],
             "LPIPS run": r.get("lpips", math.nan), "best floor": best[r["role"]][0],
             "PSNR best floor": best[r["role"]][1]}
        )  # fmt: skip
    return pd.DataFrame(rows)


def compare_noise(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run, row by row in increasing variance (Table 2: Gaussian, Table 7:
    Laplacian; the paper's variances were lost, its rows keep their order), with the best
    floor of the same images (run only)."""
    tables = {"gaussian": "Table 2", "laplacian": "Table 7"}
    rows = []
    for kind, cell in df.groupby("noise", sort=False):
        paper = reported_index(reported, tables.get(kind, ""))
        grp = attack_rows(cell)
        floor_name, floor_psnr = best_floor(cell)
        ours = summarise(grp, ["variance"]).sort_values("variance")
        peak = grp.groupby("variance")["peak psnr"].mean()
        for i, r in enumerate(ours.to_dict("records")):
            level = f"level {i + 1}"
            got = grp[grp["variance"] == r["variance"]]
            rows.append(
                {"noise": kind, "variance (ours)": r["variance"],
                 "MSE paper": paper.get((level, "CelebA/CNN", "mse"), math.nan),
                 "MSE run": r["mse"],
                 "PSNR paper": paper.get((level, "CelebA/CNN", "psnr"), math.nan),
                 "PSNR run": r["psnr"], **_stats(got), "peak PSNR run": peak[r["variance"]],
                 "best floor": floor_name, "PSNR best floor": floor_psnr}
            )  # fmt: skip
    return pd.DataFrame(rows)


def compare_baselines(
    clean: pd.DataFrame, noisy: pd.DataFrame, reported: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Paper vs this run for Tables 3 (clean) and 4 (noisy), PSNR and MSE with n and the
    PSNR interval, and the share of its own paper's budget each baseline ran; the floors of
    the same images follow each table's methods (paper "-": it reports none)."""
    rows = []
    for table, df in (("3 (clean)", clean), ("4 (noisy)", noisy)):
        paper = reported_index(reported, f"Table {table[0]}")
        scored = df[df["status"].isin(["ran", "floor"])]
        ran = summarise(scored, ["method"]).set_index("method")
        for method in df["method"].unique():
            floor = is_floor(method)
            p = {m: "-" if floor else paper.get((method, "CelebA/CNN", m), math.nan)
                 for m in ("mse", "psnr")}  # fmt: skip
            r = ran.loc[method] if method in ran.index else None
            mine = scored[scored["method"] == method]
            budget = mine["budget"].min() if "budget" in mine and not floor else math.nan
            rows.append(
                {"table": table, "method": method, "MSE paper": p["mse"],
                 "MSE run": r["mse"] if r is not None else "not run", "PSNR paper": p["psnr"],
                 "PSNR run": r["psnr"] if r is not None else "not run", **_stats(mine),
                 "budget run": budget}
            )  # fmt: skip
    return pd.DataFrame(rows)


def compare_table5(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """PSNR per method and batch size, the paper's columns beside ours, in order (the
    paper's batch sizes were lost), with n per batch size; the floors of each batch size's
    images last (paper "-")."""
    paper = reported_index(reported, "Table 5")
    scored = df[df["status"].isin(["ran", "floor"])]
    ran = scored.groupby(["method", "batch"])["psnr"].agg(["mean", "count"])
    rows = []
    for method in df["method"].unique():
        row = {"method": method}
        for i, b in enumerate(sorted(df["batch"].unique())):
            p = None if is_floor(method) else paper.get((method, f"batch column {i + 1}", "psnr"))
            row[f"paper col {i + 1}"] = p if p is not None else "-"
            found = (method, b) in ran.index
            row[f"run B={b}"] = ran.loc[(method, b), "mean"] if found else "not run"
            row[f"n B={b}"] = int(ran.loc[(method, b), "count"]) if found else 0
        rows.append(row)
    return pd.DataFrame(rows)


def compare_table6(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run per guidance rate, with n and the PSNR interval and the best floor
    of the same images (run only)."""
    paper = reported_index(reported, "Table 6")
    ran = attack_rows(df)
    ours = summarise(ran, ["guidance rate"])
    floor_name, floor_psnr = best_floor(df)
    rows = []
    for r in ours.to_dict("records"):
        rate = r["guidance rate"]
        key = f"{rate:.2f}"
        rows.append(
            {"guidance rate": rate, "MSE paper": paper.get((key, "CelebA/CNN", "mse"), math.nan),
             "MSE run": r["mse"], "PSNR paper": paper.get((key, "CelebA/CNN", "psnr"), math.nan),
             "PSNR run": r["psnr"], **_stats(ran[ran["guidance rate"] == rate]),
             "best floor": floor_name, "PSNR best floor": floor_psnr}
        )  # fmt: skip
    return pd.DataFrame(rows)


# -- generated summary --------------------------------------------------------------------------
def summary_markdown(
    t1_rows: pd.DataFrame,
    noise: pd.DataFrame,
    clean: pd.DataFrame,
    noisy: pd.DataFrame,
    verdicts: Sequence[Verdict] = (),
) -> str:
    """The notebook's closing summary, generated from this run's rows (mean PSNR in dB, n
    private images): per Table 1 role GGSS-R per victim beside the best floor, GGSS-R per
    noise level, Tables 3 and 4's best baseline, then the count of each verdict."""
    lines = ["**Table 1** (GGSS-R, mean PSNR in dB; victims in increasing RV):", ""]
    for role, grp in t1_rows.groupby("role", sort=False):
        ran = attack_rows(grp)
        stats = ran.groupby("model", sort=False)["psnr"].agg(["mean", "count"])
        name, best = best_floor(grp)
        parts = ", ".join(f"{m} {r['mean']:.1f}" for m, r in stats.iterrows())
        n = int(stats["count"].max())
        lines.append(f"- {role} (n = {n}): {parts}; best floor *{name}* {best:.1f}")
    lines += ["", "**Tables 2 and 7** (GGSS-R, mean PSNR in dB by variance):", ""]
    for kind, grp in noise.groupby("noise", sort=False):
        ran = attack_rows(grp)
        stats = ran.groupby("variance")["psnr"].agg(["mean", "count"])
        parts = ", ".join(f"{v:g}: {r['mean']:.1f}" for v, r in stats.iterrows())
        name, best = best_floor(grp)
        n = int(stats["count"].max())
        lines.append(f"- {kind} (n = {n}): {parts}; best floor *{name}* {best:.1f}")
    lines += ["", "**Tables 3 and 4** (mean PSNR in dB):", ""]
    for table, df in (("clean (Table 3)", clean), ("noisy (Table 4)", noisy)):
        ran = df[df["status"] == "ran"].groupby("method")["psnr"].agg(["mean", "count"])
        rivals = ran.drop("GGSS-R", errors="ignore")
        ours = ran.loc["GGSS-R"] if "GGSS-R" in ran.index else None
        if ours is None or rivals.empty:
            continue
        top = rivals["mean"].idxmax()
        lines.append(
            f"- {table}: GGSS-R {ours['mean']:.1f} (n = {int(ours['count'])}), best baseline "
            f"{top} {rivals.loc[top, 'mean']:.1f} ({len(rivals)} baselines ran)"
        )
    if verdicts:
        lines += ["", claims.count_line(verdicts)]
    return "\n".join(lines)
