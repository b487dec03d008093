"""DDPM priors (Ho, Jain and Abbeel, NeurIPS 2020) on ``diffusers``, with DDIM sampling
(Song, Meng and Ermon, ICLR 2021) for the same model.

A :class:`DiffusionPrior` holds the noise predictor ``eps_theta`` (a ``diffusers``
``UNet2DModel``) and the noise schedule (a ``DDPMScheduler``'s ``alphas_cumprod``,
``abar``). Guided samplers need more than ``scheduler.step``: at every reverse step from
``t`` to an earlier ``s`` (``s = t - 1`` for full DDPM, or a respaced step) they read

* the predicted noise ``eps = eps_theta(x_t, t)``,
* the clean-image estimate ``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` (Ho et al. eq. 15),
* the posterior mean ``mu_theta(x_t, t) = c0 x0 + ct x_t`` with
  ``c0 = sqrt(abar_s) beta / (1 - abar_t)``, ``ct = sqrt(alpha) (1 - abar_s) / (1 - abar_t)``,
  ``alpha = abar_t / abar_s``, ``beta = 1 - alpha`` (Ho et al. eq. 7),
* the posterior standard deviation ``Sigma = sqrt(beta (1 - abar_s) / (1 - abar_t))``
  (the "fixed small" variance; ``Sigma`` in GradInvDiff eqs. 4-8).

:meth:`DiffusionPrior.posterior` returns all four; :meth:`DiffusionPrior.ddim_step` is DDIM's
update (Song et al. eq. 12) from the same ``eps``. The prior works in ``[-1, 1]``;
:func:`to_image` / :func:`from_image` convert to and from the ``[0, 1]`` images of a case.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.errors import GradInvError
from gradinv.priors.storage import read_config, read_weights, write_weights


def to_image(x: Tensor) -> Tensor:
    """Prior space ``[-1, 1]`` to image space ``[0, 1]``."""
    return (x + 1) / 2


def from_image(x: Tensor) -> Tensor:
    """Image space ``[0, 1]`` to prior space ``[-1, 1]``."""
    return x * 2 - 1


@dataclass(frozen=True)
class PriorSpec:
    """Architecture and noise schedule of a prior (everything needed to rebuild it)."""

    image_size: int = 32
    channels: int = 1
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # ~1.1M parameters at 32 px
    layers_per_block: int = 1
    attention: bool = True  # self-attention at the lowest resolution (Ho et al. use 16 px)
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000  # Ho et al. T = 1000
    # iDDPM's cosine schedule (Nichol and Dhariwal 2021, the paper's framework); "linear" is Ho's
    beta_schedule: str = "squaredcos_cap_v2"

    def __post_init__(self) -> None:
        levels = 2 ** (len(self.block_out_channels) - 1)
        if self.image_size % levels:
            raise GradInvError(
                f"image_size {self.image_size} must be a multiple of {levels} for a UNet with "
                f"{len(self.block_out_channels)} levels; pick another size or fewer levels"
            )
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise GradInvError(
                f"block_out_channels {self.block_out_channels} must be multiples of "
                f"norm_num_groups={self.norm_num_groups}"
            )

    def unet(self) -> nn.Module:
        from diffusers import UNet2DModel

        n = len(self.block_out_channels)
        down = ["DownBlock2D"] * n
        up = ["UpBlock2D"] * n
        if self.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        return UNet2DModel(
            sample_size=self.image_size,
            in_channels=self.channels,
            out_channels=self.channels,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=self.norm_num_groups,
            attention_head_dim=self.block_out_channels[-1],
        )

    def scheduler(self) -> Any:
        from diffusers import DDPMScheduler

        return DDPMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
            variance_type="fixed_small",
            clip_sample=True,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "block_out_channels" in d:
            d["block_out_channels"] = tuple(d["block_out_channels"])
        return cls(**d)


class Posterior(NamedTuple):
    """What a guided sampler reads at one reverse step ``t -> s`` (all in prior space)."""

    mean: Tensor  # mu_theta(x_t, t), Ho et al. eq. 7
    std: Tensor  # Sigma: sqrt of the posterior variance (scalar tensor)
    x0: Tensor  # clean-image estimate, Ho et al. eq. 15
    eps: Tensor  # predicted noise eps_theta(x_t, t)


@dataclass
class SamplePath:
    """Snapshots of a reverse process (for Fig. 2-style views)."""

    steps: list[int] = field(default_factory=list)
    x: list[Tensor] = field(default_factory=list)
    x0: list[Tensor] = field(default_factory=list)


class DiffusionPrior(nn.Module):
    """A DDPM noise predictor with its schedule; see the module docstring for the maths."""

    def __init__(self, spec: PriorSpec, unet: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        self.unet = unet if unet is not None else spec.unet()
        abar = spec.scheduler().alphas_cumprod.to(torch.float32)
        self.register_buffer("abar", abar, persistent=False)
        self.meta: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.abar.device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.spec.channels, self.spec.image_size, self.spec.image_size)

    @property
    def num_train_timesteps(self) -> int:
        return self.spec.num_train_timesteps

    # -- the schedule -----------------------------------------------------------------
    def timesteps(self, steps: int | None = None) -> list[int]:
        """Descending timesteps of a reverse process with ``steps`` steps (``None``: all ``T``).

        Respacing starts at ``T - 1``, ends at ``0`` when ``steps > 1`` and spaces the rest
        evenly (iDDPM's respacing); one step goes from ``T - 1`` straight to ``x_0``."""
        t_max = self.num_train_timesteps
        n = t_max if steps is None else int(steps)
        if not 1 <= n <= t_max:
            raise GradInvError(f"steps must be in 1..{t_max}, got {steps}")
        ts = torch.linspace(t_max - 1, 0, n).round().long().unique_consecutive()
        return [int(t) for t in ts]

    def _abar(self, t: int) -> Tensor:
        return self.abar[t] if t >= 0 else torch.ones((), device=self.device)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Forward process ``q(x_t | x_0)`` (Ho et al. eq. 4, the closed form of eq. 3)."""
        a = self.abar[t].reshape(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    # -- one reverse step -------------------------------------------------------------
    def eps(self, x_t: Tensor, t: int) -> Tensor:
        """The predicted noise ``eps_theta(x_t, t)`` for a batch ``(B, C, H, W)``."""
        if tuple(x_t.shape[1:]) != self.image_shape:
            raise GradInvError(
                f"the prior generates {self.image_shape} images but got {tuple(x_t.shape[1:])}; "
                "train or load a prior of the victim's image size and channels"
            )
        tt = torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long)
        return self.unet(x_t, tt).sample

    def posterior(
        self, x_t: Tensor, t: int, s: int, eps: Tensor | None = None, clip: bool = True
    ) -> Posterior:
        """``mu_theta(x_t, t)``, ``Sigma``, ``x0`` and ``eps`` for the step ``t -> s``
        (``s = -1``: the last step, to ``x_0``). ``clip`` clamps ``x0`` to ``[-1, 1]``."""
        if not s < t:
            raise GradInvError(f"a reverse step goes from t to an earlier s; got t={t}, s={s}")
        eps = self.eps(x_t, t) if eps is None else eps
        a_t, a_s = self._abar(t), self._abar(s)
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        alpha = a_t / a_s
        beta = 1 - alpha
        mean = (a_s.sqrt() * beta / (1 - a_t)) * x0 + (alpha.sqrt() * (1 - a_s) / (1 - a_t)) * x_t
        var = beta * (1 - a_s) / (1 - a_t)
        return Posterior(mean, var.clamp_min(0).sqrt(), x0, eps)

    def ddim_mean(
        self, x_t: Tensor, t: int, s: int, eps: Tensor, eta: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """DDIM's deterministic part and noise scale for ``t -> s`` (Song et al. eq. 12,
        GGSS-R eq. 5): ``x_s = mean + sigma z``, ``sigma = eta sqrt((1 - a_s) / (1 - a_t)
        (1 - a_t / a_s))``. With ``eta = 1`` this is the DDPM posterior (Ho et al. eq. 7)."""
        a_t, a_s = self._abar(t), self._abar(s)
        x0 = ((x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).clamp_min(0).sqrt()
        mean = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp_min(0).sqrt() * eps
        return mean, sigma

    def ddim_step(
        self,
        x_t: Tensor,
        t: int,
        s: int,
        eps: Tensor,
        eta: float = 0.0,
        noise: Tensor | None = None,
    ) -> Tensor:
        """DDIM's update (Song et al. eq. 12) from ``t`` to ``s`` with stochasticity ``eta``."""
        mean, sigma = self.ddim_mean(x_t, t, s, eps, eta)
        if eta > 0:
            return mean + sigma * (torch.randn_like(x_t) if noise is None else noise)
        return mean

    # -- unguided sampling ------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int | None = 100,
        method: str = "ddpm",
        eta: float = 0.0,
        seed: int = 0,
        progress: bool = False,
        path: SamplePath | None = None,
        snapshot_every: int = 0,
    ) -> Tensor:
        """``n`` unguided samples in image space ``[0, 1]`` (``method``: ``"ddpm"`` or ``"ddim"``)."""
        if method not in ("ddpm", "ddim"):
            raise GradInvError(f"method must be 'ddpm' or 'ddim', got {method!r}")
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        x = torch.randn((n, *self.image_shape), generator=gen).to(self.device)
        ts = self.timesteps(steps)
        for i, t in enumerate(tqdm(ts, desc=f"{method} sampling", disable=not progress)):
            s = ts[i + 1] if i + 1 < len(ts) else -1
            if method == "ddim":
                eps = self.eps(x, t)
                noise = torch.randn(x.shape, generator=gen).to(self.device) if eta > 0 else None
                x0 = self.posterior(x, t, s, eps=eps).x0
                x = self.ddim_step(x, t, s, eps, eta, noise)
            else:
                post = self.posterior(x, t, s)
                x0 = post.x0
                noise = torch.randn(x.shape, generator=gen).to(self.device)
                x = post.mean + (post.std * noise if s >= 0 else 0)
            if path is not None and (s < 0 or (snapshot_every and i % snapshot_every == 0)):
                path.steps.append(t)
                path.x.append(to_image(x).clamp(0, 1).cpu())
                path.x0.append(to_image(x0).clamp(0, 1).cpu())
        return to_image(x).clamp(0, 1)

    # -- storage ----------------------------------------------------------------------
    def save(self, folder: str | Path, half: bool = False, **meta: Any) -> Path:
        """Write ``model.safetensors`` (fp16 with ``half``) and ``config.json`` into ``folder``."""
        config = {"spec": self.spec.to_dict(), **self.meta, **meta}
        return write_weights(self.unet, folder, half, config)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> DiffusionPrior:
        """Rebuild a prior saved by :meth:`save`."""
        meta = read_config(
            folder, "train one with `gradinv priors train --dataset NAME --size S --out FOLDER`"
        )
        prior = cls(PriorSpec.from_dict(meta["spec"]))
        read_weights(prior.unet, folder)
        prior.meta = {k: v for k, v in meta.items() if k != "spec"}
        return prior.to(device).eval().requires_grad_(False)
