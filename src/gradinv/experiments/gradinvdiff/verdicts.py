"""GradInvDiff's claims, judged by :func:`gradinv.experiments.claims.judge` on the per-image
rows of Tables 1 and 2 (units: image index, and plane; arms: methods, floors, variants), with
the paper's numbers from ``papermill_runs/gradinvdiff/reported.csv``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pandas as pd

from gradinv.experiments import claims
from gradinv.experiments.claims import Claim, Verdict
from gradinv.experiments.floors import is_floor
from gradinv.experiments.gradinvdiff.profile import METRICS, PAPER
from gradinv.experiments.gradinvdiff.tables import reported_index

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
    ("noise-lowers", f"gradient {_NOISY} lowers PSNR", ("GradInvDiff", _NOISY), 0.0),
    ("noise-marginal", f"gradient {_NOISY} costs less than {MARGINAL_DROP_DB:g} dB "
     "(\"only a marginal performance drop\")", (_NOISY, "GradInvDiff"), -MARGINAL_DROP_DB),
)  # fmt: skip


def table1_claims(
    rows: pd.DataFrame, reported: pd.DataFrame | None = None
) -> list[tuple[Claim, pd.DataFrame]]:
    """Table 1's claims (:data:`T1_CLAIMS`) per role x network, in PSNR and in LPIPS, each
    with the rows it is judged on (units: plane and image; arm: ``method``, with a
    :data:`BEST_FLOOR` row per unit). Claims whose arms this run lacks are left out."""
    paper = reported_index(reported, "Table 1")
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
    paper = reported_index(reported, "Table 2")
    columns = sorted({c for _, c, _ in paper})
    out = []
    for net, grp in rows.groupby("network", sort=False):
        table = _with_best_floor(grp, "variant", ["image"])
        arms = set(table["variant"])
        col = next((c for c in columns if c.endswith(f"/{net}")), "")
        for cid, text, pair, margin in T2_CLAIMS:
            if set(pair) <= arms:
                said = _reported_text(paper, "psnr", col, *pair)
                where = f"{text} (Table 2, {net})"
                out.append((_exceeds(f"t2/{net}/{cid}", where, pair, "psnr", said, margin), table))
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
    """:func:`table1_claims` judged (units: plane and image). A win of GradInvDiff over
    another attack where GradInvDiff does not beat the best floor (that claim does not hold
    for the same role, network and metric) is not a win: both reveal less than the public
    data alone, so it becomes inconclusive, with that reason (:func:`below_the_floors`)."""
    verdicts = [
        claims.judge(c, d, unit=["plane", "image"], arm="method")
        for c, d in table1_claims(rows, reported)
    ]
    return below_the_floors(verdicts)


def below_the_floors(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """``verdicts`` with every "holds" of a ``t1/<role>/<net>/<rival>/<metric>`` claim
    turned inconclusive where ``t1/<role>/<net>/floors/<metric>`` does not hold."""
    floors = {v.claim.id: v for v in verdicts if v.claim.id.split("/")[3] == "floors"}
    out = []
    for v in verdicts:
        role, net, rival, metric = v.claim.id.split("/")[1:]
        floor = floors.get(f"t1/{role}/{net}/floors/{metric}")
        if (
            rival != "floors"
            and v.verdict == "holds"
            and floor
            and floor.verdict == "does not hold"
        ):
            v = dataclasses.replace(v, verdict="inconclusive", reason=(
                f"{v.reason}; but GradInvDiff is not above the best floor here "
                f"({floor.this_run}): a win below the floors shows no better leak"))  # fmt: skip
        out.append(v)
    return out


def table2_verdicts(rows: pd.DataFrame, reported: pd.DataFrame | None = None) -> list[Verdict]:
    """:func:`table2_claims` judged (unit: image index)."""
    return [
        claims.judge(c, d, unit="image", arm="variant", level="level")
        for c, d in table2_claims(rows, reported)
    ]
