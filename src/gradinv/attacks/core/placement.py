"""Put an attack's victim, what it observed and its generative prior on one device (every
engine starts here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.utils import resolve_device


def prepare(
    model: nn.Module, observed: Observed, device: str | torch.device | None
) -> tuple[nn.Module, Observed]:
    """Move ``model`` and ``observed`` to ``device`` (``None``: keep the model's device)."""
    if device is None:
        dev = next(model.parameters()).device
    else:
        dev = resolve_device(device)
        model = model.to(dev) if next(model.parameters()).device != dev else model
    grads = tuple(g.to(dev) for g in observed.gradients)
    labels = None if observed.labels is None else observed.labels.to(dev)
    obs = Observed(
        grads,
        observed.batch_size,
        observed.image_shape,
        observed.num_classes,
        labels,
        dict(observed.meta),
    )
    return model, obs


def prepare_with_prior(
    model: nn.Module,
    observed: Observed,
    device: str | None,
    name: str,
    loader: Callable[[str, str], Any],
) -> tuple[nn.Module, Observed, Any]:
    """Place model and gradients on ``device`` and load the generative prior ``name`` there
    with ``loader(name, device)``; a clear error when it generates another image shape."""
    model, observed = prepare(model, observed, device)
    where = next(model.parameters()).device
    prior = loader(name, str(where))
    if prior.image_shape != tuple(observed.image_shape):
        raise GradInvError(
            f"prior {name!r} generates {prior.image_shape} images but the client's inputs are "
            f"{tuple(observed.image_shape)}; use a prior trained at that size and number of "
            "channels"
        )
    return model, observed, prior


__all__ = ["prepare", "prepare_with_prior"]
