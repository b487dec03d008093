"""The FL client and FedAvg loop (survey eq. 1-3): what a client sends and how the server
averages it."""

from __future__ import annotations

import copy

import pytest
import torch

from gradinv.case import Case
from gradinv.defenses import build as build_defense
from gradinv.fl import (
    FederationConfig,
    accuracy,
    accuracy_evaluator,
    client_gradient,
    local_update,
    observe,
    run_federated,
)
from gradinv.losses import cross_entropy
from gradinv.models import build as build_model


def _batch(n: int, size: int = 16, channels: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def _manual_gradient(model, images, labels):
    clone = copy.deepcopy(model)
    clone.zero_grad(set_to_none=True)
    cross_entropy(clone(images), labels).backward()
    return [p.grad for p in clone.parameters() if p.requires_grad]


def _states_close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-5) for k in a)


@pytest.mark.parametrize("name", ["lenet", "resnet18"])
def test_client_gradient_equals_manual_autograd_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, 1, 10, 16).train()
    images, labels = _batch(4)
    grads = client_gradient(model, images, labels)
    manual = _manual_gradient(model, images, labels)
    assert len(grads) == len(manual)
    for g, m in zip(grads, manual, strict=True):
        assert g.shape == m.shape and not g.requires_grad
        assert torch.allclose(g, m, atol=1e-6, rtol=1e-4)


def test_client_gradient_does_not_mutate_the_model():
    torch.manual_seed(0)
    model = build_model("resnet18", 1, 10, 16).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    client_gradient(model, *_batch(4))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert int(model.bn1.num_batches_tracked) == 0
    assert model.training


def test_observe_applies_the_defense_and_grants_labels_only_as_oracle():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    case = Case(model, *_batch(2), num_classes=10)
    clean = observe(case)
    assert clean.labels is None and clean.batch_size == 2 and clean.image_shape == (1, 16, 16)
    pruned = observe(case, build_defense("pruning", percent=50), oracle_labels=True)
    assert pruned.meta["defense"] == "pruning" and torch.equal(pruned.labels, case.labels)
    for c, p in zip(clean.gradients, pruned.gradients, strict=True):
        assert int((p == 0).sum()) >= c.numel() // 2
        assert torch.equal(p[p != 0], c[p != 0])


def test_local_update_with_one_batch_and_one_epoch_is_one_sgd_step():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    images, labels = _batch(8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = local_update(model, images, labels, lr=0.05, epochs=1, batch_size=8)
    grads = dict(
        zip(
            [n for n, _ in model.named_parameters()],
            client_gradient(model, images, labels),
            strict=True,
        )
    )
    expected = {k: before[k] - 0.05 * grads[k] for k in before}
    assert _states_close(new, expected)
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items()
    )  # server copy untouched


def test_local_update_applies_the_gradient_transform_at_every_step():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    images, labels = _batch(8)
    # pruning 100 % zeroes every step: the local model does not move
    new = local_update(
        model,
        images,
        labels,
        epochs=2,
        batch_size=4,
        gradient_transform=build_defense("pruning", percent=100),
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in new.items())


def test_fedavg_of_identical_clients_equals_a_single_clients_update():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    images, labels = _batch(8)
    single = local_update(model, images, labels, lr=0.05, epochs=2, batch_size=8)
    server = copy.deepcopy(model)
    config = FederationConfig(rounds=1, lr=0.05, local_epochs=2, batch_sizes=8, progress=False)
    averaged = run_federated(server, [(images, labels)] * 3, config).model
    assert _states_close(averaged.state_dict(), single)


def test_fedavg_weights_clients_by_their_data_size():
    torch.manual_seed(0)
    model = build_model("lenet", 1, 10, 16)
    small, large = _batch(2, seed=1), _batch(6, seed=2)
    s_small = local_update(model, *small, lr=0.1, batch_size=8)
    s_large = local_update(model, *large, lr=0.1, batch_size=8)
    server = copy.deepcopy(model)
    config = FederationConfig(rounds=1, lr=0.1, batch_sizes=8, keep_rounds="all", progress=False)
    run = run_federated(server, [small, large], config)
    averaged, states = run.model, [run.client_model(1, k).state_dict() for k in range(2)]
    assert _states_close(states[0], s_small) and _states_close(states[1], s_large)
    weighted = {k: 0.25 * s_small[k] + 0.75 * s_large[k] for k in s_small}
    unweighted = {k: 0.5 * s_small[k] + 0.5 * s_large[k] for k in s_small}
    assert _states_close(averaged.state_dict(), weighted)
    assert not _states_close(averaged.state_dict(), unweighted)


def _two_class_task(n: int, seed: int):
    """Bright left half (class 0) vs bright right half (class 1), plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    images[labels == 0, :, :, :4] += 0.6
    images[labels == 1, :, :, 4:] += 0.6
    return images, labels


def test_fedavg_with_two_clients_learns_an_easy_task():
    torch.manual_seed(0)
    model = build_model("mlp3", 1, 2, 8)
    x, y = _two_class_task(128, seed=3)
    test = _two_class_task(200, seed=4)
    before = accuracy(copy.deepcopy(model), *test)
    clients = [(x[:64], y[:64]), (x[64:], y[64:])]
    config = FederationConfig(  # the survey's FedAvg loop
        rounds=5, lr=0.1, batch_sizes=16, aggregate="models", shuffle="shared", progress=False
    )
    run = run_federated(model, clients, config, evaluate=accuracy_evaluator(*test))
    accuracies = [h["accuracy"] for h in run.history]
    assert len(accuracies) == 5
    assert accuracies[-1] >= 95.0 and accuracies[-1] > before + 20, (
        before,
        accuracies,
    )


def test_fedavg_leaves_the_global_model_in_its_training_mode():
    model = build_model("mlp3", 1, 2, 8).train()
    x, y = _two_class_task(16, seed=5)
    run = run_federated(
        model,
        [(x, y)],
        FederationConfig(
            rounds=1, batch_sizes=32, aggregate="models", shuffle="shared", progress=False
        ),
        evaluate=accuracy_evaluator(x, y),
    )
    assert model.training
    assert run.model.training  # the trained global model (the engine trains a copy)
