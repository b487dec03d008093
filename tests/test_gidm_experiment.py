"""The GIDM notebook's drivers on a tiny problem: its typed profile, its cells in a run store
(stable keys, a second run computes nothing, a recomputed cell gives the same record), every
figure and table from the records with the floors of the attacked image, and the claims in
the four-verdict vocabulary."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from paper_checks import assert_recomputed_cells_merge

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments import claims, profiles
from gradinv.experiments import gidm as gd
from gradinv.experiments.engine import RunStore, run_cells
from gradinv.experiments.floors import FLOORS
from gradinv.priors.ddpm import DiffusionPrior, PriorSpec

ROOT = Path(__file__).resolve().parents[1]
SPEC16 = PriorSpec(
    image_size=16, channels=1, block_out_channels=(16, 32), attention=False,
    norm_num_groups=8, num_train_timesteps=1000,
)  # fmt: skip


def _tiny(prior_dir: str) -> dict:
    return {
        "lpips": None,
        "snapshot_every": 2,
        "floor_steps": 3,
        "roles": {"digits": {"datasets": ["digits"], "prior": prior_dir}},
        "federation": {"clients": 2, "images_per_client": 2, "rounds": 1, "lr": 1e-4,
                       "attack_round": 1, "attack_client": 0, "init": "random"},
        "attacks": {"gidm": {"generative_iterations": 2, "finetune_iterations": 3,
                             "sampling_steps": 2},
                    "dlg_dm": {"iterations": 5}, "invg_dm": {"iterations": 5}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    torch.manual_seed(3)  # plumbing only: an untrained DDPM
    prior = DiffusionPrior(SPEC16).eval().requires_grad_(False)
    return _tiny(str(prior.save(tmp_path_factory.mktemp("prior") / "ddpm16")))


@pytest.fixture(scope="module")
def profile(tiny) -> gd.Profile:
    return options.build(gd.Profile, tiny, "tiny profile")


def notebook_cells(profile: gd.Profile) -> list:
    """The cells of the notebook's sections, in its order (repeats included)."""
    return [
        *gd.federation_cells(profile),
        *gd.fig5_cells(profile),
        *gd.snapshot_cells(("gidm_known", "gidm"), profile),
        *gd.snapshot_cells(("gidm_known", "t_unknown", "eps_unknown"), profile),
        *gd.ablation_cells(profile),
    ]


@pytest.fixture(scope="module")
def run(profile, tmp_path_factory):
    """The tiny notebook computed once into a fresh store: (store, records)."""
    store = RunStore(tmp_path_factory.mktemp("store"))
    return store, run_cells(notebook_cells(profile), store, progress=False)


