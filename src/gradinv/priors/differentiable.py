"""A differentiable DDIM reverse process (Song, Meng and Ermon, ICLR 2021, eq. 12).

:func:`ddim_generate` maps a starting noise ``x_T`` to a clean sample ``x_0`` through ``k``
respaced DDIM steps of a :class:`~gradinv.priors.DiffusionPrior`,

    x_s = sqrt(abar_s) x0_theta(x_t, t) + sqrt(1 - abar_s - sigma_t^2) eps_theta(x_t, t)
          + sigma_t z,      sigma_t = eta sqrt((1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s)),

with autograd left on, so ``x_0`` is a differentiable function of ``x_T`` and of the noise
predictor's parameters ``theta``. Attacks that optimise *through* the sampler use it:
FinetunedDiff (GGSS-R's baseline b25) fine-tunes ``theta`` with ``x_T`` fixed; GIDM's first
phase searches ``x_T`` with ``theta`` frozen. What is differentiated is decided by autograd
alone: whatever requires grad (``x_T``, the UNet's parameters, or both) receives gradients.

Each step reuses :meth:`DiffusionPrior.eps` and :meth:`DiffusionPrior.ddim_step` (the same
update as :meth:`DiffusionPrior.sample` with ``method="ddim"``), so the unguided sample and
the differentiable one agree exactly for the same ``x_T``. With ``checkpoint`` every step is
wrapped in :func:`torch.utils.checkpoint.checkpoint`: the backward pass recomputes one step's
UNet activations at a time, so memory holds ``k`` images instead of ``k`` UNet activation sets
(one extra UNet forward per step). ``ddim_step`` clamps ``x0_theta`` to ``[-1, 1]`` as the
sampler does; pixels at the clamp get no gradient through that term.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from gradinv.errors import GradInvError
from gradinv.priors.ddpm import DiffusionPrior


def ddim_generate(
    prior: DiffusionPrior,
    x_T: Tensor,
    steps: int | None,
    eta: float = 0.0,
    checkpoint: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``x_0`` (prior space ``[-1, 1]``) of a ``steps``-step DDIM reverse process from ``x_T``,
    differentiable with respect to ``x_T`` and the prior's parameters.

    Args:
        prior: the diffusion prior; its parameters get gradients if they require grad.
        x_T: starting noise ``(B, C, H, W)`` in prior space.
        steps: respaced reverse steps ``k`` (:meth:`DiffusionPrior.timesteps`; ``None``: all T).
        eta: DDIM stochasticity (0: deterministic). With ``eta > 0`` the noise ``z`` of every
            step is drawn up front from ``generator`` (CPU, in step order, as
            :meth:`DiffusionPrior.sample` draws it), so recomputation sees the same noise.
        checkpoint: recompute each step's activations in the backward pass (memory flat in
            ``steps``); ignored when autograd is off.
        generator: CPU generator for the noise when ``eta > 0`` (``None``: the global RNG).
    """
    if eta < 0:
        raise GradInvError(f"eta must be >= 0 (0: deterministic DDIM), got {eta}")
    if tuple(x_T.shape[1:]) != prior.image_shape:
        raise GradInvError(
            f"the prior generates {prior.image_shape} images but x_T is {tuple(x_T.shape)}; "
            "draw x_T of shape (B, *prior.image_shape)"
        )
    ts = prior.timesteps(steps)
    use_ckpt = checkpoint and torch.is_grad_enabled()
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        noise = None
        if eta > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        if use_ckpt:
            x = _checkpoint(_step, prior, x, t, s, eta, noise, use_reentrant=False)
        else:
            x = _step(prior, x, t, s, eta, noise)
    return x


def _step(
    prior: DiffusionPrior, x: Tensor, t: int, s: int, eta: float, noise: Tensor | None
) -> Tensor:
    """One DDIM step ``t -> s`` (``s = -1``: to ``x_0``)."""
    return prior.ddim_step(x, t, s, prior.eps(x, t), eta, noise)
