"""Pre-trained victim backbones: the offline stand-in for ImageNet weights.

The shadow defense paper (shadow_defense.txt, Sec. 5.1) starts every client from "ResNet18
pre-trained on ImageNet" and fine-tunes it on ChestXRay / EyePACS. No ImageNet weights can be
downloaded here, so :func:`pretrained` trains the victim on an embedded natural-image set
(``natural_color`` by default: crops of seven photographs) with a standard CIFAR recipe (SGD
with momentum, weight decay, cosine learning rate, random flip + 4 px padded random crop),
caches the backbone, and swaps the classifier for a fresh ``num_classes`` head -- the same
"pre-train, replace the head, fine-tune" start as the paper, at small scale.

Inputs stay in ``[0, 1]`` (no mean/std normalisation), as everywhere in gradinv: attacks
reconstruct ``[0, 1]`` images and feed them to the same model. The paper normalises to zero
mean and unit variance; that is an affine map the first layer can absorb.

Cache: ``<data_root>/weights/<name>-<dataset>-<size>-c<in_channels>-e<epochs>-s<seed>.pt``
(the trained backbone's state dict, before the head swap) with a JSON record beside it
(``.json``: test accuracy, seconds, torch version, recipe). Both are written atomically. A
record whose recipe (batch size, learning rate, ...) differs from the call's is a cache
miss: the backbone is retrained and the files are replaced.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gradinv.errors import GradInvError, MissingAssetError
from gradinv.utils import resolve_device


@dataclass(frozen=True)
class Config:
    """The pre-training recipe (the paper only says "pre-trained on ImageNet")."""

    epochs: int = 30  # our choice: enough for natural_color (840 images) to converge
    batch_size: int = 64  # our choice: paper silent
    lr: float = 0.05  # our choice: CIFAR ResNet recipe (He et al. 2016 use 0.1 at batch 128)
    momentum: float = 0.9  # He et al. 2016, Sec. 4.2
    weight_decay: float = 5e-4  # our choice: common CIFAR value (He et al. use 1e-4)
    padding: int = 4  # He et al. 2016, Sec. 4.2: 4 px padding, random crop, random flip
    seed: int = 0


@dataclass(frozen=True)
class PretrainRecord:
    """What a pre-training run did and how well the backbone classifies its test split."""

    name: str
    dataset: str
    size: int
    in_channels: int
    num_classes: int  # of the pre-training dataset (the backbone's own head)
    config: dict
    test_accuracy: float
    train_accuracy: float
    train_loss: list[float]  # mean cross-entropy per epoch
    seconds: float  # wall time of the training loop
    seconds_per_epoch: float
    device: str
    torch_version: str
    n_train: int
    n_test: int
    path: str = ""
    cached: bool = False  # True when this call loaded the cache instead of training
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a notebook: dataset, accuracy, epochs and time."""
        how = "loaded from cache" if self.cached else "trained"
        return (
            f"{self.name} pre-trained on {self.dataset} ({self.size} px, {self.in_channels} ch): "
            f"test accuracy {self.test_accuracy:.3f} (chance {1 / self.num_classes:.3f}) after "
            f"{self.config['epochs']} epochs in {self.seconds:.1f} s on {self.device} ({how})"
        )


