"""The GradInvDiff notebook's drivers on a tiny problem: its typed profile, its cells in a run
store (stable keys, a second run computes nothing), floors in Tables 1-2, comparisons with
the paper's numbers that leave the floors out, claims in the four-verdict vocabulary and
the generated summary."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from paper_checks import assert_recomputed_cells_merge, assert_typo_named

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import claims, profiles
from gradinv.experiments import gradinvdiff as gid
from gradinv.experiments.engine import RunStore, run_cells
from gradinv.experiments.floors import FLOORS

ROOT = Path(__file__).resolve().parents[1]

#: the shipped 32 px chest prior (SSIM needs 11 px), a few steps, the cheap LeNet7
TINY = {
    "size": 32,
    "images": 1,
    "datasets": {"Acevedo-20": ["chest_xray"]},
    "attacks": {"ig": {"iterations": 5}, "ggdm": {"steps": 4}, "gradinvdiff": {"steps": 4}},
    "table1": {"roles": ["Acevedo-20"], "networks": ["lenet7"], "methods": ["ig", "gradinvdiff"]},
    "table2": {"role": "Acevedo-20", "networks": ["lenet7"], "images": 1,
               "variants": ["GradInvDiff", "batch 4"]},
    "fig2": {"role": "Acevedo-20", "network": "lenet7", "snapshots": 2},
    "tuning": {"images": 1, "grids": {"ggdm": {"option": "gamma", "values": [10.0, 1.0]},
                                      "gradinvdiff": {"option": "amo_lr", "values": [0.01, 0.1]}}},
}  # fmt: skip
#: what tuning would choose, for the tests that list cells without running them
TUNED = {("Acevedo-20", "lenet7", "gradinvdiff"): {"amo_lr": 0.01},
         ("Acevedo-20", "lenet7", "ggdm"): {"gamma": 10.0}}  # fmt: skip


def compute_all(profile: gid.Profile, store: RunStore) -> list:
    """Every cell of the profile, listed again after each pass (tuned cells appear once
    their tuning is stored), as ``gradinv store compute`` does; the records, in order."""
    while todo := [c for c in gid.all_cells(profile, stores=[store]) if c.key not in store]:
        run_cells(todo, store, progress=False)
    return run_cells(gid.all_cells(profile, stores=[store]), store, progress=False)


@pytest.fixture(scope="module")
def profile() -> gid.Profile:
    return options.build(gid.Profile, TINY, "tiny profile")


@pytest.fixture(scope="module")
def run(profile, tmp_path_factory):
    """The tiny grid computed once into a fresh store: (store, records)."""
    store = RunStore(tmp_path_factory.mktemp("store"))
    return store, compute_all(profile, store)


# -- profile ----------------------------------------------------------------------------------
def test_every_profile_loads_and_the_defaults_are_the_smoke_values():
    smoke = profiles.load(gid.PAPER, "smoke", gid.Profile, root=ROOT)
    cpu = profiles.load(gid.PAPER, "cpu", gid.Profile, root=ROOT)
    paper = profiles.load(gid.PAPER, "paper", gid.Profile, root=ROOT)
    # the issue's cpu scale: 10 images per Table 1 cell, ResNet18 on 5, Table 2 on 20
    assert (cpu.images, cpu.table1.images("resnet18", cpu.images), cpu.table2_images) == (
        10, 5, 20
    )  # fmt: skip
    assert cpu.attacks.of("gradinvdiff")["steps"] == cpu.attacks.of("ggdm")["steps"] == 250
    # table2.images defaults to "the profile's images" (the paper profile relies on it)
    default = dataclasses.replace(gid.Profile(), table2=dataclasses.replace(gid.Table2(), images=3))
    assert smoke == default
    assert paper.size == 64 and paper.table2_images == paper.images == 8
    assert paper.table1.networks == {"lenet7": None, "resnet18": None}
    assert smoke.table1.networks == {"lenet7": None}  # ResNet18: the cpu and paper profiles
    assert paper.prior.train_config("x", 64).block_out_channels == (64, 128, 128, 256)
    lits = smoke.datasets["LiTS"][1].planes
    assert [(p.dataset, p.label, p.name) for p in lits][0] == ("brain_mri", 0, "axial")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("  size: 32", "  sise: 32"), "sise"),  # a misspelt setting
        (("  table1:\n", "  table1:\n    methds: [ig]\n"), "methds"),  # nested section
        (("name: axial}", "nmae: axial}"), "nmae"),  # a LiTS plane
        (("    ig: {iterations: 200}", "    ig: {iterashuns: 200}"), "iterashuns"),  # attack
        (("seed: 0", "seeed: 0"), "seeed"),  # a top-level parameter
    ],
)
def test_profile_rejects_an_unknown_key_naming_the_key_and_the_file(tmp_path, edit, key):
    assert_typo_named(tmp_path, gid.PAPER, gid.Profile, edit, key)


def test_profile_checks_roles_variants_and_methods():
    with pytest.raises(GradInvError, match="table2.variants"):
        options.build(gid.Profile, {"table2": {"variants": ["w/o AMOO"]}}, "p")
    with pytest.raises(GradInvError, match="table1.methods"):
        options.build(gid.Profile, {"table1": {"methods": ["gradinvdif"]}}, "p")
    with pytest.raises(GradInvError, match="fig2.role"):
        options.build(gid.Profile, {"fig2": {"role": "CheXpert"}}, "p")
    with pytest.raises(GradInvError, match="network_images"):
        options.build(gid.Profile, {"table1": {"network_images": {"vgg16": 2}}}, "p")
    with pytest.raises(GradInvError, match="same budget"):
        options.build(gid.Profile, {"tuning": {"grids": {
            "ggdm": {"option": "gamma", "values": [1.0, 10.0]},
            "gradinvdiff": {"option": "amo_lr", "values": [0.01]}}}}, "p")  # fmt: skip
    with pytest.raises(GradInvError, match="no option gama"):
        options.build(gid.Profile, {"tuning": {"grids": {
            "ggdm": {"option": "gama", "values": [1.0]}}}}, "p")  # fmt: skip


def test_network_images_caps_a_costly_victims_images_per_plane():
    nets = {"networks": {"lenet7": None, "resnet18": None}, "network_images": {"resnet18": 1}}
    prof = options.build(
        gid.Profile, {**TINY, "images": 3, "table1": {**TINY["table1"], **nets}}, "p"
    )
    tuned = {**TUNED, ("Acevedo-20", "resnet18", "gradinvdiff"): {"amo_lr": 0.01}}
    images = {
        net: {c.settings["image"] for c in gid.table1_cells(prof, tuned=tuned)
              if c.kind == "attack" and c.settings["network"] == net}
        for net in ("lenet7", "resnet18")
    }  # fmt: skip
    assert images == {"lenet7": {0, 1, 2}, "resnet18": {0}}


# -- cells --------------------------------------------------------------------------------------
def test_cells_have_stable_keys_that_follow_the_settings_and_the_seed(profile):
    keys = [c.key for c in gid.all_cells(profile)]
    again = options.build(gid.Profile, dict(reversed(list(TINY.items()))), "tiny profile")
    assert keys == [c.key for c in gid.all_cells(again)]  # same profile: same keys
    assert set(keys).isdisjoint(c.key for c in gid.table1_cells(profile, seed=1, tuned=TUNED))
    more = dataclasses.replace(profile, attacks=options.build(
        gid.AttackOverrides, {**TINY["attacks"], "ig": {"iterations": 6}}, "attacks"))  # fmt: skip
    changed = [
        a.key != b.key
        for a, b in zip(gid.table1_cells(profile, tuned=TUNED),
                        gid.table1_cells(more, tuned=TUNED), strict=True)
    ]  # fmt: skip
    assert changed == [True, False, False]  # the IG cell only (then GradInvDiff, the floors)
    # the Table 2 floors of image 0 are Table 1's: one cell, computed once
    t1 = {c.key for c in gid.table1_cells(profile, tuned=TUNED) if c.kind == "floors"}
    assert t1 == {c.key for c in gid.table2_cells(profile, tuned=TUNED) if c.kind == "floors"}


def test_tuned_methods_wait_for_their_tuning_on_public_images(profile):
    tuning = gid.tuning_cells(profile)
    assert {c.settings["split"] for c in tuning} == {"public"}  # never the evaluation images
    assert len(tuning) == 2 * 2  # two methods x two values x one image x one pair
    assert {c.settings["method"] for c in tuning} == {"ggdm", "gradinvdiff"}
    # before tuning: no GradInvDiff in Table 1, no Table 2 or Fig. 2; after: all, tuned
    untuned = gid.table1_cells(profile)
    assert {c.settings.get("method") for c in untuned if c.kind == "attack"} == {"ig"}
    assert gid.table2_cells(profile) == [] and gid.fig2_cells(profile) == []
    cells = gid.table1_cells(profile, tuned=TUNED)
    gdiff = [c for c in cells if c.settings.get("method") == "gradinvdiff"]
    assert gdiff and all(c.settings["options"]["amo_lr"] == 0.01 for c in gdiff)
    assert all(c.settings["split"] == "test" for c in cells if c.kind == "attack")


def test_a_second_run_computes_nothing_and_gives_identical_tables(profile, run, capsys):
    store, records = run
    cells = gid.all_cells(profile, stores=[store])
    again = run_cells(cells, store, progress=True)
    n = len(cells)
    assert f"{n} of {n} cells from the store" in capsys.readouterr().err
    assert all(a.same_as(b) for a, b in zip(records, again, strict=True))
    pd.testing.assert_frame_equal(gid.table1_rows(records), gid.table1_rows(again))
    pd.testing.assert_frame_equal(gid.table2_rows(records), gid.table2_rows(again))
    kept = {r.key for r in again if r.arrays}
    kinds = {r.cell.kind for r in again if r.key in kept}
    assert kinds == {"samples", "paths", "attack", "floors"}
    assert not any(r.arrays for r in again if r.cell.settings.get("variant"))  # Table 2: none


def test_a_recomputed_cell_gives_the_same_record_so_stores_merge_cleanly(profile, run, tmp_path):
    store, records = run
    cells = gid.table1_cells(profile, tuned=gid.tuned_options(records, profile))
    assert_recomputed_cells_merge(cells, records, store, tmp_path)


def test_tuning_picks_the_best_mean_psnr_per_role_network_and_method(profile, run):
    _, records = run
    tuned = gid.tuned_options(records, profile)
    assert set(tuned) == {("Acevedo-20", "lenet7", m) for m in ("ggdm", "gradinvdiff")}
    table = gid.tuning_table(records, profile)
    assert len(table) == 4 and (table["n"] == 1).all()
    for (role, net, method), grp in table.groupby(["role", "network", "method"]):
        best = grp.loc[grp["psnr"].idxmax(), "value"]
        assert tuned[(role, net, method)] == {grp["option"].iloc[0]: best}
        assert grp["chosen"].sum() == 1 and grp.loc[grp["chosen"], "value"].item() == best


# -- tables, figures, claims -------------------------------------------------------------------
def test_tables_carry_the_floors_and_comparisons_leave_them_out(run):
    _, records = run
    t1 = gid.table1_rows(records)
    floors = t1[t1["method"].isin(FLOORS)]
    assert sorted(floors["method"]) == sorted(FLOORS)  # once per private image
    assert all(math.isfinite(p) for p in floors["psnr"]) and (floors["seconds"] == 0).all()
    assert list(t1.columns[:8]) == [
        "attack", "defense", "role", "network", "dataset", "plane", "image", "method",
    ]  # fmt: skip
    grid = gid.fig3_grid(records)
    assert list(grid["Acevedo-20"]) == ["ground truth", "IG", "GradInvDiff", *FLOORS]
    cmp1 = gid.compare_table1(t1)
    assert set(cmp1["method"]) == {"IG", "GradInvDiff"} and (cmp1["n"] == 1).all()
    assert cmp1.loc[cmp1["method"] == "IG", "PSNR paper"].item() == pytest.approx(18.9)

    t2 = gid.table2_rows(records)
    assert set(FLOORS) <= set(t2["variant"])
    assert set(gid.compare_table2(t2)["variant"]) == {"GradInvDiff", "batch 4"}

    private, paths = gid.fig2_paths(records)
    assert list(paths) == ["DDPM", "GGDM", "GradInvDiff"] and private.shape[-2:] == (32, 32)
    assert all(len(p.x) == len(p.steps) >= 2 for p in paths.values())
    samples = gid.prior_samples(records)["Acevedo-20"]
    assert samples["prior"] == "chest_xray-32" and samples["samples"].shape[0] == 8


def test_claims_come_out_in_the_four_verdict_vocabulary(run, tmp_path):
    _, records = run
    t1, t2 = gid.table1_rows(records), gid.table2_rows(records)
    verdicts = gid.table1_verdicts(t1) + gid.table2_verdicts(t2)
    ids = [v.claim.id for v in verdicts]
    assert len(ids) == len(set(ids))
    assert "t1/Acevedo-20/LeNet/floors/psnr" in ids and "t2/LeNet/batch" in ids
    assert "t1/Acevedo-20/LeNet/ggdm/psnr" not in ids  # GGDM did not run: no claim
    assert {v.verdict for v in verdicts} == {"inconclusive"}  # one image: n < 5
    assert all(v.n == 1 for v in verdicts)
    csv_path, md_path = claims.write_claims(verdicts, tmp_path)
    table = pd.read_csv(csv_path)
    assert set(table["verdict"]) <= set(claims.LABELS) and md_path.is_file()
    summary = gid.summary_markdown(t1, t2, verdicts)
    assert "*nearest public*" in summary and "GradInvDiff" in summary and "(n = 1)" in summary
    assert f"{len(verdicts)} inconclusive" in summary


def _rows(diff: float, images: int = 6, floor: float = -1.0) -> pd.DataFrame:
    """Table 1 rows of one cell where GradInvDiff is ``diff`` dB above GGDM, and the floors
    ``floor`` dB from GGDM."""
    rows = []
    for k in range(images):
        base = 15.0 + 0.3 * k
        for method, psnr in [("GradInvDiff", base + diff + 0.1 * (k % 2)), ("GGDM", base),
                             *((f, base + floor) for f in FLOORS)]:  # fmt: skip
            rows.append({"role": "Acevedo-20", "network": "LeNet", "plane": "microscopy",
                         "image": k, "method": method, "psnr": psnr,
                         "lpips": 0.5 - psnr / 100})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("diff", "verdict"), [(2.0, "holds"), (-2.0, "does not hold")])
def test_table1_claims_judge_paired_images(diff, verdict):
    verdicts = {v.claim.id: v for v in gid.table1_verdicts(_rows(diff))}
    v = verdicts["t1/Acevedo-20/LeNet/ggdm/psnr"]
    assert v.verdict == verdict and v.n == 6 and v.paper == "GradInvDiff 20.7 vs GGDM 19.4 dB"
    assert verdicts["t1/Acevedo-20/LeNet/ggdm/lpips"].verdict == verdict  # lower LPIPS wins
    assert verdicts["t1/Acevedo-20/LeNet/floors/psnr"].verdict == verdict


def test_profile_file_is_found_through_the_repository_root(tmp_path, monkeypatch):
    target = tmp_path / "papermill_runs" / gid.PAPER
    target.mkdir(parents=True)
    shutil.copy(ROOT / "papermill_runs" / gid.PAPER / "smoke.yaml", target / "smoke.yaml")
    monkeypatch.setenv("GRADINV_REPO_ROOT", str(tmp_path))
    assert profiles.load(gid.PAPER, "smoke", gid.Profile).size == 32
    with pytest.raises(GradInvError, match="no profile 'cpu'.*profiles present: smoke"):
        profiles.load(gid.PAPER, "cpu", gid.Profile)


def test_a_win_below_the_floors_is_not_a_win():
    verdicts = {v.claim.id: v for v in gid.table1_verdicts(_rows(2.0, floor=5.0))}
    assert verdicts["t1/Acevedo-20/LeNet/floors/psnr"].verdict == "does not hold"
    win = verdicts["t1/Acevedo-20/LeNet/ggdm/psnr"]
    assert win.verdict == "inconclusive" and "not above the best floor" in win.reason


def test_the_other_source_role_attacks_its_targets_with_another_datasets_prior():
    smoke = profiles.load(gid.PAPER, "smoke", gid.Profile, root=ROOT)
    (plane,) = gid.planes_for(gid.OTHER_SOURCE, smoke)
    assert (plane.dataset, plane.prior_dataset) == ("mr", "brain_mri")
    cell = gid.attack_cell(gid.OTHER_SOURCE, plane, "lenet7", "gradinvdiff", 0, smoke,
                           tuned={"amo_lr": 0.01})  # fmt: skip
    assert cell.settings["dataset"] == "mr" and cell.settings["split"] == "test"
    assert cell.settings["options"]["prior"] == "brain_mri-32"
    assert cell.settings["options"]["aux_dataset"] == "mr"  # the task's own public data
    assert gid.floors_cell(plane, 0, smoke).settings["prior"] == "brain_mri-32"
    priors = [c.settings["prior"] for c in gid.sample_cells(smoke)]
    assert len(priors) == len(set(priors))  # a prior two roles share is sampled once
