"""Tables of the shadow-defense study and the paper beside this run (shadow_defense.txt).

* :func:`defense_table`: Tables 1 (model-based GIA) and 2 (optimisation-based GIA) of Sec.
  5.2.1, whole image or target region, mean and std over rounds, Wilcoxon signed-rank marks,
  the floor rows last; :func:`formatted` prints it as the paper does;
* :func:`summary_table`: Table 3 (module ablation), Table 4 (image-level DP) and the data of
  Fig. 8 (noise schedules), Sec. 5.2.2; :func:`finetune_rounds_table`: Table 5 (terminal
  round r_shadow of shadow fine-tuning);
* :func:`f1_curves` (Fig. 6) and :func:`rdlv_table` (Fig. 7, eq. 19; supplement Fig. 3);
* :func:`iip_table` (supplement Table 2, IIP) and :func:`cost_table` (supplement Table 1);
* "paper vs this run": :func:`compare`, the paper's numbers (``papermill_runs/
  shadow_defense/reported.csv``) beside this run's means with a bootstrap interval and ``n``
  (reconstructed images; F1: one federation), for Tables 1-5 and the supplement's tables.

Every function reads the run's records through
:class:`~gradinv.experiments.shadow_defense.results.Results`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from gradinv.errors import GradInvError
from gradinv.experiments import claims
from gradinv.experiments.floors import is_floor
from gradinv.experiments.shadow_defense.profile import PAPER, SOTA, TABLE12
from gradinv.experiments.shadow_defense.results import Results
from gradinv.experiments.shadow_defense.scoring import METRICS, AttackRecord


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
    study: Results,
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


def _f1(study: Results, role: str, label: str) -> float:
    """The final F1 of method ``label``; NaN for a floor (no federation)."""
    return study.final_f1(role, label)


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
    study: Results, role: str, labels: list[str], attack: str = "model", floors: bool = True
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
    study: Results, role: str, r_values: list[int], client: int, attack: str = "model"
) -> pd.DataFrame:
    """Table 5: terminal round ``r_shadow`` of shadow fine-tuning vs F1, the metrics on
    ``client`` (the paper: client 8, the most vulnerable) and the FL wall time relative to
    the first row (the federation records' wall time)."""
    rows = []
    for r in r_values:
        lab = f"r_shadow={r}"
        fed = study.federation(role, lab)
        recs = [x for x in study.attacked(role, lab, attack) if x.client == client]
        f = _frame(recs, "whole")
        row = {"r_shadow": r, "F1": fed.final_f1}
        row.update({k: float(f[k].mean()) for k in METRICS if k in f})
        row["seconds"] = fed.seconds
        rows.append(row)
    out = pd.DataFrame(rows).set_index("r_shadow")
    out["time"] = out["seconds"] / out["seconds"].iloc[0]
    return out


def rdlv_table(study: Results, role: str, labels: tuple[str, ...], attack: str) -> pd.DataFrame:
    """Fig. 7 data: RDLV per (method, client, round)."""
    rows = [
        {"method": lab, "client": r.client + 1, "round": r.round, "rdlv": r.rdlv}
        for lab in labels
        for r in study.records_of(role, lab, attack)
    ]
    return pd.DataFrame(rows)


def iip_table(
    study: Results, role: str, labels: tuple[str, ...], attack: str = "model", k=(1, 3, 5),
    form: str = "code",
) -> pd.DataFrame:  # fmt: skip
    """Supplement Table 2: IIP-k over the reconstructions, their deep-feature neighbours
    looked up among every image of the federation (cosine similarity of the pre-trained
    backbone's features). ``form="code"`` (the authors' ``caliip``): the attacked client's
    images among the k nearest (ties at the k-th kept), divided by the batch size;
    ``form="text"``: the fraction whose original is among the k nearest."""
    if form not in ("code", "text"):
        raise GradInvError(f"iip form is 'code' or 'text', got {form!r}")
    out = {}
    for lab in labels:
        recs = study.records_of(role, lab, attack)
        if form == "text":
            ranks = np.array([x for r in recs for x in r.ranks])
            out[lab] = {f"IIP-{kk}": float((ranks < kk).mean()) for kk in k}
        else:
            out[lab] = {
                f"IIP-{kk}": float(np.mean([c / len(r.ranks) for r in recs
                                            for c in r.client_top.get(kk, [])]))
                for kk in k
            }  # fmt: skip
    return pd.DataFrame(out)


def cost_table(study: Results, role: str, labels: tuple[str, ...]) -> pd.DataFrame:
    """Supplement Table 1: mean wall time of one FL round, the federation record's wall time
    over its rounds (all nine clients' local training, defenses included, the aggregation,
    and the per-round F1 evaluation and set-up, which every method shares)."""
    rows = {
        lab: {"seconds_per_round": study.federation(role, lab).seconds_per_round} for lab in labels
    }
    out = pd.DataFrame(rows).T
    out["relative_to_FedAvg"] = out["seconds_per_round"] / out.loc["FedAvg", "seconds_per_round"]
    return out


def f1_curves(study: Results, role: str, labels: list[str]) -> pd.DataFrame:
    """Fig. 6 data: the F1 of the global model after each round, per method."""
    return pd.DataFrame({lab: dict(study.federation(role, lab).f1) for lab in labels}).rename_axis(
        "round"
    )


# -- which client leaks most -----------------------------------------------------------------
def most_vulnerable_client(study: Results, role: str, attack: str = "model") -> int:
    """The attacked client whose FedAvg reconstructions reach the highest mean PSNR."""
    f = _frame(study.attacked(role, "FedAvg", attack), "whole")
    return int(f.groupby("client")["psnr"].mean().idxmax())


# -- paper vs this run ---------------------------------------------------------------------------
#: ``reported_index(reported, table)``: one table of this paper's ``reported.csv``
reported_index = functools.partial(claims.reported_index, PAPER)


def compare(
    study: Results,
    role: str,
    table: str,
    labels: list[str] | tuple[str, ...],
    attack: str = "model",
    reported: pd.DataFrame | None = None,
    column: str = "ChestXRay/whole image",
) -> pd.DataFrame:
    """Paper vs this run for ``table`` of ``reported.csv`` (``"Table 1"`` .. ``"Table 4"``):
    per method and metric the paper's value, this run's mean over the reconstructed images
    (whole image), its 95 % bootstrap interval and ``n`` (images; F1: the one federation's
    final F1, n = 1). Methods the paper does not report are left out; floors have no row."""
    paper = reported_index(reported, table)
    rows = study.image_rows(role, [m for m in labels if not is_floor(m)], attack)
    out = []
    for lab in labels:
        if is_floor(lab) or not any((lab, column, m) in paper for m in ("f1", *METRICS)):
            continue
        f1 = study.final_f1(role, lab)
        out.append(_line(table, lab, "f1", paper.get((lab, column, "f1")), np.array([f1])))
        mine = rows[rows["method"] == lab]
        for m in METRICS:
            if m in mine:
                x = mine[m].to_numpy(dtype=float)
                out.append(_line(table, lab, m, paper.get((lab, column, m)), x))
    return pd.DataFrame(out)


def _line(table: str, lab: str, metric: str, paper: float | None, x: np.ndarray) -> dict:
    mean, low, high, n = claims.mean_interval(x)
    return {
        "table": table, "method": lab, "metric": metric,
        "paper": math.nan if paper is None else paper,
        "run": mean, "low": low, "high": high, "n": n,
    }  # fmt: skip


def compare_table5(
    study: Results, role: str, r_values: list[int], client: int,
    reported: pd.DataFrame | None = None, attack: str = "model",
) -> pd.DataFrame:  # fmt: skip
    """Table 5 beside this run: the paper's rows (r_shadow 10 .. 100, its most vulnerable
    client) and this run's (its ``r_shadow`` values, ``client``), F1, PSNR with interval and
    n, and time relative to the first row."""
    paper = reported_index(reported, "Table 5")
    out = []
    for r, col, m in sorted(paper, key=lambda k: (int(k[0]), k[2])):
        if m in ("f1", "psnr", "time_relative"):
            out.append({"source": "paper", "r_shadow": int(r), "metric": m,
                        "value": paper[(r, col, m)], "low": math.nan, "high": math.nan,
                        "n": math.nan})  # fmt: skip
    first = None
    for r in r_values:
        lab = f"r_shadow={r}"
        fed = study.federation(role, lab)
        first = fed.seconds if first is None else first
        rows = study.image_rows(role, [lab], attack)
        x = rows[rows["client"] == client]["psnr"].to_numpy(dtype=float)
        mean, low, high, n = claims.mean_interval(x)
        out += [
            {"source": "this run", "r_shadow": r, "metric": "f1", "value": fed.final_f1,
             "low": math.nan, "high": math.nan, "n": 1},
            {"source": "this run", "r_shadow": r, "metric": "psnr",
             "value": mean, "low": low, "high": high, "n": n},
            {"source": "this run", "r_shadow": r, "metric": "time_relative",
             "value": fed.seconds / first, "low": math.nan, "high": math.nan, "n": 1},
        ]  # fmt: skip
    return pd.DataFrame(out)


def compare_supplement(
    iip: pd.DataFrame, cost: pd.DataFrame, n_iip: int, reported: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The supplement's IIP-1 (Table 2, ChestXRay, model-based GIA; n: reconstructions per
    method) and cost relative to FedAvg (Table 1, EyePACS in the paper) beside this run's."""
    iip_p = reported_index(reported, "Supp. Table 2")
    cost_p = reported_index(reported, "Supp. Table 1")
    out = []
    for (lab, col, m), v in iip_p.items():
        if m == "iip1" and col.endswith("model-based GIA") and lab in iip.columns:
            out.append({"table": "Supp. Table 2", "method": lab, "metric": "IIP-1",
                        "paper": v, "run": float(iip.loc["IIP-1", lab]), "n": n_iip})  # fmt: skip
    base = cost_p.get(("FedAvg", "EyePACS", "seconds_per_round"))
    for (lab, _, m), v in cost_p.items():
        if m == "seconds_per_round" and lab in cost.index and base:
            out.append({"table": "Supp. Table 1", "method": lab, "metric": "cost / FedAvg",
                        "paper": v / base, "run": float(cost.loc[lab, "relative_to_FedAvg"]),
                        "n": 1})  # fmt: skip
    return pd.DataFrame(out)
