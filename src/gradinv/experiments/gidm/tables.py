"""GIDM's tables and figures, assembled from the records of its cells: Fig. 5 (scores), Fig. 6
(reconstructions), Figs. 7-9 (intermediate images and their PSNR), Figs. 8-10 as numbers,
``t^`` against ``t``, and "paper vs this run" beside ``papermill_runs/gidm/reported.csv``
(means with an interval and ``n``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from gradinv import plots
from gradinv.errors import GradInvError
from gradinv.experiments import claims
from gradinv.experiments.engine import Record
from gradinv.experiments.engine.tables import as_tensor, of_kind
from gradinv.experiments.floors import FLOORS, is_floor
from gradinv.experiments.gidm.profile import ABLATION, FIG5, LABELS, PAPER, VARIANTS

#: the order of the score columns in every table (as :func:`gradinv.metrics.evaluate`)
SCORES = ("mse", "psnr", "ssim", "lpips")


def _scores(metrics: dict[str, Any]) -> dict[str, float]:
    return {m: metrics[m] for m in SCORES if m in metrics}


def attacks_by(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """``(role, variant) -> record`` of the attack records, first occurrence kept."""
    out: dict[tuple[str, str], Record] = {}
    for r in of_kind(records, "attack"):
        out.setdefault((r.cell.settings["federation"]["role"], r.cell.settings["variant"]), r)
    return out


def floors_by(records: Iterable[Record]) -> dict[str, Record]:
    """``role -> record`` of the floors records."""
    out: dict[str, Record] = {}
    for r in of_kind(records, "floors"):
        out.setdefault(r.cell.settings["federation"]["role"], r)
    return out


def roles_of(records: Iterable[Record]) -> list[str]:
    """The roles of ``records``, in the order they first appear."""
    return list(dict.fromkeys(r.cell.settings["federation"]["role"] for r in records))


def _floor_rows(record: Record | None, key: str, **cell: Any) -> list[dict[str, Any]]:
    """The floors of one image in a table's own columns (``key`` = floor name, seconds 0)."""
    if record is None:
        return []
    return [
        {**cell, key: name, **_scores(record.metrics[name]), "seconds": 0.0}
        for name in FLOORS
        if name in record.metrics
    ]