# -- profile ----------------------------------------------------------------------------------
def test_every_profile_loads_and_the_defaults_are_the_smoke_values():
    smoke = profiles.load(gd.PAPER, "smoke", gd.Profile, root=ROOT)
    cpu = profiles.load(gd.PAPER, "cpu", gd.Profile, root=ROOT)
    paper = profiles.load(gd.PAPER, "paper", gd.Profile, root=ROOT)
    assert smoke == gd.Profile()
    assert smoke.roles["CelebA"] == gd.Role(("celeba", "faces"), "faces-32", "face")
    assert cpu.attacks.of("gidm")["finetune_iterations"] == 1000 and cpu.snapshot_every == 50
    assert paper.federation.init == "pretrained" and paper.federation.rounds == 50
    assert paper.attacks.of("gidm")["generative_iterations"] == 5000
    assert list(paper.roles) == ["CelebA", "LSUN-Bedroom"]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("  snapshot_every: 10", "  snapshot_evry: 10"), "snapshot_evry"),  # a setting
        (("    rounds: 2", "    rouns: 2"), "rouns"),  # the federation
        (("      label: face", "      lable: face"), "lable"),  # a role
        (("interval: 10}", "intervall: 10}"), "intervall"),  # an attack's Config
        (("seed: 0", "seeed: 0"), "seeed"),  # a top-level parameter
    ],
)
def test_profile_rejects_an_unknown_key_naming_the_key_and_the_file(tmp_path, edit, key):
    folder = tmp_path / "papermill_runs" / gd.PAPER
    folder.mkdir(parents=True)
    text = (ROOT / "papermill_runs" / gd.PAPER / "smoke.yaml").read_text()
    assert edit[0] in text
    (folder / "typo.yaml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(GradInvError) as err:
        profiles.load(gd.PAPER, "typo", gd.Profile, root=tmp_path)
    message = str(err.value)
    assert key in message and "papermill_runs/gidm/typo.yaml" in message
    assert "\n" not in message


def test_profile_checks_its_values():
    with pytest.raises(GradInvError, match="attack_round"):
        options.build(gd.Profile, {"federation": {"rounds": 2, "attack_round": 3}}, "p")
    with pytest.raises(GradInvError, match="init"):
        options.build(gd.Profile, {"federation": {"init": "warm"}}, "p")
    with pytest.raises(GradInvError, match="at least one dataset"):
        options.build(gd.Profile, {"roles": {"x": {"datasets": [], "prior": "p"}}}, "p")


# -- cells --------------------------------------------------------------------------------------
def test_cells_have_stable_keys_that_follow_the_settings_and_the_seed(profile, tiny):
    cells = gd.all_cells(profile)
    keys = [c.key for c in cells]
    assert len(keys) == len(set(keys)) == 1 + 4 + 1 + 6  # federation, Fig. 5, floors, ablation
    assert {c.key for c in notebook_cells(profile)} == set(keys)  # all_cells lists every cell
    assert cells[0].settings["variant"] == "dlg_dm" and cells[-1].kind == "federation"
    again = options.build(gd.Profile, dict(reversed(list(tiny.items()))), "tiny profile")
    assert keys == [c.key for c in gd.all_cells(again)]  # same profile: same keys
    assert set(keys).isdisjoint(c.key for c in gd.all_cells(profile, seed=1))
    more = dataclasses.replace(profile, attacks=options.build(
        gd.AttackOverrides, {**tiny["attacks"], "dlg_dm": {"iterations": 6}}, "attacks"))  # fmt: skip
    changed = {
        (a.kind, a.settings.get("variant"))
        for a, b in zip(cells, gd.all_cells(more), strict=True)
        if a.key != b.key
    }
    assert changed == {("attack", "dlg_dm")}  # the DLG-dm cell only
    # the sections share cells: GIDM given {eps, t} is one cell in Figs. 5, 7, 8, 9 and 10
    known = {c.key for c in notebook_cells(profile) if c.settings.get("variant") == "gidm_known"}
    assert len(known) == 1


def test_a_second_run_computes_nothing_and_gives_identical_tables(profile, run, capsys):
    store, records = run
    cells = notebook_cells(profile)
    again = run_cells(cells, store, progress=True)
    n = len(cells)
    assert f"{n} of {n} cells from the store" in capsys.readouterr().err
    assert all(a.same_as(b) for a, b in zip(records, again, strict=True))
    pd.testing.assert_frame_equal(gd.fig5(records), gd.fig5(again))
    pd.testing.assert_frame_equal(gd.ablation(records, "digits"), gd.ablation(again, "digits"))
    pd.testing.assert_frame_equal(
        gd.snapshot_curves(records, "digits", ["gidm"]),
        gd.snapshot_curves(again, "digits", ["gidm"]),
    )


def test_a_recomputed_cell_gives_the_same_record_so_stores_merge_cleanly(profile, run, tmp_path):
    store, records = run
    cells = gd.fig5_cells(profile)
    assert_recomputed_cells_merge(cells, records, store, tmp_path)


# -- tables and figures -------------------------------------------------------------------------
def test_every_figure_and_table_comes_from_the_records_with_the_floors(run, tmp_path):
    _, records = run
    f5 = gd.fig5(records)
    methods = ["DLG-dm", "InvG-dm", "Generative", "GIDM (eps, t known)", "GIDM"]
    assert list(f5.method) == methods + list(FLOORS)
    assert list(f5.columns) == [
        "role", "method", "knows eps, t", "mse", "psnr", "ssim", "seconds"
    ]  # fmt: skip
    floors = f5[f5.method.isin(FLOORS)]
    assert floors.psnr.map(math.isfinite).all() and (floors.seconds == 0).all()
    assert not floors["knows eps, t"].any() and (floors.role == "digits").all()
    # once per target image: one floors cell per role, its images the attacked image's shape
    fl = gd.floors_by(records)
    assert list(fl) == ["digits"]
    private = gd.private_images(records)["digits"]
    assert all(fl["digits"].arrays[f].shape == private.shape for f in FLOORS)
    abl = gd.ablation(records, "digits")
    assert list(abl.variant[8:]) == list(FLOORS) and abl.psnr.map(math.isfinite).all()
    attacks_only = abl.iloc[:8]
    assert (attacks_only["|t_hat - t|"] >= 0).all()
    known = abl.set_index("variant").loc["GIDM (eps, t known)"]
    assert known.t_hat == known.t  # a revealed t is used as is
    tr = gd.t_recovery(records)
    assert list(tr.variant) == [
        "GIDM", "t unknown (eps known)", "w/o optimising eps", "fine-tune only (no prior)"
    ]  # fmt: skip
    curves = gd.snapshot_curves(records, "digits", ["gidm_known", "gidm"])
    assert curves.iteration.max() == 4  # snapshots at 0, 2 (generative) and 2 + {0, 2}
    assert set(curves[curves.phase == "floor"].variant) == set(FLOORS)
    for fig in (gd.fig6_grid(records, tmp_path / "f6.png"), gd.ablation_grid(records, "digits"),
                gd.snapshot_grid(records, "digits", ["gidm", "t_unknown"]), gd.metric_bars(f5)):  # fmt: skip
        assert fig is not None
    assert (tmp_path / "f6.png").exists()
    # arrays only where a figure shows them: nothing for the federation-free metrics
    assert gd.federations(records).loc[0, "dataset"] == "digits"
    cmp5 = gd.compare_fig5(f5)
    assert (cmp5["n"] == 1).all() and (cmp5["PSNR 95% CI"] == "n < 2").all()
    assert set(cmp5.loc[~cmp5.method.isin(FLOORS), "PSNR paper"]) == {"figure only"}
    setup = gd.compare_setup(gd.Profile(), 32).set_index("what")
    assert setup.loc["image size (Setup)", "paper"] == 128
    assert setup.loc["image size (Setup)", "this run"] == 32


# -- claims -------------------------------------------------------------------------------------
def test_claims_come_out_in_the_four_verdict_vocabulary(run, tmp_path):
    _, records = run
    verdicts = gd.verdicts(records)
    ids = [v.claim.id for v in verdicts]
    assert len(ids) == len(set(ids))
    assert ids[0] == "digits/floors" and "digits/dlg_dm/psnr" in ids and "t-recovered" in ids
    assert "digits/dlg_dm/lpips" not in ids  # LPIPS switched off: no LPIPS claim
    assert {v.verdict for v in verdicts} <= set(claims.LABELS)
    untested = [v for v in verdicts if v.verdict == "untestable here"]
    assert [v.claim.id for v in untested][-1] == "generative-long" and untested[-1].reason
    tested = [v for v in verdicts if v.verdict != "untestable here"]
    assert all(v.verdict == "inconclusive" and v.n < claims.MIN_PAIRS for v in tested)
    csv_path, md_path = claims.write_claims(verdicts, tmp_path)
    table = pd.read_csv(csv_path)
    assert set(table["verdict"]) <= set(claims.LABELS) and md_path.is_file()
    summary = gd.summary_markdown(gd.fig5(records), gd.ablation(records, "digits"),
                                  gd.t_recovery(records), verdicts)  # fmt: skip
    assert "*nearest public*" in summary and "GIDM" in summary and "(n = 1)" in summary
    assert f"{len(verdicts)}, `claims.md`" in summary


def _rows(diff: float, images: int = 6, cap: bool = False) -> pd.DataFrame:
    """Claim rows of ``images`` roles x one image where GIDM is ``diff`` dB above the
    baselines, the floors and its ablations (``cap``: every attack float-exact)."""
    rows = []
    arms = ["GIDM", "GIDM (eps, t known)", "DLG-dm", "InvG-dm", "Generative",
            "t unknown (eps known)", "eps unknown (t known)", "w/o optimising t",
            "w/o optimising eps", gd.BEST_FLOOR]  # fmt: skip
    for k in range(images):
        base = 15.0 + 0.3 * k
        for arm in arms:
            top = arm in ("GIDM", "GIDM (eps, t known)")
            psnr = 100.0 if cap and arm != gd.BEST_FLOOR else base + (diff if top else 0.0)
            rows.append({"role": f"r{k}", "seed": 0, "arm": arm, "psnr": min(psnr, gd.EXACT_DB),
                         "lpips": 0.5 - psnr / 1000, "loss_first": 1.0, "loss_last": 0.1})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("diff", "verdict"), [(2.0, "holds"), (-2.0, "does not hold")])
