"""Claims: a paper's claim judged on this run's paired per-unit results, one format for all
five papers (DESIGN.md, "Results you can trust"; issue 16).

**Input.** :func:`judge` takes a long-format table, one row per (unit, arm[, level]):

=========  ===============================================================================
``unit``   what pairs the rows: an image, a seed, a client (one column or several, e.g.
           ``("image", "seed")``); rows of different arms with the same unit are compared
``arm``    the method, floor, defense or variant (``"IG"``, ``"nearest public"``, ``"Ours"``)
metric     the measured value, in the column the claim names (``Claim.metric``: ``"psnr"``,
           ``"lpips"``, ``"accuracy"``; default ``"value"``)
``level``  numeric parameter, for ``trend`` and ``correlation`` claims only (noise
           variance, batch size, RV)
=========  ===============================================================================

Column names other than the metric are keyword arguments of :func:`judge`. Filter the table
to the claim's cells (a dataset, a network) before judging. A NaN value is a missing cell:
its unit is left out of every comparison that needs it; an infinite value (an exact
reconstruction's PSNR) is an error, so cap it first. A unit must have one row per arm (and
level).

**Rules.** Differences are paired per unit and oriented so that positive favours the claim.
The interval is a seeded percentile bootstrap of the mean (:data:`RESAMPLES` resamples,
:data:`CONFIDENCE`), or Wilson's score interval for a rate. With fewer than
:data:`MIN_PAIRS` units the verdict is ``inconclusive`` before anything is computed; else
``holds`` when the whole interval lies on the claimed side of the margin, ``does not hold``
when the whole interval lies on the other side (a difference exactly at the margin does not
exceed it), ``inconclusive`` when it straddles. A run too small to tell therefore gives
``inconclusive``, never ``does not hold``: the latter needs at least :data:`MIN_PAIRS` units
and an interval that excludes every value the claim allows.
Orderings use paired one-sided Wilcoxon signed-rank tests between neighbours (every step
significant at ``alpha``: holds; any step significantly reversed at ``alpha / steps``: does
not hold). ``untestable here`` comes from :func:`untestable` or a failed precondition passed
to :func:`judge` (:func:`chance_accuracy`, :func:`never_left_start`, :func:`missing_gpu`,
:func:`missing_data`).

The papers' own numbers live in ``papermill_runs/<paper>/reported.csv``
(:func:`load_reported`); each notebook writes ``figures/<paper>/claims.csv`` and ``.md``
(:func:`write_claims`), and README's status table is generated from them
(:func:`status_table`, ``scripts/readme_status.py``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from gradinv.errors import GradInvError

Kind = Literal["exceeds", "ordering", "trend", "correlation", "rate", "value"]
Label = Literal["holds", "does not hold", "inconclusive", "untestable here"]
KINDS: tuple[str, ...] = get_args(Kind)
LABELS: tuple[str, ...] = get_args(Label)

#: fewer paired units than this can only be inconclusive (issue 16)
MIN_PAIRS = 5
#: bootstrap resamples and the interval's coverage
RESAMPLES = 10_000
CONFIDENCE = 0.95
#: level of the Wilcoxon tests of an ordering
ALPHA = 0.05
#: fewest levels a ``correlation`` claim is judged on (two levels give rho = +-1)
MIN_LEVELS = 3
#: columns of claims.csv, in order
TABLE_COLUMNS = (
    "id", "kind", "claim", "paper", "this run", "estimate", "n", "low", "high", "verdict",
    "reason",
)  # fmt: skip
#: columns of papermill_runs/<paper>/reported.csv
REPORTED_COLUMNS = ("table", "row", "column", "metric", "value", "source")
STATUS_BEGIN, STATUS_END = "<!-- status:begin -->", "<!-- status:end -->"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, stated so that this run can judge it.

    ``kind`` and ``arms``:

    * ``exceeds``: ``arms = (A, B)``; A beats B by more than ``margin`` (metric units) on
      paired units: an attack against a floor, a method against a baseline, defended vs
      undefended (then the better side is the lower PSNR: ``higher_is_better=False``).
      A negative margin states non-inferiority ("A at most 1 dB worse than B").
    * ``ordering``: ``arms`` best first; each neighbour beats the next by more than
      ``margin`` (paired Wilcoxon signed-rank tests).
    * ``trend``: ``arms = (A,)``; A's metric rises (``direction="up"``) or falls
      (``"down"``) with the ``level`` column. Judged on each unit's Spearman correlation
      between level and metric, averaged over units; ``margin`` is the smallest mean
      correlation the claim allows (0: any consistent trend; 0.5: a strong one). Spearman
      per unit rather than the difference between the two extreme levels because it uses
      every level (a rise-then-fall is not a trend), is scale-free (PSNR, LPIPS and levels
      spaced 1e-4 .. 1e-1 alike) and pairs by unit, so each image's difficulty cancels; a
      claim about the extremes alone is an ``exceeds`` claim between two arms.
    * ``correlation``: ``arms = (A,)``; across the levels (e.g. one level per model: its
      RV), A's *mean* metric over units is rank-correlated with the level, rising
      (``direction="up"``) or falling: Spearman's rho of the levels and the per-level means,
      the statistic a paper computes from its table. Its interval is a percentile bootstrap
      over units (a resample draws whole units, so the pairing across levels is kept, and
      recomputes every level's mean and the rho); ``margin`` as for ``trend``. Needs at
      least :data:`MIN_LEVELS` levels (with two, rho is +-1 whatever the data). Unlike
      ``trend`` it asks about the levels' means, not each unit's ordering.
    * ``rate``: ``arms = (A,)``; at least a fraction ``rate`` of units reach ``threshold``
      (``>=`` when higher is better, ``<=`` otherwise: "the attack succeeds at 18 dB" is
      ``threshold=18``; "the defense stops it" is ``threshold=18, higher_is_better=False``).
      Claim a rate below 1: Wilson's interval never reaches 1 on finite data.
    * ``value``: ``arms = (A,)``; A's mean is within ``margin`` of the paper's ``target``.

    ``paper`` is the paper's key (``"gia_survey"``); ``text`` the claim with its source
    (table, figure or section); ``reported`` what the paper reports, shown beside this run;
    ``units`` is for display only (``"dB"``).
    """

    id: str
    paper: str
    text: str
    kind: Kind
    arms: tuple[str, ...]
    metric: str = "value"
    higher_is_better: bool = True
    margin: float = 0.0
    reported: str = ""
    units: str = ""
    direction: Literal["up", "down"] | None = None
    threshold: float | None = None
    rate: float | None = None
    target: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        where = f"claim {self.id!r}"
        if self.kind not in KINDS:
            raise GradInvError(f"{where}: kind {self.kind!r} is not one of {KINDS}")
        count = {"exceeds": 2, "trend": 1, "correlation": 1, "rate": 1, "value": 1}.get(self.kind)
        if count is not None and len(self.arms) != count:
            raise GradInvError(
                f"{where}: a {self.kind} claim names {count} arm(s), got {self.arms}"
            )
        if self.kind == "ordering" and len(self.arms) < 2:
            raise GradInvError(f"{where}: an ordering names at least 2 arms, got {self.arms}")
        if self.kind in ("trend", "correlation") and self.direction not in ("up", "down"):
            raise GradInvError(f"{where}: a {self.kind} claim needs direction 'up' or 'down'")
        if self.kind in ("trend", "correlation") and not -1.0 <= self.margin < 1.0:
            raise GradInvError(f"{where}: a {self.kind}'s margin is a correlation in [-1, 1)")
        if self.kind == "rate" and (self.threshold is None or self.rate is None):
            raise GradInvError(f"{where}: a rate claim needs threshold and rate")
        if self.kind == "rate" and not 0.0 <= float(self.rate or 0.0) <= 1.0:
            raise GradInvError(f"{where}: rate {self.rate} is not a fraction in [0, 1]")
        if self.kind == "value" and (self.target is None or self.margin < 0):
            raise GradInvError(f"{where}: a value claim needs target and a margin >= 0")


