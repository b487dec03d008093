"""Shadow defense noise maps (shadow_defense.txt eqs. 8-18) and Grad-CAM++ foreground."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from gradinv.defenses.shadow import (
    Config,
    absolute_noise,
    alpha_cam,
    bounding_box,
    cam_reduce,
    cam_reduce_relative,
    equalized_noise,
    error_map,
    foreground_map,
    foreground_mask,
    grad_cam_pp,
    histogram_equalize,
    momentum,
    noise_map,
    noise_scale,
    relative_noise,
    sharpen,
)
from gradinv.errors import GradInvError
from gradinv.models import build


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_config_holds_paper_values():
    c = Config()
    assert (c.cam_top, c.alpha_noise, c.alpha_n, c.gray_levels) == (0.3, 0.9, 0.19, 256)
    assert (c.alpha_cam_min, c.alpha_cam_max) == (0.1, 0.5)
    assert c.schedule == "increase"
    with pytest.raises(GradInvError):
        Config(alpha_cam_min=0.5, alpha_cam_max=0.1)


def test_error_map_is_channel_summed_squared_error():
    x = torch.randn(2, 3, 5, 6, generator=_gen())
    xs = torch.randn(2, 3, 5, 6, generator=_gen(1))
    m = error_map(x, xs)
    assert m.shape == (2, 1, 5, 6)
    torch.testing.assert_close(m, ((x - xs) ** 2).sum(1, keepdim=True))


def test_relative_noise_is_inverse_softmax_of_error():
    x = torch.randn(2, 3, 4, 4, generator=_gen())
    xs = x + 0.5 * torch.randn(2, 3, 4, 4, generator=_gen(1))
    t = 0.7
    n1 = relative_noise(x, xs, t)
    m = error_map(x, xs)
    ref = 1.0 / torch.softmax((m / t).flatten(-2), -1).view_as(m)
    torch.testing.assert_close(n1, ref, rtol=1e-5, atol=0)
    # smaller reconstruction error -> stronger noise (strictly decreasing in M)
    order_m = m[0].flatten().argsort()
    assert torch.all(n1[0].flatten()[order_m].diff() <= 0)


def test_relative_noise_does_not_overflow_for_large_errors():
    x = torch.zeros(1, 1, 4, 4)
    xs = torch.zeros(1, 1, 4, 4)
    xs[0, 0, 0, 0] = 100.0  # M = 1e4, exp(1e4) overflows float32
    n1 = relative_noise(x, xs, 1.0)
    assert torch.isfinite(n1).all()


def test_histogram_equalization_is_monotone_and_flattens_a_skewed_histogram():
    u = torch.rand(3, 1, 64, 64, generator=_gen())
    skewed = u**2  # density ~ 1/sqrt(v): most mass at small values
    g = histogram_equalize(skewed, 256)
    assert g.shape == skewed.shape and g.dtype == skewed.dtype
    v, order = skewed.flatten(-2).sort(-1)
    g_sorted = g.flatten(-2).gather(-1, order)
    assert torch.all(g_sorted.diff(dim=-1) >= 0)  # monotone non-decreasing
    assert torch.all((g > 0) & (g <= 1))
    n = v.shape[-1]
    uniform = torch.arange(1, n + 1) / n
    # equalised values sit on uniform quantiles, up to one gray level's mass (<= 1/16 here)
    err_eq = (g_sorted - uniform).abs().amax()
    err_raw = (v / v.amax(-1, keepdim=True) - uniform).abs().amax()
    assert err_eq < 0.07 and err_raw > 0.2
    # histogram of the output is flat: each of 8 bins of (0, 1] holds ~1/8 of the pixels
    hist = torch.histc(g[0], bins=8, min=0.0, max=1.0) / n
    assert (hist - 1 / 8).abs().max() < 0.07


def test_histogram_equalization_follows_eq13_cdf_and_constant_map():
    n = torch.tensor([[0.0, 0.0, 1.0, 3.0]]).view(1, 2, 2)
    g = histogram_equalize(n, 4)  # levels 0, 0, 1, 3 -> CDF 2/4, 2/4, 3/4, 4/4
    torch.testing.assert_close(g.flatten(), torch.tensor([0.5, 0.5, 0.75, 1.0]))
    assert torch.equal(histogram_equalize(torch.full((2, 3, 3), 4.0)), torch.ones(2, 3, 3))


def test_sharpening_with_lower_temperature_raises_peak_and_keeps_unit_sum():
    n = torch.rand(2, 1, 8, 8, generator=_gen())
    hot, cold = sharpen(n, 1.0), sharpen(n, 0.1)
    for s in (hot, cold):
        torch.testing.assert_close(s.flatten(-2).sum(-1), torch.ones(2, 1))
    ratio = lambda s: s.flatten(-2).amax(-1) / s.flatten(-2).mean(-1)  # noqa: E731
    assert torch.all(ratio(cold) > ratio(hot))
    torch.testing.assert_close(hot, torch.softmax(n.flatten(-2), -1).view_as(n))


def test_equalized_noise_is_softmax_of_cdf():
    n1 = torch.rand(2, 1, 6, 6, generator=_gen()) ** 3
    n2 = equalized_noise(n1, 256)
    ref = torch.softmax(histogram_equalize(n1, 256).flatten(-2), -1).view_as(n1)
    torch.testing.assert_close(n2, ref)
    # values of G in (0, 1] -> N^2 within a factor e of its minimum
    assert (n2.flatten(-2).amax(-1) / n2.flatten(-2).amin(-1)).max() <= math.e + 1e-4


def test_momentum_is_convex_combination_and_starts_with_first_map():
    a = torch.rand(2, 1, 4, 4, generator=_gen())
    b = torch.rand(2, 1, 4, 4, generator=_gen(1))
    assert momentum(None, b, 0.9) is b
    torch.testing.assert_close(momentum(a, b, 0.9), 0.9 * a + 0.1 * b)
    with pytest.raises(GradInvError):
        momentum(a, b[:1], 0.9)


def test_foreground_mask_keeps_top_30_percent_per_image():
    cam = torch.rand(3, 1, 10, 10, generator=_gen())
    mask = foreground_mask(cam, 0.3)
    assert mask.shape == cam.shape and mask.dtype == torch.bool
    assert torch.all(mask.flatten(-2).sum(-1) == 30)
    inside = torch.where(mask, cam, torch.inf).flatten(-2).amin(-1)
    outside = torch.where(mask, -torch.inf, cam).flatten(-2).amax(-1)
    assert torch.all(inside >= outside)


def test_foreground_map_is_softmax_over_foreground_and_zero_outside():
    cam = torch.rand(2, 1, 10, 10, generator=_gen())
    l_cam = foreground_map(cam, 0.3, 0.5)
    mask = foreground_mask(cam, 0.3)
    assert torch.all(l_cam[~mask] == 0) and torch.all(l_cam[mask] > 0)
    torch.testing.assert_close(l_cam.flatten(-2).sum(-1), torch.ones(2, 1))
    vals = cam[0][mask[0]]
    torch.testing.assert_close(l_cam[0][mask[0]], torch.softmax(vals / 0.5, 0))


def test_cam_reduction_lowers_only_foreground_and_keeps_background_bits():
    n3 = torch.softmax(torch.randn(2, 1 * 64, generator=_gen()), -1).view(2, 1, 8, 8)
    cam = torch.rand(2, 1, 8, 8, generator=_gen(1))
    l_cam = foreground_map(cam, 0.3)
    n4 = cam_reduce(n3, l_cam, 0.3)
    fg = l_cam > 0
    assert torch.equal(n4[~fg], n3[~fg])  # bit-identical background
    assert torch.all(n4[fg] < n3[fg])
    torch.testing.assert_close(n4[fg], n3[fg] - 0.3 * l_cam[fg])


def test_cam_reduction_clipped_at_zero_never_flips_sign():
    n3 = torch.full((1, 1, 4, 4), 0.01)
    l_cam = torch.zeros(1, 1, 4, 4)
    l_cam[0, 0, :2, :2] = torch.tensor([[0.1, 0.01], [0.001, 0.0]])
    n4 = cam_reduce(n3, l_cam, 0.5, clip_at_zero=True)
    assert torch.all(n4 >= 0) and torch.all(n4 <= n3)
    torch.testing.assert_close(n4[0, 0, :2, :2], torch.tensor([[0.0, 0.005], [0.0095, 0.01]]))
    assert torch.equal(n4[l_cam == 0], n3[l_cam == 0])
    assert cam_reduce(n3, l_cam, 0.5)[0, 0, 0, 0] < 0  # the literal eq. 15 overshoots


@pytest.mark.parametrize("mode", ["relative", "code"])
def test_foreground_noise_is_reduced_never_flipped_nor_above_the_background(mode):
    # a flat N^3 (what equalisation aims at) and a CAM with a clear foreground
    gen = _gen(3)
    n3 = torch.full((3, 1, 16, 16), 1.0 / 256)
    cam = torch.rand(3, 1, 16, 16, generator=gen)
    x = torch.rand(3, 1, 16, 16, generator=gen)
    fg = foreground_mask(cam, 0.3)
    for r in (1, 34, 50, 100):  # alpha_CAM 0.1 ... 0.5 (>= 1/3 from round 34 of 100)
        cfg = Config(cam_reduction_mode=mode)
        maps = noise_map(x, x, cam, r, 100, n3, dataclasses.replace(cfg, alpha_noise=1.0))
        assert torch.all(maps.n4 * n3 >= 0)  # no sign flip
        assert torch.all(maps.n4.abs() <= n3.abs())  # only ever lowered
        for b in range(3):  # the foreground's noise never exceeds the background's
            assert maps.n[b][fg[b]].abs().max() <= maps.n[b][~fg[b]].abs().min()


def test_the_literal_reading_of_eq15_flips_the_foreground_once_alpha_reaches_a_third():
    n3 = torch.full((1, 1, 16, 16), 1.0 / 256)
    cam = torch.rand(1, 1, 16, 16, generator=_gen(4))
    l_cam = foreground_map(cam, 0.3, 1.0)  # softmax over the foreground only, T = 1
    flipped = cam_reduce(n3, l_cam, 0.34) < 0
    assert flipped.float().mean() > 0.2  # the defect the default reading fixes


def test_the_codes_cam_map_is_one_softmax_over_the_batch_and_nearly_uniform():
    cam = torch.rand(4, 1, 8, 8, generator=_gen(5))
    l_cam = foreground_map(cam, 0.3, 20.0, whole=True)
    torch.testing.assert_close(l_cam.sum(), torch.tensor(1.0))
    assert l_cam.max() / l_cam.min() <= math.exp(1 / 20) + 1e-6  # background mass exp(0)


def test_absolute_noise_in_the_codes_normalised_units_peaks_at_max_x_minus_mean():
    x = torch.rand(2, 3, 6, 6, generator=_gen(6))
    n4 = torch.rand(2, 1, 6, 6, generator=_gen(7))
    n = absolute_noise(n4, x, 0.25, norm_mean=0.5329)
    peak = (x.flatten(1).amax(1) - 0.5329) * 0.25
    torch.testing.assert_close(n.flatten(1).amax(1), peak)


def test_alpha_cam_follows_eq16():
    assert alpha_cam(0, 100) == 0.1
    assert alpha_cam(30, 100) == pytest.approx(0.3)
    assert alpha_cam(80, 100) == 0.5


def test_noise_scale_follows_eq18_and_schedules_are_monotone():
    for r in (0, 25, 50, 100):
        assert noise_scale(r, 100) == pytest.approx(0.19 * math.exp(r / 100), rel=1e-12)
    assert noise_scale(100, 100) == pytest.approx(0.19 * math.e)
    inc = [noise_scale(r, 20, schedule="increase") for r in range(21)]
    dec = [noise_scale(r, 20, schedule="decrease") for r in range(21)]
    fix = [noise_scale(r, 20, schedule="fixed") for r in range(21)]
    assert all(b > a for a, b in zip(inc, inc[1:], strict=False))
    assert all(b < a for a, b in zip(dec, dec[1:], strict=False))
    assert fix == [0.19] * 21
    assert dec == pytest.approx(inc[::-1])
    with pytest.raises(GradInvError):
        noise_scale(5, 4)


def test_absolute_noise_follows_eq17_per_image():
    x = torch.randn(3, 3, 6, 6, generator=_gen())
    x[2] = -x[2].abs() - 0.1  # max(x) < 0: eq. 17's absolute value keeps the sign of N^4
    n4 = torch.rand(3, 1, 6, 6, generator=_gen(1))
    n = absolute_noise(n4, x, 0.25)
    scale = (x.flatten(1).amax(1) / n4.flatten(1).amax(1) * 0.25).abs()
    torch.testing.assert_close(n, scale.view(3, 1, 1, 1) * n4)
    torch.testing.assert_close(n.flatten(1).amax(1), (x.flatten(1).amax(1) * 0.25).abs())


def test_noise_map_composes_the_steps_and_preserves_shape_device_dtype():
    x = torch.randn(2, 3, 16, 16, generator=_gen())
    xs = x + 0.3 * torch.randn(2, 3, 16, 16, generator=_gen(1))
    cam = torch.rand(2, 1, 16, 16, generator=_gen(2))
    cfg = Config()
    first = noise_map(x, xs, cam, 10, 100, None, cfg)
    second = noise_map(x, xs * 0.9, cam, 11, 100, first.n3, cfg)
    for t in (first.n1, first.n2, first.n3, first.n4, first.l_cam, first.n):
        assert t.shape == (2, 1, 16, 16) and t.device == x.device and t.dtype == x.dtype
    assert torch.equal(first.n3, first.n2)
    torch.testing.assert_close(second.n3, 0.9 * first.n3 + 0.1 * second.n2)
    assert second.alpha_cam == pytest.approx(0.11)
    assert second.w_n == pytest.approx(0.19 * math.exp(0.11))
    # steps agree with the individual functions
    n1 = relative_noise(x, xs, cfg.noise_temperature)
    torch.testing.assert_close(first.n2, equalized_noise(n1, 256, cfg.equalize_temperature))
    reduced = cam_reduce_relative(first.n3, first.l_cam, first.alpha_cam)
    torch.testing.assert_close(first.n4, reduced)
    torch.testing.assert_close(first.n, absolute_noise(first.n4, x, first.w_n, norm_mean=0.5329))
    assert (x + first.n).shape == x.shape
    no_cam = noise_map(x, xs, None, 10, 100, None, cfg)
    assert torch.equal(no_cam.n4, no_cam.n3) and torch.all(no_cam.l_cam == 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_noise_map_stays_on_gpu():
    x = torch.randn(2, 3, 16, 16, device="cuda")
    out = noise_map(x, x + 0.1, torch.rand(2, 1, 16, 16, device="cuda"), 3, 10)
    assert all(t.device.type == "cuda" for t in (out.n1, out.n2, out.n3, out.n4, out.n))


def test_bounding_box_covers_mask():
    mask = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    mask[0, 0, 1, 2] = mask[0, 0, 3, 4] = True
    box = bounding_box(mask)
    assert box[0, 0].sum() == 9 and box[0, 0, 1:4, 2:5].all()
    assert not box[1].any()


class _QuadrantNet(nn.Module):
    """Hand-set evidence model: class 0 = mean of relu(BN(x)), class 1 = minus it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.conv.bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


