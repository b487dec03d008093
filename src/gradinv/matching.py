"""Gradient distances and the one batched gradient-matching kernel.

Every optimisation attack minimises survey eq. (4),

    min_x  Dist( dL(F(W, x), y)/dW , dW_observed ) + Reg(x, y),

over a dummy batch ``x``. :class:`GradientMatcher` evaluates that objective and its
gradient with respect to the dummy inputs (and, for DLG, the dummy labels) for ``R``
independent restarts at once: the per-restart function is written with
``torch.func`` (``functional_call`` + ``grad``) and vectorised over restarts with
``vmap``. Nothing is ever accumulated into the model's ``.grad`` fields: the inner
gradient is taken with respect to the parameters only to be compared, the outer one
only with respect to the dummy inputs.

Distances (``distance=``):

* ``"l2"``     -- DLG/iDLG/CPL/GradInversion, survey eq. (5): ``sum_l w_l ||g'_l - g_l||^2``
* ``"cosine"`` -- Inverting Gradients (IG/"GS"), survey eq. (6):
  ``1 - sum_l w_l <g'_l, g_l> / (||g'||_w ||g||_w)``
* ``"norm"``   -- the un-squared per-layer distance ``sum_l w_l ||g'_l - g_l||_2`` of the
  NVFlare gradient-inversion recipe (Hatamizadeh et al. 2023)

Layer weights ``w_l`` default to 1. Each layer is reduced where it lies (no concatenated
copy of an 11M-entry gradient per step), and the target's norms are computed once.

Speed (see ``benchmarks/``). One matcher step is a forward pass, the parameter gradient kept
differentiable, and its derivative with respect to the dummy input (a double backward); the
work that is not inherent to that is removed:

* the distance is one fused autograd node (:class:`_FusedDistance`: BLAS dots and one
  ``addcmul`` per layer, a closed-form backward, scratch memory reused across steps) instead
  of a dozen recorded elementwise kernels and fresh 11M-entry temporaries per step;
* convolutions of the private model copy run through :class:`_Conv2dConstWeight`, whose
  double backward skips the weight-gradient-of-the-weight-gradient convolution that
  autograd's ``ConvolutionBackwardBackward`` always computes (the parameters are fixed);
* the plain-autograd path calls the private copy directly (no per-step ``functional_call``
  re-binding of every parameter) and only the inputs receive gradients.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from gradinv.case import Observed
from gradinv.errors import GradInvError

DISTANCES = ("l2", "cosine", "norm")
#: Convolution weights from which :class:`GradientMatcher` uses :class:`_Conv2dConstWeight`.
CONST_WEIGHT_CONV_MIN = 100_000

#: A regulariser maps (dummy batch x of one restart, aux) to a scalar. ``aux`` holds
#: ``"logits"`` (B, K) and, when the matcher records them, ``"bn_stats"``: a list of
#: (mean, var) of the inputs of every BatchNorm layer, in module order.
Regulariser = Callable[[Tensor, dict], Tensor]


def layer_weight_tensor(num_layers: int, weights: Sequence[float] | None) -> Tensor | None:
    """Per-layer weights ``w_l`` as a tensor of length ``num_layers`` (``None``: all 1)."""
    if weights is None:
        return None
    if len(weights) != num_layers:
        raise GradInvError(
            f"layer_weights has {len(weights)} entries but the model has {num_layers} parameter tensors"
        )
    return torch.tensor([float(w) for w in weights])


def layer_sums(fn: Callable[..., Tensor], *layers: Sequence[Tensor]) -> Tensor:
    """``fn`` reduced to a scalar per layer, stacked to shape ``(L,)``."""
    return torch.stack([fn(*ts).sum() for ts in zip(*layers, strict=True)])


def distance(
    dummy: Sequence[Tensor],
    target: Sequence[Tensor],
    kind: str = "l2",
    weights: Tensor | None = None,
    target_sq: Tensor | None = None,
    *,
    workspace: Sequence[Tensor] | None = None,
) -> Tensor:
    """Distance between two gradients given as sequences of per-layer tensors.

    Per-layer sums are weighted by ``weights`` (shape ``(L,)``); ``target_sq`` caches the
    target's per-layer squared norms for the cosine distance. When the target is a constant
    (the usual case: an observed gradient) the value and its gradient come from one fused
    :class:`torch.autograd.Function` that touches each layer in two or three streaming
    passes (BLAS dots, one ``addcmul``) instead of the dozen elementwise kernels autograd
    would record; it computes the same expression as :func:`distance_reference` (tests
    compare them) and is 5-6x faster on ResNet18's 11M-entry gradient.

    ``workspace`` (one tensor per layer, shaped like the target) is scratch memory reused
    across calls: the distance's intermediates and its input-gradient are written there
    instead of into fresh allocations. Only for callers that finish each backward pass
    before the next call and never retain the graph (:class:`GradientMatcher`).
    """
    if kind not in DISTANCES:
        raise GradInvError(f"unknown gradient distance {kind!r}; choose one of {DISTANCES}")
    dummy, target = list(dummy), list(target)
    if len(dummy) != len(target):
        raise GradInvError(
            f"the dummy gradient has {len(dummy)} layers but the target has {len(target)}"
        )
    if not _fusable(dummy, target, weights, target_sq):
        return distance_reference(dummy, target, kind, weights, target_sq)
    ws = list(workspace) if workspace is not None else None
    return _FusedDistance.apply(kind, len(dummy), weights, target_sq, ws, *dummy, *target)[0]


def distance_reference(
    dummy: Sequence[Tensor],
    target: Sequence[Tensor],
    kind: str = "l2",
    weights: Tensor | None = None,
    target_sq: Tensor | None = None,
) -> Tensor:
    """:func:`distance` written as plain autograd expressions, one reduction per layer.

    The definition the fused path is tested against, and the path taken when the target
    itself is differentiated.
    """
    if kind in ("l2", "norm"):
        per = layer_sums(lambda a, b: (a - b).square(), dummy, target)
        if kind == "norm":
            per = per.clamp_min(1e-30).sqrt()
        return (per * weights).sum() if weights is not None else per.sum()
    if kind == "cosine":
        # 1 - <a, b>_w / (|a|_w |b|_w) = 0.5 sum_l w_l |a_l / |a|_w - b_l / |b|_w|^2: the same
        # value, without the cancellation of "1 - cos" in float32 when cos is within 1e-7 of 1
        # (deep sigmoid nets, whose last layers dominate the gradient, get there)
        na = layer_sums(torch.square, dummy)
        nb = target_sq if target_sq is not None else layer_sums(torch.square, target)
        if weights is not None:
            na, nb = na * weights, nb * weights
        inv_a = na.sum().sqrt().clamp_min(1e-12).reciprocal()
        inv_b = nb.sum().sqrt().clamp_min(1e-12).reciprocal()
        per = layer_sums(lambda a, b: (a * inv_a - b * inv_b).square(), dummy, target)
        return 0.5 * ((per * weights).sum() if weights is not None else per.sum())
    raise GradInvError(f"unknown gradient distance {kind!r}; choose one of {DISTANCES}")


def _fusable(
    dummy: list[Tensor], target: list[Tensor], weights: Tensor | None, target_sq: Tensor | None
) -> bool:
    """The fused path needs a constant target (and weights) of the dummy's dtypes."""
    consts = [*target] + [t for t in (weights, target_sq) if t is not None]
    if not dummy or any(t.requires_grad for t in consts):
        return False
    return all(
        a.dtype == b.dtype and a.shape == b.shape for a, b in zip(dummy, target, strict=True)
    )


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


