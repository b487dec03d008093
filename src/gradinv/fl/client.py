"""Client-side computations: the shared gradient of one batch and a local update.

Neither function touches the server's model: gradients are computed through
``torch.func.functional_call`` on the model's parameters, so no ``.grad`` field and no
BatchNorm running statistic of the server's copy changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gradinv.case import Case, Observed
from gradinv.fl.rounds import local_train
from gradinv.losses import cross_entropy


def client_gradient(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = cross_entropy,
) -> tuple[Tensor, ...]:
    """FedSGD update: the gradient of the mean batch loss w.r.t. every trainable parameter,
    in ``model.named_parameters()`` order."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {
        n: p.detach().requires_grad_(True) for n, p in model.named_parameters() if p.requires_grad
    }
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    logits = functional_call(model, (params, buffers), (images,))
    grads = torch.autograd.grad(loss_fn(logits, labels), [params[n] for n in names])
    return tuple(g.detach() for g in grads)


def observe(
    case: Case,
    defense: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None,
    oracle_labels: bool = False,
) -> Observed:
    """What the server sees of ``case``'s client after an optional gradient ``defense``
    (a registry :class:`~gradinv.defenses.Defense` also gets the client's model and batch)."""
    from gradinv.defenses import ClientContext, Defense

    grads = client_gradient(case.model, case.images, case.labels)
    meta: dict = {}
    if isinstance(defense, Defense):
        context = ClientContext.from_model(case.model, images=case.images, labels=case.labels)
        grads = tuple(defense(grads, context))
    elif defense is not None:
        grads = tuple(defense(grads))
    if defense is not None:
        meta["defense"] = getattr(defense, "name", type(defense).__name__)
    return Observed(
        gradients=grads,
        batch_size=case.batch_size,
        image_shape=case.image_shape,
        num_classes=case.num_classes,
        labels=case.labels.clone() if oracle_labels else None,
        meta=meta,
    )


def local_update(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    lr: float = 0.01,
    epochs: int = 1,
    batch_size: int = 32,
    generator: torch.Generator | None = None,
    gradient_transform: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None,
) -> dict[str, Tensor]:
    """Train a copy of ``model`` with plain SGD for ``epochs`` local epochs and return its
    new state dict (FedAvg client, McMahan et al. 2017): the client of
    :func:`~gradinv.fl.rounds.local_train` seen as the model it ends with.
    ``gradient_transform`` is applied to every step's gradient (gradient-level defenses
    during training)."""
    res = local_train(
        model, images, labels, lr, epochs, batch_size, generator, defense=gradient_transform
    )
    trained = {**res.params, **res.buffers}
    return {
        k: trained[k] if k in trained else v.detach().clone() for k, v in model.state_dict().items()
    }
