"""FedAvg (McMahan et al., 2017; survey eq. 1-3) with N clients and a pluggable defense."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.fl.client import local_update

Transform = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]


def partition_iid(
    n: int, num_clients: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Split indices ``0..n-1`` into ``num_clients`` near-equal random shards."""
    return list(torch.randperm(n, generator=generator).tensor_split(num_clients))


@dataclass
class FedAvgResult:
    """Global model and per-round test accuracy of one FedAvg run."""

    model: nn.Module
    accuracy: list[float] = field(default_factory=list)


def evaluate(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy (percent) of ``model`` on a test set; the model's mode is restored."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, images.shape[0], batch_size):
            correct += (
                model(images[s : s + batch_size]).argmax(1) == labels[s : s + batch_size]
            ).sum()
    model.train(was_training)
    return 100.0 * float(correct) / images.shape[0]


def fedavg_rounds(
    model: nn.Module,
    client_data: list[tuple[Tensor, Tensor]],
    rounds: int,
    lr: float = 0.01,
    local_epochs: int = 1,
    batch_size: int = 32,
    gradient_transform: Transform | None = None,
    generator: torch.Generator | None = None,
    update_transform: Transform | None = None,
) -> Iterator[tuple[int, nn.Module, list[dict[str, Tensor]]]]:
    """Yield ``(round, global_model, client_states)`` after each FedAvg round (eq. 3:
    the new global model is the data-size-weighted mean of the client models).

    ``gradient_transform`` acts on every local SGD step's gradient; ``update_transform``
    on what the client shares, its update ``w_k - w_G`` over the trainable parameters
    (e.g. quantise, then the server dequantises before aggregating).
    """
    sizes = torch.tensor([float(x.shape[0]) for x, _ in client_data])
    weights = (sizes / sizes.sum()).tolist()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for r in range(rounds):
        states = [
            local_update(model, x, y, lr, local_epochs, batch_size, generator, gradient_transform)
            for x, y in client_data
        ]
        if update_transform is not None:
            states = [_transform_update(model, s, names, update_transform) for s in states]
        new_state = {}
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                new_state[key] = sum(w * s[key] for w, s in zip(weights, states, strict=True))
            else:
                new_state[key] = states[0][key]
        model.load_state_dict(new_state)
        yield r, model, states


def _transform_update(
    model: nn.Module, state: dict[str, Tensor], names: list[str], transform: Transform
) -> dict[str, Tensor]:
    """Apply ``transform`` to a client's update ``w_k - w_G`` and return the new state."""
    glob = dict(model.named_parameters())
    update = tuple(state[n] - glob[n].detach() for n in names)
    new = dict(state)
    for n, u in zip(names, transform(update), strict=True):
        new[n] = glob[n].detach() + u
    return new


def fedavg(
    model: nn.Module,
    client_data: list[tuple[Tensor, Tensor]],
    test: tuple[Tensor, Tensor],
    rounds: int,
    lr: float = 0.01,
    local_epochs: int = 1,
    batch_size: int = 32,
    gradient_transform: Transform | None = None,
    seed: int = 0,
    progress: bool = True,
    update_transform: Transform | None = None,
) -> FedAvgResult:
    """Run FedAvg for ``rounds`` rounds and record the global test accuracy after each."""
    gen = torch.Generator().manual_seed(seed)
    result = FedAvgResult(model=model)
    loop = fedavg_rounds(
        model,
        client_data,
        rounds,
        lr,
        local_epochs,
        batch_size,
        gradient_transform,
        gen,
        update_transform,
    )
    for _, global_model, _ in tqdm(loop, total=rounds, desc="FedAvg", disable=not progress):
        result.accuracy.append(evaluate(global_model, *test))
    return result