def cache_path(
    name: str,
    dataset: str = "natural_color",
    size: int = 32,
    in_channels: int = 3,
    epochs: int = 30,
    seed: int = 0,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Where the backbone of this recipe is cached (``.pt``; the record is the ``.json``):
    ``cache_dir``, else ``<data_root(root)>/weights``."""
    from gradinv.data.registry import data_root

    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_root(root) / "weights"
    # "public": trained on the public split (older caches, trained on "train", are not reused)
    return folder / f"{name.lower()}-{dataset}-public-{size}-c{in_channels}-e{epochs}-s{seed}.pt"


def augment(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random crop after zero-padding by ``padding`` px, per image."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.to(x.device).view(b, 1, 1, 1), x.flip(-1), x)
    if padding <= 0:
        return x
    xp = F.pad(x, (padding, padding, padding, padding)).permute(0, 2, 3, 1)  # (B, H', W', C)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, h, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return xp[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def replace_head(model: nn.Module, num_classes: int, seed: int = 0) -> nn.Module:
    """Swap the final classifier (``model.fc`` if it is a Linear, else the last ``nn.Linear``
    in module order) for a fresh seeded ``nn.Linear`` with ``num_classes`` outputs."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        parent, attr, old = model, "fc", fc
    else:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise GradInvError(
                "model has no nn.Linear classifier to replace; pass num_classes=None"
            )
        qual, old = linears[-1]
        parent_name, _, attr = qual.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    setattr(parent, attr, new.to(device=old.weight.device, dtype=old.weight.dtype))
    return model


@torch.no_grad()
def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 256
) -> float:
    """Top-1 accuracy of ``model`` in eval mode (restores the mode it was in)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(labels), batch):
        pred = model(images[i : i + batch].to(device)).argmax(1).cpu()
        correct += int((pred == labels[i : i + batch]).sum())
    model.train(was_training)
    return correct / max(1, len(labels))


def _load_split(dataset: str, split: str, size: int, in_channels: int, root, name: str):
    from gradinv import data

    try:
        return data.load(dataset, split=split, size=size, channels=in_channels, root=root)
    except MissingAssetError as err:
        raise MissingAssetError(f"cannot pre-train {name} on {dataset!r}: {err}") from err


def train_backbone(
    name: str,
    dataset: str = "natural_color",
    size: int = 32,
    in_channels: int = 3,
    config: Config = Config(),
    device: str | torch.device | None = None,
    progress: bool = True,
    root: str | Path | None = None,
) -> tuple[nn.Module, PretrainRecord]:
    """Train ``models.build(name, in_channels, K, size)`` on ``dataset``'s public split (no
    cache): pre-training is outside knowledge, so it never touches a private split; accuracy
    is measured on the test split."""
    from gradinv import models

    dev = resolve_device(device)
    train = _load_split(dataset, "public", size, in_channels, root, name)
    test = _load_split(dataset, "test", size, in_channels, root, name)
    x, y = train.images.to(dev), train.labels.to(dev)
    n = len(y)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = max(1, config.epochs * steps_per_epoch)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(config.seed)
        model = models.build(name, in_channels, train.num_classes, size)
    model = model.to(dev)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for _ in tqdm(range(config.epochs), desc=f"pre-train {name}", disable=not progress):
        perm = torch.randperm(n, generator=gen).to(dev)
        total_loss = 0.0
        for i in range(0, n, config.batch_size):
            idx = perm[i : i + config.batch_size]
            if len(idx) < 2 and i > 0:  # BatchNorm needs two samples; drop a lone straggler
                continue
            xb = augment(x[idx], config.padding, gen)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
        losses.append(total_loss / n)
    seconds = time.perf_counter() - start
    record = PretrainRecord(
        name=name.lower(),
        dataset=dataset,
        size=size,
        in_channels=in_channels,
        num_classes=train.num_classes,
        config=asdict(config),
        test_accuracy=accuracy(model, test.images, test.labels),
        train_accuracy=accuracy(model, train.images, train.labels),
        train_loss=losses,
        seconds=seconds,
        seconds_per_epoch=seconds / max(1, config.epochs),
        device=str(dev),
        torch_version=torch.__version__,
        n_train=n,
        n_test=len(test),
    )
    model.eval()
    return model, record


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_cache(path: Path, config: Config) -> tuple[dict, PretrainRecord] | None:
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return None
    try:
        fields = json.loads(meta.read_text())
        if fields.get("config") != asdict(config):
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        fields.update(path=str(path), cached=True)
        return state, PretrainRecord(**fields)
    except (OSError, ValueError, RuntimeError, TypeError):  # unreadable: retrain, replace it
        return None


def pretrain_with_record(
    name: str,
    dataset: str = "natural_color",
    size: int = 32,
    in_channels: int = 3,
    num_classes: int | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    cache: bool = True,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[nn.Module, PretrainRecord]:
    """:func:`pretrained` that also returns the :class:`PretrainRecord` of the backbone."""
    config = Config(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    dev = resolve_device(device)
    path = cache_path(name, dataset, size, in_channels, epochs, seed, root, cache_dir)
    hit = _read_cache(path, config) if cache else None
    if hit is not None:
        from gradinv import models

        state, record = hit
        model = models.build(name, in_channels, record.num_classes, size)
        try:
            model.load_state_dict(state)
        except RuntimeError:  # architecture changed since the cache was written
            hit = None
        else:
            model = model.to(dev).eval()
    if hit is None:
        model, record = train_backbone(
            name, dataset, size, in_channels, config, dev, progress, root
        )
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            _atomic_write(path, lambda p: torch.save(state, p))
            fields = {k: v for k, v in asdict(record).items() if k not in ("path", "cached")}
            _atomic_write(path.with_suffix(".json"), lambda p: p.write_text(json.dumps(fields)))
            record = PretrainRecord(**{**fields, "path": str(path), "cached": False})
    if num_classes is not None:
        replace_head(model, num_classes, seed)
    return model, record


def pretrained(name: str, *args: Any, **kwargs: Any) -> nn.Module:
    """Victim ``name`` pre-trained on ``dataset`` (the ImageNet stand-in), in eval mode.

    Trains ``models.build(name, in_channels, K_dataset, size)`` on the public split of
    ``data.load(dataset, size=size, channels=in_channels)`` (``channels=1`` turns colour
    images grey, for ChestXRay-like targets), caches the backbone under
    ``<root>/weights/`` (or ``cache_dir``), and when ``num_classes`` is given replaces the
    classifier by a fresh seeded head with that many outputs. A second call with the same
    recipe loads the cache. Arguments as :func:`pretrain_with_record` (``dataset``, ``size``,
    ``in_channels``, ``num_classes``, ``epochs``, ``batch_size``, ``lr``, ``seed``,
    ``device``, ``progress``, ``cache``, ``root``, ``cache_dir``), which also returns the
    :class:`PretrainRecord`.
    """
    return pretrain_with_record(name, *args, **kwargs)[0]


def pretrain_record(name: str, *args: Any, **kwargs: Any) -> PretrainRecord:
    """The record of this recipe's backbone: read from the cache, else trained (and cached).
    Arguments as :func:`pretrain_with_record`."""
    return pretrain_with_record(name, *args, **kwargs)[1]


__all__ = [
    "Config",
    "PretrainRecord",
    "accuracy",
    "augment",
    "cache_path",
    "pretrain_with_record",
    "pretrain_record",
    "pretrained",
    "replace_head",
    "train_backbone",
]
