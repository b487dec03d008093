"""GradInvDiff's tables and figures, assembled from the records of its cells, and "paper vs
this run" beside ``papermill_runs/gradinvdiff/reported.csv``."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from gradinv.experiments import claims
from gradinv.experiments.claims import Verdict
from gradinv.experiments.engine import Record, frame
from gradinv.experiments.engine.cells import thaw
from gradinv.experiments.engine.tables import as_tensor, of_kind
from gradinv.experiments.floors import (
    FLOORS,
    NEAREST_PUBLIC,
    PRIOR_SAMPLE,
    PUBLIC_MEAN,
    is_floor,
)
from gradinv.experiments.gradinvdiff.profile import LABELS, METRICS, NETWORKS, PAPER, Profile
from gradinv.pipeline import defense_label
from gradinv.priors import SamplePath


def _image_key(settings: Mapping[str, Any], seed: int) -> tuple[Any, ...]:
    return (settings["dataset"], settings["label"], settings["size"], settings["image"], seed)


def _floor_rows(record: Record, **extra: Any) -> list[dict[str, Any]]:
    """The rows :func:`~gradinv.experiments.floors.score_floors` gave for this image."""
    rows = []
    for name in FLOORS:
        if name in record.metrics:
            row = {"attack": name, "defense": "none", **extra, "method": name}
            rows.append({**row, **record.metrics[name], "seconds": 0.0})
    return rows


def _attack_rows(records: Sequence[Record], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per attack record (via :func:`engine.frame`): ``attack``, ``defense``, the
    ``columns`` of the cell, the metrics and ``seconds``, the cell's wall time (victim,
    observation, attack and scoring)."""
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
        row["seconds"] = rec.seconds
        rows.append(row)
    return rows


def _floors_index(records: Iterable[Record]) -> dict[tuple[Any, ...], Record]:
    return {_image_key(r.cell.settings, r.cell.seed): r for r in of_kind(records, "floors")}


def _private_attacks(records: Iterable[Record]) -> list[Record]:
    """The attack records on private images (not the tuning runs on public ones)."""
    return [r for r in of_kind(records, "attack") if r.cell.settings["split"] != "public"]


def table1_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Table 1's per-image rows from the records of :func:`table1_cells`: every method, then
    the floors of that image (``method`` = floor name), per network, role, plane and image."""
    records = list(records)
    attacks_ = [r for r in _private_attacks(records) if "variant" not in r.cell.settings]
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
    attacks_ = [r for r in _private_attacks(records) if "variant" in r.cell.settings]
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
    kept = [r for r in _private_attacks(records) if "reconstruction" in r.arrays]
    planes: dict[str, set[str]] = {}
    for r in _private_attacks(records):
        planes.setdefault(r.cell.settings["role"], set()).add(r.cell.settings["plane"])
    grid: dict[str, dict[str, torch.Tensor]] = {}
    for rec in kept:
        s = rec.cell.settings
        key = f"{s['role']} ({s['plane']})" if len(planes[s["role"]]) > 1 else s["role"]
        if key not in grid:
            found = floors.get(_image_key(s, rec.cell.seed))
            grid[key] = {"ground truth": as_tensor(found.arrays["private"])} if found else {}
        grid[key][LABELS.get(s["method"], s["method"])] = as_tensor(rec.arrays["reconstruction"])
    for rec in kept:  # the floors after every method
        s = rec.cell.settings
        key = f"{s['role']} ({s['plane']})" if len(planes[s["role"]]) > 1 else s["role"]
        found = floors.get(_image_key(s, rec.cell.seed))
        if found is not None:
            for name in FLOORS:
                if name in found.arrays and name not in grid[key]:
                    grid[key][name] = as_tensor(found.arrays[name])
    return grid


def fig2_paths(records: Iterable[Record]) -> tuple[torch.Tensor, dict[str, SamplePath]]:
    """The private image and the reverse paths (DDPM, GGDM, GradInvDiff) of Fig. 2's cell."""
    (rec,) = of_kind(records, "paths")
    paths = {}
    for name in rec.metrics["paths"]:
        x = as_tensor(rec.arrays[name])
        paths[name] = SamplePath(steps=list(rec.metrics["steps"][name]), x=list(x.split(1)))
    return as_tensor(rec.arrays["private"]), paths


def prior_samples(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """Role -> ``{prior, samples, steps_done}`` from the records of :func:`sample_cells`."""
    return {
        r.cell.settings["role"]: {
            "prior": r.cell.settings["prior"],
            "samples": as_tensor(r.arrays["samples"]),
            "steps_done": r.metrics.get("steps_done"),
        }
        for r in of_kind(records, "samples")
    }


def tuning_table(records: Iterable[Record], profile: Profile) -> pd.DataFrame:
    """Tuning on public images: per role, network, method and tried value, the mean PSNR /
    SSIM over the tuning images and ``n``; ``chosen`` marks the value the tables use
    (:func:`~gradinv.experiments.gradinvdiff.cells.tuned_options`)."""
    from gradinv.experiments.gradinvdiff.cells import tuned_options, tuning_rows

    rows = tuning_rows(records)
    if rows.empty:
        return rows
    keys = ["role", "network", "method", "option", "value"]
    table = rows.groupby(keys, sort=False)[["psnr", "ssim"]].mean().reset_index()
    table["n"] = rows.groupby(keys, sort=False).size().to_numpy()
    chosen = tuned_options(records, profile)
    table["chosen"] = [
        chosen[(r["role"], r["network"], r["method"])][r["option"]] == r["value"]
        for r in table.to_dict("records")
    ]
    return table


def summarise(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean PSNR/SSIM/LPIPS over images (and LiTS planes, as the paper averages them)."""
    cols = [c for c in METRICS[1:] if c in df]
    return df.groupby(list(by), sort=False)[cols].mean().reset_index()


# -- paper vs this run --------------------------------------------------------------------------
#: ``reported_index(reported, table)``: one table of this paper's ``reported.csv``
reported_index = functools.partial(claims.reported_index, PAPER)


def _compare(
    ours: pd.DataFrame,
    paper: Mapping[tuple[str, str, str], float],
    keys: list[str],
    row: str,
    column: Callable[[Mapping[str, Any]], str | None],
) -> pd.DataFrame:
    """One line per row of ``ours`` that the paper reports: ``keys``, ``n``, then each
    metric, paper beside run (the paper's row is ``ours[row]``, its column ``column(r)``)."""
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
    paper = reported_index(reported, "Table 1")
    keys = ["method", "role", "network"]
    out = _compare(ours, paper, keys, "method", lambda r: f"{r['role']}/{r['network']}")
    return out.rename(columns={"role": "dataset"})


def compare_table2(df: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for every Table 2 cell, with ``n``."""
    attacks_ = df[~df["variant"].map(is_floor)]
    ours = summarise(attacks_, ["variant", "network"])
    ours["n"] = attacks_.groupby(["variant", "network"], sort=False).size().to_numpy()
    paper = reported_index(reported, "Table 2")
    columns = {c for _, c, _ in paper}

    def column(r: Mapping[str, Any]) -> str | None:
        found = sorted(c for c in columns if c.endswith(f"/{r['network']}"))
        return found[0] if found else None

    return _compare(ours, paper, ["variant", "network"], "variant", column)


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
        lines += ["", claims.count_line(verdicts)]
    return "\n".join(lines)
