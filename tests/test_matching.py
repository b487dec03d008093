"""GradientMatcher: input-gradients against finite differences, distances by hand, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradinv.case import Case, Observed
from gradinv.errors import GradInvError
from gradinv.fl import observe
from gradinv.matching import GradientMatcher, distance, layer_weight_tensor


def tiny_case(seed: int = 0, batch: int = 2) -> Case:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 5 * 5, 3)
    ).double()
    images = torch.rand(batch, 1, 5, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch,))
    return Case(model, images, labels, 3)


def finite_difference(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("kind", ["l2", "cosine", "layer_cosine"])
def test_input_gradient_equals_finite_differences(kind):
    case = tiny_case()
    matcher = GradientMatcher(case.model, observe(case), distance=kind, layer_weights=[1, 2, 3, 4])
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((2, 2, 1, 5, 5), generator=gen, dtype=torch.float64)
    y = case.labels.expand(2, 2)
    res = matcher(x, y)
    fd = finite_difference(lambda z: matcher(z, y).loss.sum().item(), x.clone())
    torch.testing.assert_close(res.grad_x, fd, rtol=1e-5, atol=1e-8)


def test_label_gradient_equals_finite_differences():
    case = tiny_case()
    matcher = GradientMatcher(case.model, observe(case))
    gen = torch.Generator().manual_seed(2)
    x = torch.rand((1, 2, 1, 5, 5), generator=gen, dtype=torch.float64)
    y = torch.randn((1, 2, 3), generator=gen, dtype=torch.float64)
    res = matcher(x, y, optimise_labels=True)
    fd = finite_difference(lambda v: matcher(x, v, optimise_labels=True).loss.sum().item(), y)
    torch.testing.assert_close(res.grad_y, fd, rtol=1e-5, atol=1e-8)


def test_matcher_loss_is_zero_at_the_true_batch_and_restarts_are_independent():
    case = tiny_case()
    matcher = GradientMatcher(case.model, observe(case))
    x = torch.stack([case.images, torch.rand_like(case.images)])
    res = matcher(x, case.labels.expand(2, 2))
    assert res.loss[0].item() < 1e-20 and res.loss[1].item() > 1e-8
    alone = matcher(x[1:], case.labels.expand(1, 2))
    torch.testing.assert_close(alone.grad_x[0], res.grad_x[1])


def test_distances_match_hand_computation():
    a = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    b = [torch.tensor([0.0, 1.0]), torch.tensor([[1.0]])]
    assert distance(a, b, "l2").item() == pytest.approx(1 + 1 + 4)
    cos = (0 + 2 + 3) / ((1 + 4 + 9) ** 0.5 * (0 + 1 + 1) ** 0.5)
    assert distance(a, b, "cosine").item() == pytest.approx(1 - cos)
    w = layer_weight_tensor(2, [1.0, 0.5])
    assert distance(a, b, "l2", w).item() == pytest.approx(1 + 1 + 0.5 * 4)
    wcos = (0 + 2 + 0.5 * 3) / ((1 + 4 + 0.5 * 9) ** 0.5 * (0 + 1 + 0.5 * 1) ** 0.5)
    assert distance(a, b, "cosine", w).item() == pytest.approx(1 - wcos)


def test_layer_cosine_is_one_cosine_per_layer_and_blind_to_per_layer_scales():
    a = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0, 0.0]])]
    b = [torch.tensor([0.0, 1.0]), torch.tensor([[1.0, 1.0]])]
    cos0, cos1 = 2 / (5**0.5 * 1), 3 / (3 * 2**0.5)
    assert distance(a, b, "layer_cosine").item() == pytest.approx((1 - cos0) + (1 - cos1))
    w = layer_weight_tensor(2, [1.0, 0.5])
    assert distance(a, b, "layer_cosine", w).item() == pytest.approx((1 - cos0) + 0.5 * (1 - cos1))
    scaled = [b[0] * 1e3, b[1] * 1e-4]  # what per-tensor quantisation's scales do
    assert distance(a, scaled, "layer_cosine").item() == pytest.approx((1 - cos0) + (1 - cos1))
    assert distance(a, scaled, "cosine").item() != pytest.approx(distance(a, b, "cosine").item())


def test_matcher_rejects_foreign_nan_and_malformed_inputs():
    case = tiny_case()
    obs = observe(case)
    bad_shape = Observed(obs.gradients[:-1], 2, (1, 5, 5), 3)
    with pytest.raises(GradInvError, match="trainable parameters"):
        GradientMatcher(case.model, bad_shape)
    nan = list(obs.gradients)
    nan[0] = torch.full_like(nan[0], float("nan"))
    with pytest.raises(GradInvError, match="NaN"):
        GradientMatcher(case.model, Observed(tuple(nan), 2, (1, 5, 5), 3))
    with pytest.raises(GradInvError, match="unknown gradient distance"):
        GradientMatcher(case.model, obs, distance="l1")
    with pytest.raises(GradInvError, match="layer_weights"):
        GradientMatcher(case.model, obs, layer_weights=[1.0])
    with pytest.raises(GradInvError, match=r"\(R, B, C, H, W\)"):
        GradientMatcher(case.model, obs)(case.images, case.labels)
    with pytest.raises(GradInvError, match="NaN/Inf"):
        x = torch.full((1, 2, 1, 5, 5), float("inf"), dtype=torch.float64)
        GradientMatcher(case.model, obs)(x, case.labels.expand(1, 2))


@pytest.mark.parametrize("optimise_labels", [False, True])
def test_vmap_and_autograd_restart_paths_agree(optimise_labels):
    """The batched (vmap) and looped (plain autograd) restart paths compute the same
    objective and input-gradients, BatchNorm in training mode and BN statistics included."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 36, 3),
    ).double()
    model.train()
    case = Case(model, torch.rand(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 2]), 3)
    observed = observe(case)
    x = torch.rand(3, 2, 1, 6, 6, dtype=torch.float64)
    y = torch.randn(3, 2, 3, dtype=torch.float64) if optimise_labels else case.labels.expand(3, 2)
    bn_reg = (0.5, lambda x, aux: sum(m.square().sum() + v.sum() for m, v in aux["bn_stats"]))
    results = [
        GradientMatcher(
            model, observed, "cosine", regularisers=[bn_reg], record_bn=True, restarts=mode
        )(x, y, optimise_labels)
        for mode in ("vmap", "loop")
    ]
    a, b = results
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.grad_x, b.grad_x)
    if optimise_labels:
        torch.testing.assert_close(a.grad_y, b.grad_y)