def _quadrant_images(b: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    x = 0.1 * torch.rand(b, 1, size, size, generator=_gen())
    quad = torch.zeros(b, 1, size, size, dtype=torch.bool)
    h = size // 2
    for i in range(b):  # evidence in a different quadrant per image
        r0, c0 = (i // 2 % 2) * h, (i % 2) * h
        quad[i, 0, r0 : r0 + h, c0 : c0 + h] = True
    x = x + quad * (1.0 + torch.rand(b, 1, size, size, generator=_gen(1)))
    return x, quad


@pytest.mark.parametrize("train_mode", [False, True])
def test_grad_cam_pp_foreground_lies_in_evidence_quadrant_and_model_is_untouched(train_mode):
    torch.manual_seed(0)
    net = _QuadrantNet().train(train_mode)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.grad.clone() for p in net.parameters()]
    x, quad = _quadrant_images()
    cam = grad_cam_pp(net, x, target=0, layer="act")
    assert cam.shape == (4, 1, 16, 16) and cam.min() >= 0 and cam.max() <= 1
    mask = foreground_mask(cam, 0.3)
    share = (mask & quad).flatten(1).sum(1) / mask.flatten(1).sum(1)
    assert torch.all(share > 0.7), share
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params + BN buffers
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters(), strict=True))
    assert net.training == train_mode


