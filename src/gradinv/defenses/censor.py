"""CENSOR: orthogonal-subspace Bayesian sampling, a baseline of the shadow-defense paper
(shadow_defense.txt, Sec. 2: "Orthogonal subspace bayesian sampling is used in Censor
(Zhang et al. (2025)), where optimal orthogonal gradients related to training loss are
searched for each batch"; Tables 1-2, "Censor").

Source: Zhang, Cheng, Shen, Ribeiro, An, Chen, Zhang, Li, "CENSOR: Defense Against Gradient
Inversion via Orthogonal Subspace Bayesian Sampling", NDSS 2025 (arXiv:2501.15718), and its
official code (github.com/KaiyuanZh/censor, ``defense.py::orthogonal_gradient`` and
``run_rec.py``), whose defaults we use: 20 trials (``our_num_tries``), step ``1e-4``.

Exact rule implemented, for the client's update ``g = (g_1..g_L)`` on batch ``(X, y)`` of
model ``W``:

1. Sample (paper Eq. 12, reference ``generate_orthogonal_gradient``): for each of ``T``
   trials and each layer, ``u_l ~ N(0, I)``, ``u_l <- u_l / ||u_l||``, then the
   Gram-Schmidt step ``o_l = u_l - (<u_l, g_l> / <g_l, g_l>) g_l`` (applied twice for
   round-off; the reference divides by ``||g_l||`` instead of ``||g_l||^2``, which is
   only orthogonal when ``||g_l|| = 1``; we follow the paper's projection).
2. Normalise (reference ``normalize_orthogonal_gradient``): ``o_l <- o_l ||g_l|| / ||o_l||``
   per layer, so each candidate has the true gradient's per-layer norms and is orthogonal
   to it layer by layer (hence globally). A layer with ``g_l = 0`` gets ``o_l = 0``.
3. Select (the cold-posterior limit of the paper's Bayesian sampling; reference
   ``orthogonal_gradient``): every candidate is scored by the training loss after one SGD
   step, ``L_t = CE(f(X; W - lr * o^t), y)``, evaluated for all trials at once
   (``vmap`` over ``functional_call``; the model's parameters and buffers are not
   touched). With ``temperature = 0`` the candidate of lowest ``L_t`` is returned
   (``argmin``, first index on ties); with ``temperature > 0`` one candidate is drawn with
   probability ``softmax(-L_t / temperature)`` from the generator.

Deviations from the reference code, both documented choices: (a) the reference accepts a
candidate only if ``L_t`` is below the loss *before* the step and otherwise sends the
*true* gradient; we always send the best orthogonal candidate (set
``keep_true_if_no_gain=True`` for the reference behaviour); (b) the reference scores the
candidates with the model switched to ``eval()``; we score in the model's current mode
(switching would modify the model), which is the same for models without BatchNorm or
dropout.

What the server sees afterwards: a random direction orthogonal to the true update with the
same per-layer norms, the one (of ``trials``) that best keeps the training loss down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from gradinv.defenses.context import ClientContext, require_data
from gradinv.errors import GradInvError
from gradinv.losses import cross_entropy

ROUND_OFF = 1e-6  # relative: loss differences below this are float noise, not a gain


@dataclass(frozen=True)
class Config:
    """CENSOR defense (values from the authors' official code; the shadow-defense paper
    gives none)."""

    trials: int = 20  # official configs_*.yml: our_num_tries = 20
    lr: float = 1e-4  # official defense.py: learning_rate = 1e-4 (the one-step update)
    temperature: float = 0.0  # official code: argmin (cold-posterior limit, T -> 0)
    keep_true_if_no_gain: bool = False  # official: True; our choice: always orthogonal
    chunk: int = 20  # our choice (paper silent): candidates scored per vmap pass (memory)

    def __post_init__(self) -> None:
        if int(self.trials) < 1:
            raise GradInvError(f"CENSOR trials must be an integer >= 1, got {self.trials}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise GradInvError(f"CENSOR lr must be a finite number >= 0, got {self.lr}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise GradInvError(
                f"CENSOR temperature must be a finite number >= 0, got {self.temperature}"
            )
        if int(self.chunk) < 1:
            raise GradInvError(f"CENSOR chunk must be an integer >= 1, got {self.chunk}")


def orthogonal_candidates(
    gradients: tuple[Tensor, ...], trials: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """``trials`` random gradients orthogonal to ``gradients`` layer by layer, each layer
    rescaled to the true layer's norm: one tensor ``(trials, *g_l.shape)`` per layer."""
    out = []
    for g in gradients:
        where = generator.device if generator is not None else g.device
        u = torch.randn((trials, g.numel()), generator=generator, device=where, dtype=g.dtype)
        u = u.to(g.device)
        u = u / u.norm(dim=1, keepdim=True)
        flat = g.detach().reshape(1, -1)
        sq = flat.square().sum()
        if sq > 0:
            for _ in range(2):  # "twice is enough" Gram-Schmidt
                u = u - (u @ flat.T) / sq * flat
            scale = flat.norm() / u.norm(dim=1, keepdim=True)
            u = torch.where(torch.isfinite(scale), u * scale, torch.zeros_like(u))
        else:
            u = torch.zeros_like(u)
        out.append(u.reshape(trials, *g.shape))
    return out