class _Conv2dConstWeight(torch.autograd.Function):
    """``F.conv2d`` whose backward treats the weight as a constant of the *second* derivative.

    Its backward returns the usual input-, weight- and bias-gradients, but computes the
    input-gradient with ``conv_transpose2d`` and the weight-gradient with a weight-only
    ``convolution_backward``. Differentiating those again (the matcher's double backward)
    gives the same input-gradient as autograd's own ``ConvolutionBackwardBackward``, which
    additionally computes ``conv(ggI, gO)``, the derivative with respect to the weight of the
    weight-gradient: a weight-sized convolution per layer that the matcher never uses (the
    parameters are fixed). Used only inside :class:`GradientMatcher`'s autograd path.

    ``ctx.needs_input_grad`` is fixed at forward time, so the second pass (which asks for
    the dummy inputs only) would recompute every weight-gradient and drop it; ``passes``
    (the :class:`_ConstWeightConvs` that made the node) says when weight-gradients are
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


class _ConstWeightConvs(torch.overrides.TorchFunctionMode):
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


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Client loss: cross-entropy with integer labels, or with soft labels given as
    *logits* of the label distribution (DLG's dummy labels, softmax-normalised)."""
    if labels.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, labels)
    return torch.sum(-F.softmax(labels, dim=-1) * F.log_softmax(logits, dim=-1), dim=-1).mean()


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


