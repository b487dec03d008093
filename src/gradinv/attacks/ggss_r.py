"""GGSS-R (Meng et al., "Enhanced Privacy Leakage from Noise-Perturbed Gradients via
Gradient-Guided Conditional Diffusion Models"): DDIM sampling steered by the leaked gradient
on the sphere where DDIM's Gaussian step concentrates (Gradient-guided Gaussian Spherical
Sampling, Sec. 4.3, Algorithm 1), after DSG (Yang et al., ICML 2024).

The text copy of the paper lost its equations; these are the ones implemented (the notebook
writes them out too). With ``a_t`` the cumulative ``alpha_bar``:

* eq. 10 (Tweedie): ``x0(x_t) = (x_t - sqrt(1 - a_t) eps_theta(x_t, t)) / sqrt(a_t)``;
* eq. 5 (DDIM): ``x_s = mu_t + sigma_t z`` with
  ``mu_t = sqrt(a_s) x0(x_t) + sqrt(1 - a_s - sigma_t^2) eps_theta`` and
  ``sigma_t = eta sqrt((1 - a_s) / (1 - a_t) (1 - a_t / a_s))``;
* eq. 13: the attack loss ``L(x_t) = || grad_W loss(f_W(x0(x_t)), y) - g' ||_2`` (Euclidean,
  Sec. 6.1), differentiated with respect to ``x_t`` through ``eps_theta``;
* eq. 14-15 (Laurent-Massart): ``sigma_t z`` lies near the sphere of radius
  ``r_t = sqrt(n) sigma_t`` around ``mu_t`` (``n`` pixels);
* eq. 16 (GGSS): the point of that sphere that decreases ``L`` fastest,
  ``x_s = mu_t + d*`` with ``d* = -r_t grad L / ||grad L||``;
* eq. 17 (GGSS-R): ``d_m = d_sample + g (d* - d_sample)`` with ``d_sample = sigma_t z``
  and guidance rate ``g`` (0.2), then ``x_s = mu_t + r_t d_m / ||d_m||``.

Choices where the paper is silent (all parameters): ``eta = 1`` and 100 steps (DSG's code
defaults), guidance at every step (DSG's ``interval = 1``), labels by iDLG / count
inference (``label_method="auto"``), the last step returns ``x0`` (``sigma = 0`` there).
``refined=False`` gives the deterministic eq. 16 step instead of eq. 17.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradinv.attacks.core.diffusion import guided_start, reverse_process
from gradinv.attacks.core.options import GuidedOptions
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.priors import SamplePath, to_image


@dataclass(frozen=True)
class Config(GuidedOptions):
    steps: int = 100  # DDIM reverse steps; our choice (paper silent; DSG's default)
    eta: float = 1.0  # DDIM stochasticity of eq. 5; our choice (DSG's default)
    guidance_rate: float = 0.2  # g of eq. 17, Sec. 6.1 (Table 6 sweeps 0.01-0.8)
    refined: bool = True  # eq. 17 (True) or the deterministic eq. 16 step (False)
    distance: str = "l2"  # Sec. 6.1: Euclidean attack loss (direction identical for l2^2)
    interval: int = 1  # guide every `interval` steps; our choice (DSG's default 1)
    label_method: str = "auto"  # our choice: iDLG for B = 1, count inference for batches

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.guidance_rate <= 1.0:
            raise GradInvError(f"guidance_rate must be in [0, 1], got {self.guidance_rate}")
        if self.eta <= 0:
            raise GradInvError(
                f"eta must be > 0: the spherical step has radius sqrt(n) sigma_t, which is 0 "
                f"for deterministic DDIM (got eta={self.eta})"
            )
        if self.interval < 1:
            raise GradInvError(f"interval must be >= 1, got {self.interval}")


def _unit(v: Tensor) -> Tensor:
    """``v / ||v||`` per image (rows of a batch)."""
    norm = v.flatten(1).norm(dim=1).clamp_min(1e-30)
    return v / norm.reshape(-1, *([1] * (v.ndim - 1)))


def spherical_step(
    mean: Tensor,
    sigma: Tensor,
    grad: Tensor,
    noise: Tensor | None = None,
    guidance_rate: float = 0.2,
) -> Tensor:
    """The GGSS step of eq. 16 (``noise=None``) or GGSS-R's eq. 17 (with ``noise``): a point
    at distance ``sqrt(n) sigma`` from ``mean`` (per image), moved against ``grad``."""
    r = math.sqrt(mean[0].numel()) * sigma
    d_star = -r * _unit(grad)  # eq. 16
    if noise is None:
        return mean + d_star
    d_sample = sigma * noise
    d_mix = d_sample + guidance_rate * (d_star - d_sample)  # eq. 17
    return mean + r * _unit(d_mix)


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """GGSS-R (Algorithm 1 with eq. 17): gradient-guided spherical DDIM sampling."""
    g = guided_start(model, observed, config)
    x0_path = SamplePath()

    def step(i: int, t: int, s: int, x_t: Tensor) -> tuple[Tensor, dict[str, float]]:
        record: dict[str, float] = {}
        if s >= 0 and i % config.interval == 0:
            dist, grad, post = g.match_through_x0(x_t, t, s)
            eps, x0 = post.eps, post.x0
            record["distance"] = float(dist.clamp_min(0).sqrt())  # ||.||_2 of eq. 13
        else:
            with torch.no_grad():
                eps = g.prior.eps(x_t, t)
            x0, grad = None, None
        with torch.no_grad():
            mean, sigma = g.prior.ddim_mean(x_t, t, s, eps, config.eta)
            if x0 is None:
                x0 = g.prior.posterior(x_t, t, max(s, -1), eps=eps).x0
            if s < 0:
                x_s = mean  # sigma = 0 at the last step: x_0 = x0(x_1)
            elif grad is None:
                x_s = mean + sigma * g.noise(x_t)
            else:
                noise = g.noise(x_t) if config.refined else None
                x_s = spherical_step(mean, sigma, grad, noise, config.guidance_rate)
        if s < 0 or (config.snapshot_every and i % config.snapshot_every == 0):
            x0_path.steps.append(t)
            x0_path.x.append(to_image(x0).clamp(0, 1).cpu())
        return x_s, record

    rec = reverse_process(
        g, config.steps, step, callback, config.progress, config.snapshot_every, "GGSS-R"
    )
    rec.extras["x0_path"] = x0_path
    return rec
