"""Gradient distances ``Dist(g', g)`` of survey eq. (4), between two gradients given as
sequences of per-layer tensors (``distance=``):

* ``"l2"``     -- DLG/iDLG/CPL/GradInversion, survey eq. (5): ``sum_l w_l ||g'_l - g_l||^2``
* ``"cosine"`` -- Inverting Gradients (IG/"GS"), survey eq. (6):
  ``1 - sum_l w_l <g'_l, g_l> / (||g'||_w ||g||_w)``
* ``"norm"``   -- the un-squared per-layer distance ``sum_l w_l ||g'_l - g_l||_2`` of the
  NVFlare gradient-inversion recipe (Hatamizadeh et al. 2023)
* ``"layer_cosine"`` -- ``sum_l w_l (1 - <g'_l, g_l> / (||g'_l|| ||g_l||))``: one cosine per
  layer, so blind to a positive rescale of each layer on its own -- what per-tensor
  quantisation does to a gradient before rounding (our addition: the survey's Fig. 5
  attacker on integer codes, issue 18)

Layer weights ``w_l`` default to 1. Each layer is reduced where it lies (no concatenated
copy of an 11M-entry gradient per step), and the target's norms can be computed once.
:func:`distance_reference` is the definition as plain autograd expressions;
:func:`distance` computes the same value through the fused kernel of
:mod:`gradinv.matching.kernels` when the target is a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gradinv.errors import GradInvError
from gradinv.matching.kernels import fusable, fused_distance

DISTANCES = ("l2", "cosine", "norm", "layer_cosine")
#: distances the fused kernel computes; the others take the reference path
FUSED = ("l2", "cosine", "norm")


def layer_weight_tensor(num_layers: int, weights: Sequence[float] | None) -> Tensor | None:
    """Per-layer weights ``w_l`` as a tensor of length ``num_layers`` (``None``: all 1)."""
    if weights is None:
        return None
    if len(weights) != num_layers:
        raise GradInvError(
            f"layer_weights has {len(weights)} entries but the model has {num_layers} parameter tensors"
        )
    return torch.tensor([float(w) for w in weights])


def layer_sums(fn: Callable[..., Tensor], *layers: Sequence[Tensor]) -> Tensor:
    """``fn`` reduced to a scalar per layer, stacked to shape ``(L,)``."""
    return torch.stack([fn(*ts).sum() for ts in zip(*layers, strict=True)])


def distance(
    dummy: Sequence[Tensor],
    target: Sequence[Tensor],
    kind: str = "l2",
    weights: Tensor | None = None,
    target_sq: Tensor | None = None,
    *,
    workspace: Sequence[Tensor] | None = None,
) -> Tensor:
    """Distance between two gradients given as sequences of per-layer tensors.

    Per-layer sums are weighted by ``weights`` (shape ``(L,)``); ``target_sq`` caches the
    target's per-layer squared norms for the cosine distance. When the target is a constant
    (the usual case: an observed gradient) the value and its gradient come from one fused
    :class:`torch.autograd.Function` (:func:`~gradinv.matching.kernels.fused_distance`) that
    touches each layer in two or three streaming passes (BLAS dots, one ``addcmul``) instead
    of the dozen elementwise kernels autograd would record; it computes the same expression
    as :func:`distance_reference` (tests compare them) and is 5-6x faster on ResNet18's
    11M-entry gradient.

    ``workspace`` (one tensor per layer, shaped like the target) is scratch memory reused
    across calls: the distance's intermediates and its input-gradient are written there
    instead of into fresh allocations. Only for callers that finish each backward pass
    before the next call and never retain the graph
    (:class:`~gradinv.matching.GradientMatcher`).
    """
    if kind not in DISTANCES:
        raise GradInvError(f"unknown gradient distance {kind!r}; choose one of {DISTANCES}")
    dummy, target = list(dummy), list(target)
    if len(dummy) != len(target):
        raise GradInvError(
            f"the dummy gradient has {len(dummy)} layers but the target has {len(target)}"
        )
    if kind not in FUSED or not fusable(dummy, target, weights, target_sq):
        return distance_reference(dummy, target, kind, weights, target_sq)
    return fused_distance(kind, dummy, target, weights, target_sq, workspace)


def distance_reference(
    dummy: Sequence[Tensor],
    target: Sequence[Tensor],
    kind: str = "l2",
    weights: Tensor | None = None,
    target_sq: Tensor | None = None,
) -> Tensor:
    """:func:`distance` written as plain autograd expressions, one reduction per layer.

    The definition the fused path is tested against, and the path taken when the target
    itself is differentiated.
    """
    if kind in ("l2", "norm"):
        per = layer_sums(lambda a, b: (a - b).square(), dummy, target)
        if kind == "norm":
            per = per.clamp_min(1e-30).sqrt()
        return (per * weights).sum() if weights is not None else per.sum()
    if kind == "cosine":
        # 1 - <a, b>_w / (|a|_w |b|_w) = 0.5 sum_l w_l |a_l / |a|_w - b_l / |b|_w|^2: the same
        # value, without the cancellation of "1 - cos" in float32 when cos is within 1e-7 of 1
        # (deep sigmoid nets, whose last layers dominate the gradient, get there)
        na = layer_sums(torch.square, dummy)
        nb = target_sq if target_sq is not None else layer_sums(torch.square, target)
        if weights is not None:
            na, nb = na * weights, nb * weights
        inv_a = na.sum().sqrt().clamp_min(1e-12).reciprocal()
        inv_b = nb.sum().sqrt().clamp_min(1e-12).reciprocal()
        per = layer_sums(lambda a, b: (a * inv_a - b * inv_b).square(), dummy, target)
        return 0.5 * ((per * weights).sum() if weights is not None else per.sum())
    if kind == "layer_cosine":  # the same stable form as "cosine", normalised per layer
        nb = target_sq if target_sq is not None else layer_sums(torch.square, target)
        inv_a = layer_sums(torch.square, dummy).sqrt().clamp_min(1e-12).reciprocal()
        inv_b = nb.sqrt().clamp_min(1e-12).reciprocal()
        per = torch.stack(
            [
                (a * ia - b * ib).square().sum()
                for a, b, ia, ib in zip(dummy, target, inv_a, inv_b, strict=True)
            ]
        )
        return 0.5 * ((per * weights).sum() if weights is not None else per.sum())
    raise GradInvError(f"unknown gradient distance {kind!r}; choose one of {DISTANCES}")


__all__ = [
    "DISTANCES", "distance", "distance_reference", "layer_sums", "layer_weight_tensor",
]  # fmt: skip
