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

from gradinv import attacks

#: attack -> {Config field: its own paper's value}; source in the comment
BUDGETS: dict[str, dict[str, int]] = {
    # DLG code (Zhu et al. 2019): 300 L-BFGS steps
    "dlg": {"iterations": 300},
    # Geiping et al. 2020, Sec. 5 / inversefed: 24,000 Adam steps, one trial
    "ig": {"iterations": 24_000, "restarts": 1},
    # GI as GIFD runs it (configs_gan_free.yml, yin: max_iterations 15000, restarts 4)
    "gradinversion": {"iterations": 15_000, "restarts": 4},
    # GIAS as GIFD runs it (rec_mult.py: gias_iterations 0 -> max_iterations 1000; restarts 4)
    "gias": {"iterations": 1_000, "gias_iterations": 1_000, "restarts": 4},
    # GGL code (celeba32_wgan-gp.py, README: --budget 500 rounds of num_samples = 50)
    "ggl": {"iterations": 500, "population": 50},
    # GIFD configs_biggan.yml (steps: 1000 per round, restarts 4)
    "gifd": {"iterations": 1_000, "restarts": 4},
    # ours (GGSS-R's b25 gives none here): 100 Adam steps through a 10-step DDIM generator
    "finetuned_diff": {"iterations": 100, "steps": 10},
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
