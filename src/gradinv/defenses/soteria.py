"""Soteria: representation pruning of the last fully-connected layer, a baseline of the
shadow-defense paper (shadow_defense.txt, Sec. 2: "Data representation perturbation,
represented by Soteria (Sun et al. (2021)), performs disturbance in the representation from
a learned FC layer to maximize reconstruction error"; Tables 1-2, "Soteria").

Source: Sun, Li, Wang, Yang, Li, Chen, "Soteria: Provable Defense against Privacy Leakage
in Federated Learning from Representation Perspective", CVPR 2021, and its official code
(github.com/jeremy313/Soteria, ``GS_attack/reconstruct_image.py``): the representation
``r`` is the input of the classifier's fully-connected layer; the perturbed representation
``r'`` zeroes the features whose removal hurts reconstruction most, measured per feature by
the ratio ``||r_i|| / ||dr_i/dX||`` (the paper's tractable surrogate of
``||r (dr/dX)^-1||``), and only that layer's weight gradient is recomputed from ``r'``.

Exact rule implemented, for a batch ``X = (x_1..x_B)`` and the input ``r`` (shape
``(B, F)``) of the model's last ``nn.Linear`` (found with a forward hook):

1. Per feature and sample, the input-gradient norm ``n_bf = ||d r_bf / d x_b||_2``: the
   exact Jacobian rows, computed in feature chunks with one batched vector-Jacobian
   product per chunk (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. ``vmap``),
   no Python loop over pixels or parameters (the reference code loops over features with
   one backward pass each; the values are identical). Like the reference, the rows are
   those of the batch sum ``sum_b r_bf``, so BatchNorm in training mode couples samples.
2. Score ``s_f = sum_b n_bf / (|r_bf| + eps)`` -- the reference's
   ``||dr/dX|| / (r + 0.1)`` summed over the batch; a *small* score is a *large*
   ``||r|| / ||dr/dX||`` ratio. We take ``|r|`` (the paper's norm; identical to the
   reference for the non-negative sigmoid/ReLU representations it uses).
3. Prune exactly ``k = floor(rate * F)`` features: those of smallest ``s_f`` (stable
   ``argsort`` tie-break; the reference thresholds at ``np.percentile(s, rate)`` with
   ``<``, which prunes ``k`` up to ties). One mask for the whole batch, as the reference.
4. The FC weight gradient is recomputed from the masked representation
   ``r' = r * m``: ``dW' = delta^T r' / B = dW * m`` column-wise, with ``delta`` the
   unchanged back-propagated error (what the reference's ``dW * mask`` computes). The
   bias and every other tensor are returned bit-for-bit unchanged.

What the server sees afterwards: the exact update except that the last linear layer's
weight gradient has ``k`` zero columns (the pruned representation features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gradinv.defenses.context import ClientContext, require_data
from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Config:
    """Soteria defense."""

    # official code: README's GS (Inverting Gradients) run uses --pruning_rate=60 (percent);
    # its DLG notebook uses 1. The shadow-defense paper gives no value. Fraction in [0, 1].
    rate: float = 0.6
    eps: float = 0.1  # official GS code: ||dr/dX|| / (r + 0.1) (GGL's port uses 1e-10)
    chunk: int = 64  # our choice (paper silent): features per batched Jacobian pass (memory)

    def __post_init__(self) -> None:
        if not (0.0 <= self.rate <= 1.0):
            raise GradInvError(f"Soteria rate must lie in [0, 1] (a fraction), got {self.rate}")
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise GradInvError(f"Soteria eps must be a finite number >= 0, got {self.eps}")
        if int(self.chunk) < 1:
            raise GradInvError(f"Soteria chunk must be an integer >= 1, got {self.chunk}")


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the last ``nn.Linear`` of ``model`` (registration order)."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise GradInvError(
            f"Soteria needs a fully-connected layer: {type(model).__name__} has no nn.Linear"
        )
    return found[-1]


def feature_scores(model: nn.Module, images: Tensor, config: Config | None = None) -> Tensor:
    """Soteria score ``s_f = sum_b ||d r_bf / d x_b|| / (|r_bf| + eps)`` of every input
    feature of the last linear layer, shape ``(F,)`` (float32, on the images' device).

    The model is run through ``functional_call`` with detached parameters and copied
    buffers, so neither its parameters, ``.grad`` fields nor BatchNorm statistics change.
    """
    config = config or Config()
    _, fc = last_linear(model)
    captured: list[Tensor] = []
    handle = fc.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    try:
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            functional_call(model, (params, buffers), (x,))
            if not captured:
                raise GradInvError("Soteria: the last nn.Linear was not called in forward")
            rep = captured[-1]
            if rep.ndim != 2 or rep.shape[0] != x.shape[0]:
                raise GradInvError(
                    f"Soteria expects the last linear layer's input as (B, F), got "
                    f"{tuple(rep.shape)}"
                )
            b, f = rep.shape
            eye = torch.eye(f, dtype=rep.dtype, device=rep.device)
            norms = []
            for start in range(0, f, int(config.chunk)):  # chunks of features, not pixels
                stop = min(start + int(config.chunk), f)
                cot = eye[start:stop, None, :].expand(stop - start, b, f)
                (jac,) = torch.autograd.grad(
                    rep, x, grad_outputs=cot, retain_graph=True, is_grads_batched=True
                )
                norms.append(jac.reshape(stop - start, b, -1).norm(dim=-1).T)  # (B, chunk)
            norms = torch.cat(norms, dim=1)
    finally:
        handle.remove()
    return (norms / (rep.detach().abs() + config.eps)).sum(dim=0)


def prune_mask(scores: Tensor, rate: float) -> Tensor:
    """Boolean keep-mask over features: False at the ``floor(rate * F)`` smallest scores."""
    k = int(math.floor(rate * scores.numel() + 1e-9))
    keep = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.argsort(scores, stable=True)[:k]] = False
    return keep


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """Soteria (see the module docstring for the exact rule).

    Needs ``context.model``, ``context.images`` and ``context.labels`` (raises
    ``GradInvError`` without them; the labels only enter the gradient the client already
    computed). ``generator`` is unused (Soteria is deterministic). Returns new tensors of
    the same shapes, dtypes and devices; only the last linear layer's weight gradient
    differs from the input.
    """
    del generator
    config = config or Config()
    gradients = tuple(gradients)
    ctx, names = require_data(context, "Soteria", gradients)
    model = ctx.model
    fc_name, fc = last_linear(model)
    weight = f"{fc_name}.weight" if fc_name else "weight"
    if weight not in names:
        raise GradInvError(f"Soteria: the last linear layer's weight {weight!r} is not trainable")
    index = names.index(weight)
    if gradients[index].shape != fc.weight.shape:
        raise GradInvError(
            f"Soteria: gradient {index} has shape {tuple(gradients[index].shape)}, expected "
            f"{tuple(fc.weight.shape)} for {weight!r}"
        )
    keep = prune_mask(feature_scores(model, ctx.images, config), config.rate)
    out = [g.clone() for g in gradients]
    g = gradients[index]
    out[index] = g * keep.to(device=g.device, dtype=g.dtype)[None, :]
    return tuple(out)
