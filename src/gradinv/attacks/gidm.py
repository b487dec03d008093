"""GIDM: gradient inversion of federated diffusion models (Huang, Hong, Roos and Chen,
ARES 2025), two phases with triple optimisation.

The victim is the global DDPM ``eps_theta`` of the attacked round, the observation one
client's gradient of eq. (1) (:mod:`gradinv.fl.diffusion`). Unless ``observed.meta`` reveals
them (the server sampled them), the client's noise ``eps`` and step ``t`` are secret.

* **Generative phase** (sec. 3.3): search a latent ``x0'`` whose image
  ``x0^ = D_theta*(x0')`` under the trained diffusion model ``theta*`` makes the dummy
  gradient match (eq. 2 with ``x0^ = D(x0')``). ``D`` is the deterministic DDIM sampler with
  ``sampling_steps`` steps started at ``x_T = x0'`` (:func:`gradinv.priors.differentiable.
  ddim_generate`, checkpointed); the paper runs the model's full sampler (T steps; its code: a
  16-step model), which we shorten so an iteration is affordable. ``x0' ~ N(0, I)``.
* **Fine-tuning phase**: optimise the pixels of ``x0^`` directly (eq. 2), starting from the
  generative phase's output.
* **Triple optimisation** (sec. 3.4) in both phases: ``x0``, ``eps^`` and ``t^`` with three
  Adam optimisers (lr 0.01), ``t^`` a relaxed ``1 x T`` softmax vector, ``eps^`` updated in
  every second block of ``S = 50`` iterations (:func:`gradinv.attacks.core.ddpm_matching.
  triple_optimise`). The L2 distance (sec. 4.1: cosine "may cause exploding gradients").

Switches give the paper's variants: ``generative=False`` (pixels from ``U[0, 1]``, sec. 3.4's
initialisation), ``finetune=False`` ("Generative" of Fig. 5), ``optimise_t=False`` /
``optimise_eps=False`` (Fig. 10: the unknown one is drawn at random and held fixed).

The text and the authors' code (``GillHuang-Xtler/GIDM_diffusion_inversion``) differ on the
"secrets unknown" setting: the code fixes the true step (a 16-step model at ``t = 1``), takes
the true noise plus 1e-4 as its "unknown" ``eps`` and never optimises it, and reads ``t^`` as
an argmax without gradient. The text's setting (``eps^ ~ N(0, I)``, ``t^`` optimised) is the
default here; the code's is the secrets revealed with ``eps_offset=1e-4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradinv.attacks.core.ddpm_matching import reconstruction, setup, triple_optimise
from gradinv.attacks.core.options import RunOptions
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.priors.ddpm import DiffusionPrior, to_image
from gradinv.priors.differentiable import ddim_generate


@dataclass(frozen=True)
class Config(RunOptions):
    prior: Any = None  # theta*: a DiffusionPrior or a prior name; None: the victim itself
    generative_iterations: int = 5000  # Fig. 3 / Fig. 7: r_g = 5000
    finetune_iterations: int = 1500  # Fig. 4 / Fig. 7: r_f = 1500
    sampling_steps: int = 10  # our choice: DDIM steps of D (paper: the full sampler)
    eta: float = 0.0  # our choice: deterministic DDIM, so D is a fixed map of x0'
    lr: float = 0.01  # sec. 4.1: Adam, lr 0.01, no decay (x0, eps and t alike)
    lr_eps: float | None = None  # None: lr
    lr_t: float | None = 0.1  # our choice: at 0.01 the argmax of a 1000-way softmax barely moves
    interval: int = 50  # sec. 4.1: S = 50
    optimise_eps: bool = True  # triple optimisation; False: a random eps held fixed
    optimise_t: bool = True  # triple optimisation; False: a random t held fixed
    distance: str = "l2"  # sec. 4.1: L2
    generative: bool = True  # run the generative phase
    finetune: bool = True  # run the fine-tuning phase
    eps_offset: float = 0.0  # added to a revealed eps (the authors' code: 1e-4, see below)


def _prior(config: Config, victim: DiffusionPrior) -> DiffusionPrior:
    if config.prior is None:
        return victim
    if isinstance(config.prior, DiffusionPrior):
        return config.prior.to(victim.device)
    from gradinv.priors import load_prior

    return load_prior(str(config.prior), victim.device)


def run(
    model: DiffusionPrior,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Two-phase GIDM against one client's DDPM gradient; ``model`` is the victim DDPM."""
    if not (config.generative or config.finetune):
        raise GradInvError("GIDM needs at least one phase: set generative or finetune")
    matcher, secrets = setup(
        model,
        observed,
        config,
        config.distance,
        config.optimise_eps,
        config.optimise_t,
        config.eps_offset,
    )
    victim = matcher.victim
    gen = torch.Generator().manual_seed(config.seed)
    shape = (observed.batch_size, *observed.image_shape)
    common = dict(
        lr=config.lr, lr_eps=config.lr_eps, lr_t=config.lr_t, interval=config.interval,
        snapshot_every=config.snapshot_every, progress=config.progress, callback=callback,
    )  # fmt: skip
    history: list[dict] = []
    extras: dict[str, Any] = {"snapshots": {}}
    if config.generative:
        prior = _prior(config, victim)

        def render(latent: torch.Tensor) -> torch.Tensor:
            return to_image(ddim_generate(prior, latent, config.sampling_steps, config.eta))

        latent = torch.randn(shape, generator=gen).to(victim.device)
        res = triple_optimise(
            matcher, render, latent, secrets, config.generative_iterations,
            desc="GIDM generative", **common,
        )  # fmt: skip
        history += [{**h, "phase": "generative"} for h in res.history]
        extras.update(generative=res.images.cpu(), latent=res.z.cpu())
        extras["t_hat_generative"] = res.secrets.t_hat().cpu()
        extras["snapshots"]["generative"] = res.snapshots
        pixels, secrets = res.images, res.secrets
    else:  # sec. 3.4: x0^ ~ U(0, 2^p) of a p-bit image, i.e. U[0, 1] here
        pixels = torch.rand(shape, generator=gen).to(victim.device)
    if config.finetune:
        offset = len(history)
        res = triple_optimise(
            matcher, lambda x: x, pixels, secrets, config.finetune_iterations,
            desc="GIDM fine-tuning", **common,
        )  # fmt: skip
        history += [
            {**h, "iteration": h["iteration"] + offset, "phase": "finetune"} for h in res.history
        ]
        extras["snapshots"]["finetune"] = res.snapshots
    return reconstruction(res, history, extras)
