"""The dataset registry: one :class:`Spec` per dataset, one ``load`` for all of them.

Every loader returns raw ``uint8`` images ``(N, H, W, C)`` with integer labels; ``load``
turns them into float tensors ``(N, C, H, W)`` in ``[0, 1]`` at the requested size and
channel count. Real datasets are read with their own libraries from the data root;
embedded ones from ``<root>/embedded/<name>.npz`` built by ``gradinv assets``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gradinv.errors import GradInvError

Raw = tuple[np.ndarray, np.ndarray, list[str]]  # uint8 (N, H, W, C), int64 (N,), class names
#: ``public``: what an attacker's prior, a defender's shadow model, auxiliary data or
#: pre-training may use; ``train`` / ``test``: private (clients' data, held-out targets).
SPLITS = ("public", "train", "test")
PUBLIC_FRACTION = 0.2  # of a real dataset's official training split, carved out as public
PUBLIC_SEED = 20260  # seed of that carving (fixed: the public part must never move)


def data_root(root: str | Path | None = None) -> Path:
    """The data root: ``root``, else ``$GRADINV_DATA``, else ``~/.cache/gradinv/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("GRADINV_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gradinv" / "data"


@dataclass
class Dataset:
    """Images ``(N, C, H, W)`` float32 in ``[0, 1]`` with labels ``(N,)`` and provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: list[str]
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Spec:
    """How to find, read and describe one dataset."""

    name: str
    kind: str  # "real" (the paper's data, from its library) or "embedded" (built offline)
    stands_in_for: str
    source: str
    licence: str
    present: Callable[[Path], bool]
    read: Callable[[Path, str], Raw]
    how_to_get: str
    #: True when ``read`` serves all of :data:`SPLITS` itself (the embedded sets, split by
    #: content); False when it serves the official ``train``/``test`` and :func:`load` carves
    #: ``public`` out of the official training split.
    own_public: bool = False


SPECS: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    SPECS[spec.name] = spec
    return spec


def to_tensor(images: np.ndarray) -> torch.Tensor:
    if images.ndim == 3:
        images = images[..., None]
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def convert_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """1 -> 3 channels by repetition, 3 -> 1 by ITU-R 601 luminance."""
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    raise GradInvError(f"cannot convert {x.shape[1]} channels to {channels}; use 1 or 3")


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize to ``size`` x ``size`` (antialiased bilinear), clamped to ``[0, 1]``."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)


def load(
    name: str,
    split: str = "train",
    size: int | None = 32,
    n: int | None = None,
    channels: int | None = None,
    root: str | Path | None = None,
    seed: int = 0,
) -> Dataset:
    """Load dataset ``name`` (see :data:`SPECS`) as float tensors.

    Args:
        split: ``"public"``, ``"train"`` or ``"test"`` (see :data:`SPLITS`): for real datasets
            ``public`` is a seeded :data:`PUBLIC_FRACTION` of the official training split and
            ``train`` the rest of it; embedded sets split by content (DATASETS.md).
        size: output side length in pixels (``None`` keeps the native size).
        n: keep ``n`` images after a seeded shuffle (``None``: all, unshuffled).
        channels: 1 or 3 to convert, ``None`` to keep.
        root: data root (default :func:`data_root`).
        seed: seed of the shuffle.
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise GradInvError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if spec.own_public:
        images, labels, class_names = spec.read(data_root(root), split)
        keep = np.arange(len(labels))
    else:
        images, labels, class_names = spec.read(
            data_root(root), "test" if split == "test" else "train"
        )
        keep = np.arange(len(labels)) if split == "test" else carve_public(labels, split)
    if n is not None:
        if n > len(keep):
            raise GradInvError(f"{name}/{split} has {len(keep)} images; asked for n={n}")
        keep = keep[np.random.default_rng(seed).permutation(len(keep))[:n]]
    if len(keep) < len(labels):  # index once: lazy image lists open only the kept files
        images, labels = images[keep], np.asarray(labels)[keep]
    x = resize(convert_channels(to_tensor(np.asarray(images)), channels), size)
    return Dataset(
        images=x.contiguous(),
        labels=torch.as_tensor(labels, dtype=torch.int64),
        num_classes=len(class_names),
        class_names=list(class_names),
        name=name,
        provenance=provenance(spec),
    )


def carve_public(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` (``public`` or ``train``) within an official training split with
    these ``labels``: a seeded :data:`PUBLIC_FRACTION` of each class is public (stratified,
    so every class the split has is public too), the rest private."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(PUBLIC_SEED)
    public = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        public[idx[: int(round(PUBLIC_FRACTION * len(idx)))]] = True
    return np.flatnonzero(public if split == "public" else ~public)


def get_spec(name: str) -> Spec:
    key = name.lower().replace("-", "_")
    if key not in SPECS:
        raise GradInvError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    return SPECS[key]


def provenance(spec: Spec) -> dict[str, str]:
    return {
        "dataset": spec.name,
        "kind": spec.kind,
        "source": spec.source,
        "licence": spec.licence,
        "stands_in_for": spec.stands_in_for,
    }


def info(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per dataset: name, kind, present, provenance, licence and how to get it."""
    base = data_root(root)
    rows = []
    for spec in SPECS.values():
        try:
            present = bool(spec.present(base))
        except Exception:  # a broken file counts as absent; load() then says why
            present = False
        rows.append(
            {
                **provenance(spec),
                "name": spec.name,
                "present": present,
                "how_to_get": spec.how_to_get,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`info` rows for the ``gradinv datasets`` command."""
    from tabulate import tabulate

    table = [
        [
            r["name"],
            r["kind"],
            "yes" if r["present"] else "no",
            r["stands_in_for"],
            r["licence"],
            r["how_to_get"],
        ]
        for r in rows
    ]
    return tabulate(
        table, headers=["dataset", "kind", "present", "stands in for", "licence", "how to get it"]
    )
