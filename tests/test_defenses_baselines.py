"""Baseline defenses of the shadow-defense paper (shadow_defense.txt, Sec. 2, Tables 1-2):
gradient clipping (GC), DP with clipping, OUTPOST. Exact transforms, noise statistics,
determinism, and one check per defense that it hurts an inversion attack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradinv.defenses import clipping, dp, outpost
from gradinv.defenses.clipping import global_norm
from gradinv.defenses.context import ClientContext
from gradinv.errors import GradInvError
from gradinv.experiments.common import build_case
from gradinv.fl import client_gradient

SHAPES = [(6, 1, 5, 5), (6,), (10, 37), (10,), (3, 2, 4)]


def _grads(seed: int = 0, dtype=torch.float32, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(
        (scale * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype) for s in SHAPES
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _context(grads, round: int = 0, std: float = 0.3) -> ClientContext:
    g = _gen(99)
    params = tuple(std * torch.randn(x.shape, generator=g) for x in grads)
    return ClientContext(parameters=params, round=round, rounds=100)


def _run_all(grads, seed):
    ctx = _context(grads)
    return {
        "gc_value": clipping.apply(grads, clipping.Config(0.5), _gen(seed)),
        "gc_norm": clipping.apply(grads, clipping.Config(2.0, "norm"), _gen(seed)),
        "dp": dp.apply(grads, dp.Config(1.0, 0.5), _gen(seed)),
        "outpost": outpost.apply(grads, outpost.Config(), _gen(seed), ctx),
    }


# -- common contract -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_baselines_keep_shapes_dtypes_and_are_deterministic_per_seed(dtype):
    grads = _grads(1, dtype)
    a, b, c = _run_all(grads, 0), _run_all(grads, 0), _run_all(grads, 1)
    for name in a:
        for g, x, y in zip(grads, a[name], b[name], strict=True):
            assert x.shape == g.shape and x.dtype == g.dtype and x.device == g.device
            assert torch.equal(x, y), name
    for name in ("dp", "outpost"):  # the random ones draw from the generator
        assert not all(torch.equal(x, y) for x, y in zip(a[name], c[name], strict=True))


def test_configs_reject_invalid_values():
    with pytest.raises(GradInvError):
        clipping.Config(threshold=0)
    with pytest.raises(GradInvError):
        clipping.Config(mode="l1")
    with pytest.raises(GradInvError):
        dp.Config(clip_norm=-1)
    with pytest.raises(GradInvError):
        dp.Config(noise_multiplier=float("nan"))
    with pytest.raises(GradInvError):
        outpost.Config(phi=101)
    with pytest.raises(GradInvError):
        outpost.Config(beta=-0.1)


# -- gradient clipping -----------------------------------------------------------------


def test_gc_value_bounds_every_entry_and_leaves_small_entries_bit_identical():
    grads, t = _grads(2), 0.7
    out = clipping.apply(grads, clipping.Config(threshold=t))
    for g, o in zip(grads, out, strict=True):
        small = g.abs() <= t
        assert o.abs().max() <= t
        assert torch.equal(o[small], g[small])
        assert torch.equal(o[~small], t * torch.sign(g[~small]))
        assert small.any() and (~small).any()


def test_gc_norm_rescales_to_the_threshold_above_it_and_is_identity_below():
    grads = _grads(3)
    norm = float(global_norm(grads))
    assert norm > 5.0
    out = clipping.apply(grads, clipping.Config(threshold=5.0, mode="norm"))
    assert math.isclose(float(global_norm(out)), 5.0, rel_tol=1e-6)
    for g, o in zip(grads, out, strict=True):  # a rescaling: direction unchanged
        torch.testing.assert_close(o, g * (5.0 / norm), rtol=1e-6, atol=0)
    same = clipping.apply(grads, clipping.Config(threshold=norm * 1.01, mode="norm"))
    assert all(torch.equal(g, o) for g, o in zip(grads, same, strict=True))


# -- DP with clipping ------------------------------------------------------------------


def test_dp_without_noise_is_exactly_norm_clipping():
    grads = _grads(4)
    out = dp.apply(grads, dp.Config(clip_norm=3.0, noise_multiplier=0.0), _gen())
    ref = clipping.apply(grads, clipping.Config(threshold=3.0, mode="norm"))
    assert all(torch.equal(a, b) for a, b in zip(out, ref, strict=True))


def test_dp_noise_std_is_sigma_times_clip_norm():
    grads = (torch.randn(200_000, generator=_gen(5)), torch.randn(50, 40, generator=_gen(6)))
    config = dp.Config(clip_norm=2.0, noise_multiplier=0.75)
    out = dp.apply(grads, config, _gen(7))
    clipped = clipping.clip_by_global_norm(grads, 2.0)
    residual = torch.cat([(o - c).reshape(-1) for o, c in zip(out, clipped, strict=True)])
    assert abs(float(residual.std()) / (0.75 * 2.0) - 1.0) < 0.1
    assert abs(float(residual.mean())) < 0.02


# -- OUTPOST ---------------------------------------------------------------------------


def test_outpost_probability_decays_with_the_round():
    config = outpost.Config(beta=0.125)
    assert outpost.probability(config, 0) == 1.0
    assert outpost.probability(config, 8) == 0.5
    assert outpost.probability(config, 10**7) < 1e-6


def test_outpost_is_the_identity_at_a_late_round():
    grads = _grads(8)
    ctx = _context(grads, round=10**7)  # p = 1 / (1 + 0.125e7) ~ 8e-7
    out = outpost.apply(grads, outpost.Config(), _gen(), ctx)
    assert all(torch.equal(g, o) for g, o in zip(grads, out, strict=True))


@pytest.mark.parametrize("prune_base", [0.0, 50.0, 80.0, 95.0])
def test_outpost_at_round_zero_zeroes_the_lowest_fisher_fraction_of_each_layer(prune_base):
    grads = _grads(9)
    config = outpost.Config(prune_base=prune_base, phi=40.0)
    out = outpost.apply(grads, config, _gen(), _context(grads, round=0))
    # the phi % largest g^2 over all layers together are noised, if they survive pruning
    allf = torch.cat([g.reshape(-1) ** 2 for g in grads]).numpy()
    n_hot = allf.size - math.floor((100 - config.phi) * allf.size / 100 + 1e-9)
    hot_cut = np.sort(allf)[-n_hot]
    for g, o in zip(grads, out, strict=True):
        f = (g.reshape(-1) ** 2).numpy()
        k = math.floor(prune_base * f.size / 100 + 1e-9)
        order = np.argsort(f, kind="stable")
        pruned = torch.from_numpy(order[:k])
        kept = torch.from_numpy(order[k:])
        flat_o, flat_g = o.reshape(-1), g.reshape(-1)
        assert int((flat_o == 0).sum()) == k
        assert torch.all(flat_o[pruned] == 0)
        hot = torch.from_numpy(f[order[k:]] >= hot_cut)
        kept_o, kept_g = flat_o[kept], flat_g[kept]
        assert torch.equal(kept_o[~hot], kept_g[~hot])  # kept, not noised: exact
        assert torch.all(kept_o[hot] != kept_g[hot])  # kept and hot: noised


def test_outpost_noise_std_follows_the_layer_weight_variance():
    grads = tuple(torch.randn(40_000, generator=_gen(i)) for i in range(3))
    weight_std = (0.1, 0.5, 3.0)  # variances 0.01, 0.25, 9 -> risk capped at 1
    params = tuple(
        s * torch.randn(40_000, generator=_gen(10 + i)) for i, s in enumerate(weight_std)
    )
    ctx = ClientContext(parameters=params, round=0)
    config = outpost.Config(prune_base=0.0, phi=100.0, noise_base=0.8)
    out = outpost.apply(grads, config, _gen(), ctx)
    for g, o, p in zip(grads, out, params, strict=True):
        expected = 0.8 * min(float(p.var()), 1.0)
        assert abs(float((o - g).std()) / expected - 1.0) < 0.05


def test_outpost_without_weights_raises_a_clear_error():
    grads = _grads(11)
    for ctx in (None, ClientContext(round=0)):
        with pytest.raises(GradInvError, match="OUTPOST needs the current layer weights"):
            outpost.apply(grads, outpost.Config(), _gen(), ctx)
    bad = ClientContext(parameters=tuple(torch.zeros(3) for _ in grads))
    with pytest.raises(GradInvError, match="do not match"):
        outpost.apply(grads, outpost.Config(), _gen(), bad)


def test_outpost_reads_weights_from_the_context_model():
    case = build_case("digits", "lenet", 16, 1)
    grads = client_gradient(case.model, case.images, case.labels)
    a = outpost.apply(grads, outpost.Config(), _gen(), ClientContext.from_model(case.model))
    b = outpost.apply(grads, outpost.Config(), _gen(), ClientContext(model=case.model))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# -- end to end: each defense lowers an inversion attack's PSNR ------------------------


def test_each_baseline_lowers_inverting_gradients_psnr_by_3db(ig_psnr):
    """Judged on paired per-image differences: the mean drop over four seeded images."""
    drops: dict[str, list[float]] = {"gc": [], "dp_clip": [], "outpost": []}
    for seed in range(4):
        case = build_case("digits", "lenet", 16, 1, seed)
        grads = client_gradient(case.model, case.images, case.labels)
        ctx = ClientContext.from_model(case.model, images=case.images, labels=case.labels)
        clean = ig_psnr(case, grads)  # 14.4-17.2 dB measured
        defended = {  # strong settings
            "gc": clipping.apply(grads, clipping.Config(threshold=0.01, mode="value")),
            "dp_clip": dp.apply(grads, dp.Config(clip_norm=4.0, noise_multiplier=1.0), _gen()),
            "outpost": outpost.apply(grads, outpost.Config(prune_base=90.0), _gen(), ctx),
        }
        for name, gradients in defended.items():
            drops[name].append(clean - ig_psnr(case, gradients))
    # measured mean drops: gc 8.1, dp_clip 6.9, outpost 3.6 dB (outpost per image 1.5-6.1)
    for name, d in drops.items():
        assert sum(d) / len(d) > 3.0, f"{name}: drops {[round(x, 2) for x in d]} dB"
