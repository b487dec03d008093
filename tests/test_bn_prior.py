"""The BN-statistics-prior attack of Hatamizadeh et al. (2023) on FedAvg client updates
(gradinv.attacks.bn_prior). CPU, seeded, a small conv+BN net on 16x16 grey photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data, transform
from torch import nn

from gradinv import attacks
from gradinv.attacks import bn_prior
from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.fl.rounds import FederationConfig, run_federated
from gradinv.metrics import match_order, psnr

torch.set_num_threads(1)
SIZE = 16


def photos(n: int) -> torch.Tensor:
    """``n`` grey photographs from scikit-image at 16x16, ``(n, 1, 16, 16)`` in [0, 1]."""
    imgs = [data.camera(), data.astronaut()[..., 0], data.coins()][:n]
    out = [
        transform.resize(a.astype(np.float32) / 255.0, (SIZE, SIZE), anti_aliasing=True)
        for a in imgs
    ]
    return torch.tensor(np.stack(out), dtype=torch.float32).unsqueeze(1)


def bn_cnn(width: int = 32, seed: int = 0) -> nn.Module:
    """Four conv+BN+ReLU blocks (two at full resolution), global pooling, 4 classes."""
    torch.manual_seed(seed)
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 4),
    )  # fmt: skip


def federated(n: int, batch_size: int):
    """One FedAvg round of one client holding ``n`` photos; its global model and update."""
    x, y = photos(n), torch.arange(n)
    config = FederationConfig(rounds=1, batch_sizes=batch_size, keep_rounds=[1], progress=False)
    run = run_federated(bn_cnn(), [(x, y)], config)
    return run.model_at(1), run.update(1, 0), x, y


def score(rec: torch.Tensor, truth: torch.Tensor) -> float:
    return float(psnr(rec[match_order(rec, truth)], truth).mean())


def random_score(truth: torch.Tensor) -> float:
    gen = torch.Generator().manual_seed(0)
    return float(psnr(torch.rand(truth.shape, generator=gen), truth).mean())


@pytest.fixture(scope="module")
def one_step():
    return federated(1, 1)


@pytest.fixture(scope="module")
def attacked(one_step):
    model, update, x, _ = one_step
    return bn_prior.run(model, update.observed(4), bn_prior.Config(iterations=800))


# -- the attack --------------------------------------------------------------------------------
def test_bn_prior_recovers_one_image_from_a_one_step_update(one_step, attacked):
    _, update, x, y = one_step
    assert update.num_steps == 1
    assert attacked.labels.tolist() == y.tolist()  # iDLG rule on the update
    assert attacked.images.shape == x.shape
    # measured: 42.2 dB after 800 iterations; a uniform random image scores 8.3 dB
    assert score(attacked.images, x) > random_score(x) + 5
    assert score(attacked.images, x) > 30


def test_removing_the_bn_prior_makes_the_attack_much_worse(one_step, attacked):
    model, update, x, _ = one_step
    rec = bn_prior.run(model, update.observed(4), bn_prior.Config(iterations=800, bn=0.0))
    # measured: 4.9 dB without the prior (TV and L2 then outweigh the tiny gradient term)
    assert score(attacked.images, x) > score(rec.images, x) + 10


def test_two_local_steps_still_run_and_lower_the_objective():
    model, update, x, y = federated(2, 1)
    assert update.num_steps == 2
    rec = bn_prior.run(model, update.observed(4), bn_prior.Config(iterations=150, warmup=20))
    assert rec.images.shape == x.shape and torch.isfinite(rec.images).all()
    assert sorted(rec.labels.tolist()) == y.tolist()  # label counts on the mean gradient
    assert rec.extras["num_steps"] == 2
    assert rec.history[-1]["loss"] < rec.history[0]["loss"]


# -- BN statistics from the update -------------------------------------------------------------
def batch_stats(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and biased variance of the inputs of every BN layer for batch ``x`` (train mode)."""
    stats = []
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o: stats.append(
                (i[0].mean((0, 2, 3)), i[0].var((0, 2, 3), unbiased=False))
            )
        )
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    with torch.no_grad():
        model.train()(x)
    for h in hooks:
        h.remove()
    return stats


def test_recovered_bn_statistics_are_the_training_batch_statistics(one_step):
    model, update, x, _ = one_step
    counts = [SIZE * SIZE] * 2 + [(SIZE // 2) ** 2, (SIZE // 4) ** 2]
    recovered = bn_prior.bn_targets(model, update.buffers, 1, "recovered", counts)
    recipe = bn_prior.bn_targets(model, update.buffers, 1, "recipe", counts)
    truth = batch_stats(model, x)
    for (m, v), (mr, vr), (mt, vt) in zip(recovered, recipe, truth, strict=True):
        torch.testing.assert_close(m, mt, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v, vt, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close((m, v), (mr, vr))  # one step: the recipe's formula
    client = bn_prior.bn_targets(model, update.buffers, 1, "client")
    assert not torch.allclose(client[0][0], truth[0][0], atol=1e-3)  # running stats lag


def test_k_step_recovery_differs_from_the_one_step_formula():
    model, update, _, _ = federated(2, 1)
    recovered = bn_prior.bn_targets(model, update.buffers, 2, "recovered")
    recipe = bn_prior.bn_targets(model, update.buffers, 2, "recipe")
    assert not torch.allclose(recovered[0][0], recipe[0][0])


# -- errors and registry -----------------------------------------------------------------------
def test_missing_meta_raises_a_clear_error(one_step):
    model, update, _, _ = one_step
    bare = Observed(update.gradients, 1, (1, SIZE, SIZE), 4)
    with pytest.raises(GradInvError, match="ClientUpdate.observed"):
        bn_prior.run(model, bare, bn_prior.Config(iterations=1))
    with pytest.raises(GradInvError, match="bn_stats"):
        bn_prior.run(model, update.observed(4), bn_prior.Config(iterations=1, bn_stats="x"))


def test_registry_run_with_config_overrides(one_step):
    model, update, x, _ = one_step
    config = attacks.make_config("bn_prior", iterations="20", bn_stats="client", init="rand")
    assert config.iterations == 20 and config.bn_stats == "client"
    rec = attacks.run("bn_prior", model, update.observed(4), iterations="20", warmup="5")
    assert rec.images.shape == x.shape and len(rec.history) == 21
    with pytest.raises(GradInvError, match="no option"):
        attacks.make_config("bn_prior", iters=3)
