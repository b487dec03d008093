"""OUTPOST: risk-adaptive gradient sparsification and perturbation, a baseline of the
shadow-defense paper (shadow_defense.txt, Sec. 2: "sparsify gradients with an empirical
Fisher information lower than a threshold. For rest parts, perturbations with Gaussian
noise are added to areas surpassing another threshold. The privacy risk is decided by the
weight variance of each network layer, and the probability of perturbation decreases as
training ... progresses"; Sec. 4 l. 102; Tables 1-2).

Source: Wang, Hu, Li et al., "More than Enough is Too Much: Adaptive Defenses against
Gradient Leakage in Production Federated Learning", IEEE INFOCOM 2023 (cited there as
Wang et al. 2024a), and its public reference code (Plato, ``defense/Outpost/perturb.py``
and the DLG trainer), whose defaults we use: ``beta=0.125, phi=40, prune_base=80,
noise_base=0.8``.

Exact rule implemented, for one client update ``g = (g_1, ..., g_L)`` at round ``r``:

1. Decay (reference trainer): with probability ``p = 1 / (1 + beta * r)`` the update is
   perturbed, else returned unchanged. One uniform ``u ~ U[0, 1)`` is drawn from the
   defense's generator per call and the update is perturbed iff ``u < p`` (so ``r = 0``
   always perturbs). The reference counts local iterations; we count FL rounds
   (``context.round``), which coincide for FedSGD with one local step per round.
2. Risk (reference ``compute_risk``): ``risk_l = min(Var(W_l), 1)`` with ``W_l`` the
   current values of layer ``l``'s parameter (``context.parameters``), unbiased variance
   (0 for a one-entry tensor).
3. Empirical Fisher information, approximated entrywise by the squared gradient
   ``F_l = g_l^2`` (the shared gradient is already the batch mean, so no per-example
   outer product is available; the reference code additionally averages ``g^2`` over the
   first tensor dimension, which we do not: the mask is per entry).
4. Sparsify, per layer: the ``k_l = floor(prune_base / 100 * n_l)`` entries of smallest
   ``F_l`` are set to zero (the reference's ``|g_l| < percentile(|g_l|, prune_base)``,
   with the exact count and flat-index tie-breaking of :mod:`gradinv.defenses.pruning`).
5. Perturb: a single global threshold over all layers marks the ``phi`` % entries of
   largest ``F`` (the reference's ``F >= percentile(F, 100 - phi)``, exact count
   ``n - floor((100 - phi) / 100 * n)``); each such entry *that survived step 4* gets
   ``N(0, (noise_base * risk_l)^2)`` added (the reference adds noise to all marked
   entries; the shadow-defense paper's description adds it to "the rest parts", i.e.
   the unpruned ones, which we follow).

What the server sees afterwards: early in training, a sparse update (``100 - prune_base``
% per layer) whose largest-Fisher entries carry Gaussian noise scaled by the layer's
weight spread; later, with decaying probability, the exact update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradinv.defenses.context import ClientContext
from gradinv.defenses.pruning import keep_mask
from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Config:
    """OUTPOST defense (values from the authors' reference configuration; the
    shadow-defense paper gives none)."""

    beta: float = 0.125  # reference config: "iteration decay speed", p = 1 / (1 + beta r)
    phi: float = 40.0  # reference config: "the amount (%) of perturbation" (top-phi % Fisher)
    prune_base: float = 80.0  # reference config: "pruning percentage" (per layer)
    noise_base: float = 0.8  # reference config: "scale for gaussian noise", std = 0.8 risk
    max_risk: float = 1.0  # reference compute_risk: risk = min(Var(W), 1)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise GradInvError(f"OUTPOST beta must be a finite number >= 0, got {self.beta}")
        for name in ("phi", "prune_base"):
            value = getattr(self, name)
            if not (0.0 <= value <= 100.0):
                raise GradInvError(f"OUTPOST {name} must lie in [0, 100] (percent), got {value}")
        for name in ("noise_base", "max_risk"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise GradInvError(f"OUTPOST {name} must be a finite number >= 0, got {value}")


def probability(config: Config, round: int) -> float:
    """Probability that the update of 0-based round ``round`` is perturbed: 1 / (1 + beta r)."""
    return 1.0 / (1.0 + config.beta * max(int(round), 0))


def layer_risk(parameters: tuple[Tensor, ...], max_risk: float = 1.0) -> list[Tensor]:
    """``min(Var(W_l), max_risk)`` per parameter tensor (float64 scalars; 0 for one entry)."""
    return [
        (
            p.detach().double().var() if p.numel() > 1 else p.new_zeros((), dtype=torch.float64)
        ).clamp(max=max_risk)
        for p in parameters
    ]


def _parameters(gradients: tuple[Tensor, ...], context: ClientContext | None) -> tuple[Tensor, ...]:
    if context is None or (context.parameters is None and context.model is None):
        raise GradInvError(
            "OUTPOST needs the current layer weights: pass "
            "context=ClientContext(parameters=...) (or ClientContext.from_model(model))"
        )
    if context.parameters is not None:
        params = tuple(context.parameters)
    else:
        params = tuple(p for p in context.model.parameters() if p.requires_grad)
    if len(params) != len(gradients) or any(
        p.shape != g.shape for p, g in zip(params, gradients, strict=False)
    ):
        raise GradInvError(
            f"OUTPOST context.parameters ({len(params)} tensors) do not match the "
            f"{len(gradients)} gradient tensors in order and shape: pass the trainable "
            "parameters in model.named_parameters() order"
        )
    return params


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """OUTPOST (see the module docstring for the exact rule).

    Needs ``context.parameters`` (or ``context.model``) for the layer risks and reads
    ``context.round``; raises ``GradInvError`` without them. Draws from ``generator``: one
    uniform for the decay decision, then ``sum(numel)`` standard normals. Shapes, dtypes
    and devices are preserved.
    """
    config = config or Config()
    gradients = tuple(gradients)
    params = _parameters(gradients, context)
    if not gradients:
        return ()
    device = gradients[0].device
    where = generator.device if generator is not None else device
    u = float(torch.rand((), device=where, generator=generator))
    if u >= probability(config, context.round):
        return tuple(g.clone() for g in gradients)

    fisher = [g.detach().double().pow(2).reshape(-1).to(device) for g in gradients]
    kept = [keep_mask(f, config.prune_base) for f in fisher]
    sizes = [f.numel() for f in fisher]
    hot = keep_mask(torch.cat(fisher), 100.0 - config.phi).split(sizes)
    risks = layer_risk(params, config.max_risk)
    z = torch.randn(sum(sizes), device=where, generator=generator).to(device).split(sizes)

    out = []
    for g, k, h, r, n in zip(gradients, kept, hot, risks, z, strict=True):
        k, h = k.view_as(g).to(g.device), h.view_as(g).to(g.device)
        std = (config.noise_base * r).to(device=g.device, dtype=g.dtype)
        noisy = g + n.view_as(g).to(device=g.device, dtype=g.dtype) * std
        zero = torch.zeros((), dtype=g.dtype, device=g.device)
        out.append(torch.where(k & h, noisy, torch.where(k, g, zero)))
    return tuple(out)
