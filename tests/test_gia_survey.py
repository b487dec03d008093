"""The survey's drivers on a tiny problem: floors in the reconstruction tables, verdicts that
ignore them."""

from __future__ import annotations

import math

SURVEY_TINY = {
    "attack_model": "lenet5",
    "size": 16,
    "datasets": {"cifar_like": ["natural_color"]},
    "attacks": {"dlg": {"iterations": 2}, "rgap": {"model": "lenet"}},
    "grid_attacks": ["dlg", "rgap"],
    "fig3": {"dataset": "cifar_like", "batch": 2},
    "fig4": {"dataset": "cifar_like"},
    "defense_table": {
        "dataset": "cifar_like",
        "attacks": ["dlg"],
        "levels": [{"defense": "none"}, {"defense": "pruning", "options": {"percent": 30}}],
    },
}


def test_survey_tables_carry_the_data_floors_and_the_verdicts_ignore_them():
    import pandas as pd

    from gradinv.experiments import gia_survey as survey
    from gradinv.experiments.floors import NEAREST_PUBLIC, PUBLIC_MEAN

    floors = [PUBLIC_MEAN, NEAREST_PUBLIC]  # no prior: no prior-sample floor
    _, fig4 = survey.fig4(SURVEY_TINY)
    _, fig3 = survey.fig3(SURVEY_TINY)
    sweep = survey.defense_table(SURVEY_TINY)
    for table, attacks in ((fig4, ["dlg", "rgap"]), (fig3, ["dlg", "rgap"]), (sweep, ["dlg"])):
        assert list(table["attack"]).count(PUBLIC_MEAN) == 1  # once per set of targets
        assert list(table["attack"].iloc[-2:]) == floors
        assert list(survey.attack_rows(table)["attack"].unique()) == attacks
        rows = table[table["attack"].isin(floors)]
        assert (rows["defense"] == "none").all() and (rows["dataset"] == "natural_color").all()
        assert all(math.isfinite(p) and p > 0 for p in rows["psnr"])
        assert (rows["seconds"] == 0).all()
    _, noise_table = survey.defense_sweep(
        SURVEY_TINY, "cifar_like", "dlg", "dp_gaussian", "variance", [1e-1]
    )
    assert list(noise_table["attack"].iloc[-2:]) == floors and noise_table["level"].iloc[-1] != 0
    pivot = sweep.pivot_table(index="attack", columns="defense", values="psnr")
    assert set(floors) <= set(pivot.index)

    # a floor far above the threshold changes no verdict
    def sweep_df(levels, psnr):
        df = pd.DataFrame({"attack": "ig", "level": levels, "psnr": psnr})
        extra = pd.DataFrame({"attack": floors, "level": [None, None], "psnr": [99.0, 99.0]})
        return {}, pd.concat([df, extra], ignore_index=True)

    fig5 = pd.DataFrame(
        {
            "attack": ["idlg"] * 3 + floors,
            "variant": ["plain", "quantised\n(codes)", "quantised\n(dequantised)", "x", "y"],
            "psnr": [30.0, 5.0, 25.0, 99.0, 99.0],
        }
    )
    noise_sweep = {"gaussian": sweep_df([0.0, 1e-3, 1e-1], [30.0, 25.0, 5.0])}
    prune_sweep = {"cifar_like": sweep_df([0.0, 10.0, 30.0], [30.0, 25.0, 5.0])}
    table1 = pd.DataFrame(columns=["method", "dataset_role", "accuracy"])
    out = survey.verdicts(fig5, noise_sweep, prune_sweep, table1, success_psnr=18.0)
    assert list(out["verdict"][:3]) == ["holds", "holds", "holds"]
    assert "99" not in " ".join(out["this run"])