@dataclass(frozen=True)
class Verdict:
    """A claim judged on this run: ``paper`` is what the paper reports, ``this_run`` the
    point estimate in words, ``estimate`` the same number, ``[low, high]`` its interval
    (NaN when nothing was measured), ``n`` the paired units."""

    claim: Claim
    paper: str
    this_run: str
    n: int
    low: float
    high: float
    verdict: Label
    reason: str
    estimate: float = math.nan


# -- statistics ------------------------------------------------------------------------------
def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (vectorised, seeded, in chunks of
    at most ~4M draws so memory stays bounded)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise GradInvError(f"bootstrap needs a non-empty 1-D sample, got shape {x.shape}")
    if np.ptp(x) == 0:  # no spread: the interval is the point (no round-off in the mean)
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, (1 << 22) // x.size))
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, size=(min(chunk, resamples - s), x.size))].mean(axis=1)
            for s in range(0, resamples, chunk)
        ]
    )
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def mean_interval(values: Iterable[float | None]) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the finite ``values``: their mean, the 95 % bootstrap
    interval of the mean (NaN under two values) and how many there are."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan, 0
    if x.size < 2:
        return float(x.mean()), math.nan, math.nan, 1
    low, high = bootstrap_ci(x)
    return float(x.mean()), low, high, int(x.size)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of a rate ``k / n`` (sensible at 0/n and n/n, unlike the
    bootstrap, which collapses to a point there)."""
    if n <= 0 or not 0 <= k <= n:
        raise GradInvError(f"a rate needs 0 <= k <= n and n > 0, got {k}/{n}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p, z2 = k / n, z * z / n
    centre = (p + z2 / 2) / (1 + z2)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n)) / (1 + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def spearman_rows(levels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``levels`` (k,) with each row of ``values`` (units, k); a row
    with no spread in its values has correlation 0 (no trend)."""
    lr = stats.rankdata(levels)
    lr = lr - lr.mean()
    vr = stats.rankdata(values, axis=1)
    vr = vr - vr.mean(axis=1, keepdims=True)
    denom = np.sqrt((vr**2).sum(axis=1) * (lr**2).sum())
    num = (vr * lr).sum(axis=1)
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)


