"""The three objects every attack speaks: a *case*, what the server *observed*, and a *reconstruction*.

The split follows breaching's config/case separation: a :class:`Case` is the ground
truth of one attack scenario (victim model, private batch), an :class:`Observed` is
all the attacker gets to see (the shared update, optionally the labels), and a
:class:`Reconstruction` is what an attack returns. Attacks never read
``case.images``: only metrics and plots do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradinv.errors import GradInvError


@dataclass
class Case:
    """One attack scenario: a victim model and the client's private batch.

    Attributes:
        model: the victim classifier, with the weights the server holds.
        images: private batch, shape ``(B, C, H, W)``, values in ``[0, 1]``.
        labels: integer class labels, shape ``(B,)``.
        num_classes: number of classes of the classifier head.
        name: free-form description (dataset, model) for plots and tables.
    """

    model: nn.Module
    images: Tensor
    labels: Tensor
    num_classes: int
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise GradInvError(
                f"Case.images must have shape (B, C, H, W); got {tuple(self.images.shape)}. "
                "Add a batch dimension with images.unsqueeze(0) for a single image."
            )
        if self.labels.shape != (self.images.shape[0],):
            raise GradInvError(
                f"Case.labels must have shape (B,) = ({self.images.shape[0]},); "
                f"got {tuple(self.labels.shape)}."
            )
        if not torch.isfinite(self.images).all():
            raise GradInvError("Case.images contains NaN or Inf values.")

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device


@dataclass
class Observed:
    """What the attacker sees: one client's shared gradient (or update) for ``model``.

    Attributes:
        gradients: one tensor per trainable parameter, in ``model.named_parameters()``
            order (after any defense was applied by the client).
        batch_size: the client's batch size (known to the server in FedSGD).
        image_shape: ``(C, H, W)`` of the client's inputs (known from the architecture).
        num_classes: size of the classifier head.
        labels: the true labels when the threat model grants them ("oracle labels"),
            else ``None`` and attacks infer or optimise them.
        meta: free-form extras (e.g. the defense that was applied).
    """

    gradients: tuple[Tensor, ...]
    batch_size: int
    image_shape: tuple[int, int, int]
    num_classes: int
    labels: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def check_against(self, model: nn.Module) -> None:
        """Raise a clear error if the gradients do not fit ``model`` or contain NaN/Inf."""
        params = [p for p in model.parameters() if p.requires_grad]
        if len(params) != len(self.gradients):
            raise GradInvError(
                f"Observed gradients have {len(self.gradients)} tensors but the model has "
                f"{len(params)} trainable parameters: was the gradient computed on another model?"
            )
        for i, (p, g) in enumerate(zip(params, self.gradients, strict=True)):
            if p.shape != g.shape:
                raise GradInvError(
                    f"Observed gradient {i} has shape {tuple(g.shape)} but the model parameter "
                    f"has shape {tuple(p.shape)}: the gradient does not belong to this model."
                )
            if not torch.isfinite(g).all():
                raise GradInvError(
                    f"Observed gradient {i} contains NaN or Inf: the client update is corrupt "
                    "(check the defense's parameters, e.g. a zero quantisation range)."
                )


@dataclass
class Reconstruction:
    """What an attack returns.

    Attributes:
        images: reconstructed batch ``(B, C, H, W)`` in ``[0, 1]`` (the best restart).
        labels: the labels the attack used or recovered, shape ``(B,)``.
        loss: final attack objective of the returned restart.
        history: per-iteration records (``{"iteration", "loss", ...}``) from the callback.
        extras: attack-specific outputs (all restarts, intermediates, recovered t, ...).
    """

    images: Tensor
    labels: Tensor | None
    loss: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
