"""The shared core of diffusion-guided gradient inversion (GGDM, GradInvDiff, GGSS-R).

Every guided attack runs a reverse diffusion process of a pretrained prior
(:mod:`gradinv.priors`) and, at each step, steers it with the gradient-matching loss of the
observed update (GradInvDiff eq. 1-2). What they share lives here:

* :func:`guided_start` -- place model and gradients on the device, load the prior, infer the
  labels (RLU by default, GradInvDiff Sec. 2.1), build the matcher (cosine unless the
  attack's config names another distance) and draw ``x_T``;
* :meth:`Guidance.match` -- the matching loss ``D`` of a prior-space batch and its gradient
  in prior space (the victim sees ``(x + 1) / 2``);
* :meth:`Guidance.match_through_x0` -- the same loss on the clean estimate ``x0(x_t)``,
  differentiated with respect to ``x_t`` through the noise predictor;
* :func:`reverse_process` -- the loop over respaced timesteps with progress bar, callback,
  snapshots for Fig. 2-style paths, and the :class:`~gradinv.case.Reconstruction`.

An attack then only writes its own step rule ``step(i, t, s, x_t) -> (x_s, record)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv import data
from gradinv.attacks.core.labels import infer_labels
from gradinv.attacks.core.options import GuidedOptions
from gradinv.attacks.core.placement import prepare_with_prior
from gradinv.attacks.core.progress import Callback, emit, snapshot_due
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.matching import GradientMatcher
from gradinv.priors import DiffusionPrior, SamplePath, load_prior, to_image

#: One reverse step ``t -> s`` of a guided sampler: ``step(i, t, s, x_t) -> (x_s, record)``.
Step = Callable[[int, int, int, Tensor], tuple[Tensor, dict[str, float]]]


@functools.lru_cache(maxsize=8)
def _cached_prior(name: str, device: str) -> DiffusionPrior:
    return load_prior(name, device)


@functools.lru_cache(maxsize=8)
def _aux(dataset: str, size: int, channels: int, per_class: int) -> tuple[Tensor, Tensor]:
    """RLU's auxiliary labelled data: attacker knowledge, so the ``public`` split."""
    ds = data.load(dataset, split="public", size=size, channels=channels)
    keep = torch.cat([torch.nonzero(ds.labels == c)[:per_class, 0] for c in ds.labels.unique()])
    return ds.images[keep], ds.labels[keep]


@dataclass
class Guidance:
    """The prior, the victim's matcher and the inferred labels of one guided attack."""

    model: nn.Module
    observed: Observed
    prior: DiffusionPrior
    matcher: GradientMatcher
    labels: Tensor  # (B,)
    generator: torch.Generator  # CPU generator for the sampler's noise

    def noise(self, like: Tensor) -> Tensor:
        """Seeded standard normal noise shaped like ``like``."""
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype).to(like.device)

    def match(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Matching loss ``D`` (eq. 2) of the prior-space batch ``x`` and ``dD/dx``."""
        res = self.matcher(to_image(x)[None], self.labels[None])
        return res.distance[0], res.grad_x[0] / 2  # d(to_image)/dx = 1/2

    def match_through_x0(self, x_t: Tensor, t: int, s: int) -> tuple[Tensor, Tensor, Any]:
        """``D`` at the clean estimate ``x0(x_t)`` and ``dD/dx_t`` through ``eps_theta``,
        plus the step's posterior (computed once, reused by the caller)."""
        x_t = x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            eps = self.prior.eps(x_t, t)
            x0 = self.prior.posterior(x_t, t, s, eps=eps, clip=False).x0  # no clamp: keep grads
            dist, g_x0 = self.match(x0.detach().clamp(-1, 1))
            (g_xt,) = torch.autograd.grad(x0, x_t, grad_outputs=g_x0)
        with torch.no_grad():
            post = self.prior.posterior(x_t.detach(), t, s, eps=eps.detach())
        return dist, g_xt, post


def classifier_guided_mean(
    mean: Tensor, std: Tensor, grad: Tensor, gamma: float, normalize: bool = True
) -> Tensor:
    """GradInvDiff eq. 5 (GGDM's classifier guidance): ``mu - gamma Sigma^2 grad D`` (i.e.
    ``+ gamma Sigma^2 grad cos``), with ``grad`` rescaled to unit RMS per image first when
    ``normalize`` (its raw size varies by orders of magnitude between victims)."""
    if normalize:
        rms = grad.flatten(1).square().mean(1).sqrt().clamp_min(1e-30)
        grad = grad / rms.reshape(-1, *([1] * (grad.ndim - 1)))
    return mean - gamma * std**2 * grad


def guided_start(model: nn.Module, observed: Observed, config: GuidedOptions) -> Guidance:
    """Common opening of a guided attack: prior, labels (``config.label_method``, RLU with
    ``config.aux_dataset``), the matcher with ``config.distance`` and the seeded noise."""
    if not config.prior:
        raise GradInvError(
            "this attack needs a diffusion prior: pass prior='<dataset>-<size>' (see "
            "`gradinv priors train --help`) or a prior folder"
        )
    model, observed, prior = prepare_with_prior(
        model, observed, config.device, str(config.prior), _cached_prior
    )
    aux = None
    if config.label_method == "rlu" and config.aux_dataset:
        c, h, _ = observed.image_shape
        aux = _aux(config.aux_dataset, h, c, config.aux_per_class)
    labels = infer_labels(observed, model, config.label_method, aux=aux)
    matcher = GradientMatcher(model, observed, distance=config.distance)
    gen = torch.Generator(device="cpu").manual_seed(int(config.seed))
    return Guidance(model, observed, prior, matcher, labels, gen)


def reverse_process(
    guidance: Guidance,
    steps: int | None,
    step: Step,
    callback: Callback | None = None,
    progress: bool = False,
    snapshot_every: int = 0,
    desc: str = "guided sampling",
) -> Reconstruction:
    """Run ``step`` over the prior's respaced timesteps from ``x_T ~ N(0, I)`` to ``x_0``.

    The reconstruction is ``x_0`` in ``[0, 1]``; its ``loss`` is the final matching loss;
    ``extras["path"]`` holds snapshots (every ``snapshot_every`` steps and the last one).
    A step's progress record has ``iteration`` (the step index), ``t`` and ``loss``: the
    matching distance ``D`` the step guided with (its ``distance``), NaN on a step that did
    not guide."""
    b = guidance.observed.batch_size
    x = guidance.noise(torch.empty((b, *guidance.prior.image_shape), device=guidance.prior.device))
    ts = guidance.prior.timesteps(steps)
    path, history = SamplePath(), []
    for i, t in enumerate(tqdm(ts, desc=desc, disable=not progress)):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        x, record = step(i, t, s, x)
        if not torch.isfinite(x).all():
            raise GradInvError(
                f"the guided sample became NaN/Inf at step t={t}; lower the guidance strength "
                "or learning rate (the path so far is in the callback records)"
            )
        record = {"iteration": i, "t": t, "loss": record.get("distance", float("nan")), **record}
        history.append(record)
        if callback is not None:  # to_image only for a callback that may get it
            emit(callback, record, to_image(x), snapshot_every, final=s < 0)
        if snapshot_due(i, snapshot_every, final=s < 0):
            path.steps.append(t)
            path.x.append(to_image(x).clamp(0, 1).cpu())
    final = to_image(x).clamp(0, 1)
    dist, _ = guidance.match(final * 2 - 1)
    return Reconstruction(
        images=final.detach().cpu(),
        labels=guidance.labels.detach().cpu(),
        loss=float(dist),
        history=history,
        extras={"path": path},
    )