def _wilcoxon_greater(d: np.ndarray) -> float:
    """One-sided p-value that the differences ``d`` are positive (1 when all are zero)."""
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, alternative="greater").pvalue)


# -- data ------------------------------------------------------------------------------------
def _columns(unit: str | Sequence[str]) -> list[str]:
    return [unit] if isinstance(unit, str) else list(unit)


def _wide(
    claim: Claim, data: pd.DataFrame, unit: list[str], arm: str, by: str, keep: Sequence
) -> pd.DataFrame:
    """Units x ``by`` (arm or level) values of ``claim.metric``, complete units only."""
    where = f"claim {claim.id!r}"
    missing = [c for c in (*unit, arm, by, claim.metric) if c not in data.columns]
    if missing:
        raise GradInvError(
            f"{where}: the data has no column(s) {missing}; columns: {list(data.columns)}"
        )
    rows = data[data[arm].isin(claim.arms)]
    absent = [a for a in claim.arms if a not in set(rows[arm])]
    if absent:
        known = sorted(map(str, pd.unique(data[arm])))
        raise GradInvError(f"{where}: no rows for arm(s) {absent}; arms in the data: {known}")
    key = list(dict.fromkeys([*unit, by]))
    dup = rows.duplicated(subset=key)
    if dup.any():
        first = rows.loc[dup, key].iloc[0].to_dict()
        raise GradInvError(f"{where}: more than one row for {first}; one row per unit and {by}")
    try:
        values = pd.to_numeric(rows[claim.metric]).astype(float)
    except (TypeError, ValueError):
        raise GradInvError(f"{where}: {claim.metric} must be numeric") from None
    if np.isinf(values).any():
        raise GradInvError(
            f"{where}: {claim.metric} has infinite values; cap them (e.g. PSNR at 40 dB) first"
        )
    wide = values.set_axis(pd.MultiIndex.from_frame(rows[key])).unstack(by)
    if keep:
        wide = wide[list(keep)]
    return wide.dropna()


def _fmt(x: float, signed: bool = False) -> str:
    return f"{x:+.3g}" if signed else f"{x:.3g}"


def _with_units(text: str, units: str) -> str:
    return f"{text} {units}" if units else text


def _place(low: float, high: float, lo: float, hi: float) -> Label:
    """``holds`` when [low, high] lies inside (lo, hi), ``does not hold`` when outside it."""
    if lo < low and high < hi:
        return "holds"
    if high <= lo or low >= hi:
        return "does not hold"
    return "inconclusive"


# -- verdicts --------------------------------------------------------------------------------
def untestable(claim: Claim, reason: str) -> Verdict:
    """The verdict for a claim this run cannot test, with the reason (the attack never left
    its start, the model stayed at chance accuracy, data or a GPU is missing)."""
    return Verdict(claim, claim.reported, "not tested", 0, math.nan, math.nan,
                   "untestable here", reason)  # fmt: skip


def chance_accuracy(accuracy: float, num_classes: int, tolerance: float = 0.05) -> str | None:
    """A reason when ``accuracy`` (a fraction) is within ``tolerance`` of chance
    (1 / ``num_classes``): a claim about what training costs or keeps cannot be tested on a
    model that has not learned. None when it has."""
    if not 0.0 <= accuracy <= 1.0:
        raise GradInvError(f"accuracy {accuracy} is not a fraction in [0, 1] (divide % by 100)")
    chance = 1.0 / num_classes
    if accuracy <= chance + tolerance:
        return (
            f"the model is at chance accuracy ({accuracy:.3f} vs {chance:.3f} for "
            f"{num_classes} classes, tolerance {tolerance:g})"
        )
    return None


