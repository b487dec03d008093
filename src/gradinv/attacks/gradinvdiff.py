"""GradInvDiff (Wang, Gan, Fang, Zhu and Liu, MICCAI 2025): diffusion-based gradient inversion
with Adaptive Mean Optimization (AMO) and Gradient-Aligned Noise Injection (GANI).

At each reverse step ``t -> s`` of a DDPM prior (eq. 4), with ``mu_theta = mu_theta(x_t, t)``:

1. **AMO** (Sec. 2.3): ``K`` Adam steps of learning rate ``eta`` on the mean itself, minimising
   the negative-cosine matching loss ``D`` (eq. 2) of the victim's gradient at that mean;
   ``mu*`` is the iterate with the lowest ``D`` (:func:`adaptive_mean`).
2. **Blend** (eq. 6): ``mu_bar = gamma_t mu* + (1 - gamma_t) mu_theta`` with ``gamma_t``
   linear from 1 at ``t = T`` to 0 at ``t = 0`` (:func:`gamma_schedule`).
3. **GANI** (eq. 7): the noise is projected on the residual ``dmu = mu* - mu_theta``,
   ``eps_proj = <eps, dmu> / ||dmu||^2 dmu`` (:func:`project_noise`), per image.
4. **Step** (eq. 8): ``x_s = mu_bar + Sigma eps_proj``.

Ablations (Table 2): ``gani=False`` injects the usual ``Sigma eps``. ``amo=False`` ("w/o
AMO") replaces AMO by the guidance AMO was introduced to improve on, GGDM's eq. 5 mean
``mu_bar = mu_theta - gamma Sigma^2 grad_mu D`` (``without_amo="eq5"``, the default, with
``wo_amo_gamma``), and GANI projects the noise on ``mu_bar - mu_theta``: the ablation keeps
gradient guidance, so it measures what AMO adds over classifier guidance (our reading; the
paper does not define it). ``without_amo="unguided"`` keeps ``mu_bar = mu_theta`` and only
projects the noise on one plain step ``-grad_mu D``: the mean is then unguided, and "AMO
matters most" holds by construction (the reading of the earlier runs, issue 19).

Defaults from the paper: ``K = 5``, ``eta = 0.01``, Adam, negative cosine loss, RLU labels,
DDPM with ``T = 1000``. Our choices (parameters): the victim is evaluated on ``mu`` mapped to
``[0, 1]``; ``mu*`` is chosen among the ``K`` Adam iterates (``include_start=True`` also
admits ``mu_theta``); a fresh Adam state at every step; ``steps`` respaces the reverse
process for budgets below ``T`` (iDDPM respacing), and then ``respace_lr`` scales ``eta`` by
``T / steps`` so that AMO's total step length matches the paper's ``T``-step process (at 50
steps, 0.2 instead of 0.01: measured +2 to +9 dB on four smoke images; at ``T`` steps the
paper's 0.01 is used as is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradinv.attacks.core.diffusion import (
    Guidance,
    classifier_guided_mean,
    guided_start,
    reverse_process,
)
from gradinv.attacks.core.options import GuidedOptions
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError

#: readings of the "w/o AMO" ablation (``amo=False``)
WITHOUT_AMO = ("eq5", "unguided")


@dataclass(frozen=True)
class Config(GuidedOptions):
    steps: int | None = None  # reverse steps (None: all T = 1000, Sec. 2.2)
    amo_steps: int = 5  # Sec. 3: "5 iterations"
    amo_lr: float = 0.01  # Sec. 3: eta = 0.01 (Adam)
    amo: bool = True  # Table 2 ablation "w/o AMO"
    gani: bool = True  # Table 2 ablation "w/o GANI"
    include_start: bool = False  # our reading: mu* among the K iterates only
    respace_lr: bool = True  # ours: eta x T / steps when respaced (same AMO budget as T steps)
    label_method: str = "rlu"  # Sec. 2.1: RLU (Chen and Vikalo 2024)
    without_amo: str = "eq5"  # ours, amo=False: "eq5" (GGDM's guided mean) or "unguided"
    wo_amo_gamma: float = 10.0  # eq. 5 guidance scale of "w/o AMO" (GGDM's default gamma)


def gamma_schedule(t: int, num_train_timesteps: int) -> float:
    """Eq. 6's blending weight: linear from ``gamma_T = 1`` (``t = T - 1``) to ``gamma_0 = 0``."""
    return float(t) / float(num_train_timesteps - 1)


