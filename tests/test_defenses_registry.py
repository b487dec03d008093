"""One defense registry for both levels: gradient defenses (``build``) and data-level
defenses (``build_data``: the shadow defense, image-level noise), built from string options
through gradinv.options, with one-line errors."""

from __future__ import annotations

import pytest
import torch

from gradinv import defenses
from gradinv.defenses import ClientContext, image_noise
from gradinv.defenses.shadow import ShadowConfig, ShadowDefense
from gradinv.errors import GradInvError
from gradinv.priors.gan import load_gan


def test_registry_lists_both_levels_in_one_table():
    levels = {name: spec.level for name, spec in defenses.REGISTRY.items()}
    assert set(levels.values()) == {"gradient", "data"}
    assert levels["shadow"] == levels["image_noise"] == "data"
    assert levels["dp_gaussian"] == levels["censor"] == "gradient"
    assert defenses.listing() == {**defenses.DEFENSES, **defenses.DATA_DEFENSES}
    assert set(defenses.DEFENSES) == {n for n, lv in levels.items() if lv == "gradient"}
    assert set(defenses.DATA_DEFENSES) == {"shadow", "image_noise"}
    assert defenses.listing("data") == defenses.DATA_DEFENSES
    assert all(d and "\n" not in d for d in defenses.listing().values())
    with pytest.raises(GradInvError, match="gradient, data"):
        defenses.listing("model")


def test_every_gradient_defense_module_shares_one_apply_signature():
    import inspect

    for name in defenses.DEFENSES:
        params = list(inspect.signature(defenses.spec(name).load().apply).parameters)
        assert params == ["gradients", "config", "generator", "context"], name


def test_image_noise_builds_from_string_options():
    d = defenses.build_data("Image-Noise", sigma="0.3", clamp="false", seed="4")
    assert isinstance(d, defenses.DataDefense) and d.level == "data"
    assert d.config == image_noise.Config(sigma=0.3, clamp=False, seed=4) and d.seed == 4
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(2, dtype=torch.long)
    ctx = ClientContext(round=2, client=1)
    out = d(x, y, ctx)
    assert torch.equal(out, image_noise.ImageNoise(0.3, seed=4, clamp=False)(x, y, ctx))
    assert not torch.equal(out, d(x, y, ClientContext(round=2, client=0)))
    assert defenses.options("image_noise") == {"sigma": 0.05, "clamp": True, "seed": 0}


def test_shadow_builds_from_string_options_one_defense_per_client():
    gan = load_gan("gan-chest_xray-32")
    d = defenses.build_data(
        "shadow",
        prior=gan,
        latent_epochs="7",
        finetune_lrs="1e-3, 2e-3",
        cam_layer="none",
        schedule="fixed",  # a noise-map option, given flat
        equalize="false",
        seed="3",
    )
    cfg = d.config
    assert isinstance(cfg, ShadowConfig) and cfg.latent_epochs == 7 and cfg.seed == 3
    assert cfg.finetune_lrs == (1e-3, 2e-3) and cfg.cam_layer is None
    assert cfg.noise.schedule == "fixed" and cfg.equalize is False
    first, second = d.for_client(0), d.for_client(1)
    assert isinstance(first, ShadowDefense) and (first.client, second.client) == (0, 1)
    assert d.for_client(0) is first and first.config is cfg
    assert "schedule" in defenses.options("shadow") and "prior" not in defenses.options("shadow")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: defenses.build_data("blur"), "data-level defenses: shadow, image_noise"),
        (lambda: defenses.build("shadow"), "data-level defense; build it with .*build_data"),
        (lambda: defenses.build_data("pruning"), "gradient-level defense; build it with"),
        (lambda: defenses.build_data("shadow", latent_epochs=3), "needs prior="),
        (lambda: defenses.build_data("image_noise", sigma="lots"), "sigma='lots'.*valid float"),
        (lambda: defenses.build_data("image_noise", sigma="-1"), "sigma must be"),
        (lambda: defenses.build_data("image_noise", sd=1), "valid options: sigma, clamp, seed"),
        (
            lambda: defenses.build_data("shadow", prior="gan-chest_xray-32", wobble=1),
            "no option wobble; valid options: latent_lr, .*schedule",
        ),
        (
            lambda: defenses.build_data("shadow", prior="gan-chest_xray-32", schedule="up"),
            "unknown schedule 'up'",
        ),
    ],
)
def test_data_level_errors_are_one_line(call, message):
    with pytest.raises(GradInvError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
