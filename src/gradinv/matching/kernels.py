"""The speed kernels under :class:`~gradinv.matching.GradientMatcher` (see ``benchmarks/``).

One matcher step is a forward pass, the parameter gradient kept differentiable, and its
derivative with respect to the dummy input (a double backward); the work that is not
inherent to that is removed:

* the distance is one fused autograd node (:func:`fused_distance`: BLAS dots and one
  ``addcmul`` per layer, a closed-form backward, scratch memory reused across steps) instead
  of a dozen recorded elementwise kernels and fresh 11M-entry temporaries per step;
* convolutions of the private model copy run through :class:`_Conv2dConstWeight` (under
  :class:`ConstWeightConvs`), whose double backward skips the
  weight-gradient-of-the-weight-gradient convolution that autograd's
  ``ConvolutionBackwardBackward`` always computes (the parameters are fixed);
* restarts are batched with ``vmap`` over a ``torch.func`` objective (:func:`vmap_restarts`)
  on a copy of the model whose forward never mutates state (:func:`stateless_copy`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

#: Convolution weights from which :class:`~gradinv.matching.GradientMatcher` uses
#: :class:`ConstWeightConvs`.
CONST_WEIGHT_CONV_MIN = 100_000


# -- the fused gradient distance -----------------------------------------------------------------
def fusable(
    dummy: list[Tensor], target: list[Tensor], weights: Tensor | None, target_sq: Tensor | None
) -> bool:
    """The fused path needs a constant target (and weights) of the dummy's dtypes."""
    consts = [*target] + [t for t in (weights, target_sq) if t is not None]
    if not dummy or any(t.requires_grad for t in consts):
        return False
    return all(
        a.dtype == b.dtype and a.shape == b.shape for a, b in zip(dummy, target, strict=True)
    )


