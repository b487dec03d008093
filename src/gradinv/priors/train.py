"""Training a DDPM prior: the simple loss of Ho et al. (2020, Algorithm 1 / eq. 14),
AdamW, an exponential moving average of the weights, periodic checkpoints and resume.

``train_prior(config, out)`` trains on one registry dataset (embedded or real, e.g. a
MedMNIST npz) and writes into ``out``:

* ``checkpoint.pt`` every ``checkpoint_every`` steps (weights, EMA, optimiser, RNG, step):
  rerunning the same command resumes from it, so an interrupted run loses at most one
  checkpoint interval;
* ``model.safetensors`` + ``config.json`` at the end: the EMA weights, the
  :class:`~gradinv.priors.ddpm.PriorSpec`, the training settings, the SHA-256 of the training
  images, the loss curve summary and the wall time.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gradinv import data
from gradinv.errors import GradInvError
from gradinv.priors.ddpm import DiffusionPrior, PriorSpec, from_image
from gradinv.priors.storage import resume_state, run_settings
from gradinv.priors.storage import save_checkpoint as _save_checkpoint  # patched in tests
from gradinv.utils import resolve_device, seed_everything


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how (defaults: a ~1M-parameter 32 px prior that trains on a CPU)."""

    dataset: str
    size: int = 32
    channels: int | None = None  # None: the dataset's own
    split: str = "public"  # a prior is attacker knowledge: never a private split
    label: str | None = None  # keep one class only (faces-32: "face"); None: all
    steps: int = 4000
    batch_size: int = 32
    lr: float = 5e-4  # GradInvDiff: 1e-4 with far longer training; 5e-4 fits CPU budgets
    ema_decay: float = 0.999
    warmup: int = 200
    hflip: bool = False  # medical images have a handedness: off by default
    checkpoint_every: int = 500
    seed: int = 0
    device: str | None = None
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = True
    beta_schedule: str = "squaredcos_cap_v2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))

    def spec(self, channels: int) -> PriorSpec:
        return PriorSpec(
            image_size=self.size,
            channels=channels,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            attention=self.attention,
            beta_schedule=self.beta_schedule,
        )


def data_hash(images: torch.Tensor) -> str:
    """SHA-256 of the training images as 8-bit integers (shape included)."""
    q = (images.clamp(0, 1) * 255).round().to(torch.uint8).contiguous().numpy()
    h = hashlib.sha256(str(tuple(q.shape)).encode())
    h.update(q.tobytes())
    return h.hexdigest()


def training_images(
    dataset: str, split: str, size: int, channels: int | None, label: str | None
) -> tuple[torch.Tensor, dict]:
    """The images a prior trains on (float, [0, 1]) and their provenance, with the split and
    class recorded; shared by the DDPM and GAN trainers."""
    ds = data.load(dataset, split=split, size=size, channels=channels)
    images = ds.images.float()
    if label is not None:
        if label not in ds.class_names:
            raise GradInvError(f"{dataset} has no class {label!r}; classes: {ds.class_names}")
        images = images[ds.labels == ds.class_names.index(label)]
    return images, {**ds.provenance, "split": split, "label": label}


def _lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(1, warmup))


def train_prior(
    config: TrainConfig,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    save_half: bool = True,
) -> DiffusionPrior:
    """Train (or resume training) a prior on ``config.dataset``; returns the EMA prior."""
    out = Path(out)
    device = resolve_device(config.device)
    images, provenance = training_images(
        config.dataset, config.split, config.size, config.channels, config.label
    )
    out.mkdir(parents=True, exist_ok=True)
    digest = data_hash(images)
    spec = config.spec(images.shape[1])
    seed_everything(config.seed)
    prior = DiffusionPrior(spec).to(device)
    ema = copy.deepcopy(prior.unet).requires_grad_(False)
    opt = torch.optim.AdamW(prior.unet.parameters(), lr=config.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    step, losses, seconds = 0, [], 0.0

    ckpt = out / "checkpoint.pt"
    settings = run_settings(config)
    state = resume_state(ckpt, settings, digest, device, resume)
    if state is not None:
        prior.unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, losses, seconds = state["step"], state["losses"], state["seconds"]

    images = images.to(device)
    x_all = from_image(images)
    t_max = spec.num_train_timesteps
    bar = tqdm(
        total=config.steps, initial=step, desc=f"prior {config.dataset}", disable=not progress
    )
    prior.unet.train()
    began = time.perf_counter() - seconds
    while step < config.steps:
        idx = torch.randint(len(x_all), (config.batch_size,), generator=gen).to(device)
        x0 = x_all[idx]
        if config.hflip:
            flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.randint(t_max, (len(idx),), generator=gen).to(device)
        loss = (prior.unet(prior.add_noise(x0, noise, t), t).sample - noise).square().mean()
        value = loss.item()
        if not math.isfinite(value):
            raise GradInvError(
                f"prior training diverged at step {step} (loss {value}); lower --lr. "
                f"The last checkpoint in {out} is intact."
            )
        for g in opt.param_groups:
            g["lr"] = config.lr * _lr_factor(step, config.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.unet.parameters(), 1.0)
        opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), prior.unet.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        losses.append(value)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(
                ckpt,
                {
                    "unet": prior.unet.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "step": step,
                    "losses": losses,
                    "seconds": time.perf_counter() - began,
                    "data_hash": digest,
                    "settings": settings,
                },
            )
    bar.close()
    final = DiffusionPrior(spec, unet=ema).to(device).eval().requires_grad_(False)
    window = losses[-200:] or [float("nan")]
    final.meta = {
        "dataset": config.dataset,
        "provenance": provenance,
        "train_images": len(images),
        "data_hash": digest,
        "training": settings,
        "steps_done": step,
        "final_loss": sum(window) / len(window),
        "seconds": round(time.perf_counter() - began, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    final.save(out, half=save_half)
    return final
