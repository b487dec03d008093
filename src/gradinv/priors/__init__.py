"""Generative priors: DDPM/DDIM diffusion priors on ``diffusers`` (shared by GradInvDiff,
GGSS-R and GIDM), with training, storage and a registry of the small checkpoints that ship
with the package.

A prior is named ``<dataset>-<size>`` (e.g. ``chest_xray-32``). :func:`load_prior` looks for
it in ``$GRADINV_PRIORS`` (default ``~/.cache/gradinv/priors``), then among the committed
checkpoints in ``gradinv/priors/checkpoints``; :func:`ensure_prior` trains it when it is
missing (resuming an interrupted run).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gradinv.errors import MissingAssetError
from gradinv.priors.ddpm import (
    DiffusionPrior,
    Posterior,
    PriorSpec,
    SamplePath,
    from_image,
    to_image,
)
from gradinv.priors.storage import find_folder, priors_root, shipped_root
from gradinv.priors.train import TrainConfig, data_hash, train_prior

__all__ = [
    "DiffusionPrior",
    "Posterior",
    "PriorSpec",
    "SamplePath",
    "TrainConfig",
    "data_hash",
    "ensure_prior",
    "from_image",
    "load_prior",
    "prior_name",
    "priors_root",
    "shipped_root",
    "to_image",
    "train_prior",
]


def prior_name(dataset: str, size: int) -> str:
    """The registry name of the prior of ``dataset`` at ``size`` px."""
    return f"{dataset}-{int(size)}"


def load_prior(name_or_path: str | Path, device: str | torch.device = "cpu") -> DiffusionPrior:
    """Load a prior by folder path or registry name (``<dataset>-<size>``)."""
    path = Path(name_or_path)
    if path.is_dir():
        return DiffusionPrior.load(path, device)
    if len(path.parts) > 1:
        raise MissingAssetError(
            f"prior folder {path} does not exist; give an existing folder or a registry name "
            "such as 'chest_xray-32' (`gradinv priors list`)"
        )
    folder = find_folder(str(name_or_path))
    if folder is None:
        dataset, _, size = str(name_or_path).rpartition("-")
        raise MissingAssetError(
            f"prior {name_or_path!r} not found in {priors_root()} or {shipped_root()}; train it "
            f"with `gradinv priors train --dataset {dataset or 'NAME'} --size {size or 'S'}`"
        )
    return DiffusionPrior.load(folder, device)


def ensure_prior(
    config: TrainConfig, device: str | torch.device = "cpu", progress: bool = True
) -> DiffusionPrior:
    """The prior of ``config.dataset`` at ``config.size``: loaded if it exists (committed or
    trained before), else trained into :func:`priors_root` (resuming a checkpoint)."""
    name = prior_name(config.dataset, config.size)
    if find_folder(name) is not None:
        return load_prior(name, device)
    train_prior(config, priors_root() / name, progress=progress)
    return load_prior(name, device)
