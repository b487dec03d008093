"""The shared core of GAN-prior gradient inversion (GIAS, GGL, GIFD; GGSS-R Tables 3-5).

All three search the output space of a pretrained generator ``G`` (:mod:`gradinv.priors.gan`)
for a batch whose client gradient matches the observed one (survey eq. 4 with ``x = G(.)``):

    min_{v}  D( dL(F(W, G_v), y)/dW , dW_observed ) + R(v),

where ``v`` is the latent ``z`` (all three), the generator's weights (GIAS, Jeon et al.
NeurIPS 2021, eq. 5) or an intermediate feature map (GIFD, Fang et al. ICCV 2023, eq. 6).
What they share lives here:

* :func:`gan_start` -- place model and gradients on the device, load the GAN (cached), infer
  the labels, build the matcher (cosine by default, "sim" in the authors' code);
* :meth:`GanGuidance.match` -- the matching loss of generator outputs and its gradient with
  respect to *any* tensors the images were built from (latent, features, generator weights):
  the matcher returns ``dD/dx`` and one ``torch.autograd.grad`` pulls it back through ``G``,
  so nothing is ever accumulated into the victim's (or the generator's) ``.grad``;
* :meth:`GanGuidance.values` -- the loss alone, for gradient-free search (GGL's CMA-ES);
* :func:`adam_phase` -- Adam on a list of tensors with a learning-rate schedule and an
  optional projection after each step (spherical for latents, l1 ball for GIFD features);
* :meth:`GanGuidance.reconstruction` -- the :class:`~gradinv.case.Reconstruction`.

Images are handled as ``(R, B, C, H, W)`` stacks: ``R`` restarts of a batch of ``B``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.attacks.core.labels import infer_labels
from gradinv.attacks.core.options import GanOptions
from gradinv.attacks.core.pixel import lr_factor
from gradinv.attacks.core.placement import prepare_with_prior
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.matching import GradientMatcher
from gradinv.priors.gan import GanPrior, load_gan
from gradinv.regularisers import total_variation

#: ``project(tensors)`` maps the optimised tensors back onto their feasible set, in place.
Projection = Callable[[list[Tensor]], None]
#: ``penalty(tensors) -> (R,)``: a differentiable regulariser of the optimised tensors.
Penalty = Callable[[list[Tensor]], Tensor]


@functools.lru_cache(maxsize=8)
def _cached_gan(name: str, device: str) -> GanPrior:
    return load_gan(name, device)


@dataclass
class GanGuidance:
    """The GAN, the victim's matcher and the inferred labels of one GAN-prior attack."""

    model: nn.Module
    observed: Observed
    prior: GanPrior
    matcher: GradientMatcher
    labels: Tensor  # (B,)
    seed: int

    @property
    def batch_size(self) -> int:
        return self.observed.batch_size

    @property
    def generator(self) -> nn.Module:
        return self.prior.generator

    def latents(self, restarts: int, seed: int | None = None) -> Tensor:
        """Seeded N(0, I) latents ``(R, B, latent_dim)`` (GIFD configs: ``init: randn``)."""
        gen = torch.Generator(device="cpu").manual_seed(int(self.seed if seed is None else seed))
        shape = (restarts, self.batch_size, self.prior.latent_dim)
        return torch.randn(shape, generator=gen).to(self.prior.device)

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(R, B, C, H, W)`` in ``[0, 1]`` from latents ``(R, B, latent_dim)``."""
        return self.from_layer(0, z)

    def from_layer(self, k: int, h: Tensor) -> Tensor:
        """Images ``(R, B, C, H, W)`` in ``[0, 1]`` from inputs ``(R, B, ...)`` of block ``k``."""
        r, b = h.shape[:2]
        x = self.generator.forward_from(k, h.reshape(r * b, *h.shape[2:]))
        return ((x + 1) / 2).reshape(r, b, *x.shape[1:])

    def match(
        self, images: Tensor, inputs: Sequence[Tensor], penalty: Tensor | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Matching loss of ``images`` ``(R, B, C, H, W)`` (built from ``inputs`` with autograd)
        plus an optional ``penalty`` ``(R,)`` of the inputs; returns ``(loss (R,),
        distance (R,), [dloss/dinput])``."""
        y = self.labels.expand(images.shape[0], -1)
        res = self.matcher(images.detach(), y)
        outputs, grad_outputs = [images], [res.grad_x]
        loss = res.loss
        if penalty is not None:
            outputs.append(penalty)
            grad_outputs.append(torch.ones_like(penalty))
            loss = loss + penalty.detach()
        grads = torch.autograd.grad(outputs, list(inputs), grad_outputs, allow_unused=True)
        grads = [
            torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs, strict=True)
        ]
        return loss, res.distance, grads

    def values(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Matching loss and distance ``(R,)`` of ``images`` without any input gradient."""
        y = self.labels.expand(images.shape[0], -1)
        parts = [self.matcher.objective(x, yr) for x, yr in zip(images.detach(), y, strict=True)]
        loss = torch.stack([p[0].detach() for p in parts])
        return loss, torch.stack([p[1].detach() for p in parts])

    def reconstruction(
        self, images: Tensor, loss: float, history: list[dict], extras: dict | None = None
    ) -> Reconstruction:
        """The chosen batch ``(B, C, H, W)`` as a :class:`Reconstruction` on the CPU."""
        return Reconstruction(
            images=images.detach().clamp(0, 1).cpu(),
            labels=self.labels.detach().cpu(),
            loss=float(loss),
            history=history,
            extras=dict(extras or {}),
        )


def gan_start(model: nn.Module, observed: Observed, config: GanOptions) -> GanGuidance:
    """Common opening of a GAN-prior attack: the GAN, the labels (``config.label_method``)
    and the matcher with ``config.distance`` plus ``config.tv`` total variation."""
    if not config.gan:
        raise GradInvError(
            "this attack needs a GAN prior: pass gan='gan-<dataset>-<size>' (see "
            "gradinv.priors.gan.train_gan) or a GAN folder"
        )
    model, observed, prior = prepare_with_prior(
        model, observed, config.device, str(config.gan), _cached_gan
    )
    labels = infer_labels(observed, model, config.label_method)
    regs = [(config.tv, total_variation)] if config.tv > 0 else []
    matcher = GradientMatcher(model, observed, distance=config.distance, regularisers=regs)
    return GanGuidance(model, observed, prior, matcher, labels, int(config.seed))


# -- projections and penalties -------------------------------------------------------------
def spherical(reference: Tensor) -> Projection:
    """Keep each latent on the sphere of its initial norm (GIFD's ``SphericalOptimizer``,
    from PULSE, Menon et al. CVPR 2020)."""
    radius = reference.flatten(2).norm(dim=-1).clamp_min(1e-9)

    def project(tensors: list[Tensor]) -> None:
        z = tensors[0]
        norm = z.flatten(2).norm(dim=-1).clamp_min(1e-9)
        z.mul_((radius / norm).reshape(*radius.shape, *([1] * (z.ndim - 2))))

    return project


def project_l1_ball(v: Tensor, radius: Tensor) -> Tensor:
    """Euclidean projection of each row of ``v`` ``(N, d)`` onto the l1 ball of ``radius``
    ``(N,)`` (Duchi et al., ICML 2008, Fig. 1; GIFD's ``project_onto_l1_ball``)."""
    a = v.abs()
    mu = a.sort(dim=1, descending=True).values
    cs = mu.cumsum(dim=1)
    j = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    rho = ((mu - (cs - radius[:, None]) / j) > 0).to(v.dtype).mul(j).amax(dim=1).clamp_min(1)
    theta = (cs.gather(1, rho.long()[:, None] - 1)[:, 0] - radius) / rho
    w = v.sign() * (a - theta[:, None]).clamp_min(0)
    inside = a.sum(dim=1) <= radius
    return torch.where(inside[:, None], v, w)


def l1_ball(center: Tensor, radius: Tensor) -> Projection:
    """Keep ``h`` (``(R, B, ...)``) within ``||h - center||_1 <= radius`` (``(R, B)``) per image."""

    def project(tensors: list[Tensor]) -> None:
        h = tensors[0]
        d = (h - center).flatten(2)
        r, b = d.shape[:2]
        dev = project_l1_ball(d.reshape(r * b, -1), radius.reshape(-1)).reshape(h.shape)
        h.copy_(center + dev)

    return project


def latent_kld(tensors: list[Tensor]) -> Tensor:
    """GGL's KL regulariser: ``KL(N(mu, var) || N(0, 1))`` of each latent's entries, summed
    over the batch (Li et al. CVPR 2022, Sec. 3.3; the authors' ``KLD`` term)."""
    z = tensors[0]
    mu, var = z.mean(dim=-1), z.var(dim=-1).clamp_min(1e-8)
    return (-0.5 * (1 + var.log() - mu.square() - var)).sum(dim=-1)


def stylegan_lr(scheduler: str | None, iterations: int) -> Callable[[int], float]:
    """GIFD's per-layer schedule (``get_lr``, from StyleGAN2's projector: cosine ramp-down over
    the last 25 %, linear ramp-up over the first 5 %); other names go to
    :func:`gradinv.attacks.core.pixel.lr_factor`."""
    if scheduler != "rampdown":
        return lr_factor(scheduler, iterations)

    def factor(it: int) -> float:
        t = it / max(1, iterations)
        ramp = min(1.0, (1 - t) / 0.25)
        return (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05 + 1e-3)

    return factor


# -- the loop ------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    """Final tensors of one Adam phase and the loss of each restart at them."""

    tensors: list[Tensor]
    images: Tensor  # (R, B, C, H, W) in [0, 1]
    losses: Tensor  # (R,)
    distances: Tensor  # (R,)


def adam_phase(
    guidance: GanGuidance,
    tensors: Sequence[Tensor],
    make_images: Callable[[list[Tensor]], Tensor],
    *,
    iterations: int,
    lr: float,
    scheduler: str | None = None,
    project: Projection | None = None,
    penalty: Penalty | None = None,
    history: list[dict] | None = None,
    callback: Callback | None = None,
    snapshot_every: int = 0,
    progress: bool = False,
    desc: str = "GAN search",
    phase: str = "",
) -> PhaseResult:
    """Minimise the matching loss of ``make_images(tensors)`` (``(R, B, C, H, W)``) over
    ``tensors`` with Adam; each record (appended to ``history`` and sent to ``callback``) has
    ``"iteration"``, ``"phase"``, ``"loss"`` (best restart), ``"distance"``, ``"losses"``, and
    every ``snapshot_every`` iterations the best restart's ``"images"``."""
    params = [t.detach().clone().requires_grad_(True) for t in tensors]
    opt = torch.optim.Adam(params, lr=lr)
    factor = stylegan_lr(scheduler, iterations)
    history = history if history is not None else []
    start = len(history)

    def evaluate() -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        with torch.enable_grad():
            images = make_images(params)
            pen = penalty(params) if penalty is not None else None
            loss, dist, grads = guidance.match(images, params, pen)
        return images.detach(), loss, dist, grads

    for it in tqdm(range(iterations), desc=desc, disable=not progress, leave=False):
        images, loss, dist, grads = evaluate()
        if not torch.isfinite(loss).all():
            raise GradInvError(f"{desc}: the loss became NaN/Inf; lower the learning rate")
        best = int(loss.argmin())
        rec = {
            "iteration": start + it,
            "phase": phase,
            "loss": float(loss[best]),
            "distance": float(dist[best]),
            "losses": [float(v) for v in loss],
        }
        history.append(rec)
        emit(callback, rec, images[best], snapshot_every)
        for group in opt.param_groups:
            group["lr"] = lr * factor(it)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        if project is not None:
            with torch.no_grad():
                project(params)
    images, loss, dist, _ = evaluate()
    return PhaseResult([p.detach() for p in params], images, loss.detach(), dist.detach())