def test_grad_cam_pp_matches_formula_on_tiny_net():
    net = _QuadrantNet().eval()
    x, _ = _quadrant_images(2, 8)
    cam = grad_cam_pp(net, x, target=torch.tensor([0, 0]), layer="act")
    a = net.act(net.bn(net.conv(x))).detach().requires_grad_(True)
    score = net.fc(net.pool(a).flatten(1))[:, 0].sum()
    (g,) = torch.autograd.grad(score, a)
    alpha = g**2 / (2 * g**2 + a.detach().sum((2, 3), keepdim=True) * g**3)
    alpha = torch.where(g != 0, alpha, 0.0)
    w = (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)
    ref = (w * a.detach()).sum(1, keepdim=True).clamp_min(0)
    lo, hi = ref.amin((2, 3), keepdim=True), ref.amax((2, 3), keepdim=True)
    torch.testing.assert_close(cam, (ref - lo) / (hi - lo))


def test_grad_cam_pp_on_resnet18_default_layer():
    torch.manual_seed(0)
    net = build("resnet18", 1, 2, 16).eval()
    x = torch.randn(2, 1, 16, 16, generator=_gen())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():  # works under no_grad too
        cam = grad_cam_pp(net, x)
    assert cam.shape == (2, 1, 16, 16) and torch.isfinite(cam).all()
    assert cam.min() >= 0 and cam.max() <= 1
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
