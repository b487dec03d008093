"""Gradient pruning, the defense proposed with DLG (Zhu et al., NeurIPS 2019, Sec. 5) and
evaluated by the survey (gia_survey.txt, Sec. IV "Defense Methods", Fig. 7, Sec. IV-A).

The client sets the ``percent`` % entries of smallest magnitude to zero before sharing.
The survey sweeps 1 % .. 60 %: up to 20 % the attacks still succeed, from 30 % they fail
on CIFAR-10, and monochrome MNIST digits need about 60 %.

Precise rule (``scope="layer"``, the default): for every parameter tensor with ``n``
entries, exactly ``k = floor(percent / 100 * n)`` entries are zeroed, namely the first
``k`` in a stable ascending sort of ``|g|`` (ties at the threshold are broken by flat
index, lower index pruned first); all other entries are returned bit-for-bit unchanged.
The threshold is per tensor as in the DLG-style reference implementations
(``thresh = np.percentile(|g|, p); g[|g| < thresh] = 0`` per gradient tensor); that
rule zeroes ``ceil((n - 1) p / 100)`` entries (distinct magnitudes), which is ``k`` or
``k + 1``; we use the exact count ``k`` so the transform is testable exactly.
``scope="global"`` applies the same rule once to all tensors concatenated (one
threshold for the whole model, so small-gradient layers may be pruned entirely).

What the server sees afterwards: a sparse gradient, same shapes, with the largest
``100 - percent`` % entries (per tensor, or overall) exact and the rest zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gradinv.errors import GradInvError

if TYPE_CHECKING:
    from gradinv.defenses.context import ClientContext

SCOPES = ("layer", "global")


@dataclass(frozen=True)
class Config:
    """Gradient-pruning defense."""

    percent: float = 30.0  # Sec. IV-A: >= 30 % stops the attacks on CIFAR-10 (sweep 1..60 %)
    scope: str = "layer"  # DLG-style reference code: one threshold per parameter tensor

    def __post_init__(self) -> None:
        if not (0.0 <= self.percent <= 100.0):
            raise GradInvError(f"pruning percent must lie in [0, 100], got {self.percent}")
        if self.scope not in SCOPES:
            raise GradInvError(f"unknown pruning scope {self.scope!r}; choose one of {SCOPES}")


def num_pruned(numel: int, percent: float) -> int:
    """How many entries of a tensor with ``numel`` entries are zeroed: ``floor(p n / 100)``
    (a 1e-9 guard absorbs float error, so e.g. 29 % of 100 entries is 29, not 28)."""
    return min(numel, math.floor(percent * numel / 100.0 + 1e-9))


def keep_mask(magnitudes: Tensor, percent: float) -> Tensor:
    """Boolean mask over a flat tensor: False at the ``num_pruned`` smallest magnitudes."""
    k = num_pruned(magnitudes.numel(), percent)
    mask = torch.ones(magnitudes.shape, dtype=torch.bool, device=magnitudes.device)
    if k > 0:
        order = torch.argsort(magnitudes, stable=True)
        mask[order[:k]] = False
    return mask


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """Zero the ``config.percent`` % smallest-magnitude entries (per tensor or globally).

    ``generator`` and ``context`` are unused (pruning is deterministic and data-free);
    they are accepted for the common defense signature. Shapes, dtypes and devices are preserved.
    """
    del generator, context
    config = config or Config()
    gradients = tuple(gradients)
    if not gradients:
        return ()
    if config.scope == "layer":
        masks = [keep_mask(g.detach().abs().reshape(-1), config.percent) for g in gradients]
    else:
        flat = torch.cat([g.detach().abs().reshape(-1) for g in gradients])
        masks = list(keep_mask(flat, config.percent).split([g.numel() for g in gradients]))
    return tuple(
        torch.where(m.view_as(g).to(g.device), g, torch.zeros((), dtype=g.dtype, device=g.device))
        for g, m in zip(gradients, masks, strict=True)
    )
