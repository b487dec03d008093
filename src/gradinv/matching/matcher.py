"""The one batched gradient-matching kernel, :class:`GradientMatcher`.

It evaluates survey eq. (4) and its gradient with respect to the dummy inputs (and, for
DLG, the dummy labels) for ``R`` independent restarts at once: the per-restart function is
written with ``torch.func`` (``functional_call`` + ``grad``) and vectorised over restarts
with ``vmap`` (:func:`~gradinv.matching.kernels.vmap_restarts`), or, on the CPU, run
through plain autograd on the private model copy, called directly (no per-step
``functional_call`` re-binding of every parameter) so that only the inputs receive
gradients. Nothing is ever accumulated into the model's ``.grad`` fields: the inner
gradient is taken with respect to the parameters only to be compared, the outer one only
with respect to the dummy inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from gradinv.case import Observed
from gradinv.errors import GradInvError
from gradinv.losses import cross_entropy
from gradinv.matching.distances import DISTANCES, distance, layer_sums, layer_weight_tensor
from gradinv.matching.kernels import (
    CONST_WEIGHT_CONV_MIN,
    ConstWeightConvs,
    stateless_copy,
    trainable,
    vmap_restarts,
)

#: A regulariser maps (dummy batch x of one restart, aux) to a scalar. ``aux`` holds
#: ``"logits"`` (B, K) and, when the matcher records them, ``"bn_stats"``: a list of
#: (mean, var) of the inputs of every BatchNorm layer, in module order.
Regulariser = Callable[[Tensor, dict], Tensor]


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
        distance: one of :data:`~gradinv.matching.distances.DISTANCES` (``"l2"``,
            ``"cosine"``, ``"norm"``, ``"layer_cosine"``).
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
        convs = ConstWeightConvs() if self._const_weight_convs else None
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
            total, dist, gx, gy = vmap_restarts(self.objective, x, y, optimise_labels)
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


__all__ = ["GradientMatcher", "MatchResult", "Regulariser"]
