"""The GAN prior (gradinv.priors.gan): a tiny DCGAN trained for a few dozen steps on the
embedded 8x8 digits, its storage, bit-identical resume, layer-wise generation and its errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from gradinv.errors import GradInvError, MissingAssetError
from gradinv.priors import shipped_root
from gradinv.priors.gan import (
    Discriminator,
    GanPrior,
    GANSpec,
    GanTrainConfig,
    Generator,
    gan_name,
    load_gan,
    train_gan,
)

TINY = dict(dataset="digits", size=8, channels=1, batch_size=16, latent_dim=16, widths=(32, 16))


def _config(**kw) -> GanTrainConfig:
    return GanTrainConfig(**{**TINY, "steps": 20, "checkpoint_every": 10, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan")
    prior = train_gan(_config(), out, progress=False, save_half=False)
    return out, prior


def test_training_writes_generator_weights_and_config_with_data_hash(trained):
    out, prior = trained
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "gan" and meta["dataset"] == "digits"
    assert meta["spec"] == {"image_size": 8, "channels": 1, "latent_dim": 16, "widths": [32, 16]}
    assert len(meta["data_hash"]) == 64 and meta["steps_done"] == 20
    assert all(k in meta for k in ("final_d_loss", "final_g_loss", "seconds"))
    keys = load_file(str(out / "model.safetensors")).keys()
    assert all(k.startswith(("blocks.", "head.")) for k in keys)  # the generator only
    assert (out / "checkpoint.pt").exists()


def test_samples_are_seeded_images_in_unit_range(trained):
    _, prior = trained
    x = prior.sample(5, seed=3)
    assert x.shape == (5, 1, 8, 8)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, prior.sample(5, seed=3))
    assert not torch.equal(x, prior.sample(5, seed=4))


def test_save_load_round_trip_fp32_exact_and_fp16_close(trained, tmp_path):
    out, prior = trained
    again = load_gan(out)
    assert again.spec == prior.spec and again.meta["data_hash"] == prior.meta["data_hash"]
    assert torch.equal(again.sample(4, seed=0), prior.sample(4, seed=0))
    prior.save(tmp_path / "half", half=True)
    half = GanPrior.load(tmp_path / "half")
    assert (half.sample(4, seed=0) - prior.sample(4, seed=0)).abs().max() < 1e-2


def test_resume_is_bit_identical_to_an_uninterrupted_run(trained, tmp_path):
    out, _ = trained
    train_gan(_config(steps=10), tmp_path, progress=False)  # "interrupted" after 10 steps
    train_gan(_config(steps=20), tmp_path, progress=False)  # resumed to 20
    a = torch.load(out / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 20
    assert a["losses"] == b["losses"]
    for part in ("generator", "discriminator", "ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)


def test_resume_refuses_a_checkpoint_of_other_settings(trained, tmp_path):
    train_gan(_config(steps=10), tmp_path, progress=False)
    with pytest.raises(GradInvError, match="different run"):
        train_gan(_config(steps=20, lr=1e-3), tmp_path, progress=False)


def test_generation_from_any_layer_composes_to_the_full_generator():
    torch.manual_seed(0)
    g = Generator(GANSpec(image_size=16, channels=3, latent_dim=8, widths=(16, 8, 4))).eval()
    z = torch.randn(3, 8)
    x = g(z)
    assert x.shape == (3, 3, 16, 16) and x.abs().max() <= 1
    assert g.num_blocks == 3
    shapes = [(3, 8), (3, 16, 4, 4), (3, 8, 8, 8), (3, 4, 16, 16)]
    for k in range(g.num_blocks + 1):
        h = g.features(z, k)
        assert h.shape == shapes[k]
        assert torch.allclose(g.forward_from(k, h), x, atol=1e-6)
    with pytest.raises(GradInvError, match="layer k"):
        g.features(z, 4)
    d = Discriminator(GANSpec(image_size=16, channels=3, latent_dim=8, widths=(16, 8, 4)))
    assert d(x).shape == (3,)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image_size": 24}, "power of two"),
        ({"image_size": 32, "widths": (8, 4)}, "needs 4 widths"),
        ({"channels": 2}, "channels"),
    ],
)
def test_bad_specs_are_refused(kw, message):
    with pytest.raises(GradInvError, match=message):
        GANSpec(**{"image_size": 8, "widths": (8, 4), **kw})


def test_load_gan_errors_name_the_fix(tmp_path):
    assert gan_name("chest_xray", 32) == "gan-chest_xray-32"
    with pytest.raises(MissingAssetError, match="gan-nothing-8.*ensure_gan"):
        load_gan("gan-nothing-8")
    with pytest.raises(MissingAssetError, match="does not exist"):
        load_gan(tmp_path / "missing" / "folder")
    with pytest.raises(MissingAssetError, match="model.safetensors"):
        load_gan(tmp_path)
    diffusion = shipped_root() / "chest_xray-32"
    if diffusion.exists():
        with pytest.raises(GradInvError, match="not a GAN"):
            load_gan(diffusion)
    with pytest.raises(GradInvError, match="unknown GAN loss"):
        _config(loss="wgan")
