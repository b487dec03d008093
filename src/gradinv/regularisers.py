"""Image priors ``Reg(x, y)`` of survey eq. (4) used by IG, CPL and GradInversion (eqs. 6-8).

Each per-restart regulariser has the :data:`gradinv.matching.Regulariser` signature
``reg(x, aux) -> scalar`` with ``x`` one restart's dummy batch ``(B, C, H, W)`` and ``aux``
the matcher's side outputs (``"logits"``, ``"bn_stats"``); they run inside ``vmap``, so they
are pure tensor code. :func:`group_consistency` couples restarts and is therefore an
``extra_grad`` of :func:`gradinv.attacks.core.pixel.optimise_inputs` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradinv.matching import Regulariser


def total_variation(x: Tensor, aux: dict | None = None) -> Tensor:
    """Anisotropic TV, ``mean|x[..., :, 1:] - x[..., :, :-1]| + mean|x[..., 1:, :] - x[..., :-1, :]|``
    (Geiping et al. 2020, the ``inversefed`` definition; survey eq. 6's ``TV``)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


def l2_norm(x: Tensor, aux: dict | None = None) -> Tensor:
    """``||x||_2`` of the whole dummy batch (Yin et al. 2021, Sec. 3: ``R_l2``)."""
    return x.square().sum().sqrt()


def output_label(x: Tensor, aux: dict, y: Tensor) -> Tensor:
    """CPL's label regulariser (Wei et al. 2020; survey eq. 7): ``||F(x, W) - y||^2`` with
    ``F`` the softmax output and ``y`` one-hot (integer labels) or label logits (softmaxed),
    summed over classes and averaged over the batch. Pulls the dummy batch towards inputs
    the model classifies as the inferred labels, which stabilises the L2 matching."""
    probs = aux["logits"].softmax(dim=-1)
    if y.dtype in (torch.int64, torch.int32):
        target = F.one_hot(y, probs.shape[-1]).to(probs.dtype)
    else:
        target = y.softmax(dim=-1)
    return (probs - target).square().sum(dim=-1).mean()


def bn_running_stats(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """``(running_mean, running_var)`` of every BatchNorm layer of ``model``, in module order."""
    stats = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            stats.append((m.running_mean.detach(), m.running_var.detach()))
    return stats


def bn_statistics(running_stats: Sequence[tuple[Tensor, Tensor]]) -> Regulariser:
    """BN-statistics fidelity prior (Yin et al. 2021, Sec. 3, after DeepInversion):
    ``sum_l ||mu_l(x) - mu_l^run||_2 + ||sigma_l^2(x) - sigma_l^2,run||_2`` between the dummy
    batch's BatchNorm input statistics (``aux["bn_stats"]``, recorded by
    ``GradientMatcher(record_bn=True)``) and the model's running statistics."""
    ref = [(m.detach(), v.detach()) for m, v in running_stats]

    def reg(x: Tensor, aux: dict) -> Tensor:
        stats = aux.get("bn_stats", [])
        total = x.new_zeros(())
        for (mu, var), (rmu, rvar) in zip(stats, ref, strict=False):
            total = (
                total + torch.linalg.vector_norm(mu - rmu) + torch.linalg.vector_norm(var - rvar)
            )
        return total

    return reg


def group_consistency(x_all: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Group-consistency prior over restarts (Yin et al. 2021, Sec. 3; survey eq. 8 ``R_group``):
    ``||x_r - E(x)||_2`` per restart ``r`` with ``E(x)`` the mean over restarts, treated as a
    fixed reference (stop-gradient) as in the paper, where the group mean is recomputed
    periodically. Yin et al. register the seeds to each other before averaging; we average
    without registration (our simplification).

    Returns ``(loss (R,), grad (R, B, C, H, W))``.
    """
    diff = x_all - x_all.mean(dim=0, keepdim=True).detach()
    norm = diff.flatten(1).norm(dim=1)
    grad = diff / (norm + eps).view(-1, *([1] * (x_all.ndim - 1)))
    return norm, grad
