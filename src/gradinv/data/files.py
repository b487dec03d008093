"""The user's own image files as a batch: PNG/JPG/... files or one ``.npz``.

:func:`read_images` turns what ``gradinv attack --images`` receives into a float batch
``(N, C, size, size)`` in ``[0, 1]`` (and the ``.npz``'s labels, if any); every problem
with a file is a one-line :class:`~gradinv.errors.GradInvError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from gradinv.errors import GradInvError

#: File suffixes of the images PIL reads here (an ``.npz`` is the other input).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def read_images(
    paths: Sequence[str | Path], size: int, channels: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """Read the user's images: PNG/JPG/... files, or one ``.npz`` holding ``images``
    ``(N,H,W[,C])`` (uint8 or float in [0,1]) and optional integer ``labels`` ``(N,)``.

    Image files are centre-cropped to a square and resized to ``size``; their channel
    count is ``channels`` or that of the first image (grey -> 1, anything else -> 3).
    Returns ``(images (N,C,size,size) float in [0,1], labels (N,) int64 or None)``.
    """
    paths = [Path(p) for p in paths]
    if any(p.suffix.lower() == ".npz" for p in paths):
        if len(paths) != 1:
            raise GradInvError("give either one .npz file or image files to --images, not both")
        return _read_npz(paths[0], size, channels)
    return _read_files(paths, size, channels), None


def _read_npz(path: Path, size: int, channels: int | None) -> tuple[Tensor, Tensor | None]:
    """``images`` (resized to ``size``) and the optional ``labels`` of one ``.npz``."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f.files:
                raise GradInvError(
                    f"{path} has no array named 'images' (it has: {', '.join(f.files)})"
                )
            arr = f["images"]
            labels = f["labels"] if "labels" in f.files else None
    except (ValueError, OSError) as exc:
        raise GradInvError(f"cannot read {path}: {exc}") from None
    x = _to_chw(arr, channels)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        x = x.clamp(0, 1)
    if labels is None:
        return x, None
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise GradInvError(
            f"'labels' in the .npz must be integers of shape ({x.shape[0]},); "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    return x, torch.from_numpy(labels.astype(np.int64))


def _read_files(paths: Sequence[Path], size: int, channels: int | None) -> Tensor:
    """Image files, centre-cropped and resized to ``size``, as one ``(N, C, size, size)``."""
    tensors = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                if channels is None:
                    channels = 1 if im.mode in _GREY_MODES else 3
                im = im.convert("L" if channels == 1 else "RGB")
        except UnidentifiedImageError:
            raise GradInvError(
                f"cannot read image {p}: not an image file PIL understands"
            ) from None
        except OSError as exc:
            raise GradInvError(f"cannot read image {p}: {exc.strerror or exc}") from None
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im = im.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        tensors.append(torch.from_numpy(np.ascontiguousarray(a)))
    return torch.stack(tensors).clamp(0, 1)


def _to_chw(arr: np.ndarray, channels: int | None) -> Tensor:
    """``(N,H,W)`` / ``(N,H,W,C)`` numpy images -> float tensor ``(N,C,H,W)`` in [0, 1]."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4) or arr.shape[0] < 1:
        raise GradInvError(
            f"'images' in the .npz must have shape (N, H, W) or (N, H, W, C) with C in 1, 3; "
            f"got {tuple(arr.shape)}"
        )
    arr = arr[..., :3] if arr.shape[-1] == 4 else arr  # drop alpha
    if arr.dtype == np.uint8:
        x = torch.from_numpy(arr.astype(np.float32) / 255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        x = torch.from_numpy(arr.astype(np.float32))
        if not torch.isfinite(x).all():
            raise GradInvError("'images' in the .npz contains NaN or Inf values")
        if x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise GradInvError(
                f"float 'images' must lie in [0, 1]; got [{float(x.min()):.3g}, "
                f"{float(x.max()):.3g}] (save uint8 0..255 or divide by 255)"
            )
        x = x.clamp(0, 1)
    else:
        raise GradInvError(f"'images' in the .npz must be uint8 or float, got {arr.dtype}")
    x = x.permute(0, 3, 1, 2).contiguous()
    return _set_channels(x, channels)


def _set_channels(x: Tensor, channels: int | None) -> Tensor:
    """Convert ``(N,C,H,W)`` between grey (1) and RGB (3)."""
    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if channels == 1 and x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise GradInvError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


__all__ = ["IMAGE_SUFFIXES", "read_images"]
