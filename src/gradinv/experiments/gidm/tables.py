"""GIDM's tables and figures, assembled from the records of its cells: Fig. 5 (scores), Fig. 6
(reconstructions), Figs. 7-9 (intermediate images and their PSNR), Figs. 8-10 as numbers,
``t^`` against ``t`` (Fig. 10's fixed ``t`` included), the generative phase's curve, and
"paper vs this run" beside ``papermill_runs/gidm/reported.csv``.

The unit of every table is one attacked image, ``(role, seed, client)``: the ``*_rows``
functions give one row per unit (and arm), the tables their mean per role and arm with PSNR's
95 % interval and ``n`` (:func:`summarise`), floors of the same images beside them. Image
figures show each role's first unit.
"""

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
#: the columns of a unit
UNIT = ("role", "seed", "client")
#: what :func:`summarise` averages besides PSNR (when present)
_MEANS = ("mse", "ssim", "lpips", "|t_hat - t|", "seconds")


def _scores(metrics: dict[str, Any]) -> dict[str, float]:
    return {m: metrics[m] for m in SCORES if m in metrics}


def unit_of(record: Record) -> dict[str, Any]:
    """The unit of an attack or floors record: ``role``, ``seed`` (federation draw),
    ``client``."""
    s = record.cell.settings
    return {"role": s["federation"]["role"], "seed": record.cell.seed, "client": s["client"]}


def attacks_by(records: Iterable[Record]) -> dict[tuple[str, str, int, int], Record]:
    """``(role, variant, seed, client) -> record`` of the attack records (a cell named by two
    sections is the same record: first occurrence kept)."""
    out: dict[tuple[str, str, int, int], Record] = {}
    for r in of_kind(records, "attack"):
        u = unit_of(r)
        out.setdefault((u["role"], r.cell.settings["variant"], u["seed"], u["client"]), r)
    return out


def floors_by(records: Iterable[Record]) -> dict[tuple[str, int, int], Record]:
    """``(role, seed, client) -> record`` of the floors records."""
    out: dict[tuple[str, int, int], Record] = {}
    for r in of_kind(records, "floors"):
        out.setdefault(tuple(unit_of(r).values()), r)
    return out


def roles_of(records: Iterable[Record]) -> list[str]:
    """The roles of ``records``, in the order they first appear."""
    return list(dict.fromkeys(r.cell.settings["federation"]["role"] for r in records))


def first_unit(records: Iterable[Record], role: str) -> tuple[int, int]:
    """``(seed, client)`` of ``role``'s first attacked image (the one the figures show)."""
    for r in [*of_kind(records, "attack"), *of_kind(records, "floors")]:
        u = unit_of(r)
        if u["role"] == role:
            return u["seed"], u["client"]
    raise GradInvError(f"no attack or floors record of role {role!r}")


def _floor_rows(record: Record | None, key: str, **cell: Any) -> list[dict[str, Any]]:
    """The floors of one image in a table's own columns (``key`` = floor name, seconds 0)."""
    if record is None:
        return []
    return [
        {**cell, **unit_of(record), key: name, **_scores(record.metrics[name]), "seconds": 0.0}
        for name in FLOORS
        if name in record.metrics
    ]