def adaptive_mean(
    guidance: Guidance, mu: Tensor, steps: int, lr: float, include_start: bool = False
) -> tuple[Tensor, Tensor]:
    """AMO: ``steps`` Adam steps on ``mu`` minimising ``D``; returns ``(mu*, D(mu*))``, the
    iterate with the lowest loss among the ``steps`` iterates (and ``mu`` with
    ``include_start``). Costs ``steps + 1`` matching evaluations.

    Adam sees ``D / D(mu)``: Adam is invariant to the loss scale except for its ``eps``
    (1e-8), which would swamp the steps where ``D`` itself is ~1e-10 (deep sigmoid LeNets,
    whose last layer dominates the cosine); the normalised loss keeps the paper's ``eta``
    meaningful on every victim."""
    m = mu.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=lr)
    best, best_d, scale = mu.detach(), torch.tensor(float("inf")), None
    for k in range(steps + 1):
        d, grad = guidance.match(m.detach())
        if (k > 0 or include_start) and d < best_d:
            best, best_d = m.detach().clone(), d
        if k == steps:
            break
        scale = d.clamp_min(1e-30) if scale is None else scale
        m.grad = grad / scale
        opt.step()
    return best, best_d


def project_noise(eps: Tensor, direction: Tensor) -> Tensor:
    """GANI, eq. 7: ``<eps, d> / ||d||^2 d`` per image (zero where ``d = 0``)."""
    e, d = eps.flatten(1), direction.flatten(1)
    sq = d.square().sum(1, keepdim=True)
    coef = torch.where(sq > 0, (e * d).sum(1, keepdim=True) / sq.clamp_min(1e-30), 0.0)
    return (coef * d).reshape(eps.shape)


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """GradInvDiff sampling, eq. 8 (with the Table 2 ablation switches)."""
    if config.without_amo not in WITHOUT_AMO:
        raise GradInvError(f"without_amo must be one of {WITHOUT_AMO}, got {config.without_amo!r}")
    if config.amo and config.amo_steps < 1:
        raise GradInvError(f"amo_steps must be >= 1 (got {config.amo_steps}); use amo=False")
    g = guided_start(model, observed, config)
    t_max = g.prior.num_train_timesteps
    n_steps = len(g.prior.timesteps(config.steps))
    lr = config.amo_lr * (t_max / n_steps if config.respace_lr else 1.0)

    def step(i: int, t: int, s: int, x_t: Tensor):
        mu = g.prior.posterior(x_t, t, s)
        if config.amo:
            mu_star, dist = adaptive_mean(g, mu.mean, config.amo_steps, lr, config.include_start)
            gamma = gamma_schedule(t, t_max)
            mean = gamma * mu_star + (1 - gamma) * mu.mean  # eq. 6
            direction = mu_star - mu.mean
        elif config.without_amo == "eq5":
            dist, grad = g.match(mu.mean)
            gamma = 0.0
            mean = classifier_guided_mean(mu.mean, mu.std, grad, config.wo_amo_gamma)
            direction = mean - mu.mean
        else:
            dist, grad = g.match(mu.mean)
            gamma, mean, direction = 0.0, mu.mean, -lr * grad
        if s < 0:
            return mean, {"distance": float(dist), "gamma": gamma}
        eps = g.noise(x_t)
        noise = project_noise(eps, direction) if config.gani else eps  # eq. 7
        return mean + mu.std * noise, {"distance": float(dist), "gamma": gamma}  # eq. 8

    return reverse_process(
        g, config.steps, step, callback, config.progress, config.snapshot_every, "GradInvDiff"
    )
