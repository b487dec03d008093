"""Gradient matching against a federated DDPM and GIDM's triple optimisation (sec. 3.3-3.4).

The attacker holds the victim ``eps_theta`` (the global model of the attacked round) and a
client's reported gradient ``g`` of GIDM eq. (1). It minimises eq. (2),

    Dist( d/dtheta || eps^ - eps_theta( sqrt(abar_t^) x0^ + sqrt(1 - abar_t^) eps^, t^ ) ||^2 , g ),

over the image ``x0^`` and, when they are secret, the noise ``eps^`` and the step ``t^``.
:class:`DenoisingMatcher` evaluates the distance with autograd left on (the inner gradient
w.r.t. the victim's parameters is taken with ``create_graph``; the outer one goes only to the
variables being optimised). :func:`triple_optimise` is GIDM's triple optimisation, shared by
both phases and by the DLG-dm / InvG-dm baselines:

* three Adam optimisers (paper: lr 0.01 each) for the image variable, ``eps^`` and ``t^``;
* ``t^`` is a ``1 x T`` vector of logits initialised ``U(0, 1)``; its softmax ``w`` is a
  *relaxed step* (:func:`gradinv.fl.diffusion.denoising_loss`: expected ``abar`` and expected
  time embedding), so eq. (2) is differentiable in it; ``t^ = argmax softmax(t^)`` is reported;
* ``eps^ ~ N(0, I)`` is updated only in alternate blocks of ``S`` iterations (paper S = 50):
  ``S`` iterations of ``(x0^, t^)``, then ``S`` of ``(eps^, x0^, t^)``, and so on.

The image variable is whatever ``render`` maps to an image: the pixels themselves (the
fine-tuning phase and the baselines) or a latent pushed through the trained diffusion model
(the generative phase).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gradinv.attacks.core.options import RunOptions
from gradinv.attacks.core.pixel import init_dummy
from gradinv.attacks.core.placement import prepare
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.fl.diffusion import denoising_loss
from gradinv.matching import DISTANCES, distance, layer_sums
from gradinv.priors.ddpm import DiffusionPrior, from_image
from gradinv.regularisers import total_variation

Render = Callable[[Tensor], Tensor]


class DenoisingMatcher:
    """``Dist(g^(x0^, eps^, t^), g)`` for one reported gradient of a DDPM client.

    Args:
        victim: the global DDPM of the attacked round (its UNet and schedule).
        observed: the client's report; its gradients follow ``victim.unet.named_parameters()``.
        distance: ``"l2"`` (GIDM, DLG-dm) or ``"cosine"`` (InvG-dm).
    """

    def __init__(self, victim: DiffusionPrior, observed: Observed, distance: str = "l2"):
        if distance not in DISTANCES:
            raise GradInvError(f"unknown gradient distance {distance!r}; choose one of {DISTANCES}")
        self.victim = copy.deepcopy(victim).eval()
        self.victim.unet.requires_grad_(True)
        observed.check_against(self.victim.unet)
        self.leaves = {
            n: p.detach().requires_grad_(True) for n, p in self.victim.unet.named_parameters()
        }
        self.victim.unet.requires_grad_(False)
        dev = self.victim.device
        self.target = [g.to(dev).detach() for g in observed.gradients]
        self.target_sq = layer_sums(torch.square, self.target)
        self.kind = distance

    @property
    def num_timesteps(self) -> int:
        return int(self.victim.abar.shape[0])

    def __call__(self, images: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The gradient distance (differentiable) for images in ``[0, 1]``, noise ``eps`` and
        hard ``(B,)`` or relaxed ``(B, T)`` steps ``t``."""
        loss = denoising_loss(
            self.victim.unet, self.victim.abar, from_image(images), eps, t, self.leaves
        )
        grads = torch.autograd.grad(loss, list(self.leaves.values()), create_graph=True)
        return distance(grads, self.target, self.kind, None, self.target_sq)


@dataclass
class Secrets:
    """The attacker's current ``eps^`` and ``t^``, and whether each is optimised.

    ``t`` is integer steps ``(B,)`` when fixed (known, or random for an ablation) and logits
    ``(B, T)`` when optimised."""

    eps: Tensor
    t: Tensor
    optimise_eps: bool

    @property
    def optimise_t(self) -> bool:
        return self.t.is_floating_point()

    def step_weights(self) -> Tensor:
        """What eq. (1) is evaluated with: hard steps, or ``softmax`` of the logits."""
        return self.t.softmax(-1) if self.optimise_t else self.t

    def t_hat(self) -> Tensor:
        """The inferred step: ``argmax softmax(t^)`` (GIDM sec. 3.4), or the fixed step."""
        return self.t.argmax(-1) if self.optimise_t else self.t


