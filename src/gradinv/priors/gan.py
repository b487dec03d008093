"""Small GAN priors: a DCGAN generator (Radford, Metz and Chintala, ICLR 2016) trained against a
spectrally normalised discriminator (Miyato et al., ICLR 2018) with the hinge loss (Lim and Ye
2017; Miyato et al. eq. 15-16), for the GAN-based gradient inversion attacks (GIAS, GGL, GIFD:
GGSS-R Tables 3-5) and the shadow-model defense's public-data GAN.

Generator: ``z (latent_dim) -> Linear -> (w_0, 4, 4) -> [ConvTranspose x2 up]* -> (w_n, S, S)
-> Conv3x3 -> tanh``, BatchNorm + ReLU after every block. Its blocks are an
:class:`~torch.nn.ModuleList` so an attack can start from an intermediate layer (GIFD):
``features(z, k)`` runs blocks ``0..k-1`` and ``forward_from(k, h)`` the rest; ``k = 0`` is the
latent itself and ``forward_from(0, z) == forward(z)``.

Training (``train_gan``) follows the conventions of :mod:`gradinv.priors.train`: one registry
dataset, an atomic ``checkpoint.pt`` every ``checkpoint_every`` steps that a rerun resumes
bit-identically, then ``model.safetensors`` (the EMA generator only, fp16 by default) and
``config.json`` (spec, settings, SHA-256 of the training images, final losses, wall time).
Both networks see the same random translations of real and fake batches (DiffAugment, Zhao et
al., NeurIPS 2020; our choice: the shipped GANs train on a few hundred images).

A GAN is named ``gan-<dataset>-<size>`` (:func:`gan_name`); :func:`load_gan` looks in
:func:`~gradinv.priors.priors_root`, then among the shipped checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.errors import GradInvError, MissingAssetError
from gradinv.priors.storage import (
    find_folder,
    priors_root,
    read_config,
    read_weights,
    resume_state,
    run_settings,
    save_checkpoint,
    shipped_root,
    write_weights,
)
from gradinv.utils import resolve_device, seed_everything

LOSSES = ("hinge", "bce")


# -- architecture --------------------------------------------------------------------------
@dataclass(frozen=True)
class GANSpec:
    """Architecture of a generator (everything needed to rebuild it).

    ``widths`` are the channels at resolutions ``4, 8, ..., image_size`` (one entry per
    resolution, so ``len(widths) = log2(image_size / 4) + 1``)."""

    image_size: int = 32
    channels: int = 1
    latent_dim: int = 128  # our choice (SNGAN/DCGAN use 100-128)
    widths: tuple[int, ...] = (128, 64, 32, 16)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        levels = math.log2(self.image_size / 4) if self.image_size >= 4 else -1
        if levels < 0 or levels != int(levels):
            raise GradInvError(
                f"GAN image_size must be 4 times a power of two (4, 8, 16, 32, 64, ...); "
                f"got {self.image_size}"
            )
        if len(self.widths) != int(levels) + 1:
            raise GradInvError(
                f"a {self.image_size} px GAN needs {int(levels) + 1} widths (one per resolution "
                f"4..{self.image_size}); got {len(self.widths)}: {self.widths}"
            )
        if self.channels not in (1, 3):
            raise GradInvError(f"GAN channels must be 1 or 3, got {self.channels}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GANSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class _Stem(nn.Module):
    """Latent ``(N, latent_dim)`` to the first feature map ``(N, w_0, 4, 4)``."""

    def __init__(self, latent_dim: int, width: int):
        super().__init__()
        self.width = width
        self.linear = nn.Linear(latent_dim, width * 16, bias=False)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, z: Tensor) -> Tensor:
        return F.relu(self.norm(self.linear(z).reshape(-1, self.width, 4, 4)))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class Generator(nn.Module):
    """DCGAN generator; images in ``[-1, 1]``. ``blocks[0]`` is the stem (latent to 4x4),
    ``blocks[i]`` doubles the resolution, ``head`` maps to pixels (see module docstring)."""

    def __init__(self, spec: GANSpec):
        super().__init__()
        self.spec = spec
        w = spec.widths
        self.blocks = nn.ModuleList(
            [_Stem(spec.latent_dim, w[0])] + [_up(a, b) for a, b in zip(w[:-1], w[1:], strict=True)]
        )
        self.head = nn.Conv2d(w[-1], spec.channels, 3, 1, 1)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def _check_k(self, k: int) -> None:
        if not 0 <= k <= self.num_blocks:
            raise GradInvError(f"layer k must be in 0..{self.num_blocks}, got {k}")

    def features(self, z: Tensor, k: int) -> Tensor:
        """The input of block ``k``: ``z`` for ``k = 0``, else the output of block ``k - 1``."""
        self._check_k(k)
        h = z
        for block in self.blocks[:k]:
            h = block(h)
        return h

    def forward_from(self, k: int, h: Tensor) -> Tensor:
        """Image ``[-1, 1]`` from the input ``h`` of block ``k`` (``k = num_blocks``: head only)."""
        self._check_k(k)
        for block in self.blocks[k:]:
            h = block(h)
        return torch.tanh(self.head(h))

    def forward(self, z: Tensor) -> Tensor:
        return self.forward_from(0, z)


class Discriminator(nn.Module):
    """Spectrally normalised conv discriminator: stride-2 convs with LeakyReLU(0.2) from
    ``image_size`` down to 4x4, then a linear critic."""

    def __init__(self, spec: GANSpec):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        widths = tuple(reversed(spec.widths[:-1]))  # channels at sizes S/2, ..., 4
        layers: list[nn.Module] = []
        c = spec.channels
        for w in widths:
            layers += [sn(nn.Conv2d(c, w, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.linear = sn(nn.Linear(c * 16, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x).flatten(1)).squeeze(1)


# -- the prior -----------------------------------------------------------------------------
class GanPrior(nn.Module):
    """A trained generator with its spec; works in ``[-1, 1]``, samples in ``[0, 1]``."""

    def __init__(self, spec: GANSpec, generator: Generator | None = None):
        super().__init__()
        self.spec = spec
        self.generator = generator if generator is not None else Generator(spec)
        self.meta: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.spec.image_shape

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    def latents(self, n: int, seed: int = 0) -> Tensor:
        """``n`` seeded standard-normal latents on the prior's device."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return torch.randn((n, self.latent_dim), generator=gen).to(self.device)

    def decode(self, z: Tensor) -> Tensor:
        """Images in ``[0, 1]`` for latents ``z`` ``(N, latent_dim)`` (differentiable)."""
        return (self.generator(z) + 1) / 2

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` seeded samples in ``[0, 1]``, shape ``(n, C, H, W)``."""
        return self.decode(self.latents(n, seed)).clamp(0, 1)

    def save(self, folder: str | Path, half: bool = True, **meta: Any) -> Path:
        """Write ``model.safetensors`` (generator, fp16 with ``half``) and ``config.json``."""
        config = {"kind": "gan", "spec": self.spec.to_dict(), **self.meta, **meta}
        return write_weights(self.generator, folder, half, config)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> GanPrior:
        """Rebuild a GAN saved by :meth:`save` (eval mode, frozen)."""
        meta = read_config(
            folder,
            "train one with gradinv.priors.gan.train_gan(GanTrainConfig(dataset=..., size=...), "
            "FOLDER)",
        )
        if meta.get("kind") != "gan":
            raise GradInvError(
                f"{folder} holds a {meta.get('kind', 'diffusion')} prior, not a GAN; give a GAN "
                "folder or name ('gan-<dataset>-<size>')"
            )
        prior = cls(GANSpec.from_dict(meta["spec"]))
        read_weights(prior.generator, folder)
        prior.meta = {k: v for k, v in meta.items() if k not in ("spec", "kind")}
        return prior.to(device).eval().requires_grad_(False)


def gan_name(dataset: str, size: int) -> str:
    """The registry name of the GAN of ``dataset`` at ``size`` px."""
    return f"gan-{dataset}-{int(size)}"


def load_gan(name_or_folder: str | Path, device: str | torch.device = "cpu") -> GanPrior:
    """Load a GAN by folder path or registry name (``gan-<dataset>-<size>``)."""
    path = Path(name_or_folder)
    if path.is_dir():
        return GanPrior.load(path, device)
    if len(path.parts) > 1:
        raise MissingAssetError(
            f"GAN folder {path} does not exist; give an existing folder or a registry name "
            "such as 'gan-chest_xray-32'"
        )
    name = str(name_or_folder)
    folder = find_folder(name)
    if folder is None:
        rest = name.removeprefix("gan-")
        dataset, _, size = rest.rpartition("-")
        hint = "" if name.startswith("gan-") else " (GAN names start with 'gan-')"
        raise MissingAssetError(
            f"GAN {name!r} not found in {priors_root()} or {shipped_root()}{hint}; train it with "
            f"gradinv.priors.gan.ensure_gan(GanTrainConfig(dataset={dataset or 'NAME'!r}, "
            f"size={size or 'S'}))"
        )
    return GanPrior.load(folder, device)


# -- training ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GanTrainConfig:
    """What to train on and how (defaults: a ~0.3M-parameter 32 px GAN that trains on a CPU)."""

    dataset: str
    size: int = 32
    channels: int | None = None  # None: the dataset's own
    split: str = "public"  # a GAN prior or shadow model is public knowledge, never private
    label: str | None = None  # keep one class only; None: all
    steps: int = 3000  # our choice: CPU budget
    batch_size: int = 64  # DCGAN/SNGAN: 64
    lr: float = 2e-4  # DCGAN / SNGAN: 2e-4 for both networks
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN; SNGAN with n_dis = 1
    loss: str = "hinge"  # Miyato et al. eq. 16 ("bce": the original non-saturating loss)
    latent_dim: int = 128  # our choice
    widths: tuple[int, ...] | None = None  # None: (128, 64, 32, 16)-style, one per resolution
    ema_decay: float = 0.999  # our choice: EMA generator (Yazici et al., ICLR 2019)
    translate: float = 0.125  # DiffAugment translation (fraction of the side); 0: off
    checkpoint_every: int = 500
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.loss not in LOSSES:
            raise GradInvError(f"unknown GAN loss {self.loss!r}; choose one of {LOSSES}")

    def spec(self, channels: int) -> GANSpec:
        if self.widths is not None:
            widths = self.widths
        else:
            levels = max(0, int(round(math.log2(max(self.size, 4) / 4))))
            widths = tuple(max(16, 128 >> i) for i in range(levels + 1))
        return GANSpec(self.size, channels, self.latent_dim, widths)


def _translate(x: Tensor, shift: Tensor) -> Tensor:
    """Shift each image of ``x`` by integer ``shift[b] = (dy, dx)`` with zero fill
    (DiffAugment's translation; differentiable in ``x``)."""
    n, _, h, w = x.shape
    p = int(shift.abs().max()) if shift.numel() else 0
    if p == 0:
        return x
    xp = F.pad(x, (p, p, p, p))
    rows = torch.arange(h, device=x.device)[None] + p - shift[:, :1]  # (N, H)
    cols = torch.arange(w, device=x.device)[None] + p - shift[:, 1:]  # (N, W)
    b = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def _d_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_loss(kind: str, fake: Tensor) -> Tensor:
    return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()


def train_gan(
    config: GanTrainConfig,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    save_half: bool = True,
) -> GanPrior:
    """Train (or resume training) a GAN on ``config.dataset``; returns the EMA generator."""
    from gradinv.priors.train import data_hash, training_images

    out = Path(out)
    device = resolve_device(config.device)
    images, provenance = training_images(
        config.dataset, config.split, config.size, config.channels, config.label
    )
    if images.shape[-1] != config.size:
        raise GradInvError(f"{config.dataset} loaded at {images.shape[-1]} px, not {config.size}")
    digest = data_hash(images)
    spec = config.spec(images.shape[1])
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    g_net, d_net = Generator(spec).to(device), Discriminator(spec).to(device)
    ema = copy.deepcopy(g_net).requires_grad_(False)
    opt_g = torch.optim.Adam(g_net.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(d_net.parameters(), lr=config.lr, betas=config.betas)
    gen = torch.Generator().manual_seed(config.seed)
    step, seconds = 0, 0.0
    losses: dict[str, list[float]] = {"d": [], "g": []}

    ckpt = out / "checkpoint.pt"
    settings = run_settings(config)
    state = resume_state(ckpt, settings, digest, device, resume)
    if state is not None:
        g_net.load_state_dict(state["generator"])
        d_net.load_state_dict(state["discriminator"])
        ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        gen.set_state(state["rng"])
        step, losses, seconds = state["step"], state["losses"], state["seconds"]

    real_all = (images * 2 - 1).to(device)
    max_shift = int(config.size * config.translate + 0.5)
    b = config.batch_size

    def augment(x: Tensor, shift: Tensor) -> Tensor:
        return _translate(x, shift.to(x.device)) if max_shift > 0 else x

    bar = tqdm(total=config.steps, initial=step, desc=f"GAN {config.dataset}", disable=not progress)
    g_net.train(), d_net.train()
    began = time.perf_counter() - seconds
    while step < config.steps:
        idx = torch.randint(len(real_all), (b,), generator=gen).to(device)
        z = torch.randn((2, b, spec.latent_dim), generator=gen).to(device)
        shifts = torch.randint(-max_shift, max_shift + 1, (3, b, 2), generator=gen)
        # discriminator step (hinge: Miyato et al. eq. 16)
        with torch.no_grad():
            fake = g_net(z[0])
        d_loss = _d_loss(
            config.loss, d_net(augment(real_all[idx], shifts[0])), d_net(augment(fake, shifts[1]))
        )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator step
        g_loss = _g_loss(config.loss, d_net(augment(g_net(z[1]), shifts[2])))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        dv, gv = d_loss.item(), g_loss.item()
        if not (math.isfinite(dv) and math.isfinite(gv)):
            raise GradInvError(
                f"GAN training diverged at step {step} (D {dv}, G {gv}); lower lr. "
                f"The last checkpoint in {out} is intact."
            )
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), g_net.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
            for e, p in zip(ema.buffers(), g_net.buffers(), strict=True):
                e.copy_(p)
        losses["d"].append(dv)
        losses["g"].append(gv)
        step += 1
        bar.update(1)
        bar.set_postfix(
            d=f"{sum(losses['d'][-50:]) / 50:.3f}", g=f"{sum(losses['g'][-50:]) / 50:.3f}"
        )
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(
                ckpt,
                {
                    "generator": g_net.state_dict(),
                    "discriminator": d_net.state_dict(),
                    "ema": ema.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "rng": gen.get_state(),
                    "step": step,
                    "losses": losses,
                    "seconds": time.perf_counter() - began,
                    "data_hash": digest,
                    "settings": settings,
                },
            )
    bar.close()
    prior = GanPrior(spec, ema).to(device).eval().requires_grad_(False)

    def tail(v: list[float]) -> float:
        w = v[-200:] or [float("nan")]
        return sum(w) / len(w)

    prior.meta = {
        "dataset": config.dataset,
        "provenance": provenance,
        "train_images": len(images),
        "data_hash": digest,
        "training": settings,
        "steps_done": step,
        "final_d_loss": tail(losses["d"]),
        "final_g_loss": tail(losses["g"]),
        "seconds": round(time.perf_counter() - began, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    prior.save(out, half=save_half)
    return prior


def ensure_gan(
    config: GanTrainConfig, device: str | torch.device = "cpu", progress: bool = True
) -> GanPrior:
    """The GAN of ``config.dataset`` at ``config.size``: loaded if it exists (shipped or
    trained before), else trained into ``priors_root()`` (resuming a checkpoint)."""

    name = gan_name(config.dataset, config.size)
    if find_folder(name) is not None:
        return load_gan(name, device)
    train_gan(config, priors_root() / name, progress=progress)
    return load_gan(name, device)
