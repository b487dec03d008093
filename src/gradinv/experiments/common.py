"""Pieces every paper's drivers share: profiles, cases, one attack run with metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from gradinv import attacks, data, defenses, metrics, models
from gradinv.case import Case, Reconstruction
from gradinv.errors import GradInvError
from gradinv.fl import observe
from gradinv.utils import resolve_device, seed_everything


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
    ds = data.load(dataset, split=split, size=size, channels=channels, seed=seed)
    if label is not None:
        keep = ds.labels == label
        ds = data.Dataset(ds.images[keep], ds.labels[keep], ds.num_classes, ds.class_names, ds.name)
    images, labels = pick_batch(ds, batch, seed)
    seed_everything(seed)
    net = models.build(model, images.shape[1], ds.num_classes, size)
    dev = resolve_device(device)
    net = net.to(dev).train(train_mode)
    return Case(net, images.to(dev), labels.to(dev), ds.num_classes, name=f"{dataset}/{model}")


@dataclass
class AttackRun:
    """One attack on one case: the reconstruction, its metrics and the wall time."""

    attack: str
    defense: str
    reconstruction: Reconstruction
    metrics: dict[str, float]
    seconds: float

    def row(self, **extra: Any) -> dict[str, Any]:
        """A flat table row."""
        return {
            "attack": self.attack,
            "defense": self.defense,
            **extra,
            **self.metrics,
            "seconds": self.seconds,
        }


def run_attack(
    case: Case,
    attack: str,
    defense: str = "none",
    defense_options: dict[str, Any] | None = None,
    oracle_labels: bool = False,
    lpips_net: str | None = "alex",
    callback: Callable[[int, dict], None] | None = None,
    **overrides: Any,
) -> AttackRun:
    """Observe ``case`` through ``defense``, run ``attack`` on it and score the result."""
    guard = defenses.build(defense, **(defense_options or {}))
    observed = observe(case, guard, oracle_labels=oracle_labels)
    start = time.perf_counter()
    rec = attacks.run(attack, case.model, observed, callback=callback, **overrides)
    seconds = time.perf_counter() - start
    scores = metrics.evaluate(rec.images, case.images.cpu(), lpips_net=lpips_net)
    label = defense if not defense_options else f"{defense}({_fmt(defense_options)})"
    return AttackRun(attack, label, rec, scores, seconds)


def _fmt(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items())
