"""Tuning a method's option on public images, never on the images it is evaluated on.

A paper's baseline gets a fair reading when its free options are chosen the way ours are:
on images the attacker may know (the ``public`` split), with the same budget. A
:class:`Grid` names one option of a method's ``Config`` and the values tried; each value is
scored on the same public images, and :func:`best_values` picks, per group (a dataset role
and victim, say), the value with the best mean score. The evaluation cells then carry the
chosen value in their settings, so their keys say which value produced them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Grid:
    """The values of one ``option`` of a method's ``Config`` that tuning tries, in order (a
    tie goes to the first: list the paper's value first)."""

    option: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.option, str) or not self.option:
            raise GradInvError(f"a tuning grid names a Config option, not {self.option!r}")
        values = tuple(self.values) if isinstance(self.values, Sequence) else (self.values,)
        if not values or isinstance(self.values, str):
            raise GradInvError(f"tuning grid of {self.option}: list at least one value")
        if len(set(map(repr, values))) != len(values):
            raise GradInvError(f"tuning grid of {self.option}: a value is listed twice")
        object.__setattr__(self, "values", values)


def same_budget(grids: Mapping[str, Grid]) -> None:
    """Every method tuned with as many values as every other (the same budget), or a
    one-line error naming them."""
    sizes = {method: len(g.values) for method, g in grids.items()}
    if len(set(sizes.values())) > 1:
        raise GradInvError(
            f"tuning grids differ in size {sizes}: give every method the same budget"
        )


def best_values(
    rows: pd.DataFrame,
    by: Sequence[str],
    grids: Mapping[str, Grid],
    method: str = "method",
    metric: str = "psnr",
    higher_is_better: bool = True,
) -> dict[tuple, Any]:
    """Per group of ``by`` (which includes ``method``): the value of that method's grid
    whose mean ``metric`` over the rows (the tuning images) is best; a tie goes to the value
    listed first. ``rows`` has one row per tuning cell with a ``value`` column."""
    missing = sorted({*by, method, "value", metric} - set(rows.columns))
    if missing:
        raise GradInvError(f"tuning rows lack column(s) {missing}")
    out: dict[tuple, Any] = {}
    for key, grp in rows.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        grid = grids[dict(zip(by, key, strict=True))[method]]
        means = grp.groupby(grp["value"].map(repr), sort=False)[metric].mean()
        means = means.fillna(-math.inf if higher_is_better else math.inf)  # a failed run loses
        scored = [(means[repr(v)], i, v) for i, v in enumerate(grid.values) if repr(v) in means]
        if not scored:
            raise GradInvError(f"no tuning rows for {dict(zip(by, key, strict=True))}")
        sign = -1.0 if higher_is_better else 1.0
        out[key] = min(scored, key=lambda s: (sign * s[0], s[1]))[2]
    return out


__all__ = ["Grid", "best_values", "same_budget"]
