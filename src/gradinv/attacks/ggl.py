"""GGL: Generative Gradient Leakage (Li, Wang, Lyu, Xu and Ma, "Auditing Privacy Defenses in
Federated Learning via Generative Gradient Leakage", CVPR 2022), a GAN baseline of GGSS-R
(Tables 3-5).

GGL searches only the latent space of a pretrained generator, and without gradients through
the victim: a gradient-free optimiser, CMA-ES (Hansen 2016; :mod:`gradinv.attacks.core.cmaes`), minimises

    L(z) = D(grad(G(z)), g) + lambda_KL KL(q(z) || N(0, I))          (GGL eq. 6-7)

where ``q(z)`` is the Gaussian of the latent's entries (the authors' ``KLD`` term keeps ``z``
typical for the generator). Being gradient-free makes GGL robust to defenses that distort
the gradient's geometry (noise, clipping, sparsification), the point of the paper.
Population and budget follow GIFD's reimplementation (``configs_*.yml``: ``num_sample: 50``,
``cma_budget: 800``, ``KLD: 0.1`` for BigGAN). The result is the best candidate evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from gradinv.attacks.core.cmaes import CMAES
from gradinv.attacks.core.gan import gan_start, latent_kld
from gradinv.attacks.core.options import GanOptions
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Config(GanOptions):
    iterations: int = 800  # CMA-ES generations; GIFD configs (cma_budget: 800)
    population: int = 50  # candidates per generation; GIFD configs (num_sample: 50)
    sigma: float = 1.0  # initial CMA-ES step; our choice (nevergrad's CMA default 1)
    kld: float = 0.1  # KL regulariser weight; GIFD configs (KLD: 0.1 for BigGAN)
    distance: str = "cosine"  # GGL / GIFD code: cost_fn "sim" (cosine)
    tv: float = 0.0  # GGL uses no image prior beyond the GAN
    label_method: str = "auto"  # GGL infers labels from the gradient (iDLG rule for B = 1)


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """GGL: CMA-ES over the generator's latent with a KL regulariser (GGL eqs. 6-7)."""
    if config.population < 2:
        raise GradInvError(f"population must be at least 2, got {config.population}")
    g = gan_start(model, observed, config)
    b, d = g.batch_size, g.prior.latent_dim
    z0 = g.latents(1)[0]  # (B, latent_dim): GGL starts from one random latent
    es = CMAES(z0.reshape(-1), config.sigma, config.population, seed=config.seed)
    best_loss, best_z, best_x = float("inf"), z0, None
    history: list[dict] = []
    for it in tqdm(range(config.iterations), desc="GGL CMA-ES", disable=not config.progress):
        cand = es.ask()  # (lambda, B * latent_dim), float64
        z = cand.to(g.prior.device, torch.float32).reshape(-1, b, d)
        with torch.no_grad():
            x = g.decode(z)
            pen = config.kld * latent_kld([z]) if config.kld > 0 else torch.zeros(len(z))
        loss, dist = g.values(x)
        loss = loss + pen.to(loss)
        es.tell(cand, loss.nan_to_num(float("inf")))
        i = int(loss.argmin())
        if float(loss[i]) < best_loss:
            best_loss, best_z, best_x = float(loss[i]), z[i], x[i]
        rec = {
            "iteration": it,
            "loss": float(loss[i]),
            "distance": float(dist[i]),
            "best_loss": best_loss,
            "sigma": es.sigma,
        }
        history.append(rec)
        emit(callback, rec, x[i], config.snapshot_every)
    if best_x is None:  # zero iterations: the starting latent
        with torch.no_grad():
            best_x = g.decode(z0[None])[0]
        best_loss = float(g.values(best_x[None])[0][0])
    return g.reconstruction(best_x, best_loss, history, {"latent": best_z.detach().cpu()})
