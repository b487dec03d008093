"""The GGSS-R notebook's drivers on a tiny problem: its typed profile, its cells in a run
store (stable keys, a second run computes nothing, a recomputed cell gives the same record),
units of private images and attack seeds, trained victims, the tables of Tables 1-8 with
their floors (Table 8 from the benchmark's output), comparisons with the paper's numbers
that leave the floors out, the baselines' budgets, and claims in the four-verdict
vocabulary."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from paper_checks import assert_recomputed_cells_merge, assert_typo_named

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import claims, profiles
from gradinv.experiments import ggss_r as gg
from gradinv.experiments.engine import RunStore, run_cells
from gradinv.experiments.floors import FLOORS

ROOT = Path(__file__).resolve().parents[1]

#: the shipped 32 px chest prior (SSIM needs 11 px), short runs, cheap victims
TINY = {
    "size": 32,
    "images": 1,
    "prior": "chest_xray-32",
    "lpips": None,
    "datasets": {"CelebA": ["chest_xray"], "LSUN": ["brain_mri"], "ImageNet": ["faces"]},
    "attacks": {"ggss_r": {"steps": 8}, "dlg": {"iterations": 3}},
    "rv": {"images": 1, "directions": 4},
    "table1": {"roles": ["CelebA"], "models": ["mlp3", "cnn"]},
    "noise": {"model": "mlp3", "variances": {"gaussian": [0.0, 1.0]}},
    "baselines": {"model": "mlp3", "methods": ["dlg", "ggss_r"]},
    "table5": {"batches": [1, 2], "methods": ["dlg", "ggss_r"]},
    "table6": {"model": "mlp3", "rates": [0.01, 0.2]},
    "table8": {"models": ["mlp3"], "steps": 2},
}


@pytest.fixture(scope="module")
def profile() -> gg.Profile:
    return options.build(gg.Profile, TINY, "tiny profile")


def _cells(profile: gg.Profile) -> list:
    """The notebook's cells and the Table 8 benchmark's."""
    return [*gg.all_cells(profile), *gg.table8_cells(profile)]


@pytest.fixture(scope="module")
def run(profile, tmp_path_factory):
    """The tiny grid computed once into a fresh store: (store, records)."""
    store = RunStore(tmp_path_factory.mktemp("store"))
    return store, run_cells(_cells(profile), store, progress=False)


def _section(records, cells):
    keys = {c.key for c in cells}
    return [r for r in records if r.key in keys]


# -- profile ----------------------------------------------------------------------------------
def test_smoke_and_paper_profiles_load_and_the_defaults_are_the_smoke_values():
    smoke = profiles.load(gg.PAPER, "smoke", gg.Profile, root=ROOT)
    paper = profiles.load(gg.PAPER, "paper", gg.Profile, root=ROOT)
    # noise.images and table6.images default to "the profile's images" (paper relies on it)
    default = gg.Profile()
    default = dataclasses.replace(
        default,
        noise=dataclasses.replace(default.noise, images=3),
        table6=dataclasses.replace(default.table6, images=3),
    )
    assert smoke == default
    assert paper.noise_images == paper.table6_images == paper.images == 8
    assert paper.attacks.of("ggss_r") == {"steps": 100} and smoke.table5.batches == (1, 2, 4)
    assert paper.noise.variances["laplacian"] == (1e-4, 1e-3, 1e-2, 1e-1)


def test_the_cpu_profile_has_the_scale_the_claims_need():
    cpu = profiles.load(gg.PAPER, "cpu", gg.Profile, root=ROOT)
    assert cpu.images >= 10 and cpu.seeds >= 3  # Tables 1, 2/7, 6: 10 images x 3 seeds
    assert cpu.noise_images >= 10 and cpu.table6_images >= 10
    assert cpu.rv.images >= 8 and cpu.rv.directions >= 64  # RV: N >= 8, K >= 64
    assert (cpu.victims.epochs, cpu.victims.mode) == (30, "eval")
    assert cpu.attacks.of("ggss_r") == {"steps": 100}
    assert cpu.baseline_images >= 5 and cpu.table5.batches == (1, 2, 4, 8)
    assert set(gg.BUDGETS) <= set(cpu.baselines.methods)  # every baseline, with its budget
    shares = {m: gg.budget_share(m, cpu.attacks.of(m)) for m in gg.BUDGETS}
    assert all(0 < share <= 1 for share in shares.values())
    keys = [c.key for c in gg.all_cells(cpu)]
    assert len(keys) == len(set(keys)) and not any(c.kind == "cost" for c in gg.all_cells(cpu))


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("  size: 32", "  sise: 32"), "sise"),  # a misspelt setting
        (("  table6:\n", "  table6:\n    rats: [0.2]\n"), "rats"),  # nested section
        (("    ig: {iterations: 200}", "    ig: {iterashuns: 200}"), "iterashuns"),  # attack
        (("seed: 0", "seeed: 0"), "seeed"),  # a top-level parameter
    ],
)
def test_profile_rejects_an_unknown_key_naming_the_key_and_the_file(tmp_path, edit, key):
    assert_typo_named(tmp_path, gg.PAPER, gg.Profile, edit, key)


def test_profile_checks_models_methods_noises_and_roles():
    with pytest.raises(GradInvError, match="table1.models"):
        options.build(gg.Profile, {"table1": {"models": ["mlp33"]}}, "p")
    with pytest.raises(GradInvError, match="baselines.methods"):
        options.build(gg.Profile, {"baselines": {"methods": ["gglx"]}}, "p")
    with pytest.raises(GradInvError, match="noise.variances"):
        options.build(gg.Profile, {"noise": {"variances": {"poisson": [0.1]}}}, "p")
    with pytest.raises(GradInvError, match="table1.roles"):
        options.build(gg.Profile, {"table1": {"roles": ["FFHQ"]}}, "p")


# -- cells --------------------------------------------------------------------------------------
def test_cells_have_stable_keys_that_follow_the_settings_and_the_seed(profile):
    keys = [c.key for c in gg.all_cells(profile)]
    assert len(keys) == len(set(keys))  # cells two tables share are listed once
    again = options.build(gg.Profile, dict(reversed(list(TINY.items()))), "tiny profile")
    assert keys == [c.key for c in gg.all_cells(again)]  # same profile: same keys
    assert set(keys).isdisjoint(c.key for c in gg.table1_cells(profile, seed=1))
    more = dataclasses.replace(profile, attacks=options.build(
        gg.AttackOverrides, {**TINY["attacks"], "dlg": {"iterations": 4}}, "attacks"))  # fmt: skip
    changed = {
        a.settings.get("method", a.kind)
        for a, b in zip(gg.table3_cells(profile), gg.table3_cells(more), strict=True)
        if a.key != b.key
    }
    assert changed == {"dlg"}  # the DLG cell only (not GGSS-R, not the floors)
    # Table 3's GGSS-R is Table 1's CelebA victim when the victims agree; the floors of the
    # first image are shared by Tables 1, 2/7, 3 and 6: one cell, computed once
    floors = [{c.key for c in f(profile) if c.kind == "floors" and c.settings["image"] == 0}
              for f in (gg.table1_cells, gg.noise_cells, gg.table3_cells, gg.table6_cells)]  # fmt: skip
    assert len(set.union(*floors)) == 1
    first = gg.all_cells(profile)[: len(gg.table1_cells(profile))]
    assert [c.key for c in first] == [c.key for c in gg.table1_cells(profile)]  # most valuable


def test_a_second_run_computes_nothing_and_gives_identical_tables(profile, run, capsys):
    store, records = run
    cells = _cells(profile)
    again = run_cells(cells, store, progress=True)
    n = len(cells)
    assert f"{n} of {n} cells from the store" in capsys.readouterr().err
    assert all(a.same_as(b) for a, b in zip(records, again, strict=True))
    pd.testing.assert_frame_equal(gg.table1_rows(records), gg.table1_rows(again))
    pd.testing.assert_frame_equal(gg.noise_rows(records)[0], gg.noise_rows(again)[0])
    kinds = {r.cell.kind for r in again if r.arrays}
    assert kinds == {"samples", "attack"}  # Fig. 5(a) and the prior samples only
    kept = [r for r in again if r.arrays and r.cell.kind == "attack"]
    assert {r.cell.settings["model"] for r in kept} == {"mlp3", "cnn"}
    cost = [r for r in again if r.cell.kind == "cost"]
    assert cost and all(set(r.timings) == {"s/step", "training step"} for r in cost)
    assert not any("s/step" in r.metrics or "seconds" in r.metrics for r in again)


def test_a_recomputed_cell_gives_the_same_record_so_stores_merge_cleanly(profile, run, tmp_path):
    store, records = run
    cells = [*gg.table1_cells(profile), *gg.table8_cells(profile)]
    assert_recomputed_cells_merge(cells, records, store, tmp_path)


# -- tables and figures -------------------------------------------------------------------------
def _floors_of(df, **cell):
    mask = df["method"].map(lambda m: isinstance(m, str) and m in FLOORS)
    for key, value in cell.items():
        mask &= df[key].isna() if value is None else df[key] == value
    return df[mask]


def test_tables_carry_the_floors_and_comparisons_leave_them_out(profile, run):
    _, records = run
    t1 = gg.table1_rows(_section(records, gg.table1_cells(profile)))
    ran = gg.attack_rows(t1)
    assert set(ran["model"]) == {"MLP-3", "CNN"} and (ran["rv"] > 0).all()
    assert list(ran["rv"]) == sorted(ran["rv"])  # victims in increasing RV
    # one set of floors per role and image (shared by every victim), finite PSNR
    fl = _floors_of(t1, role="CelebA", model=None, image=0)
    assert sorted(fl["method"]) == sorted(FLOORS) and len(_floors_of(t1)) == 3
    assert fl["psnr"].map(math.isfinite).all() and (fl["seconds"] == 0).all()
    grid = gg.fig5a_grid(records)
    assert list(grid["CelebA"])[0] == "ground truth" and len(grid["CelebA"]) == 3
    cmp1 = gg.compare_table1(t1)
    assert set(cmp1.columns) >= {"RV paper", "RV run", "PSNR paper", "PSNR run", "n"}
    assert set(cmp1["model"]) == {"MLP-3", "CNN"} and cmp1["PSNR best floor"].notna().all()
    assert (cmp1["n"] == 1).all() and cmp1.set_index("model").loc["CNN", "PSNR paper"] == 41.12
    rows, paths = gg.noise_rows(_section(records, gg.noise_cells(profile)))
    assert len(paths["gaussian"][1.0]) == 8  # x0(x_t) at every step
    ran = gg.attack_rows(rows)
    assert (ran["peak psnr"] >= ran["psnr"] - 1e-4).all()  # the last step is on the path
    assert sorted(_floors_of(rows, variance=None, noise="gaussian")["method"]) == sorted(FLOORS)
    cmp = gg.compare_noise(rows)
    assert cmp["variance (ours)"].tolist() == [0.0, 1.0]
    assert cmp["PSNR paper"].tolist() == [28.0343, 24.0567]  # Table 2's rows in order
    clean = gg.baseline_rows(_section(records, gg.table3_cells(profile)), ["dlg", "ggss_r"])
    assert list(clean.loc[clean["status"] == "ran", "method"]) == ["DLG", "GGSS-R"]
    assert sorted(clean.loc[clean["status"] == "floor", "method"]) == sorted(FLOORS)
    t34 = gg.compare_baselines(clean, clean)
    assert (t34.loc[t34["method"].isin(FLOORS), "PSNR paper"] == "-").all()
    assert t34.set_index(["table", "method"]).loc[("3 (clean)", "GGSS-R"), "PSNR paper"] == 41.1229
    t5 = gg.baseline_rows(_section(records, gg.table5_cells(profile)), ["dlg", "ggss_r"])
    assert sorted(set(t5["batch"])) == [1, 2]
    cmp5 = gg.compare_table5(t5).set_index("method")
    assert cmp5.loc["nearest public", "paper col 1"] == "-"
    assert cmp5.loc["GGSS-R", "paper col 2"] == 24.4602 and cmp5.loc["GGSS-R", "n B=2"] == 1
    t6_rows = gg.table6_rows(_section(records, gg.table6_cells(profile)))
    assert sorted(_floors_of(t6_rows, **{"guidance rate": None})["method"]) == sorted(FLOORS)
    t6 = gg.compare_table6(t6_rows)
    assert list(t6["guidance rate"]) == [0.01, 0.2]
    assert t6["PSNR paper"].tolist() == [26.9023, 41.1229]
    t8 = gg.table8(gg.cost_measurements(records))
    assert list(t8["model"]) == ["MLP-3"] and (t8["s/step run"] > 0).all()
    assert t8["s/step paper"].tolist() == [1.4939]


# -- claims -------------------------------------------------------------------------------------
def test_claims_come_out_in_the_four_verdict_vocabulary(profile, run, tmp_path):
    _, records = run
    t1 = gg.table1_rows(_section(records, gg.table1_cells(profile)))
    noise, _ = gg.noise_rows(_section(records, gg.noise_cells(profile)))
    methods = ["dlg", "ggss_r"]
    clean = gg.baseline_rows(_section(records, gg.table3_cells(profile)), methods)
    noisy = gg.baseline_rows(_section(records, gg.table4_cells(profile)), methods)
    t5 = gg.baseline_rows(_section(records, gg.table5_cells(profile)), methods)
    verdicts = gg.verdicts(t1, noise, clean, noisy, t5)
    ids = [v.claim.id for v in verdicts]
    assert len(ids) == len(set(ids))
    assert ids[:2] == ["t1/CelebA/floors", "t1/CelebA/rv"]  # floors first
    assert {"noise/gaussian/falls", "t3/baselines", "t5/best", "t5/DLG/falls"} <= set(ids)
    assert {v.verdict for v in verdicts} == {"inconclusive"}  # one to two images: n < 5
    rv = verdicts[1]
    assert rv.claim.kind == "correlation" and rv.n == 1 and "Spearman rho" in rv.paper
    csv_path, md_path = claims.write_claims(verdicts, tmp_path)
    table = pd.read_csv(csv_path)
    assert list(table.columns) == list(claims.TABLE_COLUMNS) and md_path.is_file()
    assert set(table["verdict"]) <= set(claims.LABELS)
    summary = gg.summary_markdown(t1, noise, clean, noisy, verdicts)
    assert "*nearest public*" in summary and "(n = 1)" in summary
    assert f"{len(verdicts)} inconclusive" in summary
    # a claim whose arm this run lacks is untestable here, with the reason
    no_ggss = clean[clean["method"] != "GGSS-R"]
    (v,) = gg.judge_all(gg.baseline_claims(no_ggss, no_ggss, t5)[:1])
    assert v.verdict == "untestable here" and "GGSS-R" in v.reason


def _t1(gain: float, images: int = 6, seeds: int = 1) -> pd.DataFrame:
    """Table 1 rows of one role: GGSS-R ``gain`` dB above the floors, PSNR rising with RV;
    ``seeds`` attack seeds per image, 1 dB apart (the floors have none)."""
    rows = []
    for k in range(images):
        for r in range(seeds):
            for i, model in enumerate(("MLP-5", "CNN", "MLP-3")):
                rows.append({"role": "CelebA", "model": model, "method": "GGSS-R",
                             "rv": float(i + 1), "image": k, "seed": r,
                             "psnr": 15.0 + 0.3 * k + gain + (i - 1) * gain + r})  # fmt: skip
        rows += [{"role": "CelebA", "model": None, "method": f, "image": k, "psnr": 15.0 + 0.3 * k}
                 for f in FLOORS]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("gain", "verdict"), [(2.0, "holds"), (-2.0, "does not hold")])
@pytest.mark.parametrize("seeds", [1, 3])
def test_table1_claims_judge_paired_images(gain, verdict, seeds):
    found = {v.claim.id: v for v in gg.judge_all(gg.table1_claims(_t1(gain, seeds=seeds)))}
    floors, rv = found["t1/CelebA/floors"], found["t1/CelebA/rv"]
    assert floors.verdict == verdict and floors.n == 18  # 3 victims x 6 images, seeds averaged
    # Spearman's rho of the victims' RV and mean PSNR, its interval a bootstrap over images
    assert rv.claim.kind == "correlation" and rv.verdict == verdict and rv.n == 6
    assert rv.estimate == pytest.approx(1.0 if gain > 0 else -1.0) and rv.low <= rv.high
    assert rv.paper.startswith("Spearman rho -0.50 over 3 victims")  # MLP-5, CNN, MLP-3


def test_the_rv_claim_is_inconclusive_when_the_interval_straddles_zero():
    """Victims whose mean PSNR order flips from image to image: the paper's rho may come
    out positive, the interval over images says the run cannot tell."""
    t1 = _t1(0.0, images=8)
    rng = np.random.default_rng(3)
    attack = t1["method"] == "GGSS-R"
    t1.loc[attack, "psnr"] = 20.0 + rng.normal(0.0, 3.0, int(attack.sum()))
    (rv,) = [v for v in gg.judge_all(gg.table1_claims(t1)) if v.claim.id == "t1/CelebA/rv"]
    assert rv.verdict == "inconclusive" and rv.low < 0 < rv.high


def _noisy(peak_step: int, images: int = 6, steps: int = 10) -> pd.DataFrame:
    """Table 2 rows: GGSS-R under Gaussian noise whose path peaks 5 dB above its end at
    ``peak_step`` (0: a path that only declines from its first step)."""
    rows = []
    for k in range(images):
        for variance in (0.0, 1e-3, 1e-2):
            rows.append({"noise": "gaussian", "variance": variance, "image": k,
                         "method": "GGSS-R", "psnr": 15.0 - 100 * variance + 0.1 * k,
                         "peak psnr": 20.0 - 100 * variance + 0.1 * k,
                         "peak step": peak_step, "path steps": steps})  # fmt: skip
        rows += [{"noise": "gaussian", "variance": None, "image": k, "method": f,
                  "psnr": 10.0} for f in FLOORS]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("peak_step", "verdict"), [(4, "holds"), (0, "does not hold")])
def test_fig5_counts_a_peak_only_strictly_inside_the_path(peak_step, verdict):
    found = {v.claim.id: v for v in gg.judge_all(gg.noise_claims(_noisy(peak_step)))}
    peak = found["fig5/gaussian/peak"]
    assert peak.verdict == verdict and peak.n == 12  # 2 noisy levels x 6 images


def test_trained_victims_are_trained_on_public_data_and_shared_by_rv_and_attacks(profile):
    """``victims: {epochs, mode}``: RV and the attacks see the same trained, eval-mode model
    (one per model, role and seed), trained on the role's public split and cached."""
    from gradinv.experiments.ggss_r.cells import _case

    trained = dataclasses.replace(profile, victims=gg.Victims(epochs=1, mode="eval"))
    rv = gg.rv_cell("cnn", trained)
    assert (rv.settings["epochs"], rv.settings["mode"]) == (1, "eval")
    assert rv.key != gg.rv_cell("cnn", profile).key  # a fresh victim is another cell
    s = dict(rv.settings)
    first, second = _case({**s, "image": 0}, 0, "cpu"), _case({**s, "image": 1}, 0, "cpu")
    assert not first.model.training
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)  # one trained victim whatever the image
    fresh = _case(dict(gg.rv_cell("cnn", profile).settings), 0, "cpu").model
    assert fresh.training and not all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), first.model.parameters(), strict=True)
    )
    with pytest.raises(GradInvError, match="victims.mode"):
        gg.Victims(mode="inference")


