"""Floors of a reconstruction table: what an attacker gets *without* the gradient.

A leak counts only above these (DESIGN.md, "Results you can trust"); every reconstruction
table carries them per cell, scored exactly like the attacks:

* ``public mean``: the mean image of the dataset's public split;
* ``nearest public``: the public image closest (pixel-aligned PSNR) to each private target,
  an oracle upper bound on what memorising the public data alone can give;
* ``prior sample``: an unguided sample of the attack's prior (DDPM or GAN) from the same
  seed, for every prior-based attack.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import Tensor

from gradinv import data, metrics
from gradinv.data.overlap import nearest_public
from gradinv.errors import GradInvError

PUBLIC_MEAN, NEAREST_PUBLIC, PRIOR_SAMPLE = "public mean", "nearest public", "prior sample"
FLOORS = (PUBLIC_MEAN, NEAREST_PUBLIC, PRIOR_SAMPLE)


def public_images(dataset: str, size: int, channels: int, label: str | int | None = None) -> Tensor:
    """The public split of ``dataset`` at ``size`` px and ``channels`` channels (only class
    ``label``, a name or an index, when given: e.g. the faces of ``faces``, one plane of
    ``brain_mri``)."""
    ds = data.load(dataset, split="public", size=size, channels=channels)
    if label is None:
        return ds.images
    index = label if isinstance(label, int) else None
    if isinstance(label, str) and label in ds.class_names:
        index = ds.class_names.index(label)
    if index is None or not 0 <= index < ds.num_classes:
        raise GradInvError(f"{dataset} has no class {label!r}; classes: {ds.class_names}")
    return ds.images[ds.labels == index]


def prior_sample(prior: str, n: int, seed: int = 0, steps: int | None = 100) -> Tensor:
    """``n`` unguided samples of the prior called ``prior`` (a DDPM, or a GAN named
    ``gan-*``) from ``seed``; ``steps`` is the DDPM's number of reverse steps."""
    if prior.startswith("gan-"):
        from gradinv.priors.gan import load_gan

        return load_gan(prior).sample(n, seed=seed).cpu()
    from gradinv.priors import load_prior

    return load_prior(prior).sample(n, steps=steps, seed=seed).cpu()


def floor_images(
    targets: Tensor,
    dataset: str,
    prior: str | None = None,
    seed: int = 0,
    steps: int | None = 100,
    label: str | int | None = None,
) -> dict[str, Tensor]:
    """Each floor's images for the private ``targets`` (B, C, H, W) of ``dataset``; the
    prior sample only when ``prior`` is given; the public images of class ``label`` only
    when it is given (the class the targets come from)."""
    targets = targets.detach().cpu()
    public = public_images(dataset, targets.shape[-1], targets.shape[1], label)
    _, _, nearest = nearest_public(targets, public, max_shift=0)
    out = {
        PUBLIC_MEAN: public.mean(0, keepdim=True).expand_as(targets).contiguous(),
        NEAREST_PUBLIC: public[nearest],
    }
    if prior is not None:
        out[PRIOR_SAMPLE] = prior_sample(prior, len(targets), seed, steps)
    return out


def floor_rows(
    targets: Tensor,
    dataset: str,
    prior: str | None = None,
    seed: int = 0,
    steps: int | None = 100,
    lpips_net: str | None = "alex",
    label: str | int | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    """One table row per floor: ``attack`` and ``method`` name the floor, ``extra`` the
    cell (role, network, image, ...), then the same metrics as an attack's row."""
    images = floor_images(targets, dataset, prior, seed, steps, label)
    return score_floors(images, targets, lpips_net, **extra)


def score_floors(
    floors: dict[str, Tensor], targets: Tensor, lpips_net: str | None = "alex", **extra: Any
) -> list[dict[str, Any]]:
    """The rows of :func:`floor_rows` for floor images computed already (e.g. also shown in a
    figure)."""
    truth = targets.detach().cpu()
    rows = []
    for name, images in floors.items():
        scores = metrics.evaluate(images, truth, lpips_net=lpips_net)
        rows.append(
            {"attack": name, "defense": "none", **extra, "method": name, **scores, "seconds": 0.0}
        )
    return rows


def is_floor(name: object) -> bool:
    """Whether ``name`` (a method or variant label) is one of :data:`FLOORS`."""
    return isinstance(name, str) and name in FLOORS


def floor_mask(table: pd.DataFrame, key: str = "method") -> pd.Series:
    """Which rows of ``table`` are floors (``key``: the column naming the method or variant;
    a table without it has none)."""
    if key not in table:
        return pd.Series(False, index=table.index)
    return table[key].map(is_floor).astype(bool)


def split_floors(table: pd.DataFrame, key: str = "method") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``table``'s attack rows and its floor rows."""
    floor = floor_mask(table, key)
    return table[~floor], table[floor]


__all__ = [
    "FLOORS",
    "NEAREST_PUBLIC",
    "PRIOR_SAMPLE",
    "PUBLIC_MEAN",
    "floor_images",
    "floor_rows",
    "score_floors",
    "is_floor",
    "split_floors",
    "floor_mask",
    "prior_sample",
    "public_images",
]
