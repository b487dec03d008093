"""The baselines' own budgets (Tables 3-5 of ggss_r.txt), and how much of them a run spent.

GGSS-R gives no budget for its seven baselines. Each one's budget below is what its own
paper or its authors' public code runs (GI: as GIFD's code runs it, the source of GGSS-R's
baseline list), with the source beside it; FinetunedDiff's is ours (see its module). A
profile that gives a baseline less (the CPU envelope) *under-runs* it: the baseline's
numbers are lower bounds of what it can do, so a claim that GGSS-R beats it cannot hold on
that run (:func:`under_run`, a precondition of the baseline claims in
:mod:`~gradinv.experiments.ggss_r.verdicts`).

The share of a budget is the smallest ratio, over the budget's fields, of what ran to what
the source runs (``restarts`` 1 of 4 and ``iterations`` 1000 of 1000: a quarter), capped at 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from gradinv import attacks
from gradinv.experiments.ggss_r.profile import LABELS

#: attack -> {Config field: its own paper's value}
BUDGETS: dict[str, dict[str, int]] = {
    "dlg": {"iterations": 300},
    "ig": {"iterations": 24_000, "restarts": 1},
    "gradinversion": {"iterations": 15_000, "restarts": 4},
    "gias": {"iterations": 1_000, "gias_iterations": 8_000, "restarts": 4},
    "ggl": {"iterations": 500, "population": 50},
    "gifd": {"iterations": 1_000, "restarts": 4},
    "finetuned_diff": {"iterations": 100, "steps": 10},
}
#: attack -> where its budget comes from
SOURCES: dict[str, str] = {
    "dlg": "DLG code (Zhu et al. 2019): 300 L-BFGS steps",
    "ig": "Geiping et al. 2020, Sec. 5 / inversefed: 24,000 Adam steps, one trial",
    "gradinversion": "GIFD configs_gan_free.yml (yin): max_iterations 15000, restarts 4",
    "gias": "GIFD configs_biggan.yml and configs_stylegan2.yml: max_iterations 1000 (latent), "
    "gias_iterations 8000 (generator), restarts 4",
    "ggl": "GGL code (celeba32_wgan-gp.py, README --budget 500): 500 rounds of 50 samples",
    "gifd": "GIFD configs_biggan.yml: 1000 steps per round, restarts 4",
    "finetuned_diff": "ours: GGSS-R's b25 gives no budget we could read",
}


def budget_share(method: str, options: Mapping[str, Any]) -> float:
    """The share of ``method``'s own budget that a run with Config ``options`` spends (1.0:
    at least its budget; also 1.0 for a method without one, GGSS-R)."""
    budget = BUDGETS.get(method)
    if not budget:
        return 1.0
    defaults = attacks.get(method).Config()
    ran = {f: float(options.get(f, getattr(defaults, f))) for f in budget}
    return min(1.0, *(ran[f] / budget[f] for f in budget))


def budget_table(options: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per baseline of ``options`` (attack -> its Config overrides in this run) with a
    budget: its own budget and source, what this run gives it, and the share."""
    rows = []
    for method, opts in options.items():
        if method not in BUDGETS:
            continue
        defaults = attacks.get(method).Config()
        budget = BUDGETS[method]
        ran = {f: opts.get(f, getattr(defaults, f)) for f in budget}
        rows.append(
            {"method": LABELS[method],
             "own budget": ", ".join(f"{f} {v:,}" for f, v in budget.items()),
             "this run": ", ".join(f"{f} {v:,}" for f, v in ran.items()),
             "share": budget_share(method, opts), "source": SOURCES[method]}
        )  # fmt: skip
    return pd.DataFrame(rows)


def under_run(shares: Mapping[str, float]) -> str | None:
    """Why a claim against baselines with these ``shares`` (label -> share) cannot hold on
    this run: the baselines that ran below their own budget; None if none did."""
    short = {m: s for m, s in shares.items() if s < 1.0}
    if not short:
        return None
    told = ", ".join(f"{m} {s:.0%}" for m, s in sorted(short.items()))
    return (
        f"baselines ran below their own papers' budgets ({told} of it): a win over them "
        "would not show a win over the baselines as published"
    )
