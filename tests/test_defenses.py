"""Gradient-level defenses of the survey (gia_survey.txt, Sec. IV): exact transforms,
noise statistics, the CLI-facing registry, and one check that a defense hurts an attack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradinv import defenses
from gradinv.case import Case
from gradinv.defenses import noise, pruning, quantization
from gradinv.errors import GradInvError
from gradinv.fl import observe
from gradinv.matching import GradientMatcher
from gradinv.models import build as build_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(6, 1, 5, 5), (6,), (10, 37), (10,), (3, 2, 4)]


def _grads(seed: int = 0, dtype=torch.float32, device="cpu") -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g, dtype=torch.float64).to(device, dtype) for s in SHAPES)


# -- pruning ---------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [0, 1, 10, 29, 30, 60, 99, 100])
def test_pruning_zeroes_exactly_the_smallest_percent_of_each_tensor(percent):
    grads = _grads(1)
    out = pruning.apply(grads, pruning.Config(percent=percent))
    for g, o in zip(grads, out, strict=True):
        n = g.numel()
        k = percent * n // 100  # floor(p n / 100), in integer arithmetic
        order = np.argsort(g.abs().reshape(-1).numpy(), kind="stable")
        pruned, kept = order[:k], order[k:]
        flat_o, flat_g = o.reshape(-1), g.reshape(-1)
        assert int((flat_o == 0).sum()) == k
        assert torch.all(flat_o[torch.from_numpy(pruned)] == 0)
        assert torch.equal(flat_o[torch.from_numpy(kept)], flat_g[torch.from_numpy(kept)])


def test_pruning_breaks_ties_by_flat_index():
    g = torch.full((4, 5), -0.25)
    (out,) = pruning.apply((g,), pruning.Config(percent=30))
    expected = g.clone().reshape(-1)
    expected[:6] = 0
    assert torch.equal(out.reshape(-1), expected)


def test_pruning_count_is_within_one_of_the_numpy_percentile_rule():
    # DLG-style reference code: thresh = np.percentile(|g|, p); g[|g| < thresh] = 0
    for seed, g in enumerate(_grads(2)):
        for p in (1, 10, 20, 30, 45, 60):
            a = g.abs().reshape(-1).numpy()
            ref = int((a < np.percentile(a, p)).sum())
            ours = int((pruning.apply((g,), pruning.Config(percent=p))[0] == 0).sum())
            assert ours <= ref <= ours + 1, (seed, p, ours, ref)


def test_global_pruning_uses_one_threshold_for_all_tensors():
    grads = list(_grads(3))
    grads[1] = grads[1] * 1e-3  # a layer of tiny gradients is pruned entirely
    out = pruning.apply(tuple(grads), pruning.Config(percent=40, scope="global"))
    total = sum(g.numel() for g in grads)
    zero = torch.cat([(o == 0).reshape(-1) for o in out])
    original = torch.cat([g.abs().reshape(-1) for g in grads])
    assert int(zero.sum()) == 40 * total // 100
    assert original[zero].max() <= original[~zero].min()
    assert torch.all(out[1] == 0)
    for g, o in zip(grads, out, strict=True):
        assert torch.equal(o[o != 0], g[o != 0])


def test_pruning_rejects_percent_outside_0_100():
    with pytest.raises(GradInvError, match="percent"):
        pruning.Config(percent=120)


# -- quantization ----------------------------------------------------------------------


@pytest.mark.parametrize("bits,dtype", [(8, torch.int8), (16, torch.int16), (4, torch.int8)])
def test_quantize_codes_are_round_to_nearest_within_int_range(bits, dtype):
    g = torch.randn(4000, generator=torch.Generator().manual_seed(4)) * 3e-3
    q, scale = quantization.quantize(g, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == dtype and q.shape == g.shape
    assert int(q.abs().max()) == qmax  # the largest entry maps to the end of the range
    assert float(scale) == pytest.approx(float(g.abs().max()) / qmax, rel=1e-6)
    err = (g.double() - q.double() * scale.double()).abs()
    assert float(err.max()) <= float(scale) / 2 * (1 + 1e-9)
    # apply() returns exactly the server-side dequantization of those codes
    (out,) = quantization.apply((g,), quantization.Config(bits=(bits,)))
    assert torch.equal(out, quantization.dequantize(q, scale))


def test_int16_quantization_error_is_about_258_times_smaller_than_int8():
    g = torch.randn(100_000, generator=torch.Generator().manual_seed(5))
    rmse = {}
    for b in (8, 16):
        (out,) = quantization.apply((g,), quantization.Config(bits=(b,)))
        rmse[b] = float((out.double() - g.double()).square().mean().sqrt())
    # same max|g|, so the error ratio is the scale ratio (2^15 - 1) / (2^7 - 1) = 258.0
    assert 240 < rmse[8] / rmse[16] < 276


def test_quantization_of_an_all_zero_tensor_is_zero_without_nan():
    q, scale = quantization.quantize(torch.zeros(3, 3), 8)
    assert float(scale) == 0.0 and torch.equal(q, torch.zeros(3, 3, dtype=torch.int8))
    out = quantization.apply((torch.zeros(5), torch.ones(2, 2)))
    assert torch.equal(out[0], torch.zeros(5)) and torch.isfinite(out[1]).all()


def test_quantization_alternates_int8_and_int16_over_layers():
    model = build_model("lenet", 1, 10, 16)
    shapes = [p.shape for p in model.parameters()]
    # conv1 (w, b), conv2, conv3, fc: a 1-D bias shares its weight's bit width
    assert quantization.layer_bits(shapes, (8, 16)) == [8, 8, 16, 16, 8, 8, 16, 16]
    grads = tuple(torch.randn(s) for s in shapes)
    codes = quantization.apply(grads, quantization.Config(dequantize=False))
    assert [int(c.abs().max()) for c in codes] == [127, 127, 32767, 32767] * 2
    assert all(torch.equal(c, c.round()) for c in codes)


def test_quantization_rejects_unsupported_bits():
    with pytest.raises(GradInvError, match="bits"):
        quantization.Config(bits=(8, 32))


# -- noise -----------------------------------------------------------------------------


@pytest.mark.parametrize("draws", noise.DRAWS)
@pytest.mark.parametrize("kind,kurtosis", [("gaussian", 3.0), ("laplacian", 6.0)])
@pytest.mark.parametrize("variance", [1e-1, 1e-3])
def test_noise_has_zero_mean_requested_variance_and_its_kurtosis(kind, kurtosis, variance, draws):
    grads = (torch.zeros(100, 500), torch.zeros(50_000))  # 1e5 entries
    gen = torch.Generator().manual_seed(6)
    out = noise.apply(grads, noise.Config(kind=kind, variance=variance, draws=draws), gen)
    z = torch.cat([o.reshape(-1) for o in out]).double()
    n = z.numel()
    assert abs(float(z.mean())) < 4 * math.sqrt(variance / n)
    assert float(z.var()) == pytest.approx(variance, rel=0.03)
    centred = z - z.mean()
    k = float(centred.pow(4).mean() / centred.pow(2).mean() ** 2)
    assert k == pytest.approx(kurtosis, abs=0.1 if kind == "gaussian" else 0.6)


def test_common_draws_pair_the_two_kinds_of_one_seed():
    """Gaussian and Laplacian noise from the same uniforms: comonotone, so a comparison
    of the kinds at one seed is paired; always finite."""
    draw = {
        kind: noise.sample(20_000, noise.Config(kind, 1e-2, "common"), torch.device("cpu"),
                           torch.Generator().manual_seed(4))
        for kind in noise.KINDS
    }  # fmt: skip
    g, lap = draw["gaussian"], draw["laplacian"]
    assert torch.isfinite(g).all() and torch.isfinite(lap).all()
    order = torch.argsort(g)
    assert (lap[order].diff() >= 0).all()  # the same ranks: one increasing map of the other
    with pytest.raises(GradInvError, match="draws"):
        noise.Config(draws="paired")


def test_noise_is_added_to_the_gradient():
    grads = _grads(7)
    gen = torch.Generator().manual_seed(8)
    out = noise.apply(grads, noise.Config(variance=1e-2), gen)
    ref = torch.randn(sum(g.numel() for g in grads), generator=torch.Generator().manual_seed(8))
    diff = torch.cat([(o - g).reshape(-1) for o, g in zip(out, grads, strict=True)])
    assert torch.allclose(diff, ref * 0.1, atol=1e-6)


def test_defense_noise_is_seeded_and_advances_between_calls():
    grads = _grads(9)
    a, b = defenses.build("dp_laplacian", seed=3), defenses.build("dp_laplacian", seed=3)
    first = a(grads)
    assert all(torch.equal(x, y) for x, y in zip(first, b(grads), strict=True))
    second = a(grads)
    assert not torch.equal(first[0], second[0])
    a.reset()
    assert all(torch.equal(x, y) for x, y in zip(first, a(grads), strict=True))
    other = defenses.build("dp_laplacian", seed=4)(grads)
    assert not torch.equal(first[0], other[0])


# -- all defenses: the common contract ----------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
# soteria and censor need a model and a batch: their contract is in test_defenses_data_aware.py
@pytest.mark.parametrize(
    "name", [n for n in [*defenses.DEFENSES, "none"] if n not in ("soteria", "censor")]
)
def test_defenses_preserve_shapes_dtypes_devices_and_inputs(name, dtype, device):
    grads = _grads(10, dtype, device)
    before = [g.clone() for g in grads]
    weights = tuple(torch.randn_like(g) for g in grads)  # OUTPOST reads the layer weights
    out = defenses.build(name)(grads, defenses.ClientContext(parameters=weights))
    assert isinstance(out, tuple) and len(out) == len(grads)
    for g, o, b in zip(grads, out, before, strict=True):
        assert o.shape == g.shape and o.dtype == g.dtype and o.device == g.device
        assert torch.isfinite(o).all()
        assert torch.equal(g, b)  # the client's own gradient is not modified in place


def test_none_defense_is_the_identity():
    grads = _grads(11)
    d = defenses.build("none")
    assert d.name == "none" and d.config is None
    assert all(o is g for o, g in zip(d(grads), grads, strict=True))


def test_registry_parses_cli_strings_to_config_field_types():
    d = defenses.build("dp_gaussian", variance="1e-2", seed="7")
    assert d.config == noise.Config(kind="gaussian", variance=0.01) and d.seed == 7
    assert defenses.build("DP-Laplacian").config.kind == "laplacian"
    p = defenses.build("pruning", percent="60", scope="global")
    assert p.config == pruning.Config(percent=60.0, scope="global")
    assert isinstance(p.config.percent, float)
    q = defenses.build("quantization", bits="8,16,16", dequantize="false")
    assert q.config == quantization.Config(bits=(8, 16, 16), dequantize=False)
    assert defenses.build("quantization", bits="(16)").config.bits == (16,)
    assert defenses.build("quantization", bits=[8, 16], dequantize=True).config.dequantize
    assert defenses.options("dp_gaussian") == {"variance": 0.1, "draws": "direct", "seed": 0}


@pytest.mark.parametrize(
    "name,opts,message",
    [
        (
            "blur",
            {},
            "dp_gaussian, dp_laplacian, pruning, quantization, gc, dp_clip, outpost, soteria, censor, none",
        ),
        ("pruning", {"ratio": "0.3"}, "valid options: percent, scope, seed"),
        ("dp_gaussian", {"kind": "laplacian"}, "valid options: variance, draws, seed"),
        ("dp_gaussian", {"variance": "lots"}, "not a valid float"),
        ("dp_gaussian", {"variance": "-1"}, "variance"),
        ("quantization", {"dequantize": "maybe"}, "not a valid bool"),
        ("quantization", {"bits": "8,x"}, "bits='8,x'"),
        ("pruning", {"scope": "model"}, "layer"),
        ("none", {"variance": "1"}, "no options"),
    ],
)
def test_registry_rejects_bad_names_and_options_with_the_valid_ones(name, opts, message):
    with pytest.raises(GradInvError, match=message.replace("(", r"\(")):
        defenses.build(name, **opts)


def test_paper_defaults():
    assert noise.Config().variance == 1e-1
    assert pruning.Config() == pruning.Config(percent=30.0, scope="layer")
    assert quantization.Config() == quantization.Config(bits=(8, 16), dequantize=True)


# -- a defense makes an attack worse ----------------------------------------------------


def _dlg_psnr(case: Case, defense, iterations: int = 200) -> float:
    """Gradient matching (survey eq. 4-5, L2, oracle label) with Adam; PSNR in dB."""
    observed = observe(case, defense, oracle_labels=True)
    matcher = GradientMatcher(case.model, observed, distance="l2")
    x = torch.rand((1, *case.images.shape), generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    for _ in range(iterations):
        result = matcher(x, observed.labels[None])
        opt.zero_grad()
        x.grad = result.grad_x
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    mse = float((x.detach()[0] - case.images).square().mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def test_gaussian_noise_of_variance_1e_1_defeats_gradient_matching():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    image = (0.5 + 0.4 * torch.sin(3 * xx + 1) * torch.cos(2 * yy)).clamp(0, 1)[None, None]
    case = Case(model, image, torch.tensor([3]), num_classes=10)
    clean = _dlg_psnr(case, None)
    noisy = _dlg_psnr(case, defenses.build("dp_gaussian", variance=1e-1, seed=0))
    assert clean > 30.0, clean
    assert noisy < 12.0, noisy


def test_noise_to_signal_is_noise_norm_over_gradient_norm():
    from gradinv.defenses.noise import expected_noise_to_signal, noise_to_signal

    gen = torch.Generator().manual_seed(0)
    clean = (torch.randn(100, 50, generator=gen), torch.randn(300, generator=gen))
    noisy = tuple(c + 0.1 * torch.randn(c.shape, generator=gen) for c in clean)
    ratio = noise_to_signal(clean, noisy)
    norm = math.sqrt(sum(float(c.square().sum()) for c in clean))
    assert ratio == pytest.approx(0.1 * math.sqrt(5300) / norm, rel=0.05)
    assert expected_noise_to_signal(clean, 0.01) == pytest.approx(0.1 * math.sqrt(5300) / norm)