def never_left_start(
    first: float, last: float, rel_tol: float = 1e-3, what: str = "gradient-matching loss"
) -> str | None:
    """A reason when an attack's ``what`` moved by less than ``rel_tol`` (relative) between
    its first and last iteration, e.g. L-BFGS stopping at once; None when it moved."""
    if abs(last - first) <= rel_tol * max(abs(first), 1e-12):
        return f"the attack never left its start ({what} {first:.4g} -> {last:.4g})"
    return None


def inverts_exactly(means: Mapping[str, float], exact_db: float, claimed_at: str) -> str | None:
    """A reason when a baseline of ``means`` (arm -> mean PSNR) inverts the gradient (near)
    exactly, at or above ``exact_db``: "beats the baseline" cannot show when both are exact
    (they tie), so the claim is untestable at this resolution; ``claimed_at`` says where
    the paper makes it. None when every baseline is below ``exact_db``."""
    exact = {arm: v for arm, v in means.items() if v >= exact_db}
    if not exact:
        return None
    arm, value = max(exact.items(), key=lambda kv: kv[1])
    return (
        f"{arm} inverts the gradient near exactly here ({value:.1f} dB mean >= {exact_db:g}): "
        f"{claimed_at}; untestable at this resolution"
    )


def missing_gpu(device: str) -> str | None:
    """A reason when the claim needs a GPU and ``device`` is not one."""
    if not str(device).startswith("cuda"):
        return f"needs a GPU; this run used {device}"
    return None


def missing_data(needed: Iterable[str], present: Iterable[str]) -> str | None:
    """A reason naming the datasets of ``needed`` that are not in ``present``."""
    absent = sorted(set(needed) - set(present))
    return f"data missing: {', '.join(absent)}" if absent else None


def judge(
    claim: Claim,
    data: pd.DataFrame,
    *,
    unit: str | Sequence[str] = "unit",
    arm: str = "arm",
    level: str = "level",
    requires: Iterable[str | None] = (),
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    seed: int = 0,
) -> Verdict:
    """Judge ``claim`` on ``data`` (long format, see the module docstring). ``requires``
    holds precondition results (a reason string or None, from :func:`chance_accuracy` and
    friends): any reason makes the claim ``untestable here``."""
    reasons = [r for r in requires if r]
    if reasons:
        return untestable(claim, "; ".join(reasons))
    units = _columns(unit)
    if claim.kind == "trend":
        return _trend(claim, data, units, arm, level, resamples, confidence, seed)
    if claim.kind == "correlation":
        return _correlation(claim, data, units, arm, level, resamples, confidence, seed)
    if claim.kind in ("rate", "value"):
        wide = _wide(claim, data, units, arm, arm, claim.arms)
        x = wide[claim.arms[0]].to_numpy()
        rule = _rate if claim.kind == "rate" else _value
        return rule(claim, x, resamples, confidence, seed)
    wide = _wide(claim, data, units, arm, arm, claim.arms)
    sign = 1.0 if claim.higher_is_better else -1.0
    steps = [
        (a, b, sign * (wide[a] - wide[b]).to_numpy())
        for a, b in zip(claim.arms, claim.arms[1:], strict=False)
    ]
    if claim.kind == "exceeds":
        return _exceeds(claim, *steps[0], resamples, confidence, seed)
    return _ordering(claim, steps, resamples, confidence, alpha, seed)


def _too_few(claim: Claim, n: int, this_run: str, estimate: float) -> Verdict | None:
    if n >= MIN_PAIRS:
        return None
    return Verdict(claim, claim.reported, this_run, n, math.nan, math.nan, "inconclusive",
                   f"only {n} paired unit(s); at least {MIN_PAIRS} needed", estimate)  # fmt: skip


def _interval_text(low: float, high: float, confidence: float) -> str:
    return f"{confidence:.0%} interval [{_fmt(low)}, {_fmt(high)}]"


def _exceeds(
    claim: Claim, a: str, b: str, d: np.ndarray, resamples: int, confidence: float, seed: int
) -> Verdict:
    n = d.size
    mean = float(d.mean()) if n else math.nan
    this_run = f"{_with_units(_fmt(mean, True), claim.units)} ({a} over {b})" if n else "no pairs"
    if (short := _too_few(claim, n, this_run, mean)) is not None:
        return short
    low, high = bootstrap_ci(d, resamples=resamples, confidence=confidence, seed=seed)
    label = _place(low, high, claim.margin, math.inf)
    side = {"holds": "above", "does not hold": "below", "inconclusive": "straddles"}[label]
    reason = f"{_interval_text(low, high, confidence)} {side} the margin {_fmt(claim.margin)}"
    return Verdict(claim, claim.reported, this_run, n, low, high, label, reason, mean)