def fused_distance(
    kind: str,
    dummy: list[Tensor],
    target: list[Tensor],
    weights: Tensor | None,
    target_sq: Tensor | None,
    workspace: Sequence[Tensor] | None = None,
) -> Tensor:
    """:func:`~gradinv.matching.distance` as one :class:`_FusedDistance` node (callers check
    :func:`fusable` first); ``workspace`` is per-layer scratch memory reused across calls."""
    ws = list(workspace) if workspace is not None else None
    return _FusedDistance.apply(kind, len(dummy), weights, target_sq, ws, *dummy, *target)[0]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _fused_parts(
    kind: str,
    dummy: Sequence[Tensor],
    target: Sequence[Tensor],
    weights: Tensor | None,
    target_sq: Tensor | None,
    out: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """``(value, c1, c2, diffs)`` of :class:`_FusedDistance` (see there); ``diffs`` are written
    into ``out`` when given."""
    outs = out if out is not None else [None] * len(dummy)
    if kind == "cosine":
        na = torch.stack([_dot(a, a) for a in dummy])
        nb = target_sq if target_sq is not None else torch.stack([_dot(b, b) for b in target])
        if weights is not None:
            na, nb = na * weights, nb * weights
        inv_a = na.sum().sqrt().clamp_min(1e-12).reciprocal()
        inv_b = nb.sum().sqrt().clamp_min(1e-12).reciprocal()
        ratio = inv_a / inv_b
        diffs = [
            torch.addcmul(b, a, ratio, value=-1, out=o)
            for a, b, o in zip(dummy, target, outs, strict=True)
        ]
        per = torch.stack([_dot(e, e) for e in diffs]) * inv_b.square()
        value = 0.5 * ((per * weights).sum() if weights is not None else per.sum())
        return value, inv_a, inv_b, diffs
    diffs = [torch.sub(a, b, out=o) for a, b, o in zip(dummy, target, outs, strict=True)]
    per = torch.stack([_dot(d, d) for d in diffs])
    if kind == "norm":
        root = per.clamp_min(1e-30).sqrt()
        scale = torch.where(per >= 1e-30, root.reciprocal(), torch.zeros_like(root))
        per = root
    else:
        scale = torch.full_like(per, 2.0)
    value = (per * weights).sum() if weights is not None else per.sum()
    return value, scale, scale, diffs


class _FusedDistance(torch.autograd.Function):
    """All three distances as one autograd node with a hand-written backward.

    Forward, per layer ``l`` (``g`` dummy, ``t`` target, both constant-size streams):

    * l2 / norm: ``d_l = g_l - t_l`` and ``s_l = <d_l, d_l>``; value ``sum_l w_l s_l`` (l2) or
      ``sum_l w_l sqrt(max(s_l, 1e-30))`` (norm). Backward: ``dL/dg_l = k_l d_l``.
    * cosine: ``n_l = <g_l, g_l>``, ``i_g = (sum_l w_l n_l)^-1/2`` (``i_t`` likewise, from the
      cached target norms), ``e_l = t_l - (i_g / i_t) g_l`` (one ``addcmul``) so that
      ``g_l i_g - t_l i_t = -i_t e_l``, and the value ``f = 0.5 sum_l w_l i_t^2 <e_l, e_l>``:
      the cancellation-free form of ``1 - cos``. Backward (differentiating through ``i_g``):
      ``dL/dg_l = -w_l (i_g i_t e_l + i_g^2 f g_l)``.

    Intermediates are returned as (non-differentiable) outputs so that the generated vmap
    rule can batch them. When the backward itself is recorded (``create_graph``, or
    ``torch.func.grad``), it recomputes the intermediates from the inputs so that its result
    stays differentiable.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(kind, n, weights, target_sq, workspace, *tensors):
        value, c1, c2, diffs = _fused_parts(
            kind, tensors[:n], tensors[n:], weights, target_sq, workspace
        )
        return (value, c1, c2, *diffs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        kind, n, weights, target_sq, workspace, *tensors = inputs
        ctx.kind, ctx.n, ctx.reuse = kind, n, workspace is not None
        ctx.save_for_backward(weights, target_sq, *tensors, *output)
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero-filled gradients for the intermediates

    @staticmethod
    def backward(ctx, grad_value, *_):
        n, kind = ctx.n, ctx.kind
        weights, target_sq, *rest = ctx.saved_tensors
        dummy, target, (value, c1, c2), diffs = (
            rest[:n],
            rest[n : 2 * n],
            rest[2 * n : 2 * n + 3],
            rest[2 * n + 3 :],
        )
        recorded = torch.is_grad_enabled()
        if recorded:
            value, c1, c2, diffs = _fused_parts(kind, dummy, target, weights, target_sq)
        # the gradient overwrites the workspace's diffs (no longer needed); otherwise one
        # fresh tensor per layer (fresh memory costs page faults: 3x a streaming pass)
        own = ctx.reuse and not recorded
        if kind == "cosine":
            k1 = -grad_value * c1 * c2  # -i_g i_t
            k2 = -grad_value * c1.square() * value  # -i_g^2 f
            if weights is not None:
                k1s, k2s = (k1 * weights).unbind(), (k2 * weights).unbind()
            else:
                k1s, k2s = [k1] * n, [k2] * n
            if recorded:
                grads = [
                    torch.mul(e, f1).addcmul(a, f2)
                    for e, a, f1, f2 in zip(diffs, dummy, k1s, k2s, strict=True)
                ]
            else:
                grads = [
                    (e.mul_(f1) if own else torch.mul(e, f1)).addcmul_(a, f2)
                    for e, a, f1, f2 in zip(diffs, dummy, k1s, k2s, strict=True)
                ]
        else:
            k = grad_value * c1  # (L,): 2 for l2, 1/sqrt(s_l) for norm
            if weights is not None:
                k = k * weights
            if own:
                grads = [d.mul_(f) for d, f in zip(diffs, k.unbind(), strict=True)]
            else:
                grads = [d * f for d, f in zip(diffs, k.unbind(), strict=True)]
        return (None, None, None, None, None, *grads, *([None] * n))


# -- convolutions whose weight is a constant of the second derivative -----------------------
class _Conv2dConstWeight(torch.autograd.Function):
    """``F.conv2d`` whose backward treats the weight as a constant of the *second* derivative.

    Its backward returns the usual input-, weight- and bias-gradients, but computes the
    input-gradient with ``conv_transpose2d`` and the weight-gradient with a weight-only
    ``convolution_backward``. Differentiating those again (the matcher's double backward)
    gives the same input-gradient as autograd's own ``ConvolutionBackwardBackward``, which
    additionally computes ``conv(ggI, gO)``, the derivative with respect to the weight of the
    weight-gradient: a weight-sized convolution per layer that the matcher never uses (the
    parameters are fixed). Used only inside :class:`~gradinv.matching.GradientMatcher`'s
    autograd path.

    ``ctx.needs_input_grad`` is fixed at forward time, so the second pass (which asks for
    the dummy inputs only) would recompute every weight-gradient and drop it; ``passes``
    (the :class:`ConstWeightConvs` that made the node) says when weight-gradients are
    no longer wanted.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, passes):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        ctx.passes = passes
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        w = weight.detach()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            size = [
                x.shape[2 + i]
                - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                   + dilation[i] * (w.shape[2 + i] - 1) + 1)
                for i in range(2)
            ]  # fmt: skip
            gx = F.conv_transpose2d(
                grad_out, w, None, stride, padding, tuple(size), groups, dilation
            )
        wanted = ctx.passes is None or ctx.passes.weight_grads
        if ctx.needs_input_grad[1] and wanted:
            gw = torch.ops.aten.convolution_backward(
                grad_out, x, w, None, stride, padding, dilation, False, [0, 0], groups,
                [False, True, False],
            )[1]  # fmt: skip
        if has_bias and ctx.needs_input_grad[2] and wanted:
            gb = grad_out.sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