def initial_secrets(
    observed: Observed,
    num_timesteps: int,
    optimise_eps: bool = True,
    optimise_t: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    eps_offset: float = 0.0,
) -> Secrets:
    """``eps^`` and ``t^`` to start from: the true values where ``observed.meta`` reveals them
    (a revealed ``eps`` shifted by ``eps_offset``: the GIDM authors' code's "unknown" noise
    is the true one plus 1e-4, held fixed); otherwise ``eps^ ~ N(0, I)`` and logits
    ``~ U(0, 1)`` (GIDM sec. 3.4) when optimised, or a random ``eps`` / a random step
    ``t ~ U{0..T-1}`` held fixed (the ablations of Fig. 10)."""
    gen = torch.Generator().manual_seed(int(seed) + 101)
    shape = (observed.batch_size, *observed.image_shape)
    meta = observed.meta
    if "eps" in meta:
        eps, opt_eps = meta["eps"].float() + eps_offset, False
        if tuple(eps.shape) != shape:
            raise GradInvError(f"revealed eps is {tuple(eps.shape)}; the images are {shape}")
    else:
        eps, opt_eps = torch.randn(shape, generator=gen), optimise_eps
    if "t" in meta:
        t = meta["t"].long().reshape(observed.batch_size)
        if ((t < 0) | (t >= num_timesteps)).any():
            raise GradInvError(f"revealed steps {t.tolist()} are outside 0..{num_timesteps - 1}")
    elif optimise_t:
        t = torch.rand((observed.batch_size, num_timesteps), generator=gen)
    else:
        t = torch.randint(num_timesteps, (observed.batch_size,), generator=gen)
    return Secrets(eps.to(device), t.to(device), opt_eps)


@dataclass
class TripleResult:
    """Final state of one phase."""

    z: Tensor  # the optimised variable (pixels or latent)
    images: Tensor  # render(z) in [0, 1], detached
    secrets: Secrets
    history: list[dict] = field(default_factory=list)
    snapshots: list[tuple[int, Tensor]] = field(default_factory=list)