def _ordering(
    claim: Claim,
    steps: list[tuple[str, str, np.ndarray]],
    resamples: int,
    confidence: float,
    alpha: float,
    seed: int,
) -> Verdict:
    n, k = steps[0][2].size, len(steps)
    means = [float(d.mean()) if n else math.nan for _, _, d in steps]
    p_up = [_wilcoxon_greater(d - claim.margin) if n else 1.0 for _, _, d in steps]
    p_down = [_wilcoxon_greater(claim.margin - d) if n else 1.0 for _, _, d in steps]
    weakest = int(np.argmax(p_up))  # the least supported step is the one reported
    a, b, d = steps[weakest]
    step = f"weakest step {a} over {b} {_fmt(means[weakest], True)}" if n else "no pairs"
    this_run = _with_units(f"{' > '.join(claim.arms)}; {step}", claim.units)
    if (short := _too_few(claim, n, this_run, means[weakest])) is not None:
        return short
    low, high = bootstrap_ci(d, resamples=resamples, confidence=confidence, seed=seed)
    tests = ", ".join(f"{x}>{y} p={p:.3g}" for (x, y, _), p in zip(steps, p_up, strict=True))
    label: Label
    if max(p_up) < alpha:
        label = "holds"
        reason = f"every step significant at {alpha:g} (one-sided Wilcoxon: {tests})"
    elif min(p_down) < alpha / k:
        x, y, _ = steps[int(np.argmin(p_down))]
        label = "does not hold"
        reason = (
            f"{x} > {y} reversed: its step is below the margin {_fmt(claim.margin)} "
            f"(Wilcoxon p={min(p_down):.3g} < {alpha:g}/{k}, Bonferroni over the steps)"
        )
    else:
        label = "inconclusive"
        reason = f"not every step significant at {alpha:g} (one-sided Wilcoxon: {tests})"
    return Verdict(claim, claim.reported, this_run, n, low, high, label, reason, means[weakest])