class ConstWeightConvs(torch.overrides.TorchFunctionMode):
    """Routes plain ``F.conv2d`` calls (string padding excluded) to :class:`_Conv2dConstWeight`.

    Set ``weight_grads = False`` once the parameter-gradients are built: the backward passes
    of the nodes made under this mode then return input-gradients only.
    """

    def __init__(self):
        super().__init__()
        self.weight_grads = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            x, weight, bias, stride, padding, dilation, groups = _conv_args(*args, **kwargs)
            if not isinstance(padding, str) and x.ndim == 4:
                return _Conv2dConstWeight.apply(
                    x, weight, bias, stride, padding, dilation, groups, self
                )
        return func(*args, **kwargs)


def _conv_args(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    pair = torch.nn.modules.utils._pair
    pad = padding if isinstance(padding, str) else pair(padding)
    return input, weight, bias, pair(stride), pad, pair(dilation), groups


# -- the model copy the matcher differentiates -------------------------------------------------
def trainable(model: nn.Module) -> dict[str, Tensor]:
    """Detached trainable parameters of ``model`` by name."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def stateless_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose forward never mutates state, so it can run under ``vmap``.

    In training mode BatchNorm layers normalise with batch statistics (as a client's
    training step does) and stop tracking running statistics; in eval mode the copy is
    used as is.
    """
    clone = copy.deepcopy(model)
    if clone.training:
        for m in clone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean = None
                m.running_var = None
                m.num_batches_tracked = None
                m.track_running_stats = False
    return clone


def vmap_restarts(
    objective: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    x: Tensor,
    y: Tensor,
    optimise_labels: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``objective(x_r, y_r) -> (total, distance)`` and its gradient with respect to ``x_r``
    (and ``y_r``) for all restarts ``r`` at once, vectorised with ``vmap`` (one set of kernels
    for all of them). Returns ``(total, distance, grad_x, grad_y or None)``, stacked over
    restarts."""
    argnums = (0, 1) if optimise_labels else 0
    fn = grad_and_value(objective, argnums=argnums, has_aux=True)
    grads, (total, dist) = vmap(fn, randomness="different")(x.detach(), y.detach())
    gx, gy = grads if optimise_labels else (grads, None)
    return total, dist, gx, gy
