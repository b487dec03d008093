"""The GradInvDiff notebook's drivers on a tiny problem: floors in Tables 1-2, comparisons
and claims that keep them apart from the attacks, and the generated summary."""

from __future__ import annotations

import math

import pytest

from gradinv.experiments import gradinvdiff as gid
from gradinv.experiments.floors import FLOORS


@pytest.fixture
def settings():
    # the shipped 32 px chest prior (SSIM needs 11 px), a few steps, the cheap LeNet7
    return {
        "size": 32,
        "images": 1,
        "datasets": {"Acevedo-20": ["chest_xray"]},
        "attacks": {"ig": {"iterations": 5}, "gradinvdiff": {"steps": 4}},
        "table1": {"roles": ["Acevedo-20"], "networks": ["lenet7"], "methods": ["ig", "gradinvdiff"]},
        "table2": {"role": "Acevedo-20", "networks": ["lenet7"], "images": 1,
                   "variants": ["GradInvDiff", "batch 4"]},
    }  # fmt: skip


def test_tables_carry_the_floors_and_comparisons_leave_them_out(settings):
    t1, grid = gid.table1(settings)
    floors = t1[t1["method"].isin(FLOORS)]
    assert sorted(floors["method"]) == sorted(FLOORS)  # once per private image
    assert all(math.isfinite(p) for p in floors["psnr"]) and (floors["seconds"] == 0).all()
    assert set(FLOORS) <= set(grid["Acevedo-20"])  # Fig. 3 shows them beside the attacks
    assert set(gid.compare_table1(t1)["method"]).isdisjoint(FLOORS)

    claims = gid.table1_claims(t1)
    first = claims.iloc[0]
    assert first["claim"].startswith("GradInvDiff beats the floors")
    assert "/1 cells" in first["this run"] and first["holds"] in (True, False)

    t2 = gid.table2(settings)
    assert set(FLOORS) <= set(t2["variant"])
    assert set(gid.compare_table2(t2)["variant"]).isdisjoint(FLOORS)
    summary = gid.summary_markdown(t1, t2)
    assert "*nearest public*" in summary and "GradInvDiff" in summary and "(n = 1)" in summary