def summarise(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` (in order of appearance, floors included): ``n`` units, the mean
    PSNR with its 95 % bootstrap interval (``psnr low`` / ``psnr high``, NaN under two units;
    :func:`claims.mean_interval`), and the means of MSE, SSIM, LPIPS, ``|t_hat - t|`` and
    the wall time where the rows have them."""
    out = []
    for key, grp in rows.groupby(list(by), sort=False, dropna=False):
        entry = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        mean, low, high, n = claims.mean_interval(grp["psnr"].tolist())
        entry.update({"n": n, "psnr": mean, "psnr low": low, "psnr high": high})
        entry.update({c: grp[c].mean() for c in _MEANS if c in grp and grp[c].notna().any()})
        out.append(entry)
    return pd.DataFrame(out)


# -- the victim -------------------------------------------------------------------------------
def federations(records: Iterable[Record]) -> pd.DataFrame:
    """One row per federation (role and draw): dataset, mean client loss per round, each
    attacked client's secret ``t``."""
    rows = [
        {"role": r.cell.settings["federation"]["role"], "seed": r.cell.seed,
         "dataset": r.metrics["dataset"],
         "round losses": [round(v, 4) for v in r.metrics["round_losses"]],
         "attacked clients' t (secret)": dict(zip(r.cell.settings["clients"], r.metrics["t"],
                                                  strict=True))}
        for r in of_kind(records, "federation")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def private_images(records: Iterable[Record]) -> dict[str, torch.Tensor]:
    """``role -> the attacked clients' private images``, unit by unit (draw, then client)."""
    out: dict[str, list[torch.Tensor]] = {}
    for r in of_kind(records, "federation"):
        out.setdefault(r.cell.settings["federation"]["role"], []).append(
            as_tensor(r.arrays["private"])
        )
    return {role: torch.cat(images) for role, images in out.items()}


def private_grid(records: Sequence[Record], path: Any = None) -> Any:
    """The attacked images: one row per role, one column per unit (``seed/client``)."""
    images = private_images(records)
    first = next(iter(images), None)
    cols = [
        f"{r.cell.seed}/{k}"
        for r in of_kind(records, "federation")
        if r.cell.settings["federation"]["role"] == first
        for k in r.cell.settings["clients"]
    ]
    return plots.image_grid(list(images.values()), list(images), cols, path=path, title="Attacked")


# -- Fig. 5 / 6 ----------------------------------------------------------------------------------
def fig5_rows(records: Sequence[Record]) -> pd.DataFrame:
    """Fig. 5 per unit: MSE, PSNR, SSIM, LPIPS of DLG-dm, InvG-dm, Generative (given eps, t)
    and GIDM (not given them); plus GIDM given eps and t, each cell's wall time (victim
    federation, attack and scoring), and the floors of the same image (``method`` = floor
    name, ``knows eps, t`` False)."""
    runs, floors = attacks_by(records), floors_by(records)
    rows = []
    for (role, variant, seed, client), rec in runs.items():
        if variant not in FIG5:
            continue
        unit = {"role": role, "seed": seed, "client": client}
        if variant == "gidm_known" and "generative" in rec.metrics:
            rows.append(
                {**unit, "method": LABELS["generative"], "knows eps, t": True,
                 **_scores(rec.metrics["generative"]), "seconds": None}
            )  # fmt: skip
        rows.append(
            {**unit, "method": LABELS[variant], "knows eps, t": variant != "gidm",
             **_scores(rec.metrics), "seconds": rec.seconds}
        )  # fmt: skip
    attacked = {(r["role"], r["seed"], r["client"]) for r in rows}
    for unit, fl in floors.items():
        rows += _floor_rows(fl, "method", **{"knows eps, t": False}) if unit in attacked else []
    order = [LABELS[v] for v in ("dlg_dm", "invg_dm", "generative", "gidm_known", "gidm")]
    return _ordered(pd.DataFrame(rows), "method", order)


def _ordered(rows: pd.DataFrame, key: str, arms: Sequence[str]) -> pd.DataFrame:
    """``rows`` by role (first appearance), then ``key`` in the order of ``arms`` (its first
    place) and then of :data:`FLOORS`, then unit."""
    if rows.empty:
        return rows
    roles = list(dict.fromkeys(rows["role"]))
    rank = {a: i for i, a in reversed(list(enumerate((*arms, *FLOORS))))}
    ranks = rows.assign(_role=rows["role"].map(roles.index), _arm=rows[key].map(rank))
    ranks = ranks.sort_values(["_role", "_arm", "seed", "client"], kind="stable")
    return ranks.drop(columns=["_role", "_arm"]).reset_index(drop=True)


def fig5(records: Sequence[Record]) -> pd.DataFrame:
    """Fig. 5: per role and method (floors last) the mean over the attacked images, PSNR's
    95 % interval and ``n`` (:func:`summarise` of :func:`fig5_rows`)."""
    return summarise(fig5_rows(records), ["role", "method", "knows eps, t"])


def metric_bars(rows: pd.DataFrame, path: Any = None) -> Any:
    """Fig. 5 as bars (mean over the units of :func:`fig5_rows`, 95 % interval): one panel
    per metric (sec. 4.3's order), methods (then the floors) on the x axis, one colour per
    role."""
    present = [m for m in ("mse", "ssim", "psnr", "lpips") if m in rows]
    return plots.metric_bars(rows, present, x="method", hue="role", path=path)


def fig6_grid(records: Sequence[Record], path: Any = None) -> Any:
    """Fig. 6 on each role's first unit: ground truth, DLG-dm, InvG-dm, Generative and GIDM,
    then the floors (public mean, nearest public image, prior sample), one row per role."""
    runs, floors = attacks_by(records), floors_by(records)
    roles = roles_of(records)
    units = {role: first_unit(records, role) for role in roles}
    shown = [f for f in FLOORS if all(f in floors[(r, *units[r])].arrays for r in roles)]
    rows = []
    for role in roles:
        fl = floors[(role, *units[role])]

        def image(variant: str, name: str = "reconstruction", role: str = role) -> torch.Tensor:
            return as_tensor(runs[(role, variant, *units[role])].arrays[name])

        rows.append(
            torch.cat(
                [as_tensor(fl.arrays["private"]), image("dlg_dm"), image("invg_dm"),
                 image("gidm_known", "generative"), image("gidm")]
                + [as_tensor(fl.arrays[f]) for f in shown]
            )
        )  # fmt: skip
    cols = ["ground truth", "DLG-dm", "InvG-dm", "Generative", "GIDM", *shown]
    return plots.image_grid(rows, roles, cols, path=path, title="Fig. 6")


# -- Figs. 7-9 -----------------------------------------------------------------------------------
def snapshot_curves(records: Sequence[Record], role: str, variants: Sequence[str]) -> pd.DataFrame:
    """PSNR of the intermediate images (every ``snapshot_every`` iterations, both phases
    joined) of ``variants`` on every unit of ``role``: the curves of Figs. 7-9 (their mean
    over units, with a band, in :func:`plots.curves`); each floor of the same image is a flat
    line (``variant`` = floor name, ``phase`` = ``floor``) over the same iterations."""
    rows = [
        {"seed": seed, "client": client, "variant": LABELS[v], "phase": phase, "iteration": it,
         "psnr": psnr}
        for (r, v, seed, client), rec in attacks_by(records).items()
        if r == role and v in variants
        for phase, it, psnr in rec.metrics["curve"]
    ]  # fmt: skip
    last = max((r["iteration"] for r in rows), default=0)
    for (r, seed, client), fl in floors_by(records).items():
        if r != role:
            continue
        rows += [
            {"seed": seed, "client": client, "variant": name, "phase": "floor", "iteration": it,
             "psnr": fl.metrics[name]["psnr"]}
            for name in FLOORS
            if name in fl.metrics
            for it in (0, last)
        ]  # fmt: skip
    return pd.DataFrame(rows)


def generative_curves(records: Sequence[Record], variants: Sequence[str]) -> pd.DataFrame:
    """The generative phase's PSNR over its iterations, per role, variant and unit: its
    intermediate images (every ``snapshot_every`` iterations) and, at ``r_g``, its output
    (sec. 3.3; the "Generative" of Fig. 5 for GIDM given eps and t). ``curve`` names role
    and variant, for one line each (mean over units with a band in :func:`plots.curves`)."""
    rows = []
    for (role, variant, seed, client), rec in attacks_by(records).items():
        if variant not in variants or "generative" not in rec.metrics:
            continue
        points = [(it, p) for phase, it, p in rec.metrics["curve"] if phase == "generative"]
        points.append((rec.cell.settings["options"]["generative_iterations"],
                       rec.metrics["generative"]["psnr"]))  # fmt: skip
        rows += [
            {"role": role, "variant": LABELS[variant], "curve": f"{role}: {LABELS[variant]}",
             "seed": seed, "client": client, "iteration": it, "psnr": psnr}
            for it, psnr in points
        ]  # fmt: skip
    return pd.DataFrame(rows)


def generative_gain(curves: pd.DataFrame, tail: float = 0.25) -> pd.DataFrame:
    """Per curve of :func:`generative_curves`: ``n`` units, the mean PSNR at the start and at
    the end of the generative phase, and the mean gain over its last ``tail`` of iterations
    with a 95 % interval (above 0: the phase was still improving when it stopped)."""
    out = []
    for name, grp in curves.groupby("curve", sort=False):
        end = grp["iteration"].max()
        since = grp[grp["iteration"] <= end * (1 - tail)]["iteration"].max()
        wide = grp.pivot_table(index=["seed", "client"], columns="iteration", values="psnr")
        gain, low, high, n = claims.mean_interval((wide[end] - wide[since]).tolist())
        out.append(
            {"curve": name, "n": n, "iterations": int(end), "psnr at 0": wide[0].mean(),
             "psnr at the end": wide[end].mean(), "from iteration": int(since),
             "gain": gain, "gain low": low, "gain high": high}
        )  # fmt: skip
    return pd.DataFrame(out)


def snapshot_grid(
    records: Sequence[Record], role: str, variants: Sequence[str], columns: int = 8,
    path: Any = None,
) -> Any:  # fmt: skip
    """Figs. 7-9 on ``role``'s first unit: evenly spaced intermediate images of both phases,
    one row per variant, the final image last, the private image below."""
    runs, unit = attacks_by(records), first_unit(records, role)
    rows, labels = [], []
    for variant in variants:
        rec = runs[(role, variant, *unit)]
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
    rows.append(as_tensor(floors_by(records)[(role, *unit)].arrays["private"]))
    labels.append("ground truth")
    return plots.image_grid(
        rows, labels, path=path, title=f"{role}: generative, then fine-tuning phase"
    )


# -- Figs. 8-10 ---------------------------------------------------------------------------------
def _ablation_roles(records: Sequence[Record]) -> list[str]:
    """The roles on which every variant of :data:`~.profile.ABLATION` ran."""
    ran = {(role, v) for role, v, _, _ in attacks_by(records)}
    return [r for r in roles_of(records) if all((r, v) in ran for v in ABLATION)]


def ablation_rows(records: Sequence[Record]) -> pd.DataFrame:
    """Figs. 8-10 per unit, on every role that ran them: known/unknown t and eps, the
    triple-optimisation ablation and ours (code-like, fine-tune only), with ``t``, ``t^`` and
    ``|t_hat - t|``; then the floors of the same images (``variant`` = floor name, no ``t``)."""
    runs, floors = attacks_by(records), floors_by(records)
    roles = _ablation_roles(records)
    rows = []
    for (role, variant, seed, client), rec in runs.items():
        if role not in roles or variant not in ABLATION:
            continue
        t, t_hat = rec.metrics["t"][0], rec.metrics["t_hat"][0]
        rows.append(
            {"role": role, "seed": seed, "client": client, "variant": LABELS[variant],
             **_scores(rec.metrics), "t": t, "t_hat": t_hat, "|t_hat - t|": abs(t_hat - t),
             "seconds": rec.seconds}
        )  # fmt: skip
    for (role, _, _), fl in floors.items():
        rows += _floor_rows(fl, "variant") if role in roles else []
    return _ordered(pd.DataFrame(rows), "variant", [LABELS[v] for v in ABLATION])


def ablation(records: Sequence[Record]) -> pd.DataFrame:
    """Figs. 8-10 as numbers: per role and variant (floors last) the mean over the attacked
    images, PSNR's 95 % interval, ``n`` and the mean ``|t_hat - t|``
    (:func:`summarise` of :func:`ablation_rows`)."""
    return summarise(ablation_rows(records), ["role", "variant"])


def ablation_grid(records: Sequence[Record], role: str, path: Any = None) -> Any:
    """Fig. 10 on ``role``'s first unit: without optimising t, without optimising eps, triple
    optimisation."""
    runs, unit = attacks_by(records), first_unit(records, role)
    variants = ["fixed_t", "fixed_eps", "gidm"]
    images = torch.cat(
        [as_tensor(floors_by(records)[(role, *unit)].arrays["private"])]
        + [as_tensor(runs[(role, v, *unit)].arrays["reconstruction"]) for v in variants]
    )
    cols = ["ground truth"] + [LABELS[v] for v in variants]
    return plots.image_grid([images], [role], cols, path=path, title="Fig. 10")


def optimises_t(variant: str) -> bool:
    """Whether ``variant`` optimises ``t^`` (GIDM, ``t`` not revealed, not held fixed)."""
    attack, reveal, overrides = VARIANTS[variant]
    return attack == "gidm" and "t" not in reveal and overrides.get("optimise_t", True)


def t_unknown(variant: str) -> bool:
    """Whether the server does not know ``t`` in ``variant`` (``t^`` optimised or, Fig. 10,
    a random step held fixed)."""
    return "t" not in VARIANTS[variant][1]


def t_recovery(records: Sequence[Record]) -> pd.DataFrame:
    """Per unit and every run whose ``t`` the server does not know: the client's ``t``, ``t^``
    (``argmax softmax(t^)`` after the first iteration and at the end, or Fig. 10's random
    fixed step), ``|t_hat - t|`` and the PSNR reached (PSNR against ``|t_hat - t|``)."""
    rows = []
    for (role, variant, seed, client), rec in attacks_by(records).items():
        if not t_unknown(variant):
            continue
        m = rec.metrics
        t, t_hat = m["t"][0], m["t_hat"][0]
        rows.append(
            {"role": role, "seed": seed, "client": client, "variant": LABELS[variant],
             "t^": "optimised" if optimises_t(variant) else "fixed at random", "t": t,
             "t_hat after 1 iteration": m["t_hat_first"] if optimises_t(variant) else t_hat,
             "t_hat (final)": t_hat, "|t_hat - t|": abs(t_hat - t), "psnr": m["psnr"]}
        )  # fmt: skip
    return _ordered(pd.DataFrame(rows), "variant", [LABELS[v] for v in (*ABLATION, *VARIANTS)])


def t_scatter(t_table: pd.DataFrame, path: Any = None) -> Any:
    """PSNR against ``|t_hat - t|``, one point per unit and variant of :func:`t_recovery`."""
    return plots.scatter(t_table, "|t_hat - t|", "psnr", hue="variant", path=path)


# -- paper vs this run ---------------------------------------------------------------------------
def compare_fig5(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper vs this run for Fig. 5 (``rows``: :func:`fig5_rows`): per role and method, each
    metric's mean over the attacked images with its 95 % bootstrap interval (none at n = 1)
    and ``n``, beside the paper's value where ``reported.csv`` has one (Fig. 5's bars are
    only in the figure)."""
    paper = claims.reported_index(PAPER, reported, "Fig. 5")
    out = []
    for (role, method), grp in rows.groupby(["role", "method"], sort=False):
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
def _psnr(row: Any) -> str:
    """``mean [low, high]`` of a :func:`summarise` row (the mean alone under two units)."""
    if not math.isfinite(row["psnr low"]):
        return f"{row['psnr']:.1f}"
    return f"{row['psnr']:.1f} [{row['psnr low']:.1f}, {row['psnr high']:.1f}]"


def _per_role(table: pd.DataFrame, key: str, extra: str = "") -> list[str]:
    """One bullet per role of a :func:`summarise` table: each arm's PSNR (floors in italics),
    and ``extra`` (a column) in brackets where present."""
    lines = []
    for role, grp in table.groupby("role", sort=False):
        parts = []
        for r in grp.to_dict("records"):
            name = f"*{r[key]}*" if is_floor(r[key]) else r[key]
            more = r.get(extra, math.nan) if extra else math.nan
            tail = (
                f" (|t^ - t| {more:.0f})" if isinstance(more, float) and math.isfinite(more) else ""
            )
            parts.append(f"{name} {_psnr(r)}{tail}")
        lines.append(f"- {role} (n = {int(grp['n'].max())}): " + ", ".join(parts))
    return lines


def _t_lines(t_table: pd.DataFrame) -> list[str]:
    """``t^ = t`` among the runs that optimise ``t``, and Fig. 10's random fixed ``t``: how
    far it fell from the client's and the Spearman correlation of that distance with PSNR."""
    from scipy import stats

    lines = []
    opt = t_table[t_table["t^"] == "optimised"]
    if not opt.empty:
        hit = int((opt["|t_hat - t|"] == 0).sum())
        lines.append(f"- t^ = t in {hit} of {len(opt)} runs that optimise t.")
    fixed = t_table[t_table["t^"] == "fixed at random"]
    if not fixed.empty:
        dt, psnr = fixed["|t_hat - t|"], fixed["psnr"]
        text = (
            f"- {LABELS['fixed_t']} (n = {len(fixed)}): |t - t_fixed| from {dt.min()} to "
            f"{dt.max()} (median {dt.median():.0f}), mean PSNR {psnr.mean():.1f}"
        )
        if len(fixed) > 2 and dt.nunique() > 1 and psnr.nunique() > 1:
            text += f"; Spearman rho(|t - t_fixed|, PSNR) = {stats.spearmanr(dt, psnr)[0]:+.2f}"
        lines.append(text + ".")
    return lines


def _gain_lines(gains: pd.DataFrame) -> list[str]:
    """One bullet per curve of :func:`generative_gain`."""
    lines = []
    for g in gains.to_dict("records"):
        band = (
            f" [{g['gain low']:+.1f}, {g['gain high']:+.1f}]"
            if math.isfinite(g["gain low"])
            else ""
        )
        lines.append(
            f"- {g['curve']} (n = {g['n']}): {g['psnr at 0']:.1f} dB at iteration 0, "
            f"{g['psnr at the end']:.1f} dB after {g['iterations']}; over the last iterations "
            f"({g['from iteration']} to {g['iterations']}) {g['gain']:+.1f} dB{band}"
        )
    return lines


def summary_markdown(
    fig5_table: pd.DataFrame, ablation_table: pd.DataFrame, t_table: pd.DataFrame,
    gains: pd.DataFrame | None = None, verdicts: Sequence[claims.Verdict] = (),
) -> str:  # fmt: skip
    """The notebook's closing summary, generated from this run's tables (:func:`fig5`,
    :func:`ablation`, :func:`t_recovery`, :func:`generative_gain`): per role GIDM, the
    baselines and the floors (mean PSNR, 95 % interval, n), the ablation, ``t^`` against
    ``t``, the generative phase's gain, then the count of each verdict."""
    lines = ["**Fig. 5** (mean PSNR in dB over n attacked images, 95 % interval; floors in "
             "italics):", "", *_per_role(fig5_table, "method")]  # fmt: skip
    if not ablation_table.empty:
        lines += ["", "**Figs. 8-10** (mean PSNR in dB, 95 % interval; mean |t^ - t|):", ""]
        lines += _per_role(ablation_table, "variant", "|t_hat - t|")
    if not t_table.empty:
        lines += ["", "**t^ against t**:", "", *_t_lines(t_table)]
    if gains is not None and not gains.empty:
        lines += ["", "**Generative phase** (mean PSNR over units, gain with 95 % interval):",
                  "", *_gain_lines(gains)]  # fmt: skip
    if verdicts:
        counts = pd.Series([v.verdict for v in verdicts]).value_counts()
        told = ", ".join(f"{int(counts.get(lab, 0))} {lab}" for lab in claims.LABELS)
        lines += ["", f"**Claims** ({len(verdicts)}, `claims.md`): {told}."]
    return "\n".join(lines)
