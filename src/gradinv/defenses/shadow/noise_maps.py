"""Noise maps of the shadow defense (shadow_defense.txt, Sec. 4.3 "Noise generation",
eqs. 8-18; hyper-parameters from Sec. 5.1).

The client compares its images ``x`` with the shadow model's reconstructions ``x_s`` and
turns the error map into a pixel-wise additive noise ``N`` that is strongest where the
shadow attacker reconstructs *best*, flattened by histogram equalisation, smoothed over
rounds by momentum, weakened inside the task's foreground (Grad-CAM++) and scaled by a
per-round amplitude that grows as training goes on::

    M   = ||x - x_s||_2^2 per pixel                                 (Sec. 4.3)
    N^1 = 1 / softmax_HW(M / T)                                     (eqs. 10-11)
    N^2 = softmax_HW(G(N^1)),  G = histogram-equalisation CDF       (eqs. 12-13)
    N^3 = a_noise N^3_prev + (1 - a_noise) N^2                      (eq. 14)
    N^4 = N^3 - a_CAM sign(N^3) L_CAM,  a_CAM = clip(r/R, min, max) (eqs. 15-16)
    L_CAM = sigma(M_CAM * L^c / T),  M_CAM = top-30 % of L^c        (eqs. 8-9)
    N   = |max(x) / max(N^4) w_N| N^4,  w_N = a_N exp(r / R)        (eqs. 17-18)

Text and the authors' code (``tekap404/ShadowDef``, ``defense/client/client.py``) differ in
three places, each a parameter of :class:`Config`:

* **Eq. 15, the CAM reduction** (``cam_reduction_mode``). The text says the foreground's
  noise "is reduced". The code takes ``sigma`` over every pixel of the batch at T = 20, so
  ``L_CAM`` is nearly uniform (foreground pixels ``e^(1/20)`` ~ 1.05 times the background's)
  and eq. 15 lowers the whole map by about ``a_CAM / B`` (``"code"``). Read with ``sigma``
  over the foreground alone (our earlier reading, ``"literal"``), ``a_CAM L_CAM`` exceeds
  ``N^3`` once ``a_CAM >= 1/3`` and most foreground pixels get noise of the opposite sign,
  as large as the peak: the reverse of "reduced". The default, ``"relative"`` (ours, the
  text's intent), lowers each foreground pixel in proportion to its CAM,
  ``N^4 = N^3 (1 - a_CAM L_CAM / max L_CAM)`` (at most by ``a_CAM`` <= 0.5), never flips
  a sign and leaves the background bit-identical.
* **Temperatures** (``*_temperature``): the text gives none; the code uses T = 20 in all
  three softmaxes (eqs. 8, 11, 12), the defaults here.
* **The amplitude of eq. 17** (``norm_mean``): the code works on images normalised with the
  dataset's mean and std (ChestXRay 0.5329 / 0.2534), so ``max(x)`` there is
  ``(max(x) - m) / s`` and the noise, mapped back to pixel units, peaks at
  ``|max(x) - m| w_N``, not ``max(x) w_N``: about half as large for images in ``[0, 1]``.
  ``norm_mean=None`` reads eq. 17 in pixel units.
* **Momentum** (``alpha_noise``): the text's 0.9 on the previous map (eq. 14, Sec. 5.1);
  the code's EMA keeps 0.1 of it. The default is the text's.

Every function is a pure, batched tensor transform over the last two (spatial) dims, on its
input's device. Maps keep a singleton channel dim, (B, 1, H, W), so ``x + N`` broadcasts
over the image channels. Applying ``N`` to the images and the local update is the caller's
job (Sec. 4.3 "True local training": ``X^N = x + N``).

Reconstruction notes (where the text is ambiguous) are in each function's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from gradinv.defenses.shadow.gradcam import foreground_mask, normalize01
from gradinv.errors import GradInvError

SCHEDULES = ("increase", "fixed", "decrease")
#: readings of eq. 15 (module docstring): the text's intent, the authors' code, the letter
CAM_REDUCTIONS = ("relative", "code", "literal")
#: the authors' ChestXRay normalisation (``defense/configs``): mean and std of the pixels
CODE_NORM_MEAN, CODE_NORM_STD = 0.5329, 0.2534


@dataclass(frozen=True)
class Config:
    """Noise-map hyper-parameters of the shadow defense."""

    cam_top: float = 0.3  # Sec. 5.1: T_CAM = 30 % (top pixels of Grad-CAM++)
    cam_temperature: float = 20.0  # eq. 8 T: text silent; authors' code 20
    alpha_cam_min: float = 0.1  # Sec. 5.1 says "max, min are 0.1 and 0.5": swapped, see eq. 16
    alpha_cam_max: float = 0.5  # Sec. 5.1 (0.5); min <= max is needed for eq. 16 to vary
    noise_temperature: float = 20.0  # eqs. 10-11 T: text silent; authors' code 20
    gray_levels: int = 256  # eq. 13: N_gray = 256, a = 0, b = 255 (Sec. 4.3)
    equalize_temperature: float = 20.0  # eq. 12 T: text has none (= 1); authors' code 20
    alpha_noise: float = 0.9  # Sec. 5.1: alpha_ema^noise = 0.9 (eq. 14); authors' code 0.1
    alpha_n: float = 0.19  # Sec. 5.1: alpha_N = 0.19 (eq. 18)
    schedule: str = "increase"  # eq. 18 / Sec. 5.2 Fig. 8: the paper's choice is "increase"
    equalize: bool = True  # Table 3 ablation "Equ"; the paper's method uses it
    cam_reduction: bool = True  # Table 3 ablation "CAM"; the paper's method uses it
    cam_reduction_mode: str = "relative"  # eq. 15 (module docstring): "relative", "code", "literal"
    cam_clip_at_zero: bool = False  # "literal" only: stop eq. 15 at 0 (our option)
    norm_mean: float | None = CODE_NORM_MEAN  # eq. 17 in the code's normalised units; None: [0, 1]

    def __post_init__(self) -> None:
        if not 0.0 < self.cam_top <= 1.0:
            raise GradInvError(f"cam_top must be in (0, 1], got {self.cam_top}")
        if not 0.0 <= self.alpha_cam_min <= self.alpha_cam_max:
            raise GradInvError(
                f"need 0 <= alpha_cam_min <= alpha_cam_max, got {self.alpha_cam_min}, "
                f"{self.alpha_cam_max}"
            )
        for name in ("cam_temperature", "noise_temperature", "equalize_temperature"):
            if not getattr(self, name) > 0:
                raise GradInvError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.gray_levels < 2:
            raise GradInvError(f"gray_levels must be >= 2, got {self.gray_levels}")
        if not 0.0 <= self.alpha_noise <= 1.0:
            raise GradInvError(f"alpha_noise must be in [0, 1], got {self.alpha_noise}")
        if self.cam_reduction_mode not in CAM_REDUCTIONS:
            raise GradInvError(
                f"unknown cam_reduction_mode {self.cam_reduction_mode!r}; "
                f"choose one of {CAM_REDUCTIONS}"
            )
        if self.schedule not in SCHEDULES:
            raise GradInvError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")


class NoiseMaps(NamedTuple):
    """Every intermediate of :func:`noise_map` (Fig. 5), all (B, 1, H, W) except scalars."""

    m: Tensor  # error map M
    n1: Tensor  # relative noise, eq. 10
    n2: Tensor  # equalised + softmax, eq. 12
    n3: Tensor  # momentum, eq. 14 (pass back as ``prev`` next round)
    n4: Tensor  # CAM-reduced, eq. 15
    l_cam: Tensor  # foreground activation map, eq. 8 (zeros when no CAM is given)
    alpha_cam: float  # eq. 16
    w_n: float  # eq. 18
    n: Tensor  # final noise map, eq. 17


def error_map(x: Tensor, x_shadow: Tensor) -> Tensor:
    """Sec. 4.3, ``M = { ||x^i - x_rec^i||_2^2 }_{i=1}^{H W}``: squared error per pixel,
    summed over channels. (B, C, H, W) -> (B, 1, H, W); (B, H, W) is single-channel."""
    if x.shape != x_shadow.shape:
        raise GradInvError(
            f"images and shadow reconstructions differ in shape: {tuple(x.shape)} vs "
            f"{tuple(x_shadow.shape)}"
        )
    sq = (x - x_shadow).pow(2)
    return sq.sum(1, keepdim=True) if x.dim() == 4 else sq


def sharpen(n: Tensor, temperature: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """Spatial softmax with temperature (eq. 11), per map over the last two dims::

        sigma(n / T)_i = exp(n_i / T) / sum_{j=1}^{H W} exp(n_j / T)

    With ``mask`` the softmax runs over the masked pixels only and is exactly 0 elsewhere
    (a map with an empty mask is all zeros). Each map sums to 1 for every ``T``; a lower
    ``T`` concentrates the mass on the largest entries.
    """
    if temperature <= 0:
        raise GradInvError(f"softmax temperature must be > 0, got {temperature}")
    z = (n / temperature).flatten(-2)
    if mask is not None:
        keep = mask.expand_as(n).flatten(-2)
        z = z.masked_fill(~keep, float("-inf"))
        any_kept = keep.any(-1, keepdim=True)
        z = torch.where(any_kept, z, torch.zeros_like(z))
        out = torch.where(any_kept & keep, z.softmax(-1), torch.zeros_like(z))
    else:
        out = z.softmax(-1)
    return out.view_as(n)


def relative_noise(x: Tensor, x_shadow: Tensor, temperature: float = 1.0) -> Tensor:
    """Eqs. 10-11, the initial relative noise ``N^1 = 1 / sigma(M / T)``, i.e.
    ``N^1_i = sum_j exp(M_j / T) / exp(M_i / T)``: large where the shadow model reconstructs
    well (small error ``M``), as Sec. 4.3 / Fig. 5 describe. Computed in log space
    (``logsumexp(M / T) - M_i / T``); the log is clamped below the dtype's overflow limit,
    which can only tie the very largest values. Shape as :func:`error_map`.
    """
    if temperature <= 0:
        raise GradInvError(f"noise temperature must be > 0, got {temperature}")
    z = error_map(x, x_shadow) / temperature
    log_n1 = torch.logsumexp(z.flatten(-2), -1)[..., None, None] - z
    limit = math.log(torch.finfo(log_n1.dtype).max) - 1.0
    return log_n1.clamp(max=limit).exp()


def normalize(n: Tensor) -> Tensor:
    """Per-map min-max normalisation over the last two dims to [0, 1] (a constant map -> 0).

    Used to bring ``N^1`` onto the gray-level range [a, b] before eq. 13 and ``L^c`` onto
    [0, 1]. (The "normalization" of eq. 12 itself is the softmax ``sigma``.)"""
    return normalize01(n)


def histogram_equalize(n: Tensor, bins: int = 256) -> Tensor:
    """Eq. 13, histogram equalisation per map (last two dims)::

        G(z) = (N_gray - 1) / (b - a) * sum_{i=a}^{z} p(r_i)

    with ``N_gray = bins`` gray levels, ``[a, b] = [0, bins - 1]`` (so the prefactor is 1)
    and ``p(r_i)`` the normalised histogram of the map quantised to ``bins`` equal-width
    levels between its min and max. Returns the CDF of each pixel's level, in (0, 1]:
    monotone non-decreasing in the input, and close to uniform quantiles (error at most the
    mass of one level). A constant map gives all ones. Not differentiable.
    """
    if bins < 2:
        raise GradInvError(f"histogram equalisation needs >= 2 gray levels, got {bins}")
    flat = normalize01(n).flatten(-2)
    lead, hw = flat.shape[:-1], flat.shape[-1]
    rows = flat.reshape(-1, hw)
    levels = (rows * bins).floor().clamp_(0, bins - 1).long()
    counts = torch.zeros(rows.shape[0], bins, dtype=n.dtype, device=n.device)
    counts.scatter_add_(1, levels, torch.ones_like(rows))  # integer counts: exact in any order
    cdf = counts.cumsum(1) / hw
    scale = (bins - 1) / (bins - 1 - 0)  # (N_gray - 1) / (b - a) = 1
    return (scale * cdf.gather(1, levels)).reshape(*lead, hw).view_as(n)


def equalized_noise(n1: Tensor, bins: int = 256, temperature: float = 1.0) -> Tensor:
    """Eq. 12, ``N^2 = sigma(G(N^1))``: softmax over H W of the equalised map (sums to 1)."""
    return sharpen(histogram_equalize(n1, bins), temperature)


def momentum(prev: Tensor | None, new: Tensor, beta: float) -> Tensor:
    """Eq. 14, ``N^3 = beta N^3_prev + (1 - beta) N^2``; ``N^3`` starts as the first ``N^2``
    (``prev=None``)."""
    if not 0.0 <= beta <= 1.0:
        raise GradInvError(f"momentum coefficient must be in [0, 1], got {beta}")
    if prev is None:
        return new
    if prev.shape != new.shape:
        raise GradInvError(
            f"previous noise map {tuple(prev.shape)} does not match the new one "
            f"{tuple(new.shape)}; keep client batches fixed across rounds or reset prev=None"
        )
    return beta * prev + (1.0 - beta) * new


def foreground_map(
    cam: Tensor, top: float = 0.3, temperature: float = 20.0, whole: bool = False
) -> Tensor:
    """Eqs. 8-9, ``L_CAM = sigma(M_CAM * L^c / T)`` with ``M_CAM = topk(L^c, T_CAM)``.

    By default ``sigma`` is the spatial softmax of eq. 11 taken over the foreground pixels
    only (0 outside ``M_CAM``), summing to 1 per map. ``whole=True`` is the authors' code:
    one softmax over every pixel of the batch of ``M_CAM * L^c / T`` (the background gets
    mass ``exp(0)``; the map then sums to 1 over the batch). ``cam`` is ``L^c`` in [0, 1],
    e.g. from :func:`gradinv.defenses.shadow.gradcam.grad_cam_pp`.
    """
    mask = foreground_mask(cam, top)
    if whole:
        if temperature <= 0:
            raise GradInvError(f"softmax temperature must be > 0, got {temperature}")
        z = (cam * mask / temperature).flatten()
        return z.softmax(0).reshape(cam.shape)
    return sharpen(cam, temperature, mask=mask)


def alpha_cam(round: int, rounds: int, alpha_min: float = 0.1, alpha_max: float = 0.5) -> float:
    """Eq. 16, ``alpha_CAM = min(alpha_max, max(alpha_min, r / R))``."""
    _check_round(round, rounds)
    return min(alpha_max, max(alpha_min, round / rounds))


def cam_reduce_relative(n: Tensor, l_cam: Tensor, factor: float) -> Tensor:
    """Eq. 15 as the text intends it (our reading; module docstring): each foreground pixel
    lowered in proportion to its CAM, ``N^4 = N^3 (1 - factor L_CAM / max L_CAM)`` per map;
    with ``0 <= factor <= 1`` the magnitude only falls, no sign flips, and pixels with
    ``L_CAM == 0`` (the background) are returned bit-identical."""
    if not 0.0 <= factor <= 1.0:
        raise GradInvError(f"CAM reduction factor must be in [0, 1], got {factor}")
    l_cam = l_cam.expand_as(n)
    peak = l_cam.flatten(-2).amax(-1)[..., None, None].clamp_min(torch.finfo(n.dtype).tiny)
    return torch.where(l_cam != 0, n * (1.0 - factor * l_cam / peak), n)


def cam_reduce(n: Tensor, l_cam: Tensor, factor: float, clip_at_zero: bool = False) -> Tensor:
    """Eq. 15, ``N^4 = N^3 - alpha_CAM sign(N^3) L_CAM``: moves the map towards 0 where
    ``L_CAM > 0`` (lowers it there, since ``N^3 > 0``); pixels with ``L_CAM == 0`` (the
    background) are returned bit-identical.

    Taken literally the step can overshoot 0 (then the foreground gets noise of the
    opposite sign); ``clip_at_zero=True`` stops it at 0, i.e.
    ``N^4 = sign(N^3) max(|N^3| - alpha_CAM L_CAM, 0)`` (our option; paper silent)."""
    if factor < 0:
        raise GradInvError(f"CAM reduction factor must be >= 0, got {factor}")
    l_cam = l_cam.expand_as(n)
    if clip_at_zero:
        reduced = torch.sign(n) * (n.abs() - factor * l_cam).clamp_min(0)
    else:
        reduced = n - factor * torch.sign(n) * l_cam
    return torch.where(l_cam != 0, reduced, n)


def noise_scale(
    round: int, rounds: int, alpha_n: float = 0.19, schedule: str = "increase"
) -> float:
    """Eq. 18, the per-round noise weight ``w_N`` for round ``r`` of ``R`` (0 <= r <= R):

    - ``"increase"`` (the paper's method): ``w_N = alpha_N exp(r / R)``, alpha_N .. e alpha_N;
    - ``"decrease"`` (Fig. 8): the same values in reverse order, ``alpha_N exp(1 - r / R)``;
    - ``"fixed"`` (Fig. 8): ``w_N = alpha_N`` in every round (the schedule's start value).

    The Fig. 8 variants are our reconstruction (the paper only names them).
    """
    _check_round(round, rounds)
    if schedule == "increase":
        return alpha_n * math.exp(round / rounds)
    if schedule == "decrease":
        return alpha_n * math.exp(1.0 - round / rounds)
    if schedule == "fixed":
        return alpha_n
    raise GradInvError(f"unknown noise schedule {schedule!r}; choose one of {SCHEDULES}")


def absolute_noise(
    n4: Tensor, x: Tensor, w_n: float, eps: float = 1e-12, norm_mean: float | None = None
) -> Tensor:
    """Eq. 17, ``N = |max(x) / max(N^4) * w_N| * N^4`` with the maxima per image (``x``
    over C, H, W; ``N^4`` over its map), so each image's noise peaks at ``|max(x) w_N|``
    where ``N^4`` peaks. With ``norm_mean`` ``m``, ``max(x)`` is taken in the normalised
    units of the authors' code and mapped back: the peak is ``|max(x) - m| w_N`` (module
    docstring). A map whose max is 0 is treated as max ``eps``."""
    b = x.shape[0]
    x_max = x.reshape(b, -1).amax(1) - (0.0 if norm_mean is None else norm_mean)
    n_max = n4.reshape(b, -1).amax(1)
    n_max = torch.where(n_max.abs() < eps, torch.full_like(n_max, eps), n_max)
    scale = (x_max / n_max * w_n).abs().to(n4.dtype)
    return scale.view(b, *([1] * (n4.dim() - 1))) * n4


def noise_map(
    x: Tensor,
    x_shadow: Tensor,
    cam: Tensor | None,
    round: int,
    rounds: int,
    prev: Tensor | None = None,
    config: Config = Config(),
) -> NoiseMaps:
    """Eqs. 8-18 composed: the noise ``N`` for images ``x`` (B, C, H, W) given the shadow
    model's reconstructions ``x_shadow`` (same shape), the Grad-CAM++ maps ``cam``
    (``L^c``, (B, 1, H, W) or (B, H, W) in [0, 1]; ``None`` skips eq. 15), round ``r`` of
    ``R`` and last round's ``N^3`` (``prev``; ``None`` in the first round). Returns every
    intermediate; the noisy images are ``x + result.n``.
    """
    if x.dim() != 4:
        raise GradInvError(f"noise_map expects images (B, C, H, W), got shape {tuple(x.shape)}")
    n1 = relative_noise(x, x_shadow, config.noise_temperature)
    if config.equalize:
        n2 = equalized_noise(n1, config.gray_levels, config.equalize_temperature)
    else:  # Table 3 "w/o Equ": normalise N^1 with the same softmax, no equalisation
        n2 = sharpen(normalize(n1), config.equalize_temperature)
    n3 = momentum(prev, n2, config.alpha_noise)
    a_cam = alpha_cam(round, rounds, config.alpha_cam_min, config.alpha_cam_max)
    if cam is not None and config.cam_reduction:
        cam = cam.reshape(n3.shape).to(n3.dtype)
        code = config.cam_reduction_mode == "code"
        l_cam = foreground_map(cam, config.cam_top, config.cam_temperature, whole=code)
        if config.cam_reduction_mode == "relative":
            n4 = cam_reduce_relative(n3, l_cam, a_cam)
        else:
            n4 = cam_reduce(n3, l_cam, a_cam, config.cam_clip_at_zero)
    else:
        l_cam = torch.zeros_like(n3)
        n4 = n3
    w_n = noise_scale(round, rounds, config.alpha_n, config.schedule)
    n = absolute_noise(n4, x, w_n, norm_mean=config.norm_mean)
    return NoiseMaps(error_map(x, x_shadow), n1, n2, n3, n4, l_cam, a_cam, w_n, n)


def _check_round(round: int, rounds: int) -> None:
    if rounds <= 0 or not 0 <= round <= rounds:
        raise GradInvError(f"need 0 <= round <= rounds and rounds > 0, got {round} of {rounds}")
