"""Client partitions of the shadow-defense FL setting (shadow_defense.txt, Sec. 5.1).

The shadow-defense paper partitions its data "same as the baseline established by the
previous work (Hatamizadeh et al. (2023)), involving 9 clients with the last one allocated one
training image" and sets batch sizes "4 for client 1 to client 4, 8 for client 5 to client 8,
and 1 for client 9" (Sec. 5.1). The data sizes are those of Hatamizadeh et al.'s NVFlare
recipe (``research/quantifying-data-leakage``, README table "cxr_9clients"): 8, 32, 128, 512
training images for clients 1-4 and again for clients 5-8, one image for client 9 (1361 in
all; the recipe's table says 1360). :data:`SHADOW_SPLIT` holds that table;
:func:`split_clients` draws disjoint random subsets of those sizes from a pooled training set.
:func:`partition_iid` is the survey's IID split into near-equal shards (gia_survey.txt, Table I).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradinv.errors import GradInvError


@dataclass(frozen=True)
class ClientSpec:
    """One client of a partition: how many training images it holds and its batch size."""

    size: int  # training images of the client
    batch_size: int  # local SGD batch size


#: The nine clients of Hatamizadeh et al. 2023 / shadow_defense.txt Sec. 5.1, clients 1..9.
SHADOW_SPLIT: tuple[ClientSpec, ...] = (
    ClientSpec(8, 4),  # client 1 (NVFlare recipe table; batch 4: Sec. 5.1)
    ClientSpec(32, 4),  # client 2
    ClientSpec(128, 4),  # client 3
    ClientSpec(512, 4),  # client 4
    ClientSpec(8, 8),  # client 5 (batch 8: Sec. 5.1)
    ClientSpec(32, 8),  # client 6
    ClientSpec(128, 8),  # client 7
    ClientSpec(512, 8),  # client 8
    ClientSpec(1, 1),  # client 9, the "high-risk" single-image client (Sec. 5.1)
)


def scaled_sizes(sizes: Sequence[int | ClientSpec], scale: float = 1.0) -> list[int]:
    """Client sizes multiplied by ``scale`` (``0 < scale <= 1``) and rounded, each kept at
    least 1 (so a single-image client stays at one image)."""
    if not (0 < scale <= 1):
        raise GradInvError(
            f"scale must be in (0, 1] (a smoke profile shrinks clients); got {scale}"
        )
    raw = [s.size if isinstance(s, ClientSpec) else int(s) for s in sizes]
    bad = [s for s in raw if s < 1]
    if bad:
        raise GradInvError(f"every client needs at least one image; got sizes {raw}")
    return [max(1, round(s * scale)) for s in raw]


def split_clients(
    images: Tensor,
    labels: Tensor,
    sizes: Sequence[int | ClientSpec] = SHADOW_SPLIT,
    generator: torch.Generator | None = None,
    scale: float = 1.0,
) -> list[tuple[Tensor, Tensor]]:
    """Draw disjoint random subsets of ``images``/``labels`` with the requested ``sizes``.

    Args:
        images: the pooled training images ``(N, C, H, W)``.
        labels: their labels ``(N,)``.
        sizes: images per client (ints or :class:`ClientSpec`, default :data:`SHADOW_SPLIT`).
        generator: seeds the random draw (CPU generator).
        scale: shrink every client (smoke profiles), see :func:`scaled_sizes`.

    Returns:
        ``[(images_k, labels_k), ...]`` in client order; no image is in two clients.
    """
    if images.shape[0] != labels.shape[0]:
        raise GradInvError(
            f"images ({images.shape[0]}) and labels ({labels.shape[0]}) differ in length"
        )
    counts = scaled_sizes(sizes, scale)
    need = sum(counts)
    if need > images.shape[0]:
        raise GradInvError(
            f"the {len(counts)} clients need {need} images in all but the dataset has "
            f"{images.shape[0]}; load more images or pass a smaller scale"
        )
    order = torch.randperm(images.shape[0], generator=generator)[:need].to(images.device)
    return [(images[idx], labels[idx.to(labels.device)]) for idx in order.split(counts)]


def partition_iid(
    n: int, num_clients: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Split indices ``0..n-1`` into ``num_clients`` near-equal random shards."""
    return list(torch.randperm(n, generator=generator).tensor_split(num_clients))


__all__ = ["SHADOW_SPLIT", "ClientSpec", "partition_iid", "scaled_sizes", "split_clients"]