def step_losses(
    context: ClientContext,
    gradients: tuple[Tensor, ...] | list[Tensor],
    lr: float,
    chunk: int = 20,
) -> Tensor:
    """Training loss ``CE(f(X; W - lr * g_t), y)`` for a stack of candidate updates
    (one tensor ``(T, *shape)`` per trainable parameter), shape ``(T,)``, float32.

    Evaluated with ``vmap`` over ``functional_call`` on detached parameter copies and
    per-candidate buffer copies: the model itself is never modified.
    """
    model, images, labels = context.model, context.images, context.labels
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    base = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    total = gradients[0].shape[0]

    fixed = {n: p for n, p in base.items() if n not in set(names)}  # frozen parameters

    def loss(moved: dict, bufs: dict) -> Tensor:
        logits = functional_call(model, ({**fixed, **moved}, bufs), (images,))
        return cross_entropy(logits, labels)

    batched = vmap(loss, randomness="different")

    losses = []
    with torch.no_grad():
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            moved = {
                n: base[n] - lr * d[start:stop].to(base[n].dtype)
                for n, d in zip(names, gradients, strict=True)
            }
            bufs = {
                n: b.unsqueeze(0).repeat_interleave(stop - start, 0) for n, b in buffers.items()
            }
            losses.append(batched(moved, bufs).float())
    return torch.cat(losses)


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """CENSOR (see the module docstring for the exact rule).

    Needs ``context.model``, ``context.images`` and ``context.labels`` (raises
    ``GradInvError`` without them). Draws ``trials * sum(numel)`` standard normals from
    ``generator`` (plus one uniform when ``temperature > 0``). Shapes, dtypes and devices
    are preserved.
    """
    config = config or Config()
    gradients = tuple(gradients)
    ctx, _ = require_data(context, "CENSOR", gradients)
    if not gradients:
        return ()
    trials = int(config.trials)
    candidates = orthogonal_candidates(gradients, trials, generator)
    losses = step_losses(ctx, candidates, config.lr, int(config.chunk))
    if config.temperature > 0:
        probs = torch.softmax(-losses.double() / config.temperature, dim=0)
        where = generator.device if generator is not None else probs.device
        u = torch.rand((), generator=generator, device=where, dtype=torch.float64)
        best = int(
            torch.searchsorted(probs.cumsum(0).cpu(), u.cpu().reshape(1)).clamp(max=trials - 1)
        )
    else:
        best = int(torch.argmin(losses))
    if config.keep_true_if_no_gain:
        zero = [torch.zeros((1, *g.shape), dtype=g.dtype, device=g.device) for g in gradients]
        before = step_losses(ctx, zero, 0.0, 1)[0]
        # a gain below float round-off (batched vs single evaluation) is no gain
        if not bool(losses[best] < before - ROUND_OFF * before.abs()):
            return tuple(g.clone() for g in gradients)
    return tuple(c[best].clone() for c in candidates)