def _by_level(
    claim: Claim, data: pd.DataFrame, units: list[str], arm: str, level: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """``(units x levels table of the metric, the levels as numbers)`` of a trend or a
    correlation claim; a level that is not a number is a one-line error."""
    wide = _wide(claim, data, units, arm, level, ())
    try:
        levels = pd.to_numeric(pd.Series(wide.columns)).to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise GradInvError(f"claim {claim.id!r}: {level} must be numeric") from None
    return wide, levels


def _trend(
    claim: Claim,
    data: pd.DataFrame,
    units: list[str],
    arm: str,
    level: str,
    resamples: int,
    confidence: float,
    seed: int,
) -> Verdict:
    wide, levels = _by_level(claim, data, units, arm, level)
    n = len(wide)
    rho = spearman_rows(levels, wide.to_numpy()) if n and len(levels) >= 2 else np.empty(0)
    mean = float(rho.mean()) if rho.size else math.nan
    this_run = (
        f"mean Spearman rho {_fmt(mean, True)} of {claim.metric} with {level} "
        f"({len(levels)} levels)"
    )
    if len(levels) < 2:
        reason = f"only {len(levels)} level(s) of {level}; a trend needs at least 2"
        return Verdict(claim, claim.reported, this_run, n, math.nan, math.nan, "inconclusive",
                       reason, mean)  # fmt: skip
    if (short := _too_few(claim, n, this_run, mean)) is not None:
        return short
    low, high = bootstrap_ci(rho, resamples=resamples, confidence=confidence, seed=seed)
    if claim.direction == "up":
        label, bound = _place(low, high, claim.margin, math.inf), f"above {_fmt(claim.margin)}"
    else:
        label, bound = (
            _place(low, high, -math.inf, -claim.margin),
            f"below {_fmt(0.0 - claim.margin)}",
        )
    verb = {"holds": "lies", "does not hold": "lies nowhere", "inconclusive": "is not wholly"}
    reason = f"{_interval_text(low, high, confidence)} {verb[label]} {bound}"
    return Verdict(claim, claim.reported, this_run, n, low, high, label, reason, mean)


def _rho_of_means(levels: np.ndarray, values: np.ndarray) -> float:
    """Spearman's rho of ``levels`` with the column means of ``values`` (units, levels)."""
    return float(spearman_rows(levels, values.mean(axis=0, keepdims=True))[0])


def spearman_of_means_ci(
    levels: Sequence[float] | np.ndarray,
    values: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Spearman's rho of ``levels`` (k,) with the column means of ``values`` (units, k), and
    its percentile bootstrap interval over units (rows drawn with replacement; seeded, in
    chunks of at most ~4M draws): ``(rho, low, high)``."""
    values = np.asarray(values, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] != levels.size:
        raise GradInvError(f"need values (units, {levels.size}), got shape {values.shape}")
    rho = _rho_of_means(levels, values)
    n, k = values.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, (1 << 22) // (n * k)))
    rhos = np.concatenate(
        [
            spearman_rows(
                levels, values[rng.integers(0, n, size=(min(chunk, resamples - s), n))].mean(1)
            )
            for s in range(0, resamples, chunk)
        ]
    )
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(rhos, [tail, 100.0 - tail])
    return rho, float(low), float(high)


def _correlation(
    claim: Claim,
    data: pd.DataFrame,
    units: list[str],
    arm: str,
    level: str,
    resamples: int,
    confidence: float,
    seed: int,
) -> Verdict:
    wide, levels = _by_level(claim, data, units, arm, level)
    n, k = wide.shape
    rho = _rho_of_means(levels, wide.to_numpy()) if n and k >= 2 else math.nan
    this_run = f"Spearman rho {_fmt(rho, True)} of {level} and mean {claim.metric} over {k} levels"
    if k < MIN_LEVELS:
        reason = f"only {k} level(s) of {level}; a correlation needs at least {MIN_LEVELS}"
        return Verdict(claim, claim.reported, this_run, n, math.nan, math.nan, "inconclusive",
                       reason, rho)  # fmt: skip
    if (short := _too_few(claim, n, this_run, rho)) is not None:
        return short
    _, low, high = spearman_of_means_ci(
        levels, wide.to_numpy(), resamples=resamples, confidence=confidence, seed=seed
    )
    if claim.direction == "up":
        label, bound = _place(low, high, claim.margin, math.inf), f"above {_fmt(claim.margin)}"
    else:
        label, bound = (
            _place(low, high, -math.inf, -claim.margin),
            f"below {_fmt(0.0 - claim.margin)}",
        )
    verb = {"holds": "lies", "does not hold": "lies nowhere", "inconclusive": "is not wholly"}
    reason = (
        f"{_interval_text(low, high, confidence)} (bootstrap over {n} units) {verb[label]} {bound}"
    )
    return Verdict(claim, claim.reported, this_run, n, low, high, label, reason, rho)


def _rate(claim: Claim, x: np.ndarray, resamples: int, confidence: float, seed: int) -> Verdict:
    n, t = x.size, float(claim.threshold)  # type: ignore[arg-type]
    hits = int((x >= t).sum() if claim.higher_is_better else (x <= t).sum())
    sign = ">=" if claim.higher_is_better else "<="
    rate = hits / n if n else math.nan
    this_run = f"{hits}/{n} units {sign} {_with_units(_fmt(t), claim.units)}"
    if (short := _too_few(claim, n, this_run, rate)) is not None:
        return short
    low, high = wilson_interval(hits, n, confidence)
    claimed = float(claim.rate)  # type: ignore[arg-type]
    label = "holds" if low >= claimed else ("does not hold" if high < claimed else "inconclusive")
    side = {"holds": "at or above", "does not hold": "below", "inconclusive": "straddles"}[label]
    reason = f"Wilson {_interval_text(low, high, confidence)} {side} the claimed rate {claimed:g}"
    return Verdict(claim, claim.reported, f"{this_run} ({rate:.0%})", n, low, high, label,
                   reason, rate)  # fmt: skip


def _value(claim: Claim, x: np.ndarray, resamples: int, confidence: float, seed: int) -> Verdict:
    n, target, tol = x.size, float(claim.target), claim.margin  # type: ignore[arg-type]
    mean = float(x.mean()) if n else math.nan
    this_run = f"{_with_units(_fmt(mean), claim.units)} (paper {_fmt(target)} +/- {_fmt(tol)})"
    if (short := _too_few(claim, n, this_run, mean)) is not None:
        return short
    low, high = bootstrap_ci(x, resamples=resamples, confidence=confidence, seed=seed)
    label: Label
    if target - tol <= low and high <= target + tol:
        label, side = "holds", "inside"
    elif high < target - tol or low > target + tol:
        label, side = "does not hold", "outside"
    else:
        label, side = "inconclusive", "straddles the edge of"
    reason = (
        f"{_interval_text(low, high, confidence)} {side} "
        f"[{_fmt(target - tol)}, {_fmt(target + tol)}]"
    )
    return Verdict(claim, claim.reported, this_run, n, low, high, label, reason, mean)


# -- tables and files ------------------------------------------------------------------------
def claims_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict with :data:`TABLE_COLUMNS` (``paper``: what the paper reports)."""
    rows = [
        {
            "id": v.claim.id,
            "kind": v.claim.kind,
            "claim": v.claim.text,
            "paper": v.paper,
            "this run": v.this_run,
            "estimate": v.estimate,
            "n": v.n,
            "low": v.low,
            "high": v.high,
            "verdict": v.verdict,
            "reason": v.reason,
        }  # fmt: skip
        for v in verdicts
    ]
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return table.astype({"n": int, "estimate": float, "low": float, "high": float})


def verdict_changes(
    verdicts: Iterable[Verdict],
    previous: pd.DataFrame,
    renamed: Callable[[str], str] | None = None,
) -> pd.DataFrame:
    """This run's verdicts beside a previous ``claims.csv`` (``previous``), one row per claim
    whose verdict changed, that is new, or that is gone: ``id``, ``before`` / ``after``
    (verdict), ``n before`` / ``n after``, ``before: this run`` / ``after: this run``.
    ``renamed`` maps a previous id to its id now (a claim split by a new arm, say)."""
    now = claims_table(verdicts).set_index("id")
    old = previous.assign(id=previous["id"].map(renamed or (lambda i: i))).set_index("id")
    rows = []
    for cid in [*now.index, *(i for i in old.index if i not in now.index)]:
        a = now.loc[cid] if cid in now.index else None
        b = old.loc[cid] if cid in old.index else None
        if a is not None and b is not None and a["verdict"] == b["verdict"]:
            continue
        rows.append({
            "id": cid,
            "before": "(new claim)" if b is None else b["verdict"],
            "after": "(dropped)" if a is None else a["verdict"],
            "n before": 0 if b is None else int(b["n"]),
            "n after": 0 if a is None else int(a["n"]),
            "before: this run": "" if b is None else str(b["this run"]),
            "after: this run": "" if a is None else str(a["this run"]),
        })  # fmt: skip
    columns = ["id", "before", "after", "n before", "n after", "before: this run",
               "after: this run"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def count_line(verdicts: Sequence[Verdict]) -> str:
    """``**Claims** (n, `claims.md`): a holds, b does not hold, ...``: the line every
    notebook's generated summary ends with."""
    counts = pd.Series([v.verdict for v in verdicts], dtype=object).value_counts()
    told = ", ".join(f"{int(counts.get(label, 0))} {label}" for label in LABELS)
    return f"**Claims** ({len(verdicts)}, `claims.md`): {told}."


def write_claims(verdicts: Iterable[Verdict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``claims.csv`` and ``claims.md`` (the same table in Markdown, numbers to three
    significant digits) into ``out_dir`` (``figures/<paper>/``); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = claims_table(verdicts)
    csv_path, md_path = out / "claims.csv", out / "claims.md"
    table.to_csv(csv_path, index=False)
    shown = table.drop(columns=["estimate"]).astype({"low": object, "high": object})
    for col in ("low", "high"):
        shown[col] = [_fmt(x) if math.isfinite(x) else "" for x in table[col]]
    for col in ("id", "kind", "claim", "paper", "this run", "verdict", "reason"):
        shown[col] = shown[col].astype(str).str.replace("|", "\\|", regex=False)
    md_path.write_text(shown.to_markdown(index=False) + "\n")
    return csv_path, md_path


def _repo_root() -> Path:
    from gradinv.reproduce import find_repo_root

    return find_repo_root()


_SOURCE = re.compile(r"^[\w.-]+\.txt:[1-9]\d*$")


def load_reported(paper: str, root: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported numbers, ``papermill_runs/<paper>/reported.csv`` under ``root``
    (default: the repository root): columns :data:`REPORTED_COLUMNS`, ``value`` a float,
    ``source`` ``<paper file>.txt:<line>``. A bad line raises a one-line GradInvError
    naming the file and its line."""
    path = Path(root or _repo_root()) / "papermill_runs" / paper / "reported.csv"
    if not path.is_file():
        raise GradInvError(f"no reported numbers for {paper}: {path} is missing")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise GradInvError(f"{path}: not a readable CSV ({msg})") from None
    if tuple(raw.columns) != REPORTED_COLUMNS:
        raise GradInvError(
            f"{path}:1: columns {list(raw.columns)}, expected {list(REPORTED_COLUMNS)}"
        )
    values = []
    for i, rec in enumerate(raw.itertuples(index=False), start=2):  # line 1 is the header
        where = f"{path}:{i}"
        empty = [
            c
            for c, v in zip(REPORTED_COLUMNS, rec, strict=True)
            if not (isinstance(v, str) and v.strip())
        ]
        if empty:
            raise GradInvError(f"{where}: empty {', '.join(empty)}")
        try:
            value = float(rec.value)
        except ValueError:
            raise GradInvError(f"{where}: value {rec.value!r} is not a number") from None
        if not math.isfinite(value):
            raise GradInvError(f"{where}: value {rec.value!r} is not finite")
        if not _SOURCE.match(rec.source):
            raise GradInvError(f"{where}: source {rec.source!r} is not '<paper>.txt:<line>'")
        values.append(value)
    key = list(REPORTED_COLUMNS[:4])
    dup = raw.duplicated(subset=key)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise GradInvError(f"{path}:{i + 2}: {raw.loc[i, key].tolist()} appears twice")
    out = raw.copy()
    out["value"] = np.asarray(values, dtype=float)
    return out


def reported_index(
    paper: str, reported: pd.DataFrame | None, table: str
) -> dict[tuple[str, str, str], float]:
    """``(row, column, metric) -> value`` of one table of ``paper``'s ``reported.csv``
    (``reported``: an already loaded :func:`load_reported`, or ``None`` to load it)."""
    rep = load_reported(paper) if reported is None else reported
    rep = rep[rep["table"] == table]
    return {(r.row, r.column, r.metric): float(r.value) for r in rep.itertuples(index=False)}


def status_table(figures_root: str | Path, link_root: str | Path | None = None) -> str:
    """README's reproduction-status table (Markdown) from every ``<paper>/claims.csv`` under
    ``figures_root``: per paper its profile (from ``MANIFEST.json``), the number of claims,
    the count of each verdict and a link to ``claims.md`` relative to ``link_root``
    (default: the parent of ``figures_root``, i.e. the repository root)."""
    root = Path(figures_root)
    if not root.is_dir():
        raise GradInvError(f"no figures folder at {root}")
    base = Path(link_root) if link_root is not None else root.parent
    header = ["paper", "profile", "claims", *LABELS, "claims table"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for paper_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        csv_path = paper_dir / "claims.csv"
        profile = "—"
        manifest = paper_dir / "MANIFEST.json"
        if manifest.is_file():
            try:
                profile = str(json.loads(manifest.read_text()).get("profile", "—"))
            except json.JSONDecodeError:
                raise GradInvError(f"{manifest}: not valid JSON") from None
        if not csv_path.is_file():
            cells = [paper_dir.name, profile, "no claims.csv yet", *([""] * len(LABELS)), ""]
        else:
            table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
            if "verdict" not in table.columns:
                raise GradInvError(f"{csv_path}: no 'verdict' column")
            unknown = sorted(set(table["verdict"]) - set(LABELS))
            if unknown:
                raise GradInvError(f"{csv_path}: unknown verdict(s) {unknown}; known: {LABELS}")
            counts = table["verdict"].value_counts()
            link = Path(os.path.relpath(paper_dir / "claims.md", base)).as_posix()
            cells = [
                paper_dir.name, profile, str(len(table)),
                *(str(int(counts.get(label, 0))) for label in LABELS), f"[claims]({link})",
            ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_status_block(text: str, table: str) -> str:
    """``text`` with everything between :data:`STATUS_BEGIN` and :data:`STATUS_END`
    replaced by ``table`` between blank lines (so every Markdown renderer sees a table);
    each marker must occur exactly once, begin before end."""
    for marker in (STATUS_BEGIN, STATUS_END):
        if text.count(marker) != 1:
            raise GradInvError(
                f"the README must hold {marker!r} exactly once (found {text.count(marker)})"
            )
    start, end = text.index(STATUS_BEGIN) + len(STATUS_BEGIN), text.index(STATUS_END)
    if end < start:
        raise GradInvError(f"{STATUS_END!r} comes before {STATUS_BEGIN!r}")
    return text[:start] + "\n\n" + table.strip("\n") + "\n\n" + text[end:]


__all__ = [
    "CONFIDENCE",
    "KINDS",
    "LABELS",
    "MIN_LEVELS",
    "MIN_PAIRS",
    "REPORTED_COLUMNS",
    "RESAMPLES",
    "STATUS_BEGIN",
    "STATUS_END",
    "TABLE_COLUMNS",
    "Claim",
    "Verdict",
    "bootstrap_ci",
    "chance_accuracy",
    "claims_table",
    "count_line",
    "judge",
    "load_reported",
    "missing_data",
    "missing_gpu",
    "never_left_start",
    "replace_status_block",
    "spearman_of_means_ci",
    "spearman_rows",
    "status_table",
    "untestable",
    "verdict_changes",
    "wilson_interval",
    "write_claims",
]