@dataclass
class MatchResult:
    """Values and input-gradients of the matching objective for R restarts."""

    loss: Tensor  # (R,) total objective
    distance: Tensor  # (R,) gradient distance alone
    grad_x: Tensor  # (R, B, C, H, W)
    grad_y: Tensor | None  # (R, B, K) when labels are optimised, else None


class GradientMatcher:
    """Batched gradient-matching objective for one observed update.

    Args:
        model: the victim model as the server holds it (its mode, train or eval, is
            the mode the client used).
        observed: what the client shared.
        distance: ``"l2"`` or ``"cosine"``.
        layer_weights: optional per-parameter-tensor weights of the distance.
        loss_fn: the client's training loss ``loss_fn(logits, labels)``.
        regularisers: ``[(weight, reg), ...]`` added per restart (see :data:`Regulariser`).
        record_bn: record BatchNorm input statistics into ``aux["bn_stats"]``.
        restarts: how restarts are batched: ``"auto"`` (``vmap`` on GPU, autograd loop on
            CPU), ``"vmap"`` or ``"loop"``.
    """

    def __init__(
        self,
        model: nn.Module,
        observed: Observed,
        distance: str = "l2",
        layer_weights: Sequence[float] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = cross_entropy,
        regularisers: Sequence[tuple[float, Regulariser]] = (),
        record_bn: bool = False,
        restarts: str = "auto",
    ):
        if distance not in DISTANCES:
            raise GradInvError(f"unknown gradient distance {distance!r}; choose one of {DISTANCES}")
        observed.check_against(model)
        self.model = stateless_copy(model)
        self.params = trainable(self.model)
        # the private copy's own trainable parameters are the leaves of the autograd path: the
        # copy is called directly (no per-step functional_call re-binding of every parameter)
        self._leaves = [p for p in self.model.parameters() if p.requires_grad]
        if restarts not in ("auto", "vmap", "loop"):
            raise GradInvError(f"restarts must be 'auto', 'vmap' or 'loop', got {restarts!r}")
        self.restarts = restarts
        self._workspace: list[Tensor] | None = None
        # the const-weight convolution saves a weight-sized convolution per layer and costs a
        # Python dispatch per op of the forward: worth it from ~1e5 convolution weights on
        # (ResNet18: 11M, 10-20% faster; DLG's LeNet: 8k, 20% slower with it)
        conv_weights = sum(
            m.weight.numel() for m in self.model.modules() if isinstance(m, nn.Conv2d)
        )
        self._const_weight_convs = conv_weights >= CONST_WEIGHT_CONV_MIN
        self.buffers = {n: b.detach() for n, b in self.model.named_buffers()}
        device = next(iter(self.params.values())).device
        self.target = [g.to(device).detach() for g in observed.gradients]
        self.target_sq = layer_sums(torch.square, self.target)
        w = layer_weight_tensor(len(self.target), layer_weights)
        self.weights = None if w is None else w.to(device, self.target_sq.dtype)
        self.kind = distance
        self.loss_fn = loss_fn
        self.regularisers = list(regularisers)
        self._bn_modules = (
            [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if record_bn
            else []
        )

    # -- one restart --------------------------------------------------------------
    def _forward(self, params: dict[str, Tensor] | None, x: Tensor) -> tuple[Tensor, list]:
        """Victim logits on ``x`` with ``params`` (``None``: the copy's own parameters), and
        the BatchNorm input statistics."""
        stats: list[tuple[Tensor, Tensor]] = []
        hooks = [m.register_forward_hook(_bn_stat_hook(stats)) for m in self._bn_modules]
        try:
            if params is None:
                logits = self.model(x)
            else:
                logits = functional_call(self.model, (params, self.buffers), (x,))
        finally:
            for h in hooks:
                h.remove()
        return logits, stats

    def dummy_gradients(self, x: Tensor, y: Tensor) -> tuple[dict[str, Tensor], dict]:
        """Parameter gradients of the client loss at dummy batch ``(x, y)`` (one restart,
        ``torch.func`` form for ``vmap``), kept differentiable in ``x`` and ``y``; plus ``aux``."""

        def client_loss(params: dict[str, Tensor]) -> tuple[Tensor, tuple]:
            logits, stats = self._forward(params, x)
            return self.loss_fn(logits, y), (logits, stats)

        grads, (logits, stats) = grad(client_loss, has_aux=True)(self.params)
        return grads, {"logits": logits, "bn_stats": stats}

    def _regularised(
        self, grads: Sequence[Tensor], aux: dict, x: Tensor, workspace: list | None = None
    ) -> tuple[Tensor, Tensor]:
        dist = distance(
            grads, self.target, self.kind, self.weights, self.target_sq, workspace=workspace
        )
        total = dist
        for weight, reg in self.regularisers:
            total = total + weight * reg(x, aux)
        return total, dist

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Survey eq. (4) for one restart: returns ``(total, distance)``."""
        grads, aux = self.dummy_gradients(x, y)
        return self._regularised(list(grads.values()), aux, x)

    def _autograd_restart(
        self, x: Tensor, y: Tensor, optimise_labels: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """One restart with plain autograd (double backward): total, distance and the
        gradients with respect to ``x`` (and ``y``). Only the inputs get gradients."""
        x = x.detach().requires_grad_(True)
        y = y.detach().requires_grad_(optimise_labels)
        convs = _ConstWeightConvs() if self._const_weight_convs else None
        with convs or contextlib.nullcontext():
            logits, stats = self._forward(None, x)
        grads = torch.autograd.grad(self.loss_fn(logits, y), self._leaves, create_graph=True)
        if convs is not None:  # the second pass differentiates w.r.t. the inputs only
            convs.weight_grads = False
        if self._workspace is None:  # scratch for the distance, reused every step
            self._workspace = [torch.empty_like(t) for t in self.target]
        aux = {"logits": logits, "bn_stats": stats}
        total, dist = self._regularised(grads, aux, x, self._workspace)
        inputs = [x, y] if optimise_labels else [x]
        outs = torch.autograd.grad(total, inputs)
        return total.detach(), dist.detach(), outs[0], outs[1] if optimise_labels else None

    # -- R restarts at once ---------------------------------------------------------
    def __call__(self, x: Tensor, y: Tensor, optimise_labels: bool = False) -> MatchResult:
        """Objective and its input-gradient for a stack of restarts.

        On a GPU the restarts are vectorised with ``vmap`` (one set of kernels for all
        of them); on the CPU, and for a single restart, each restart runs through plain
        autograd, which is 3-4x faster there than ``torch.func``'s nested transforms
        (``restarts="vmap"`` or ``"loop"`` forces either path).

        Args:
            x: dummy inputs, ``(R, B, C, H, W)``.
            y: labels per restart: integer ``(R, B)`` or label logits ``(R, B, K)``.
            optimise_labels: also differentiate with respect to ``y`` (DLG).
        """
        if x.ndim != 5:
            raise GradInvError(f"dummy inputs must be (R, B, C, H, W); got {tuple(x.shape)}")
        use_vmap = x.shape[0] > 1 and (
            self.restarts == "vmap" or (self.restarts == "auto" and x.device.type == "cuda")
        )
        if use_vmap:
            argnums = (0, 1) if optimise_labels else 0
            fn = grad_and_value(self.objective, argnums=argnums, has_aux=True)
            grads, (total, dist) = vmap(fn, randomness="different")(x.detach(), y.detach())
            gx, gy = grads if optimise_labels else (grads, None)
        else:
            parts = [
                self._autograd_restart(xr, yr, optimise_labels) for xr, yr in zip(x, y, strict=True)
            ]
            total, dist, gx = (torch.stack([p[i] for p in parts]) for i in range(3))
            gy = torch.stack([p[3] for p in parts]) if optimise_labels else None
        if not torch.isfinite(total).all():
            raise GradInvError(
                "the matching objective became NaN/Inf: lower the learning rate or enable "
                "input clamping (the reconstruction so far is kept in the callback history)"
            )
        return MatchResult(
            total.detach(), dist.detach(), gx.detach(), None if gy is None else gy.detach()
        )

    def observed_logits(self, x: Tensor) -> Tensor:
        """Logits of the (stateless) victim on one batch, without gradients."""
        with torch.no_grad():
            return functional_call(self.model, (self.params, self.buffers), (x,))


def _bn_stat_hook(store: list[tuple[Tensor, Tensor]]):
    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        z = inputs[0]
        dims = [0] + list(range(2, z.ndim))
        store.append((z.mean(dim=dims), z.var(dim=dims, unbiased=False)))

    return hook
