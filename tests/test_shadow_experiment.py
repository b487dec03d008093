"""The shadow-defense drivers (gradinv.experiments.shadow_defense) and image-level DP."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from gradinv.defenses import ClientContext
from gradinv.defenses.image_noise import ImageNoise
from gradinv.errors import GradInvError
from gradinv.experiments import claims, profiles
from gradinv.experiments import shadow_defense as sd
from gradinv.experiments.engine import RunStore, run_cells
from gradinv.experiments.floors import FLOORS, public_images

TINY = {
    "lpips": None,
    "size": 32,
    "model": "resnet8",
    "pretrain": {"dataset": "natural_color", "epochs": 1},
    "roles": {"ChestXRay": {"datasets": ["chest_xray"], "channels": 1, "gan": "gan-chest_xray-32"}},
    "clients": {"scale": 0.02},  # 1, 1, 3, 10, 1, 1, 3, 10, 1 images
    "federation": {"rounds": 2, "lr": 1e-2, "defense_on": "update"},
    "attack_rounds": [1, 2],
    "attack_clients": [2, 8],
    "attack_images": 2,
    "attacks": {
        "gias": {"restarts": 1, "iterations": 3, "gias_iterations": 3},
        "bn_prior": {"iterations": 4, "warmup": 1},
    },
    "defenses": {
        "DP": {"name": "dp_clip", "clip_norm": 1.0, "noise_multiplier": 0.1},
        "GS": {"name": "pruning", "percent": 90},
        "GC": {"name": "gc", "threshold": 0.01},
        "Soteria": {"name": "soteria"},
        "OUTPOST": {"name": "outpost"},
        "Censor": {"name": "censor", "trials": 2},
    },
    "shadow": {"latent_epochs": 5, "finetune_epochs": 1, "r_shadow": 1},
    "image_dp": {"weak": 0.05, "strong": 0.3},
    "finetune_r_shadow": [1, 2],
    "figure_round": 1,
}


def test_image_noise_is_seeded_per_client_and_round_and_clamped():
    x = torch.full((2, 1, 8, 8), 0.5)
    noise = ImageNoise(0.2, seed=3)
    a = noise(x, None, ClientContext(client=1, round=0))
    assert torch.equal(a, noise(x, None, ClientContext(client=1, round=0)))
    assert not torch.equal(a, noise(x, None, ClientContext(client=2, round=0)))
    assert not torch.equal(a, noise(x, None, ClientContext(client=1, round=1)))
    assert a.min() >= 0 and a.max() <= 1 and a.shape == x.shape
    assert abs(float((a - x).std()) - 0.2) < 0.05  # few pixels clamp at sigma 0.2 around 0.5
    assert torch.equal(ImageNoise(0.0)(x, None), x)
    with pytest.raises(GradInvError, match="sigma"):
        ImageNoise(-1.0)


def _profile(tmp_path, settings=TINY, name="tiny"):
    folder = tmp_path / "papermill_runs" / sd.PAPER
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"profile": name, "seed": 0, "device": "cpu", "settings": settings})
    (folder / f"{name}.yaml").write_text(text)
    return profiles.load(sd.PAPER, name, sd.Profile, root=tmp_path)


def test_every_profile_file_loads_and_a_misspelt_key_names_key_and_file(tmp_path):
    for name in ("smoke", "paper"):
        p = profiles.load(sd.PAPER, name, sd.Profile)
        assert sd.all_cells(p, 0)
    assert profiles.load(sd.PAPER, "smoke", sd.Profile) == sd.Profile()  # defaults = smoke
    bad = {**TINY, "federation": {**TINY["federation"], "rouns": 3}}
    with pytest.raises(GradInvError, match=r"rouns.*|tiny\.yaml") as err:
        _profile(tmp_path, bad)
    assert "rouns" in str(err.value) and "tiny.yaml" in str(err.value)
    with pytest.raises(GradInvError, match="attack_imgs") as err:
        _profile(tmp_path, {**TINY, "attack_imgs": 2}, "typo2")
    assert "typo2.yaml" in str(err.value)
    with pytest.raises(GradInvError, match="nope"):
        _profile(tmp_path, {**TINY, "shadow": {"nope": 1}}, "typo3")
    with pytest.raises(GradInvError, match="iteratons"):
        _profile(tmp_path, {**TINY, "attacks": {"gias": {"iteratons": 1}}}, "typo4")


def test_methods_resolve_from_the_profile_and_aliases_share_a_cell(tmp_path):
    p = _profile(tmp_path)
    assert sd.method(p, "SCAFFOLD").algorithm == "scaffold"
    assert sd.method(p, "GS").defense == {"name": "pruning", "percent": 90}
    assert sd.method(p, "w/o CAM").shadow["cam_reduction"] is False
    assert sd.method(p, "Img DP (s)").image_noise == 0.3
    cfg = sd.shadow_config({**TINY["shadow"], "schedule": "fixed", "equalize": False}, 0)
    assert cfg.noise.schedule == "fixed" and cfg.equalize is False
    with pytest.raises(GradInvError, match="unknown method"):
        sd.method(p, "Nope")
    with pytest.raises(GradInvError, match="unknown shadow"):
        sd.shadow_config({"nope": 1}, 0)
    ours = sd.federation_cell(p, "ChestXRay", "Ours")
    assert sd.federation_cell(p, "ChestXRay", "Increase") == ours
    assert sd.federation_cell(p, "ChestXRay", "r_shadow=1") == ours  # TINY's r_shadow is 1
    assert sd.federation_cell(p, "ChestXRay", "r_shadow=2") != ours


def test_cell_keys_are_stable_and_all_cells_lists_each_once():
    p = profiles.load(sd.PAPER, "smoke", sd.Profile)
    cells = sd.all_cells(p, 0)
    assert len({c.key for c in cells}) == len(cells)
    assert [c.key for c in sd.all_cells(p, 0)] == [c.key for c in cells]
    assert cells[0].kind == "federation" and cells[0].settings["method"]["algorithm"] == "fedavg"
    # the keys of the smoke profile's first cells are part of the run store's contract
    fed = sd.federation_cell(p, "ChestXRay", "FedAvg")
    atk = sd.attack_cell(p, "ChestXRay", "Ours", "optimisation", 1, 3)
    assert (fed.key, atk.key) == (FEDAVG_KEY, OURS_ATTACK_KEY)
    assert (
        atk.settings["keep"]
        and not sd.attack_cell(p, "ChestXRay", "Ours", "model", 1, 3).settings["keep"]
    )
    assert (
        sd.attack_cell(p, "ChestXRay", "Ours", "model", 1, 3, seed=1).key
        != sd.attack_cell(p, "ChestXRay", "Ours", "model", 1, 3).key
    )
    for c in cells:  # no wall-clock time in a spec, every function importable
        c.resolve()


#: the keys of two smoke cells (a change of spec changes them: re-runs every stored cell)
FEDAVG_KEY = "f5c0af2114433b6fb560"
OURS_ATTACK_KEY = "86ce3b92051318a9f6f4"


def test_scoring_matches_each_reconstruction_to_its_most_similar_client_image():
    torch.manual_seed(0)
    pool = torch.rand(5, 1, 16, 16)
    rec = pool[[3, 1]] + 0.01 * torch.randn(2, 1, 16, 16)
    embed = torch.nn.Flatten()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 16 * 16, 3)).eval()  # fmt: skip
    r = sd.score(rec.clamp(0, 1), pool, model, embed, pool.mean(0), "model", 1, 0, 0.0, None)
    assert torch.equal(r.truth, pool[[3, 1]])
    assert r.whole["psnr"] > 35 and r.target["psnr"] > 35
    assert r.ranks == [0, 0]  # pixel-nearest is also feature-nearest here
    assert r.rdlv > 0  # much closer to the private image than to the mean image
    # IIP over the whole federation: client 1's images are pool[2:]; its reconstructions'
    # originals (pool[3], pool[1] -> gallery rows 3 and 1) are their nearest neighbours
    other = torch.rand(3, 1, 16, 16)
    gallery = sd.Gallery.of([other, pool], embed)
    g = sd.score(rec.clamp(0, 1), pool, model, embed, pool.mean(0), "model", 1, 1, 0.0, None,
                 gallery=gallery)  # fmt: skip
    assert g.ranks == [0, 0] and g.client_top[1] == [1, 1]  # the nearest is the client's
    assert all(c <= 5 for c in g.client_top[5])


def test_engine_builds_every_table_figure_and_claim_on_a_tiny_federation(tmp_path):
    p = _profile(tmp_path)
    role, rows = "ChestXRay", ("FedAvg", "GS", "Ours")
    store = RunStore(tmp_path / "store")
    cells = sd.method_cells(p, role, rows, ("model", "optimisation"))
    cells += sd.method_cells(p, role, ["w/o CAM", "r_shadow=2"], floors=False)
    records = run_cells(cells, store)
    assert len(store) == len(cells)
    # a second run over the same store computes nothing: every record is read back as it was
    again = run_cells(cells, RunStore(tmp_path / "store"), refresh=False)
    assert [r.seconds for r in again] == [r.seconds for r in records]
    assert all(a.same_as(b) for a, b in zip(again, records, strict=True))
    study = sd.Results(p, 0, records)
    t1 = sd.defense_table(study, role, "model", labels=rows)
    t2 = sd.defense_table(study, role, "optimisation", labels=rows, region="target")
    assert list(t1.index) == [*rows, *FLOORS] and list(t2.index) == [*rows, *FLOORS]
    assert sd.methods_of(t1) == list(rows) and sd.floors_of(t1) == list(FLOORS)
    for t in (t1, t2):
        assert t.loc[list(rows), ["F1", "mse", "psnr", "ssim"]].notna().all().all()
        assert t.loc[list(FLOORS), "F1"].isna().all()  # a floor has no federation
        assert all(math.isfinite(v) for v in t.loc[list(FLOORS), "psnr"])
        assert set(t["psnr_mark"]) <= {"", "†", "‡"}
        assert set(t.loc[list(FLOORS), "psnr_mark"]) == {""}  # no test on a floor
    assert list(sd.formatted(t1).loc[list(FLOORS), "F1"]) == ["—"] * len(FLOORS)
    floors = study.floors(role)
    for name, recs in floors.items():
        assert [(r.round, r.client) for r in recs] == [(1, 2), (1, 8), (2, 2), (2, 8)]
        assert all(r.attack == name for r in recs)
        assert len(recs[0].per_image["psnr"]) == 2 and len(recs[1].per_image["psnr"]) == 1
        assert study.records_of(role, name, "optimisation")[0].whole == recs[0].whole
    public = public_images("chest_xray", 32, 1)
    pm = floors["public mean"][0]  # the public mean image against the client's images
    assert pm.reconstruction is None  # floors keep no arrays (no figure shows them)
    fed = study.federation(role, "Ours")
    assert len(fed.f1) == 2 and fed.seconds > 0
    assert fed.snapshots and set(next(iter(fed.snapshots.values()))) == {
        "X", "X_rec", "X^N", "M", "N1", "N2", "N4"
    }  # fmt: skip
    assert not study.federation(role, "GS").snapshots  # maps only for the figure's method
    recs = study.attacked(role, "FedAvg", "model")
    assert [(r.round, r.client) for r in recs] == [(1, 2), (1, 8), (2, 2), (2, 8)]
    assert all(math.isfinite(r.whole["psnr"]) for r in recs)
    single = [r for r in recs if r.client == 8][0]
    assert len(single.per_image["psnr"]) == 1  # the single-image client: one image
    kept = study.attacked(role, "FedAvg", "optimisation")
    shown = [r for r in kept if r.reconstruction is not None]
    assert [(r.round, r.client) for r in shown] == [(sd.figure_round(p), sd.figure_client(p))]
    assert shown[0].truth.shape == shown[0].reconstruction.shape
    assert float(public.mean(0).min()) >= 0
    t3 = sd.summary_table(study, role, ["FedAvg", "w/o CAM", "Ours"])
    assert list(t3.index) == ["FedAvg", "w/o CAM", "Ours", *FLOORS]
    t5 = sd.finetune_rounds_table(study, role, [1, 2], client=2)
    assert t5["time"].iloc[0] == 1.0 and len(t5) == 2
    iip = sd.iip_table(study, role, rows, form="text")
    assert ((iip >= 0) & (iip <= 1)).all().all()
    code = sd.iip_table(study, role, rows)  # the attacked client's images among the k nearest
    assert (code >= 0).all().all() and (code.loc["IIP-1"] <= code.loc["IIP-5"]).all()
    cost = sd.cost_table(study, role, rows)
    assert cost.loc["FedAvg", "relative_to_FedAvg"] == 1.0
    rd = sd.rdlv_table(study, role, rows, "model")
    sd.rdlv_figure(rd, path=tmp_path / "rdlv.png")
    sd.reconstruction_figure(study, role, ("FedAvg", "Ours"), "optimisation",
                             sd.figure_round(p), sd.figure_client(p), path=tmp_path / "rec.png")  # fmt: skip
    sd.noise_maps_figure(next(iter(fed.snapshots.values())), path=tmp_path / "maps.png")
    assert (tmp_path / "rdlv.png").exists() and (tmp_path / "rec.png").exists()
    # paper vs this run: the paper's numbers from reported.csv, ours with interval and n
    cmp = sd.compare(study, role, "Table 1", rows)
    ours = cmp[(cmp.method == "Ours") & (cmp.metric == "psnr")].iloc[0]
    assert ours["paper"] == 11.36 and ours["n"] == 6  # 2 rounds x (2 + 1 images)
    assert ours["low"] <= ours["run"] <= ours["high"]
    assert set(cmp.method) == set(rows)  # no floor rows: the paper has none
    cmp5 = sd.compare_table5(study, role, [1, 2], 2)
    assert {"paper", "this run"} == set(cmp5.source)
    # claims: the four-verdict format, judged on per-image pairs
    judged = sd.verdicts(study, role)
    table = claims.claims_table(judged)
    assert list(table.columns) == list(claims.TABLE_COLUMNS)
    assert set(table.verdict) <= set(claims.LABELS)
    byid = {v.claim.id: v for v in judged}
    floor = byid["t1/model/floors"]
    assert floor.n == 6 and floor.verdict in claims.LABELS
    f1 = byid["t1/f1/ours"]
    fedavg = study.federation(role, "FedAvg")
    if claims.chance_accuracy(fedavg.final_f1, fedavg.num_classes):
        assert f1.verdict == "untestable here" and "chance" in f1.reason
    else:
        assert f1.verdict == "inconclusive" and f1.n == 1  # one seed: too few pairs
    assert byid["f7/model/single-client"].verdict == "inconclusive"  # 2 rounds
    # restated from the paper: Table 2's advantage is judged in SSIM (and LPIPS), not PSNR;
    # the costly baselines' F1 threshold is ChestXRay's 10 %
    assert "t2/optimisation/ours<GS/ssim" in byid and "t2/optimisation/ours<GS/psnr" not in byid
    assert {"t1/model/ours<GS/psnr", "t1/model/ours<GS/ssim"} <= set(byid)
    claims.write_claims(judged, tmp_path)
    assert (tmp_path / "claims.csv").exists() and (tmp_path / "claims.md").exists()
    assert "Claims" in sd.summary_markdown(study, role, judged)


def test_error_spectra_of_a_perfect_reconstruction_are_zero():
    x = torch.rand(2, 3, 8, 8)
    err, amp, _ = sd.error_spectra(x, x)
    assert err.shape == (2, 8, 8) and float(err.abs().max()) == 0 and float(amp.max()) == 0
