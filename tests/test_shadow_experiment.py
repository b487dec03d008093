"""The shadow-defense drivers (gradinv.experiments.shadow_defense) and image-level DP."""

from __future__ import annotations

import math

import pytest
import torch

from gradinv.defenses import ClientContext
from gradinv.defenses.image_noise import ImageNoise
from gradinv.errors import GradInvError
from gradinv.experiments import shadow_defense as sd
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


def test_methods_resolve_from_the_profile_and_aliases_run_once():
    assert sd.method(TINY, "SCAFFOLD").algorithm == "scaffold"
    assert sd.method(TINY, "GS").defense == {"name": "pruning", "percent": 90}
    assert sd.method(TINY, "w/o CAM").shadow["cam_reduction"] is False
    assert sd.method(TINY, "Img DP (s)").image_noise == 0.3
    cfg = sd.shadow_config({**TINY["shadow"], "schedule": "fixed", "equalize": False}, 0)
    assert cfg.noise.schedule == "fixed" and cfg.equalize is False and cfg.r_shadow == 1
    with pytest.raises(GradInvError, match="unknown method"):
        sd.method(TINY, "Nope")
    with pytest.raises(GradInvError, match="unknown shadow setting"):
        sd.shadow_config({"nope": 1}, 0)
    study = sd.Study(TINY)
    assert study.canonical("Ours") == "Ours"
    assert study.canonical("Increase") == "Ours"  # same configuration as Ours
    assert study.canonical("r_shadow=1") == "Ours"  # the profile's r_shadow is 1
    assert study.canonical("r_shadow=2") == "r_shadow=2"


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


def test_study_builds_every_table_and_figure_on_a_tiny_federation(tmp_path):
    study = sd.Study(TINY)
    role = "ChestXRay"
    rows = ("FedAvg", "GS", "Ours")  # every method is exercised by the smoke notebook
    t1 = sd.defense_table(study, role, "model", labels=rows)
    t2 = sd.defense_table(study, role, "optimisation", labels=rows, region="target")
    # the methods, then one row per floor (the role's GAN gives the prior sample)
    assert list(t1.index) == [*rows, *FLOORS] and list(t2.index) == [*rows, *FLOORS]
    assert sd.methods_of(t1) == list(rows) and sd.floors_of(t1) == list(FLOORS)
    for t in (t1, t2):
        assert t.loc[list(rows), ["F1", "mse", "psnr", "ssim"]].notna().all().all()
        assert t.loc[list(FLOORS), "F1"].isna().all()  # a floor has no federation
        assert all(math.isfinite(v) for v in t.loc[list(FLOORS), "psnr"])
        assert set(t["psnr_mark"]) <= {"", "†", "‡"}
        assert set(t.loc[list(FLOORS), "psnr_mark"]) == {""}  # no test on a floor
    assert list(sd.formatted(t1).loc[list(FLOORS), "F1"]) == ["—"] * len(FLOORS)
    # floors: built once per (round, client) of targets, shared by every attack and method
    floors = study.floors(role)
    assert study.floors(role) is floors
    for name, recs in floors.items():
        assert [(r.round, r.client) for r in recs] == [(1, 2), (1, 8), (2, 2), (2, 8)]
        assert all(r.attack == name and r.seconds == 0.0 for r in recs)
        assert recs[0].reconstruction.shape[0] == 2 and recs[1].reconstruction.shape[0] == 1
        assert study.records_of(role, name, "optimisation") is recs
    # the attack's template (and RDLV's P) is the public mean image, the clients are private
    d = study.data(role)
    public = public_images(d.dataset, 32, 1)
    assert torch.allclose(d.prior_image.cpu(), public.mean(0), atol=1e-6)
    assert torch.allclose(floors["public mean"][0].reconstruction[0], public.mean(0), atol=1e-6)
    fed = study.federation(role, "Ours")
    assert len(fed.f1) == 2 and len(fed.round_seconds) == 2
    assert all(s > 0 for s in fed.round_seconds)
    assert study.federation(role, "Increase") is fed
    assert fed.snapshots and set(next(iter(fed.snapshots.values()))) == {
        "X", "X_rec", "X^N", "M", "N1", "N2", "N4"
    }  # fmt: skip
    # what the attacks saw are the clients' kept updates, scored against their own images
    recs = study.attacked(role, "FedAvg", "model")
    assert {(r.round, r.client) for r in recs} == {(1, 2), (2, 2), (1, 8), (2, 8)}
    assert all(math.isfinite(r.whole["psnr"]) for r in recs)
    single = [r for r in recs if r.client == 8][0]
    assert single.reconstruction.shape[0] == 1  # the single-image client: one image
    t3 = sd.summary_table(study, role, ["FedAvg", "w/o CAM", "Ours"])
    assert list(t3.index) == ["FedAvg", "w/o CAM", "Ours", *FLOORS]
    t5 = sd.finetune_rounds_table(study, role, [1, 2], client=2)
    assert t5["time"].iloc[0] == 1.0 and len(t5) == 2
    iip = sd.iip_table(study, role, rows)
    assert ((iip >= 0) & (iip <= 1)).all().all()
    cost = sd.cost_table(study, role, rows)
    assert cost.loc["FedAvg", "relative_to_FedAvg"] == 1.0
    assert cost.loc["Ours", "seconds_per_round"] > cost.loc["FedAvg", "seconds_per_round"]
    rd = sd.rdlv_table(study, role, rows, "model")
    sd.rdlv_figure(rd, path=tmp_path / "rdlv.png")
    sd.reconstruction_figure(study, role, ("FedAvg", "Ours"), "optimisation", 1, 2,
                             path=tmp_path / "rec.png")  # fmt: skip
    sd.noise_maps_figure(next(iter(fed.snapshots.values())), path=tmp_path / "maps.png")
    assert (tmp_path / "rdlv.png").exists() and (tmp_path / "rec.png").exists()
    t2_whole = sd.defense_table(study, role, "optimisation", labels=rows)
    cmp = sd.paper_vs_run(t1, t2_whole, t3.drop(index=["FedAvg", "Ours"]))  # floors too
    assert cmp.loc[("model", "Ours"), "PSNR paper"] == 11.36
    assert "public mean" not in cmp.index.get_level_values("method")
    verdicts = sd.claims(study, role, t1, t2_whole)
    assert set(verdicts["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert len(verdicts) == 7
    # each attack is compared with the floors first, with both numbers
    for i, (name, t) in enumerate((("GIAS", t1), ("BN-prior", t2_whole))):
        row = verdicts.iloc[i]
        assert name in row["claim"] and "beats the floors" in row["claim"]
        best = t.loc[list(FLOORS), "psnr"].max()
        assert row["verdict"] == ("holds" if t.loc["FedAvg", "psnr"] > best else "does not hold")
        assert f"{best:.2f} dB" in row["this run"]
        assert f"{t.loc['FedAvg', 'psnr']:.2f} dB" in row["this run"]
    assert "best other" in verdicts.iloc[2]["this run"]  # the methods, floors left out
    no_floors = sd.defense_table(study, role, "model", labels=rows, floors=False)
    assert list(no_floors.index) == list(rows)
    assert sd.claims(study, role, no_floors, t2_whole).iloc[0]["verdict"] == "inconclusive"


def test_error_spectra_of_a_perfect_reconstruction_are_zero():
    x = torch.rand(2, 3, 8, 8)
    err, amp, _ = sd.error_spectra(x, x)
    assert err.shape == (2, 8, 8) and float(err.abs().max()) == 0 and float(amp.max()) == 0
