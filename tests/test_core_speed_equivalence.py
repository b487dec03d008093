"""The fast paths of the matching core compute what the plain definitions compute.

``distance`` runs a fused autograd node (BLAS dots, one ``addcmul`` per layer, a hand-written
backward, optional reused scratch memory); ``distance_reference`` is the same objective as
plain autograd expressions. ``GradientMatcher`` calls its private model copy directly instead
of ``functional_call``. These tests pin values, first and second derivatives, the vmap rule,
the workspace reuse and the float32 accuracy of the cosine near 1 to the reference.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap

from gradinv.case import Case
from gradinv.fl import observe
from gradinv.losses import cross_entropy
from gradinv.matching import (
    GradientMatcher,
    distance,
    distance_reference,
    layer_sums,
    layer_weight_tensor,
)
from gradinv.regularisers import total_variation

SHAPES = [(4, 3, 3, 3), (4,), (5, 36), (5,)]
KINDS = ["l2", "cosine", "norm"]


def layers(seed: int, dtype=torch.float64, grad: bool = False) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(grad) for s in SHAPES]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_fused_distance_equals_reference_value_gradient_and_hessian(kind, weighted, cached):
    a, b = layers(0, grad=True), layers(1)
    w = layer_weight_tensor(4, [1.0, 0.5, 2.0, 3.0]).double() if weighted else None
    tsq = layer_sums(torch.square, b) if cached else None
    out = []
    for fn in (distance, distance_reference):
        value = fn(a, b, kind, w, tsq)
        g = torch.autograd.grad(value, a, create_graph=True)
        h = torch.autograd.grad(sum((t * t.detach().sign()).sum() for t in g), a)
        out.append((value, g, h))
    (v1, g1, h1), (v2, g2, h2) = out
    assert v1.grad_fn is not None and "Fused" in type(v1.grad_fn).__name__
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-14)
    for x, y in zip(g1 + h1, g2 + h2, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_workspace_reuse_gives_the_same_values_and_gradients_every_call(kind):
    b = layers(1)
    workspace = [torch.empty_like(t) for t in b]
    for seed in (2, 3, 4):  # the scratch memory is overwritten by each call
        a = layers(seed, grad=True)
        v1 = distance(a, b, kind, workspace=workspace)
        (g1,) = [torch.autograd.grad(v1, a)]
        v2 = distance_reference(a, b, kind)
        (g2,) = [torch.autograd.grad(v2, a)]
        torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-14)
        for x, y in zip(g1, g2, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_distance_batches_under_vmap_of_grad(kind):
    b = layers(1)
    gen = torch.Generator().manual_seed(5)
    stacked = [torch.randn((3, *s), generator=gen, dtype=torch.float64) for s in SHAPES]

    def f(fn):
        return vmap(grad(lambda *a: fn(list(a), b, kind), argnums=(0, 1, 2, 3)))(*stacked)

    for x, y in zip(f(distance), f(distance_reference), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-13)


def test_fused_cosine_keeps_float32_accuracy_when_the_cosine_is_near_one():
    """The cancellation-free form survives fusion: 1 - cos ~ 1e-9 is still resolved."""
    b = layers(1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(6)
    a = [t + 1e-5 * t.abs().mean() * torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in b]
    exact = distance_reference(a, b, "cosine").item()
    fused32 = distance([t.float() for t in a], [t.float() for t in b], "cosine").item()
    ref32 = distance_reference([t.float() for t in a], [t.float() for t in b], "cosine").item()
    assert 1e-12 < exact < 1e-8
    assert fused32 == pytest.approx(exact, rel=1e-2)
    assert abs(fused32 - exact) <= 2 * abs(ref32 - exact) + 1e-3 * exact


def test_gradient_with_respect_to_a_learnable_target_falls_back_to_autograd():
    a, b = layers(0, grad=True), layers(1, grad=True)
    g1 = torch.autograd.grad(distance(a, b, "cosine"), b)
    g2 = torch.autograd.grad(distance_reference(a, b, "cosine"), b)
    for x, y in zip(g1, g2, strict=True):
        torch.testing.assert_close(x, y)


def reference_matcher(model, observed, kind, tv, x, y):
    """Survey eq. (4) spelled out with functional_call and distance_reference (one restart)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    target = [g.detach() for g in observed.gradients]

    def objective(x):
        g = grad(lambda p: cross_entropy(functional_call(model, (p,), (x,)), y))(params)
        dist = distance_reference(list(g.values()), target, kind)
        return dist + tv * total_variation(x), dist

    gx, (total, dist) = grad_and_value(objective, has_aux=True)(x)
    return total, dist, gx


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("const_weight_convs", [True, False])
def test_matcher_fast_path_equals_the_reference_objective_and_input_gradient(
    kind, const_weight_convs
):
    torch.manual_seed(0)
    model = nn.Sequential(  # strides, groups, dilation, reflect padding, no-bias: every
        nn.Conv2d(3, 4, 3, padding=1),  # branch of the const-weight conv's backward
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.Tanh(),
        nn.Conv2d(6, 4, 3, padding=2, dilation=2, padding_mode="reflect", bias=False),
        nn.Conv2d(4, 4, (1, 2), stride=(2, 1)),
        nn.Flatten(),
        nn.Linear(4 * 2 * 3, 5),
    ).double()
    model.train()
    for m in model.modules():  # BN in train mode without running stats, as the matcher's copy
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
            m.num_batches_tracked = None
    case = Case(model, torch.rand(2, 3, 7, 7, dtype=torch.float64), torch.tensor([1, 3]), 5)
    observed = observe(case)
    matcher = GradientMatcher(model, observed, kind, regularisers=[(0.1, total_variation)])
    matcher._const_weight_convs = const_weight_convs  # on by size for large models only
    gen = torch.Generator().manual_seed(7)
    xs = torch.rand((2, 2, 3, 7, 7), generator=gen, dtype=torch.float64)
    res = matcher(xs, case.labels.expand(2, 2))
    for r in range(2):
        total, dist, gx = reference_matcher(model, observed, kind, 0.1, xs[r], case.labels)
        torch.testing.assert_close(res.loss[r], total, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(res.distance[r], dist, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(res.grad_x[r], gx, rtol=1e-8, atol=1e-12)
    # repeated calls reuse the matcher's scratch memory: same answer again
    again = matcher(xs, case.labels.expand(2, 2))
    torch.testing.assert_close(again.grad_x, res.grad_x, rtol=0, atol=0)


def test_matcher_evaluation_computes_each_weight_gradient_once_and_no_zero_gradients():
    """One evaluation = one weight-gradient per conv (the parameter-gradient pass); the
    input-only second pass neither recomputes them nor materialises zero gradients for the
    fused distance's intermediates (weight-sized tensors: 45 MB per step on ResNet18)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    ).double()  # fmt: skip
    case = Case(model, torch.rand(1, 3, 6, 6, dtype=torch.float64), torch.tensor([1]), 5)
    matcher = GradientMatcher(model, observe(case), "cosine")
    matcher._const_weight_convs = True  # on by size for large models only
    xs = torch.rand((1, 1, 3, 6, 6), dtype=torch.float64)
    matcher(xs, case.labels[None])  # allocate the workspace
    shapes = {tuple(p.shape) for p in model.parameters()}

    class Count(TorchDispatchMode):
        weight_grads, zeros = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution_backward.default and args[-1][1]:
                Count.weight_grads += 1
            out = func(*args, **(kwargs or {}))
            if func in (torch.ops.aten.zeros.default, torch.ops.aten.zeros_like.default):
                Count.zeros += tuple(out.shape) in shapes
            return out

    with Count():
        matcher(xs, case.labels[None])
    assert Count.weight_grads == 2
    assert Count.zeros == 0  # no zero-filled parameter-shaped gradients
