"""Tables of the shadow-defense study and the paper beside this run (shadow_defense.txt).

* :func:`defense_table`: Tables 1 (model-based GIA) and 2 (optimisation-based GIA) of Sec.
  5.2.1, whole image or target region, mean and std over rounds, Wilcoxon signed-rank marks,
  the floor rows last; :func:`formatted` prints it as the paper does;
* :func:`summary_table`: Table 3 (module ablation), Table 4 (image-level DP) and the data of
  Fig. 8 (noise schedules), Sec. 5.2.2; :func:`finetune_rounds_table`: Table 5 (terminal
  round r_shadow of shadow fine-tuning);
* :func:`f1_curves` (Fig. 6) and :func:`rdlv_table` (Fig. 7, eq. 19; supplement Fig. 3);
* :func:`iip_table` (supplement Table 2, IIP) and :func:`cost_table` (supplement Table 1);
* "paper vs this run": the paper's reported numbers (``PAPER_*``, ChestXRay, whole image),
  :func:`paper_vs_run` beside this run's, and :func:`claims`, the headline claims of Sec.
  5.2 checked on this run with three-valued verdicts, each attack against the floors first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from gradinv.experiments.floors import is_floor
from gradinv.experiments.shadow_defense.scoring import METRICS, AttackRecord
from gradinv.experiments.shadow_defense.study import TABLE12, Study
from gradinv.fl.splits import SHADOW_SPLIT

#: the SOTA defenses of Tables 1-2 (Sec. 5.2.1); "‡" marks Ours against every one
SOTA = ("DP", "GS", "GC", "Soteria", "OUTPOST", "Censor")


# -- tables ----------------------------------------------------------------------------------
def _frame(records: list[AttackRecord], region: str) -> pd.DataFrame:
    rows = [
        {"round": r.round, "client": r.client, **(r.whole if region == "whole" else r.target)}
        for r in records
    ]
    return pd.DataFrame(rows)


def _paired_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (1 when all pairs tie)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) < 2 or np.allclose(diff, 0):
        return 1.0
    return float(wilcoxon(a, b, zero_method="zsplit").pvalue)


def defense_table(
    study: Study,
    role: str,
    attack: str,
    labels: tuple[str, ...] = TABLE12,
    region: str = "whole",
    alpha: float = 0.05,
    floors: bool = True,
) -> pd.DataFrame:
    """Tables 1 (model-based) / 2 (optimisation-based) for one role and region: F1, then
    each metric's mean over (round, client) and, in brackets, the std over rounds of the
    per-round means; ``†``: Wilcoxon p < ``alpha`` against FedAvg (paired by round and
    client), ``‡`` (Ours only): p < ``alpha`` against every SOTA defense. With ``floors``,
    the floor rows follow (F1 NaN, no marks; :meth:`Study.floors`)."""
    labels = tuple(lab for lab in labels if not is_floor(lab))
    rows_of = labels + (tuple(study.floors(role)) if floors else ())
    frames = {lab: _frame(study.records_of(role, lab, attack), region) for lab in rows_of}
    rows = []
    for lab in rows_of:
        f = frames[lab]
        row: dict[str, Any] = {"method": lab, "F1": _f1(study, role, lab)}
        for name in METRICS:
            if name not in f:
                continue
            per_round = f.groupby("round")[name].mean()
            mark = ""
            if is_floor(lab):
                pass  # a floor is a baseline, not a defense: no test
            elif lab != "FedAvg" and "FedAvg" in frames:
                if _paired_p(f[name], frames["FedAvg"][name]) < alpha:
                    mark = "†"
            if lab == "Ours":
                others = [s for s in SOTA if s in frames]
                if others and all(_paired_p(f[name], frames[s][name]) < alpha for s in others):
                    mark = "‡"
            std = float(per_round.std(ddof=0)) if len(per_round) > 1 else 0.0
            row[name] = float(f[name].mean())
            row[f"{name}_std"] = std
            row[f"{name}_mark"] = mark
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def _f1(study: Study, role: str, label: str) -> float:
    """The final F1 of method ``label``; NaN for a floor (no federation)."""
    return math.nan if is_floor(label) else study.federation(role, label).final_f1


def methods_of(table: pd.DataFrame) -> list[str]:
    """The rows of ``table`` that are methods, not floors."""
    return [m for m in table.index if not is_floor(m)]


def floors_of(table: pd.DataFrame) -> list[str]:
    """The floor rows of ``table``."""
    return [m for m in table.index if is_floor(m)]


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """A defense table as the paper prints it: ``mean (std)mark`` per metric."""
    out = pd.DataFrame(index=table.index)
    out["F1"] = table["F1"].map(lambda v: "—" if math.isnan(v) else f"{v:.3f}")
    for name in METRICS:
        if name not in table:
            continue
        digits = 2 if name == "psnr" else 3
        out[name.upper()] = [
            f"{m:.{digits}f} ({s:.{digits}f}){k}"
            for m, s, k in zip(
                table[name], table[f"{name}_std"], table[f"{name}_mark"], strict=True
            )
        ]
    return out


def summary_table(
    study: Study, role: str, labels: list[str], attack: str = "model", floors: bool = True
) -> pd.DataFrame:
    """Tables 3-4 / Fig. 8: F1 and the whole-image means of ``attack`` per method, then
    (with ``floors``) the floor rows, F1 NaN."""
    rows = []
    labels = [lab for lab in labels if not is_floor(lab)]
    for lab in labels + (list(study.floors(role)) if floors else []):
        f = _frame(study.records_of(role, lab, attack), "whole")
        row = {"method": lab, "F1": _f1(study, role, lab)}
        row.update({k: float(f[k].mean()) for k in METRICS if k in f})
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def finetune_rounds_table(
    study: Study, role: str, r_values: list[int], client: int, attack: str = "model"
) -> pd.DataFrame:
    """Table 5: terminal round ``r_shadow`` of shadow fine-tuning vs F1, the metrics on
    ``client`` (the paper: client 8, the most vulnerable) and the FL wall time relative to
    the first row."""
    rows = []
    for r in r_values:
        lab = f"r_shadow={r}"
        fed = study.federation(role, lab)
        recs = [x for x in study.attacked(role, lab, attack) if x.client == client]
        f = _frame(recs, "whole")
        row = {"r_shadow": r, "F1": fed.final_f1}
        row.update({k: float(f[k].mean()) for k in METRICS if k in f})
        row["seconds"] = float(sum(fed.round_seconds))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("r_shadow")
    out["time"] = out["seconds"] / out["seconds"].iloc[0]
    return out


def rdlv_table(study: Study, role: str, labels: tuple[str, ...], attack: str) -> pd.DataFrame:
    """Fig. 7 data: RDLV per (method, client, round)."""
    rows = [
        {"method": lab, "client": r.client + 1, "round": r.round, "rdlv": r.rdlv}
        for lab in labels
        for r in study.records_of(role, lab, attack)
    ]
    return pd.DataFrame(rows)


def iip_table(
    study: Study, role: str, labels: tuple[str, ...], attack: str = "model", k=(1, 3, 5)
) -> pd.DataFrame:
    """Supplement Table 2: IIP-k, the fraction of reconstructions whose original (the most
    similar real image) is among its k feature-nearest client images (cosine similarity of
    the pre-trained backbone's features)."""
    out = {}
    for lab in labels:
        ranks = np.array([x for r in study.records_of(role, lab, attack) for x in r.ranks])
        out[lab] = {f"IIP-{kk}": float((ranks < kk).mean()) for kk in k}
    return pd.DataFrame(out)


def cost_table(study: Study, role: str, labels: tuple[str, ...]) -> pd.DataFrame:
    """Supplement Table 1: mean wall time of one FL round (all nine clients' local training,
    defenses included, and the aggregation; the F1 evaluation excluded)."""
    rows = {
        lab: {
            "seconds_per_round": float(np.mean(study.federation(role, lab).round_seconds)),
        }
        for lab in labels
    }
    out = pd.DataFrame(rows).T
    out["relative_to_FedAvg"] = out["seconds_per_round"] / out.loc["FedAvg", "seconds_per_round"]
    return out


def f1_curves(study: Study, role: str, labels: list[str]) -> pd.DataFrame:
    """Fig. 6 data: the F1 of the global model after each round, per method."""
    return pd.DataFrame({lab: dict(study.federation(role, lab).f1) for lab in labels}).rename_axis(
        "round"
    )


# -- which client leaks most -----------------------------------------------------------------
def most_vulnerable_client(study: Study, role: str, attack: str = "model") -> int:
    """The attacked client whose FedAvg reconstructions reach the highest mean PSNR."""
    f = _frame(study.attacked(role, "FedAvg", attack), "whole")
    return int(f.groupby("client")["psnr"].mean().idxmax())


# -- the paper's numbers (shadow_defense.txt; ChestXRay, whole image) -------------------------
#: method -> (F1, MSE, PSNR, LPIPS, SSIM); Table 1 (model-based GIA), ChestXRay, whole image
PAPER_TABLE1 = {
    "FedAvg": (0.978, 0.035, 15.09, 0.385, 0.486),
    "SCAFFOLD": (0.976, 0.034, 15.16, 0.380, 0.496),
    "DP": (0.860, 0.037, 14.95, 0.438, 0.464),
    "GS": (0.968, 0.043, 14.43, 0.390, 0.437),
    "GC": (0.848, 0.043, 14.44, 0.384, 0.440),
    "Soteria": (0.973, 0.034, 15.05, 0.386, 0.490),
    "OUTPOST": (0.972, 0.034, 15.16, 0.383, 0.491),
    "Censor": (0.810, 0.035, 15.08, 0.381, 0.496),
    "Ours": (0.967, 0.102, 11.36, 0.642, 0.286),
}
#: Table 2 (optimisation-based GIA), ChestXRay, whole image
PAPER_TABLE2 = {
    "FedAvg": (0.978, 0.021, 17.05, 0.448, 0.531),
    "SCAFFOLD": (0.976, 0.021, 17.14, 0.450, 0.524),
    "DP": (0.860, 0.026, 17.20, 0.710, 0.531),
    "GS": (0.968, 0.025, 16.96, 0.445, 0.539),
    "GC": (0.848, 0.028, 16.66, 0.449, 0.544),
    "Soteria": (0.973, 0.021, 16.98, 0.450, 0.529),
    "OUTPOST": (0.972, 0.020, 17.35, 0.463, 0.520),
    "Censor": (0.810, 0.025, 16.85, 0.462, 0.521),
    "Ours": (0.967, 0.021, 17.10, 0.710, 0.384),
}
#: Table 3 (module ablation) and Table 4 (image-level DP), model-based GIA
PAPER_TABLE34 = {
    "w/o PT z": (0.965, 0.069, 12.88, 0.583, 0.317),
    "w/o FT S": (0.959, 0.073, 12.87, 0.573, 0.378),
    "w/o Equ": (0.967, 0.065, 13.21, 0.510, 0.329),
    "w/o CAM": (0.946, 0.098, 11.14, 0.658, 0.240),
    "Img DP (w)": (0.953, 0.035, 14.92, 0.529, 0.377),
    "Img DP (s)": (0.867, 0.060, 13.32, 0.778, 0.204),
}
#: Table 5: r_shadow -> (F1, PSNR, time relative to r_shadow = 10), client 8
PAPER_TABLE5 = {
    10: (0.969, 11.92, 1.000),
    20: (0.967, 12.02, 1.394),
    40: (0.966, 11.30, 1.963),
    60: (0.973, 9.78, 2.651),
    80: (0.967, 10.62, 3.460),
    100: (0.974, 10.04, 4.272),
}
#: supplement Table 1: seconds per round on EyePACS (RTX 3090)
PAPER_COST = {
    "FedAvg": 566.436, "DP": 698.794, "GS": 699.565, "GC": 703.01, "Soteria": 1581.399,
    "OUTPOST": 705.139, "Ours": 720.711,
}  # fmt: skip
#: supplement Table 2: IIP-1 on ChestXRay, model-based GIA
PAPER_IIP1 = {
    "FedAvg": 0.0191, "DP": 0.0128, "GS": 0.0111, "GC": 0.0093, "Soteria": 0.0174,
    "OUTPOST": 0.0111, "Censor": 0.0161, "Ours": 0.0059,
}  # fmt: skip


def paper_vs_run(
    table1: pd.DataFrame, table2: pd.DataFrame, extra: pd.DataFrame | None = None
) -> pd.DataFrame:
    """F1 and whole-image PSNR / SSIM of every method, paper (ChestXRay) next to this run
    (floor rows are left out: the paper has none); ``extra``: a Table 3 / 4 of this run."""
    parts = [("model", PAPER_TABLE1, table1), ("optimisation", PAPER_TABLE2, table2)]
    if extra is not None:
        parts.append(("model", PAPER_TABLE34, extra))
    rows = [
        _paper_row(name, lab, paper.get(lab), t)
        for name, paper, t in parts
        for lab in methods_of(t)
    ]
    return pd.DataFrame(rows).set_index(["GIA", "method"])


def _paper_row(gia: str, lab: str, p: tuple | None, t: pd.DataFrame) -> dict[str, Any]:
    """One row of :func:`paper_vs_run`: the paper's numbers ``p`` of method ``lab`` (NaN
    where the paper has no such row) beside those of this run's table ``t``."""
    return {
        "GIA": gia, "method": lab,
        "F1 paper": p[0] if p else math.nan, "F1 run": t.loc[lab, "F1"],
        "PSNR paper": p[2] if p else math.nan, "PSNR run": t.loc[lab, "psnr"],
        "SSIM paper": p[4] if p else math.nan, "SSIM run": t.loc[lab, "ssim"],
    }  # fmt: skip


# -- claims --------------------------------------------------------------------------------------
def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "inconclusive"}[holds]