def triple_optimise(
    matcher: DenoisingMatcher,
    render: Render,
    z: Tensor,
    secrets: Secrets,
    iterations: int,
    lr: float = 0.01,
    lr_eps: float | None = None,
    lr_t: float | None = None,
    interval: int = 50,
    tv: float = 0.0,
    snapshot_every: int = 0,
    progress: bool = False,
    desc: str = "GIDM",
    callback: Callback | None = None,
) -> TripleResult:
    """GIDM's triple optimisation (sec. 3.4) of ``z`` (through ``render``), ``eps^`` and ``t^``.

    Args:
        matcher: the gradient distance of eq. (2).
        render: maps ``z`` to images in ``[0, 1]`` (identity for pixels).
        z: the starting variable.
        secrets: starting ``eps^`` and ``t^`` (what is optimised is decided by them).
        iterations: Adam steps.
        lr, lr_eps, lr_t: learning rates of the three optimisers (paper: 0.01 each).
        interval: ``S``: ``eps^`` is updated in every second block of ``S`` iterations.
        tv: weight of a total-variation term (InvG-dm; GIDM uses none).
        snapshot_every: keep ``render(z)`` every that many iterations (0: none).
        callback: ``callback(iteration, record)`` after every iteration.

    If the objective turns NaN/Inf the loop stops and keeps the last finite state
    (``history[-1]["stopped"]``).
    """
    if interval < 1:
        raise GradInvError(f"interval S must be >= 1, got {interval}")
    z = z.detach().clone().requires_grad_(True)
    eps = secrets.eps.detach().clone().requires_grad_(secrets.optimise_eps)
    t = secrets.t.detach().clone().requires_grad_(secrets.optimise_t)
    state = Secrets(eps, t, secrets.optimise_eps)
    opt_x = torch.optim.Adam([z], lr=lr)
    opt_e = (
        torch.optim.Adam([eps], lr=lr if lr_eps is None else lr_eps) if state.optimise_eps else None
    )
    opt_t = torch.optim.Adam([t], lr=lr if lr_t is None else lr_t) if state.optimise_t else None
    history: list[dict] = []
    snapshots: list[tuple[int, Tensor]] = []
    for it in tqdm(range(iterations), desc=desc, disable=not progress):
        eps_turn = opt_e is not None and (it // interval) % 2 == 1
        images = render(z)
        dist = matcher(images, eps, state.step_weights())
        total = dist + tv * total_variation(images) if tv else dist
        if snapshot_every and it % snapshot_every == 0:
            snapshots.append((it, images.detach().clamp(0, 1).cpu()))
        if not torch.isfinite(total):
            history.append({"iteration": it, "stopped": "non-finite objective"})
            break
        wrt = [z] + ([eps] if eps_turn else []) + ([t] if opt_t is not None else [])
        grads = torch.autograd.grad(total, wrt)
        z.grad = grads[0]
        if eps_turn:
            eps.grad = grads[1]
        if opt_t is not None:
            t.grad = grads[-1]
        opt_x.step()
        if eps_turn:
            opt_e.step()
        if opt_t is not None:
            opt_t.step()
        record = {
            "iteration": it,
            "loss": float(total.detach()),
            "distance": float(dist.detach()),
            "t_hat": state.t_hat().tolist(),
            "eps_step": eps_turn,
        }
        history.append(record)
        emit(callback, record, images, snapshot_every)
    with torch.no_grad():
        final = render(z).clamp(0, 1)
    final_state = Secrets(eps.detach(), t.detach(), state.optimise_eps)
    return TripleResult(z.detach(), final, final_state, history, snapshots)


# -- attack plumbing shared by GIDM, DLG-dm and InvG-dm -----------------------------------
def setup(
    victim: DiffusionPrior,
    observed: Observed,
    options: RunOptions,
    distance: str,
    optimise_eps: bool = False,
    optimise_t: bool = False,
    eps_offset: float = 0.0,
) -> tuple[DenoisingMatcher, Secrets]:
    """Place ``victim`` and ``observed`` on ``options.device``, build the matcher of eq. (2)
    with ``distance`` and the starting secrets (seeded with ``options.seed``; ``eps^`` and
    ``t^`` optimised or held fixed)."""
    if not isinstance(victim, DiffusionPrior):
        raise GradInvError(
            f"diffusion attacks take the victim DDPM as a DiffusionPrior (UNet + schedule); got "
            f"{type(victim).__name__}. Use FederatedDiffusion.victim(round)"
        )
    victim, observed = prepare(victim, observed, options.device)
    matcher = DenoisingMatcher(victim, observed, distance)
    secrets = initial_secrets(
        observed,
        matcher.num_timesteps,
        optimise_eps=optimise_eps,
        optimise_t=optimise_t,
        seed=options.seed,
        device=victim.device,
        eps_offset=eps_offset,
    )
    return matcher, secrets


def reconstruction(result: TripleResult, history: list[dict], extras: dict) -> Reconstruction:
    """The final phase's image with the recovered secrets as a :class:`Reconstruction`."""
    s = result.secrets
    out = {
        "t_hat": s.t_hat().cpu(),
        "t_weights": s.step_weights().cpu() if s.optimise_t else None,
        "eps_hat": s.eps.cpu(),
        **extras,
    }
    finite = [h["loss"] for h in history if "loss" in h]
    loss = finite[-1] if finite else float("nan")
    return Reconstruction(result.images.cpu(), None, loss, history, out)


@dataclass(frozen=True)
class PixelConfig(RunOptions):
    """Settings of the pixel-space baselines (DLG-dm, InvG-dm; GIDM sec. 4.2)."""

    iterations: int = 6500  # our choice: GIDM's budget r_g + r_f (the paper gives none)
    lr: float = 0.01  # GIDM sec. 4.1: Adam, lr 0.01
    init: str = "randn"  # DLG and InvG: torch.randn


def pixel_attack(
    victim: DiffusionPrior,
    observed: Observed,
    config: PixelConfig,
    distance: str,
    tv: float = 0.0,
    callback: Callback | None = None,
) -> Reconstruction:
    """A classifier attack adapted to diffusion (GIDM sec. 4.2, DLG-dm / InvG-dm): pixels
    from ``config.init``, Adam on eq. (2) with ``distance`` (+ ``tv`` TV); ``eps`` and ``t``
    are the revealed true values (the paper gives them to the baselines), else random and
    fixed."""
    matcher, secrets = setup(victim, observed, config, distance)
    shape = (1, observed.batch_size, *observed.image_shape)
    x0 = init_dummy(shape, config.init, config.seed, matcher.victim.device)[0]
    res = triple_optimise(
        matcher, lambda x: x, x0, secrets, config.iterations, lr=config.lr, tv=tv,
        snapshot_every=config.snapshot_every, progress=config.progress,
        desc=f"{distance} pixel matching", callback=callback,
    )  # fmt: skip
    return reconstruction(res, res.history, {"snapshots": {"pixels": res.snapshots}})