def _clean(dlg_psnr: float, images: int = 6) -> pd.DataFrame:
    """Table 3 rows: DLG at ``dlg_psnr``, GGSS-R 5 dB below it, floors far below."""
    rows = []
    for k in range(images):
        rows += [{"method": "DLG", "image": k, "status": "ran", "psnr": dlg_psnr + 0.1 * k},
                 {"method": "GGSS-R", "image": k, "status": "ran", "psnr": dlg_psnr - 5 + 0.1 * k},
                 *({"method": f, "image": k, "status": "ran", "psnr": 10.0} for f in FLOORS)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("dlg", "verdict"), [(59.8, "untestable here"), (20.0, "does not hold")])
def test_beating_a_baseline_that_is_exact_at_this_resolution_is_untestable(dlg, verdict):
    clean = _clean(dlg)
    t5 = _clean(dlg).assign(batch=1)
    found = {v.claim.id: v for v in gg.judge_all(gg.baseline_claims(clean, clean, t5))}
    t3 = found["t3/baselines"]
    assert t3.verdict == verdict
    if verdict == "untestable here":
        assert "DLG" in t3.reason and "256 px" in t3.reason
        assert found["t5/best"].verdict == "untestable here"
        assert found["t4/baselines"].verdict == "does not hold"  # noisy: judged as ever