# -- the victim -------------------------------------------------------------------------------
def federations(records: Iterable[Record]) -> pd.DataFrame:
    """One row per federation: role, dataset, mean client loss per round, the attacked
    client's secret ``t``."""
    rows = [
        {"role": r.cell.settings["federation"]["role"], "dataset": r.metrics["dataset"],
         "round losses": [round(v, 4) for v in r.metrics["round_losses"]],
         "attacked client's t (secret)": r.metrics["t"]}
        for r in of_kind(records, "federation")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def private_images(records: Iterable[Record]) -> dict[str, torch.Tensor]:
    """``role -> the attacked client's private image(s)`` from the federation records."""
    return {
        r.cell.settings["federation"]["role"]: as_tensor(r.arrays["private"])
        for r in of_kind(records, "federation")
    }


# -- Fig. 5 / 6 ----------------------------------------------------------------------------------
def fig5(records: Sequence[Record]) -> pd.DataFrame:
    """Fig. 5: MSE, PSNR, SSIM, LPIPS of DLG-dm, InvG-dm, Generative (given eps, t) and GIDM
    (not given them), per role; plus GIDM given eps and t, each cell's wall time (victim
    federation, attack and scoring), and the floors of the same image (``method`` = floor
    name, ``knows eps, t`` False)."""
    runs, floors = attacks_by(records), floors_by(records)
    rows = []
    for role in roles_of(records):
        for variant in FIG5:
            rec = runs.get((role, variant))
            if rec is None:
                continue
            if variant == "gidm_known" and "generative" in rec.metrics:
                rows.append(
                    {"role": role, "method": LABELS["generative"], "knows eps, t": True,
                     **_scores(rec.metrics["generative"]), "seconds": None}
                )  # fmt: skip
            rows.append(
                {"role": role, "method": LABELS[variant], "knows eps, t": variant != "gidm",
                 **_scores(rec.metrics), "seconds": rec.seconds}
            )  # fmt: skip
        rows += _floor_rows(floors.get(role), "method", role=role, **{"knows eps, t": False})
    return pd.DataFrame(rows)


def metric_bars(fig5_table: pd.DataFrame, path: Any = None) -> Any:
    """Fig. 5 as bars: one panel per metric (sec. 4.3's order), methods (then the floors) on
    the x axis, one colour per role."""
    present = [m for m in ("mse", "ssim", "psnr", "lpips") if m in fig5_table]
    return plots.metric_bars(fig5_table, present, x="method", hue="role", path=path)


def fig6_grid(records: Sequence[Record], path: Any = None) -> Any:
    """Fig. 6: ground truth, DLG-dm, InvG-dm, Generative and GIDM, then the floors (public
    mean, nearest public image, prior sample), one row per role."""
    runs, floors = attacks_by(records), floors_by(records)
    roles = roles_of(records)
    shown = [f for f in FLOORS if all(f in floors[r].arrays for r in roles)]
    rows = []
    for role in roles:
        fl = floors[role]
        rows.append(
            torch.cat(
                [as_tensor(fl.arrays["private"]),
                 as_tensor(runs[(role, "dlg_dm")].arrays["reconstruction"]),
                 as_tensor(runs[(role, "invg_dm")].arrays["reconstruction"]),
                 as_tensor(runs[(role, "gidm_known")].arrays["generative"]),
                 as_tensor(runs[(role, "gidm")].arrays["reconstruction"])]
                + [as_tensor(fl.arrays[f]) for f in shown]
            )
        )  # fmt: skip
    cols = ["ground truth", "DLG-dm", "InvG-dm", "Generative", "GIDM", *shown]
    return plots.image_grid(rows, roles, cols, path=path, title="Fig. 6")


# -- Figs. 7-9 -----------------------------------------------------------------------------------
def snapshot_curves(records: Sequence[Record], role: str, variants: Sequence[str]) -> pd.DataFrame:
    """PSNR of the intermediate images (every ``snapshot_every`` iterations, both phases
    joined) of ``variants``: the curves of Figs. 7-9; each floor of the same image is a flat
    line (``variant`` = floor name, ``phase`` = ``floor``) over the same iterations."""
    runs = attacks_by(records)
    rows = [
        {"variant": LABELS[v], "phase": phase, "iteration": it, "psnr": psnr}
        for v in variants
        for phase, it, psnr in runs[(role, v)].metrics["curve"]
    ]
    last = max((r["iteration"] for r in rows), default=0)
    fl = floors_by(records).get(role)
    for name in FLOORS if fl is not None else ():
        if name in fl.metrics:
            psnr = fl.metrics[name]["psnr"]
            rows += [{"variant": name, "phase": "floor", "iteration": it, "psnr": psnr}
                     for it in (0, last)]  # fmt: skip
    return pd.DataFrame(rows)


def snapshot_grid(
    records: Sequence[Record], role: str, variants: Sequence[str], columns: int = 8,
    path: Any = None,
) -> Any:  # fmt: skip
    """Figs. 7-9: evenly spaced intermediate images of both phases, one row per variant, the
    final image last, the private image below."""
    runs = attacks_by(records)
    rows, labels = [], []
    for variant in variants:
        rec = runs[(role, variant)]
        snaps = [
            img
            for phase in ("generative", "finetune")
            if f"snapshots_{phase}" in rec.arrays
            for img in as_tensor(rec.arrays[f"snapshots_{phase}"]).split(1)
        ]
        if not snaps:
            raise GradInvError("no intermediate images: set snapshot_every in the profile")
        pick = torch.linspace(0, len(snaps) - 1, min(columns - 1, len(snaps))).round().long()
        final = as_tensor(rec.arrays["reconstruction"])
        rows.append(torch.cat([snaps[i] for i in pick.tolist()] + [final]))
        labels.append(LABELS[variant])
    rows.append(as_tensor(floors_by(records)[role].arrays["private"]))
    labels.append("ground truth")
    return plots.image_grid(
        rows, labels, path=path, title=f"{role}: generative, then fine-tuning phase"
    )


# -- Figs. 8-10 ---------------------------------------------------------------------------------
def ablation(records: Sequence[Record], role: str) -> pd.DataFrame:
    """Figs. 8-10 as numbers: known/unknown t and eps, and the triple-optimisation ablation;
    then the floors of the same image (``variant`` = floor name, no ``t``)."""
    runs = attacks_by(records)
    rows = []
    for variant in ABLATION:
        rec = runs[(role, variant)]
        t, t_hat = rec.metrics["t"][0], rec.metrics["t_hat"][0]
        rows.append(
            {"variant": LABELS[variant], **_scores(rec.metrics), "t": t, "t_hat": t_hat,
             "|t_hat - t|": abs(t_hat - t), "seconds": rec.seconds}
        )  # fmt: skip
    rows += _floor_rows(floors_by(records).get(role), "variant")
    return pd.DataFrame(rows)


def ablation_grid(records: Sequence[Record], role: str, path: Any = None) -> Any:
    """Fig. 10: without optimising t, without optimising eps, triple optimisation."""
    runs = attacks_by(records)
    variants = ["fixed_t", "fixed_eps", "gidm"]
    images = torch.cat(
        [as_tensor(floors_by(records)[role].arrays["private"])]
        + [as_tensor(runs[(role, v)].arrays["reconstruction"]) for v in variants]
    )
    cols = ["ground truth"] + [LABELS[v] for v in variants]
    return plots.image_grid([images], [role], cols, path=path, title="Fig. 10")


def optimises_t(variant: str) -> bool:
    """Whether ``variant`` optimises ``t^`` (GIDM, ``t`` not revealed, not held fixed)."""
    attack, reveal, overrides = VARIANTS[variant]
    return attack == "gidm" and "t" not in reveal and overrides.get("optimise_t", True)


def t_recovery(records: Sequence[Record]) -> pd.DataFrame:
    """How close ``t^ = argmax softmax(t^)`` gets to the client's ``t``, for every run of
    ``records`` that optimised ``t``."""
    rows = []
    for (role, variant), rec in attacks_by(records).items():
        if not optimises_t(variant):
            continue
        t, t_hat = rec.metrics["t"][0], rec.metrics["t_hat"][0]
        rows.append(
            {"role": role, "variant": LABELS[variant], "t": t,
             "t_hat after 1 iteration": rec.metrics["t_hat_first"], "t_hat (final)": t_hat,
             "|t_hat - t|": abs(t_hat - t)}
        )  # fmt: skip
    return pd.DataFrame(rows)


# -- paper vs this run ---------------------------------------------------------------------------
def compare_fig5(fig5_table: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for Fig. 5: per role and method, each metric's mean over the
    attacked images with its 95 % bootstrap interval (none at n = 1) and ``n``, beside the
    paper's value where ``reported.csv`` has one (Fig. 5's bars are only in the figure)."""
    paper = claims.reported_index(PAPER, reported, "Fig. 5")
    out = []
    for (role, method), grp in fig5_table.groupby(["role", "method"], sort=False):
        entry: dict[str, Any] = {"role": role, "method": method, "n": len(grp)}
        for m in [m for m in ("psnr", "ssim", "lpips") if m in grp]:
            mean, low, high, _ = claims.mean_interval(grp[m].tolist())
            value = paper.get((method, role, m))
            entry[f"{m.upper()} paper"] = (
                value if value is not None else ("—" if is_floor(method) else "figure only")
            )
            entry[f"{m.upper()} run"] = round(mean, 3)
            entry[f"{m.upper()} 95% CI"] = (
                f"[{low:.3g}, {high:.3g}]" if math.isfinite(low) else "n < 2"
            )
        out.append(entry)
    return pd.DataFrame(out)


def compare_setup(
    profile: Any, image_size: int, timesteps: int = 1000, reported: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The paper's stated setup (the ``setting`` rows of ``reported.csv``: sec. 4.1 and the
    iteration counts of Figs. 7-9) beside this profile's (``image_size``: the attacked
    images' side; ``timesteps``: the DDPM's ``T``)."""
    from gradinv import attacks

    rep = claims.load_reported(PAPER) if reported is None else reported
    cfg = attacks.make_config("gidm", **profile.attacks.of("gidm"))  # the paper's defaults
    r_g, r_f = cfg.generative_iterations, cfg.finetune_iterations
    ours = {
        "image size": image_size,
        "federated rounds": profile.federation.rounds,
        "eps update interval S": cfg.interval,
        "Adam learning rate": cfg.lr,
        "generative phase r_g": r_g,
        "fine-tuning phase r_f": r_f,
        "inversion iterations": r_g + r_f,
        "largest diffusion step t": timesteps - 1,
    }
    rows = [
        {"what": f"{r.row} ({r.table})", "paper": r.value, "this run": ours.get(r.row, "—"),
         "source": r.source}
        for r in rep.itertuples(index=False)
        if r.metric == "setting"
    ]  # fmt: skip
    return pd.DataFrame(rows)


# -- generated summary ----------------------------------------------------------------------------
def summary_markdown(
    fig5_table: pd.DataFrame, ablation_table: pd.DataFrame, t_table: pd.DataFrame,
    verdicts: Sequence[claims.Verdict] = (),
) -> str:  # fmt: skip
    """The notebook's closing summary, generated from this run's rows: per role GIDM, the
    baselines and the floors (PSNR), the ablation, ``t^`` against ``t``, then the count of
    each verdict."""
    lines = ["**Fig. 5** (PSNR in dB, n images per role; floors in italics):", ""]
    for role, grp in fig5_table.groupby("role", sort=False):
        stats = grp.groupby("method", sort=False)["psnr"].agg(["mean", "count"])
        parts = [
            f"*{m}* {r['mean']:.1f}" if is_floor(m) else f"{m} {r['mean']:.1f}"
            for m, r in stats.iterrows()
        ]
        lines.append(f"- {role} (n = {int(stats['count'].max())}): " + ", ".join(parts))
    lines += ["", "**Figs. 8-10** (first role, PSNR in dB; |t^ - t|):", ""]
    for r in ablation_table.to_dict("records"):
        if is_floor(r["variant"]):
            continue
        lines.append(f"- {r['variant']}: {r['psnr']:.1f} (|t^ - t| = {int(r['|t_hat - t|'])})")
    if not t_table.empty:
        hit = int((t_table["|t_hat - t|"] == 0).sum())
        lines += ["", f"**t recovery**: t^ = t in {hit} of {len(t_table)} runs that optimise t."]
    if verdicts:
        counts = pd.Series([v.verdict for v in verdicts]).value_counts()
        told = ", ".join(f"{int(counts.get(lab, 0))} {lab}" for lab in claims.LABELS)
        lines += ["", f"**Claims** ({len(verdicts)}, `claims.md`): {told}."]
    return "\n".join(lines)
