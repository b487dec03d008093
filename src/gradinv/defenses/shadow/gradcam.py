"""Grad-CAM++ saliency maps and the top-30 % foreground mask of the shadow defense.

Grad-CAM++ is Chattopadhyay et al., "Grad-CAM++: Generalized Gradient-based Visual
Explanations for Deep Convolutional Networks", WACV 2018. The shadow defense
(shadow_defense.txt, Sec. 4.3 "Foreground map generation", eqs. 8-9, Sec. 5.1) uses it to
find the task-dominant region ``M_CAM``: the top ``T_CAM = 30 %`` pixels of the map ``L^c``.

For an activation ``A^k`` (channel ``k``) of a chosen layer and a class score ``S^c`` with
gradients ``g^k_ij = dS^c / dA^k_ij``, Grad-CAM++ (eq. 19 of Chattopadhyay et al., with
``Y^c = exp(S^c)`` so that higher derivatives are powers of ``g``) is::

    alpha^k_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3)        (0 where g == 0)
    w^k        = sum_ij alpha^k_ij relu(g^k_ij)
    L^c        = relu(sum_k w^k A^k)

(the common factor ``exp(S^c)`` of the weights is dropped: it is positive per image and
cancels in the per-image [0, 1] normalisation). ``L^c`` is upsampled bilinearly to the input
size and min-max normalised per image.

Gradients are taken with ``torch.autograd.grad`` with respect to the hooked activation only:
the hook detaches the activation, so nothing is back-propagated into earlier layers and no
parameter ``.grad`` is touched. Module buffers (BatchNorm running statistics) are restored
after the forward pass, so the model is left exactly as it was given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradinv.errors import GradInvError


def default_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM++ hooks by default: ``layer4`` (last conv block) of a ResNet (or a
    model's ``last_block``, e.g. ResNet8's ``layer3``), else
    the last ``nn.Conv2d`` or ``nn.BatchNorm2d`` in module order (a conv's own BatchNorm when
    it has one; small convnets' ``features`` end in a ``Flatten``, whose output is 2-D)."""
    for name in ("layer4", "last_block"):  # torchvision ResNets; gradinv's ResNet8
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Module):
            return layer
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    if not convs:
        raise GradInvError("model has no nn.Conv2d layer; pass the layer for Grad-CAM++ explicitly")
    return convs[-1]


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    if layer is None:
        return default_layer(model)
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as err:
            raise GradInvError(
                f"model has no submodule {layer!r}; pass a name from model.named_modules()"
            ) from err
    return layer


def normalize01(m: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-map min-max normalisation over the last two dims to [0, 1] (constant maps -> 0)."""
    flat = m.flatten(-2)
    lo = flat.amin(-1, keepdim=True).unsqueeze(-1)
    hi = flat.amax(-1, keepdim=True).unsqueeze(-1)
    span = hi - lo
    return torch.where(span > eps, (m - lo) / span.clamp_min(eps), torch.zeros_like(m))


def grad_cam_pp(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int | None = None,
    layer: nn.Module | str | None = None,
) -> Tensor:
    """Grad-CAM++ maps ``L^c`` of ``model`` for images ``x`` (B, C, H, W): (B, 1, H, W) in [0, 1].

    ``target`` is the class per image (tensor of B ints, or one int for all); ``None`` takes
    the model's predicted class. ``layer`` is a module, a submodule name, or ``None`` for
    :func:`default_layer`; its output must be (B, K, h, w).

    The model runs in the mode it is in: in ``eval()`` mode (recommended; what we use for
    the pseudo-updated local model) each map depends on its own image only; in ``train()``
    mode BatchNorm normalises with the batch's statistics, so maps depend on the whole batch.
    Either way parameters, their ``.grad`` and all buffers are left unchanged.
    """
    if x.dim() != 4:
        raise GradInvError(f"grad_cam_pp expects images (B, C, H, W), got shape {tuple(x.shape)}")
    module = _resolve_layer(model, layer)
    captured: list[Tensor] = []

    def hook(_mod: nn.Module, _inp: tuple, out: Tensor) -> Tensor:
        leaf = out.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf.clone()  # a non-leaf copy, so in-place ops after the layer stay legal

    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x.detach())
        handle.remove()
        if len(captured) != 1:
            raise GradInvError(
                f"the Grad-CAM++ layer ran {len(captured)} times in one forward; hook a layer "
                "used once"
            )
        acts = captured[0]
        if acts.dim() != 4:
            raise GradInvError(
                f"Grad-CAM++ layer output must be (B, K, h, w), got {tuple(acts.shape)}"
            )
        if target is None:
            cls = logits.detach().argmax(1)
        elif isinstance(target, int):
            cls = torch.full((x.shape[0],), target, device=logits.device, dtype=torch.long)
        else:
            cls = target.to(device=logits.device, dtype=torch.long).reshape(-1)
        with torch.enable_grad():
            score = logits.gather(1, cls[:, None]).sum()  # samples independent in eval mode
            (g,) = torch.autograd.grad(score, acts)
    finally:  # restore BN statistics only after the backward pass has used the graph
        handle.remove()
        with torch.no_grad():
            for buf, saved in buffers:
                buf.copy_(saved)
    a = acts.detach()
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
    weights = (alpha * g.clamp_min(0)).sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = (weights * a).sum(1, keepdim=True).clamp_min(0)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return normalize01(cam).to(x.dtype)


def foreground_mask(cam: Tensor, top: float = 0.3) -> Tensor:
    """Eq. 9, ``M_CAM = topk(L^c_ij, T_CAM)``: boolean mask of the ``ceil(top * H * W)``
    highest-valued pixels of each map (over the last two dims; ties broken by ``topk``)."""
    if not 0.0 < top <= 1.0:
        raise GradInvError(f"foreground fraction must be in (0, 1], got {top}")
    flat = cam.flatten(-2)
    k = max(1, math.ceil(top * flat.shape[-1] - 1e-9))
    idx = flat.topk(k, dim=-1).indices
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, idx, True)
    return mask.view_as(cam)


def bounding_box(mask: Tensor) -> Tensor:
    """Sec. 5.1 target region: the smallest axis-aligned box around each mask (last two
    dims), as a boolean mask of the same shape; an empty mask gives an empty box."""
    rows = mask.any(-1)  # (..., H)
    cols = mask.any(-2)  # (..., W)
    ar_h = torch.arange(mask.shape[-2], device=mask.device)
    ar_w = torch.arange(mask.shape[-1], device=mask.device)
    big = max(mask.shape[-2:])
    top = torch.where(rows, ar_h, big).amin(-1)
    bottom = torch.where(rows, ar_h, -1).amax(-1)
    left = torch.where(cols, ar_w, big).amin(-1)
    right = torch.where(cols, ar_w, -1).amax(-1)
    in_rows = (ar_h >= top[..., None]) & (ar_h <= bottom[..., None])
    in_cols = (ar_w >= left[..., None]) & (ar_w <= right[..., None])
    return in_rows[..., :, None] & in_cols[..., None, :]