# -- units: private images x attack seeds -------------------------------------------------------
def test_units_are_images_times_attack_seeds_shared_by_every_victim_and_level(profile):
    two = dataclasses.replace(profile, seeds=2, images=2)
    t1 = [c for c in gg.table1_cells(two) if c.kind == "attack"]
    units = {(c.settings["image"], c.settings["attack_seed"]) for c in t1}
    assert units == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for model in ("mlp3", "cnn"):  # every victim attacks every unit
        assert {(c.settings["image"], c.settings["attack_seed"]) for c in t1
                if c.settings["model"] == model} == units  # fmt: skip
    assert len([c for c in gg.table1_cells(two) if c.kind == "floors"]) == 2  # per image
    noisy = [c for c in gg.noise_cells(two) if c.kind == "attack"]
    assert len(noisy) == 2 * 2 * 2  # variances x images x seeds
    rates = [c for c in gg.table6_cells(two) if c.kind == "attack"]
    assert len(rates) == 2 * 2 * 2  # rates x images x seeds
    # the baselines run once per image (seed 0), on baselines.images of them
    five = dataclasses.replace(two, baselines=dataclasses.replace(two.baselines, images=3))
    t3 = [c for c in gg.table3_cells(five) if c.kind == "attack"]
    assert {c.settings["attack_seed"] for c in t3} == {0} and len(t3) == 2 * 3
    assert len([c for c in gg.table5_cells(five) if c.kind == "attack"]) == 2 * 2 * 3
    # a second seed adds cells and leaves the first seed's keys alone (a store resumes)
    assert {c.key for c in gg.table1_cells(dataclasses.replace(two, seeds=1))} < {
        c.key for c in gg.table1_cells(two)
    }


