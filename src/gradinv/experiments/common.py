"""Pieces every paper's drivers share: profiles, cases, one attack run with metrics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from gradinv import data, models, pipeline
from gradinv.attacks.core.progress import Callback
from gradinv.case import Case
from gradinv.errors import GradInvError
from gradinv.pipeline import AttackRun
from gradinv.utils import resolve_device, seed_everything

#: Environment variable naming the device cell functions use (:func:`cell_device`).
DEVICE_ENV = "GRADINV_DEVICE"


def repo_root() -> Path:
    """The project root (``$GRADINV_REPO_ROOT``, else above the cwd, else the checkout);
    one definition, shared with the papermill runner."""
    from gradinv.reproduce import find_repo_root

    return find_repo_root()


def load_profile(paper: str, profile: str) -> dict[str, Any]:
    """Read ``papermill_runs/<paper>/<profile>.yaml`` and return its ``settings`` block."""
    path = repo_root() / "papermill_runs" / paper / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise GradInvError(
            f"no profile {profile!r} for {paper}: {path} is missing (known: {known})"
        )
    with open(path) as fh:
        return dict(yaml.safe_load(fh).get("settings", {}))


def use_device(device: str) -> torch.device:
    """Make ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``) the device of the cells this process
    and the workers it starts compute: it is not part of a cell's spec (a record says where
    it ran), so it travels in :data:`DEVICE_ENV`. Returns the resolved device."""
    resolved = resolve_device(device)
    os.environ[DEVICE_ENV] = str(device)
    return resolved


def cell_device() -> torch.device:
    """The device a cell function computes on: ``$GRADINV_DEVICE`` (set by :func:`use_device`),
    else ``"auto"`` (a GPU when one is visible)."""
    return resolve_device(os.environ.get(DEVICE_ENV) or "auto")


def figures_dir(paper: str) -> Path:
    """``figures/<paper>/`` under the repo root, created if needed."""
    out = repo_root() / "figures" / paper
    out.mkdir(parents=True, exist_ok=True)
    return out


def first_available(names: Sequence[str], root: str | Path | None = None) -> str:
    """The first dataset of ``names`` present on this machine (real data before stand-ins)."""
    present = {row["name"]: row["present"] for row in data.info(root)}
    for name in names:
        if present.get(name, False):
            return name
    raise GradInvError(
        f"none of the datasets {list(names)} is present; run `gradinv assets` "
        "(and see DATASETS.md for the real datasets)"
    )


def pick_batch(
    ds: data.Dataset, batch: int, seed: int = 0, distinct_labels: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch of ``batch`` images, with distinct labels when the classes allow."""
    if batch > len(ds.labels):
        raise GradInvError(f"batch {batch} is larger than the dataset ({len(ds.labels)} images)")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ds.labels), generator=gen)
    if distinct_labels and batch <= ds.num_classes:
        chosen: list[int] = []
        seen: set[int] = set()
        for i in order.tolist():
            label = int(ds.labels[i])
            if label not in seen:
                chosen.append(i)
                seen.add(label)
            if len(chosen) == batch:
                break
        if len(chosen) == batch:
            idx = torch.tensor(chosen)
            return ds.images[idx], ds.labels[idx]
    idx = order[:batch]
    return ds.images[idx], ds.labels[idx]


def private_batch(
    dataset: str,
    size: int,
    batch: int,
    seed: int = 0,
    channels: int | None = None,
    split: str = "train",
    label: int | None = None,
) -> tuple[data.Dataset, torch.Tensor, torch.Tensor]:
    """The dataset and the seeded batch (images, labels) :func:`build_case` gives its victim,
    without building the victim (e.g. for the floors of that batch)."""
    ds = data.load(dataset, split=split, size=size, channels=channels, seed=seed)
    if label is not None:
        keep = ds.labels == label
        ds = data.Dataset(ds.images[keep], ds.labels[keep], ds.num_classes, ds.class_names, ds.name)
    images, labels = pick_batch(ds, batch, seed)
    return ds, images, labels


def build_case(
    dataset: str,
    model: str,
    size: int,
    batch: int,
    seed: int = 0,
    channels: int | None = None,
    device: str | torch.device = "cpu",
    train_mode: bool = True,
    split: str = "train",
    label: int | None = None,
) -> Case:
    """A fresh victim ``model`` (seeded random init) and a seeded private batch of ``split``
    (use ``"test"`` when the attacker's prior was trained on the ``"train"`` split), drawn
    from class ``label`` only when it is given (e.g. one plane of a three-plane set)."""
    ds, images, labels = private_batch(dataset, size, batch, seed, channels, split, label)
    seed_everything(seed)
    net = models.build(model, images.shape[1], ds.num_classes, size)
    dev = resolve_device(device)
    net = net.to(dev).train(train_mode)
    return Case(net, images.to(dev), labels.to(dev), ds.num_classes, name=f"{dataset}/{model}")


def run_attack(
    case: Case,
    attack: str,
    defense: str = "none",
    defense_options: dict[str, Any] | None = None,
    oracle_labels: bool = False,
    lpips_net: str | None = "alex",
    callback: Callback | None = None,
    **overrides: Any,
) -> AttackRun:
    """Observe ``case`` through ``defense``, run ``attack`` (its Config overridden by
    ``overrides``) on it and score the result: :func:`gradinv.pipeline.run`."""
    return pipeline.run(
        case,
        attack,
        defense,
        defense_options=defense_options,
        overrides=overrides,
        oracle_labels=oracle_labels,
        callback=callback,
        lpips_net=lpips_net,
    )
