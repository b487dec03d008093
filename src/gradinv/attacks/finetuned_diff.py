"""FinetunedDiff: gradient inversion by fine-tuning a pretrained diffusion model until what it
generates reproduces the leaked gradient -- the diffusion baseline "FinetunedDiff (b25)" of
GGSS-R (Tables 3-5 of ggss_r.txt).

GGSS-R describes the baseline only in words: "model fine-tuning enables stable and
noise-free reconstructions", at "high computational cost due to its iterative nature", with
"model overfitting" and "the absence of pixel-level guidance" (Sec. 2). It gives no algorithm,
so this module implements the plausible reading below; every choice is ours (marked in
:class:`Config`):

1. Fix a seeded starting noise ``x_T ~ N(0, I)`` (the same ``x_T`` as the prior's unguided
   sample :meth:`~gradinv.priors.DiffusionPrior.sample` with the same seed).
2. Generate deterministically with a ``k``-step DDIM reverse process (Song et al. 2021,
   eq. 12, ``eta = 0``) of the prior's noise predictor ``eps_theta``:
   ``x0(theta) = DDIM_k(x_T; theta)`` (:func:`~gradinv.priors.differentiable.ddim_generate`,
   differentiable in ``theta``, one checkpoint per step).
3. Fine-tune ``theta`` (all UNet parameters of a *copy* of the prior) with Adam to minimise
   the gradient-matching loss of the victim at the generated image,

       min_theta  D( grad_W L(f_W((x0(theta) + 1) / 2), y_hat), g_observed ),

   with ``D`` GGSS-R's Euclidean distance (Sec. 6.1; ``"l2"``, the default; ``"cosine"`` as in
   IG) and labels ``y_hat`` inferred from the gradient (:func:`~gradinv.attacks.core.labels.infer_labels`,
   iDLG for one image). The parameter gradient is the vector-Jacobian product
   ``dD/dtheta = (dx0/dtheta)^T dD/dx0``: ``dD/dx0`` from the batched matcher (double
   backward through the victim only), then one backward pass through the DDIM chain.
4. Return the generated sample with the lowest ``D`` over all iterates (``theta_0``, the
   pretrained prior, included: the unguided sample is the fallback).

Adam sees ``D / D(theta_0)`` (a constant rescaling): Adam is scale-invariant except for its
``eps``, which would swamp the update where ``D`` is ~1e-10 (sigmoid LeNets), as in our
GradInvDiff. The cached prior shared with other attacks is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from gradinv.attacks.core.diffusion import guided_start
from gradinv.attacks.core.options import GuidedOptions
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.matching import DISTANCES
from gradinv.priors import SamplePath, to_image
from gradinv.priors.differentiable import ddim_generate


@dataclass(frozen=True)
class Config(GuidedOptions):
    steps: int = 10  # DDIM steps k of the generator; our choice: paper silent
    iterations: int = 100  # Adam steps on theta; our choice: paper silent
    lr: float = 1e-4  # Adam learning rate (fine-tuning scale); our choice: paper silent
    distance: str = "l2"  # Sec. 6.1 "Hyperparameters": Euclidean; "cosine" as in IG
    label_method: str = "auto"  # iDLG for B = 1, label counts for batches; our choice


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Fine-tune a copy of the prior's UNet so that its DDIM sample from a fixed ``x_T``
    matches the observed gradient; return the best sample (module docstring, steps 1-4).

    ``history`` has one record per Adam iteration (``it``, ``distance`` of the sample before
    the update, ``best``); ``extras`` holds the pretrained prior's sample (``initial``), the
    iteration of the returned sample (``best_iteration``), the distance after the last update
    (``final_distance``) and snapshots (``path``, its ``steps`` are iteration numbers)."""
    if config.distance not in DISTANCES:
        raise GradInvError(f"unknown distance {config.distance!r}; choose one of {DISTANCES}")
    if config.iterations < 0 or config.lr <= 0:
        raise GradInvError(
            f"iterations must be >= 0 and lr > 0 (got {config.iterations}, {config.lr})"
        )
    g = guided_start(model, observed, config)  # builds the matcher with config.distance
    prior = copy.deepcopy(g.prior).requires_grad_(False)  # never touch the cached prior
    params = list(prior.unet.parameters())
    for p in params:
        p.requires_grad_(True)
    x_T = g.noise(torch.empty((g.observed.batch_size, *prior.image_shape), device=prior.device))
    opt = torch.optim.Adam(params, lr=config.lr)

    history: list[dict[str, float]] = []
    path = SamplePath()
    best, best_d, best_it, scale, initial = x_T, float("inf"), 0, None, x_T
    bar = tqdm(total=config.iterations, desc="FinetunedDiff", disable=not config.progress)
    for it in range(config.iterations + 1):
        last = it == config.iterations
        with torch.set_grad_enabled(not last):
            x0 = ddim_generate(prior, x_T, config.steps)  # step 2
        if not torch.isfinite(x0).all():
            raise GradInvError(
                f"FinetunedDiff's sample became NaN/Inf at iteration {it}; lower lr "
                f"(now {config.lr}) or the number of iterations"
            )
        dist, grad_x0 = g.match(x0.detach())  # D and dD/dx0 (prior space)
        d = float(dist)
        if it == 0:
            initial = x0.detach()
        if d < best_d:  # step 4
            best, best_d, best_it = x0.detach(), d, it
        if config.snapshot_every and (it % config.snapshot_every == 0 or last):
            path.steps.append(it)
            path.x.append(to_image(x0.detach()).clamp(0, 1).cpu())
        if last:
            break
        scale = dist.clamp_min(1e-30) if scale is None else scale
        grads = torch.autograd.grad(x0, params, grad_outputs=grad_x0 / scale)  # step 3
        if not all(torch.isfinite(gr).all() for gr in grads):
            raise GradInvError(
                f"FinetunedDiff's parameter gradient became NaN/Inf at iteration {it}; lower "
                f"lr (now {config.lr})"
            )
        for p, gr in zip(params, grads, strict=True):
            p.grad = gr
        opt.step()
        record = {"iteration": it, "loss": d, "distance": d, "best": best_d}
        history.append(record)
        emit(callback, record, to_image(x0.detach()), config.snapshot_every)
        bar.update()
        bar.set_postfix(distance=f"{d:.3g}")
    bar.close()
    return Reconstruction(
        images=to_image(best).clamp(0, 1).cpu(),
        labels=g.labels.detach().cpu(),
        loss=best_d,
        history=history,
        extras={
            "initial": to_image(initial).clamp(0, 1).cpu(),
            "best_iteration": best_it,
            "final_distance": d,
            "path": path,
        },
    )