def test_an_attack_seed_changes_the_attack_and_the_noise_draw_but_not_the_image(profile):
    from gradinv.experiments.ggss_r.cells import _draw_seed, run_attack_cell

    first, second = (
        gg.attack_cell("CelebA", "mlp3", "ggss_r", 0, profile, noise=("gaussian", 1.0),
                       keep=True, attack_seed=r)
        for r in (0, 1)
    )  # fmt: skip
    a, b = run_attack_cell(first), run_attack_cell(second)
    assert torch.equal(a.arrays["private"], b.arrays["private"])  # the same private image
    assert not torch.equal(a.arrays["reconstruction"], b.arrays["reconstruction"])
    assert _draw_seed(0, 0, 0) != _draw_seed(0, 0, 1) != _draw_seed(0, 1, 0)
    assert _draw_seed(0, 0, 1) == _draw_seed(0, 0, 1)


def test_rows_carry_the_seed_and_intervals_resample_images(profile, tmp_path):
    two = dataclasses.replace(profile, seeds=2, images=2)
    cells = [c for c in gg.table6_cells(two) if c.kind == "floors" or
             c.settings["options"]["guidance_rate"] == 0.2]  # fmt: skip
    rows = gg.table6_rows(run_cells(cells, RunStore(tmp_path), progress=False))
    ran = gg.attack_rows(rows)
    assert sorted(zip(ran["image"], ran["seed"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert _floors_of(rows, seed=None)["image"].tolist() == [0, 0, 0, 1, 1, 1]
    (cmp,) = gg.compare_table6(rows).to_dict("records")
    assert (cmp["n"], cmp["images"]) == (4, 2) and cmp["PSNR low"] <= cmp["PSNR high"]


# -- trained victims ---------------------------------------------------------------------------
def test_trained_victims_have_their_own_cells_listed_first(profile, tmp_path):
    assert gg.victim_cells(profile) == []  # fresh victims: nothing to train
    trained = dataclasses.replace(profile, victims=gg.Victims(epochs=1, mode="eval"))
    cells = gg.victim_cells(trained)
    pairs = [(c.settings["role"], c.settings["model"]) for c in cells]
    assert pairs == [("CelebA", "mlp3"), ("CelebA", "cnn")]  # Table 1's, then noise's etc.
    assert gg.all_cells(trained)[: len(cells)] == cells
    table = gg.victims_table(run_cells(cells[:1], RunStore(tmp_path), progress=False))
    (row,) = table.to_dict("records")
    assert row["model"] == "MLP-3" and 0 <= row["test accuracy"] <= 1
    assert row["public images"] > 0 and row["epochs"] == 1


# -- baselines' budgets -----------------------------------------------------------------------
def test_budget_share_is_the_smallest_ratio_to_the_baselines_own_budget():
    assert gg.budget_share("ggl", {"iterations": 50, "population": 50}) == pytest.approx(0.1)
    assert gg.budget_share("gifd", {"restarts": 1}) == pytest.approx(0.25)  # 1000 its, 1 of 4
    assert gg.budget_share("gradinversion", {}) == 1.0  # its default 20,000 >= GIFD's 15,000
    assert gg.budget_share("ggss_r", {"steps": 5}) == 1.0  # no budget of its own
    assert gg.under_run({"DLG": 1.0}) is None
    assert "GGL 10%" in gg.under_run({"GGL": 0.1, "DLG": 1.0})
    assert set(gg.SOURCES) == set(gg.BUDGETS)  # every budget says where it comes from
    table = gg.budget_table({"ggl": {"iterations": 50}, "ggss_r": {"steps": 5}}).iloc[0]
    assert (table["method"], table["share"]) == ("GGL", pytest.approx(0.1))
    assert table["own budget"] == "iterations 500, population 50" and "GGL code" in table["source"]


def _noisy_baselines(ggss_gain: float, budget: float, images: int = 6) -> pd.DataFrame:
    """Table 4 rows: GGSS-R ``ggss_gain`` dB above DLG (run at ``budget`` of its own)."""
    rows = []
    for k in range(images):
        rows += [{"method": "DLG", "image": k, "status": "ran", "psnr": 15 + 0.1 * k,
                  "budget": budget},
                 {"method": "GGSS-R", "image": k, "status": "ran",
                  "psnr": 15 + ggss_gain + 0.1 * k, "budget": 1.0},
                 *({"method": f, "image": k, "status": "floor", "psnr": 10.0} for f in FLOORS)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("gain", "budget", "verdict"),
    [(5.0, 1.0, "holds"), (-5.0, 1.0, "does not hold"), (5.0, 0.1, "inconclusive"),
     (-5.0, 0.1, "inconclusive")],
)  # fmt: skip
def test_a_claim_against_under_run_baselines_is_inconclusive(gain, budget, verdict):
    noisy = _noisy_baselines(gain, budget)
    t5 = noisy.assign(batch=1)
    found = {v.claim.id: v for v in gg.judge_all(gg.baseline_claims(noisy, noisy, t5))}
    t4 = found["t4/baselines"]
    assert t4.verdict == verdict and t4.n == 6
    assert math.isfinite(t4.estimate)  # the estimate and interval stay on show
    if budget < 1:
        assert "DLG 10%" in t4.reason and found["t5/best"].verdict == "inconclusive"
    assert found["t4/floors"].verdict == "holds"  # the floors need no budget


def test_baseline_rows_and_comparisons_carry_the_budget_share(profile, run):
    _, records = run
    clean = gg.baseline_rows(_section(records, gg.table3_cells(profile)), ["dlg", "ggss_r"])
    ran = clean[clean["status"] == "ran"].set_index("method")
    assert ran.loc["DLG", "budget"] == pytest.approx(3 / 300) and ran.loc["GGSS-R", "budget"] == 1
    t34 = gg.compare_baselines(clean, clean).set_index(["table", "method"])
    assert t34.loc[("3 (clean)", "DLG"), "budget run"] == pytest.approx(0.01)
    assert math.isnan(t34.loc[("3 (clean)", "nearest public"), "budget run"])


# -- Table 8 from the benchmark ---------------------------------------------------------------
def test_table8_reads_the_benchmark_output_and_names_the_command_when_missing(tmp_path):
    with pytest.raises(GradInvError, match="bench_ggss_r_step.py --device cuda"):
        gg.load_benchmark("cuda", root=tmp_path)
    bench = gg.load_benchmark("cpu", root=ROOT)  # committed: the notebook's Table 8 on a CPU
    t8 = gg.table8(bench["measurements"])
    assert set(t8["model"]) == set(gg.MODEL_LABELS.values())
    assert (t8["s/step run"] > 0).all() and t8["peak MiB run"].isna().all()  # no GPU memory
    assert bench["machine"]["device"] == "cpu" and bench["steps"] >= 1
