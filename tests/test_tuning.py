"""Tuning on public images (``gradinv.experiments.tuning``): grids, one budget for every
method, and the best value per group."""

from __future__ import annotations

import pandas as pd
import pytest

from gradinv.errors import GradInvError
from gradinv.experiments.tuning import Grid, best_values, same_budget


def test_a_grid_lists_distinct_values_of_a_named_option():
    assert Grid("gamma", [1.0, 10.0]).values == (1.0, 10.0)
    with pytest.raises(GradInvError, match="at least one value"):
        Grid("gamma", ())
    with pytest.raises(GradInvError, match="listed twice"):
        Grid("gamma", (1.0, 1.0))
    with pytest.raises(GradInvError, match="names a Config option"):
        Grid("", (1.0,))


def test_every_method_gets_the_same_budget():
    same_budget({"a": Grid("x", (1, 2)), "b": Grid("y", (3, 4))})
    with pytest.raises(GradInvError, match="same budget"):
        same_budget({"a": Grid("x", (1, 2)), "b": Grid("y", (3,))})


def test_the_best_mean_wins_per_group_and_a_tie_goes_to_the_first_value():
    grids = {"ggdm": Grid("gamma", (10.0, 1.0, 100.0)), "gid": Grid("lr", (0.01, 0.1))}
    rows = pd.DataFrame(
        [
            # role A: gamma 1 is best on average over two images (one image alone would
            # pick 100)
            *({"role": "A", "method": "ggdm", "value": v, "psnr": p}
              for v, p in ((10.0, 12), (10.0, 12), (1.0, 15), (1.0, 15), (100.0, 20), (100.0, 1))),
            # role B: a tie between the two values goes to the first listed
            *({"role": "B", "method": "gid", "value": v, "psnr": 14.0} for v in (0.1, 0.01)),
            # a failed run (NaN) loses
            {"role": "C", "method": "gid", "value": 0.01, "psnr": float("nan")},
            {"role": "C", "method": "gid", "value": 0.1, "psnr": 3.0},
        ]
    )  # fmt: skip
    best = best_values(rows, ["role", "method"], grids)
    assert best == {("A", "ggdm"): 1.0, ("B", "gid"): 0.01, ("C", "gid"): 0.1}
    lower = best_values(rows, ["role", "method"], grids, higher_is_better=False)
    assert lower[("A", "ggdm")] == 100.0
    with pytest.raises(GradInvError, match="lack column"):
        best_values(rows.drop(columns="value"), ["role", "method"], grids)