def test_claims_judge_paired_images(diff, verdict):
    rows = _rows(diff)
    # pool the roles as units of one role's claim, the way a profile with 6 images would
    pooled = rows.assign(seed=range(len(rows)), role="CelebA")
    pooled["seed"] = pooled.index // 10
    got = {v.claim.id: v for v in gd.judge_rows(pooled)}
    for cid in ("CelebA/floors", "CelebA/dlg_dm/psnr", "CelebA/dlg_dm/lpips", "CelebA/finetune",
                "triple-vs-fixed-t"):  # fmt: skip
        assert got[cid].verdict == verdict and got[cid].n == 6, cid
    # "as well as known" allows 1 dB: 2 dB below is too much, 2 dB above is fine
    assert got["t-unknown"].verdict == ("does not hold" if diff > 0 else "holds")


def test_exact_reconstructions_tie_and_a_stuck_attack_is_untestable():
    pooled = _rows(0.0, cap=True).assign(role="CelebA")
    pooled["seed"] = pooled.index // 10
    got = {v.claim.id: v for v in gd.judge_rows(pooled)}
    assert got["CelebA/dlg_dm/psnr"].verdict == "does not hold"  # 40 vs 40: no advantage
    assert got["CelebA/floors"].verdict == "holds"  # 40 (capped) above the floors
    stuck = pooled.assign(loss_last=pooled["loss_first"])
    got = {v.claim.id: v for v in gd.judge_rows(stuck)}
    assert got["CelebA/floors"].verdict == "untestable here"
    assert "never left its start" in got["CelebA/floors"].reason
