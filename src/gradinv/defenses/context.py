"""What a data- or round-aware defense may know about the client that applies it.

Most gradient defenses (noise, pruning, quantization, clipping) are pure functions of the
gradient. Some are not: OUTPOST (Wang et al., INFOCOM 2023; "Wang et al. (2024a)" in
shadow_defense.txt, Sec. 2) reads the current weights of every layer and the training
progress, and the shadow defense (shadow_defense.txt, Sec. 4) reads the client's images and
the FL round. A :class:`ClientContext` carries that information to ``apply(..., context=)``;
every field is optional and a defense that needs a missing one raises ``GradInvError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradinv.errors import GradInvError


@dataclass
class ClientContext:
    """The client-side state a defense may read (never modify) while transforming an update.

    Attributes:
        model: the global model the client received and computed the gradient on.
        images: the client's private batch ``(B, C, H, W)`` (data-level defenses only).
        labels: the batch's integer labels ``(B,)``.
        round: 0-based index of the current FL round (round-aware schedules, e.g.
            OUTPOST's decaying perturbation probability).
        rounds: total number of FL rounds planned (schedules that ramp over training).
        parameters: the current parameter values, one tensor per gradient tensor and in
            the same order (``model.named_parameters()`` order of trainable parameters),
            e.g. for OUTPOST's per-layer weight variance.
        client: 0-based index of the client applying the defense (per-client settings,
            e.g. the shadow defense's fine-tuning learning rate, shadow_defense.txt Sec. 5.1).
    """

    model: torch.nn.Module | None = None
    images: Tensor | None = None
    labels: Tensor | None = None
    round: int = 0
    rounds: int = 1
    parameters: tuple[Tensor, ...] | None = None
    client: int = 0

    @classmethod
    def from_model(cls, model: torch.nn.Module, **fields) -> ClientContext:
        """A context for ``model`` whose ``parameters`` are its trainable parameters
        (detached), in the order :func:`gradinv.fl.client_gradient` returns gradients."""
        params = tuple(p.detach() for p in model.parameters() if p.requires_grad)
        return cls(model=model, parameters=params, **fields)


def require_data(
    context: ClientContext | None, defense: str, gradients: tuple[Tensor, ...]
) -> tuple[ClientContext, list[str]]:
    """``context`` and the names of the model's trainable parameters, when the context
    carries the client's model, images and labels and ``gradients`` has one tensor per
    trainable parameter; else a ``GradInvError`` saying what ``defense`` lacks."""
    missing = [
        f for f in ("model", "images", "labels") if context is None or getattr(context, f) is None
    ]
    if missing:
        raise GradInvError(
            f"{defense} needs the client's {', '.join(missing)}: pass context="
            "ClientContext.from_model(model, images=images, labels=labels)"
        )
    names = [n for n, p in context.model.named_parameters() if p.requires_grad]
    if len(names) != len(gradients):
        raise GradInvError(
            f"{defense} got {len(gradients)} gradient tensors for a model with {len(names)} "
            "trainable parameters: pass the gradient of every trainable parameter in "
            "model.named_parameters() order"
        )
    return context, names
