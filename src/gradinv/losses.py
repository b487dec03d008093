"""The client's training loss, shared by the FL simulation (:mod:`gradinv.fl`) and the
attacks that differentiate it (:mod:`gradinv.matching`), so neither depends on the other."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Client loss: cross-entropy with integer labels, or with soft labels given as
    *logits* of the label distribution (DLG's dummy labels, softmax-normalised)."""
    if labels.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, labels)
    return torch.sum(-F.softmax(labels, dim=-1) * F.log_softmax(logits, dim=-1), dim=-1).mean()


__all__ = ["cross_entropy"]