def claims(
    study: Study, role: str, table1: pd.DataFrame, table2: pd.DataFrame, tolerance_db: float = 0.5
) -> pd.DataFrame:
    """The paper's headline claims checked on this run (three-valued verdicts). First each
    attack against the floors (a leak counts only above them), then the methods against each
    other, floors left out."""
    fedavg_f1 = table1.loc["FedAvg", "F1"]
    rows = []

    def add(claim: str, holds: bool | None, evidence: str) -> None:
        rows.append({"claim": claim, "verdict": verdict(holds), "this run": evidence})

    for name, t in (("model-based GIA (GIAS)", table1), ("BN-prior GIA", table2)):
        fedavg = t.loc["FedAvg", "psnr"]
        floor = floors_of(t)
        if floor:
            best = max(floor, key=lambda m: t.loc[m, "psnr"])
            add(
                f"the {name} on FedAvg beats the floors",
                bool(fedavg > t.loc[best, "psnr"]),
                f"FedAvg {fedavg:.2f} dB vs best floor ({best}) {t.loc[best, 'psnr']:.2f} dB",
            )
        else:
            add(f"the {name} on FedAvg beats the floors", None, "no floor rows in the table")

    for name, t in (("model-based", table1), ("optimisation-based", table2)):
        others = [m for m in methods_of(t) if m != "Ours"]
        best_other = t.loc[others, "psnr"].min()
        gap = best_other - t.loc["Ours", "psnr"]
        add(
            f"the shadow defense gives the lowest PSNR of all methods ({name} GIA)",
            None if abs(gap) < tolerance_db else gap > 0,
            f"Ours {t.loc['Ours', 'psnr']:.2f} dB vs best other {best_other:.2f} dB",
        )
    drop = fedavg_f1 - table1.loc["Ours", "F1"]
    add(
        "the shadow defense costs under 1 % F1 (absolute) against FedAvg",
        drop < 0.01,
        f"F1 {table1.loc['Ours', 'F1']:.3f} vs FedAvg {fedavg_f1:.3f} (drop {drop:+.3f})",
    )
    costly = {
        m: fedavg_f1 - table1.loc[m, "F1"] for m in ("DP", "GC", "Censor") if m in table1.index
    }
    add(
        "DP, GC and Censor cost over 7 % F1",
        all(v > 0.07 for v in costly.values()) if costly else None,
        ", ".join(f"{m} {v:+.3f}" for m, v in costly.items()),
    )
    rd = rdlv_table(study, role, tuple(methods_of(table1)), "model")
    ours = rd[rd.method == "Ours"].groupby("client")["rdlv"].mean()
    if len(ours) > 1:
        single = SHADOW_SPLIT.index(min(SHADOW_SPLIT, key=lambda c: c.size)) + 1
        weakest = int(ours.idxmax())
        add(
            "the single-image client is the weakest point of the shadow defense (highest RDLV)",
            weakest == single,
            f"highest mean RDLV under Ours: client {weakest} ({ours.max():.3f}); "
            f"client {single}: {ours.get(single, math.nan):.3f}",
        )
    return pd.DataFrame(rows)
