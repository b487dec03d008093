"""The optimisation loop shared by every pixel-space attack (survey Algorithm 1, lines 3-6).

:func:`optimise_inputs` minimises a :class:`~gradinv.matching.GradientMatcher` objective over
``R`` independent restarts at once. The matcher returns the loss and its input-gradient for
all restarts in one vectorised call; the gradient is handed to the optimiser directly
(``.grad`` for Adam, a flat vector for L-BFGS), so nothing calls ``.backward()``.

Optimisers:

* ``"adam"`` -- ``torch.optim.Adam`` on the dummy batch; Adam is element-wise, so restarts
  stay independent. Options used by Inverting Gradients (Geiping et al., NeurIPS 2020):
  signed gradients, a box constraint to ``[0, 1]`` and ``MultiStepLR`` decay by 0.1 at 3/8,
  5/8 and 7/8 of the iterations; by GradInversion (Yin et al., CVPR 2021): cosine decay with
  linear warm-up and Langevin noise.
* ``"lbfgs"`` -- DLG's optimiser (Zhu et al., NeurIPS 2019: ``torch.optim.LBFGS(lr=1)``,
  no line search), batched over restarts: :mod:`gradinv.attacks.core.lbfgs`.

If the objective becomes NaN/Inf, the loop stops and returns the last finite state
(``history[-1]["stopped"]`` says so) instead of losing the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.attacks.core.labels import infer_labels
from gradinv.attacks.core.lbfgs import Evaluate, LoopResult, Record, lbfgs_loop
from gradinv.attacks.core.options import LabelOptions, PixelOptions
from gradinv.attacks.core.placement import prepare
from gradinv.attacks.core.progress import Callback, emit
from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.matching import GradientMatcher

INITS = ("randn", "rand", "zeros", "half", "patterned-N")
OPTIMIZERS = ("adam", "lbfgs")
SCHEDULERS = (None, "multistep", "cosine")

#: ``extra_grad(x) -> (loss_add (R,), grad_add (R, B, C, H, W))``: a term coupling restarts.
ExtraGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


class OptimiseResult(NamedTuple):
    """Final state of all restarts."""

    x: Tensor  # (R, B, C, H, W), not clamped
    y: Tensor  # (R, B) integer labels or (R, B, K) label logits
    losses: Tensor  # (R,) final objective per restart
    history: list[dict]  # per-iteration records (no images)


# -- attack plumbing -------------------------------------------------------------------
@dataclass
class Start:
    """What every pixel-space attack begins with (survey Algorithm 1, lines 1-2)."""

    model: nn.Module
    observed: Observed
    x0: Tensor  # (R, B, C, H, W) dummy batches, one per restart
    labels: Tensor | None  # (B,) inferred labels; None for attacks that optimise them (DLG)


def start(model: nn.Module, observed: Observed, config: PixelOptions) -> Start:
    """Place model and gradients on ``config.device``, draw the dummy batches
    (``config.init``, ``config.seed``, ``config.restarts``) and, for attacks with
    :class:`LabelOptions`, infer the labels with ``config.label_method``."""
    model, observed = prepare(model, observed, config.device)
    p = next(model.parameters())
    shape = (config.restarts, observed.batch_size, *observed.image_shape)
    x0 = init_dummy(shape, config.init, config.seed, p.device, p.dtype)
    labels = None
    if isinstance(config, LabelOptions):
        labels = infer_labels(observed, model, config.label_method)
    return Start(model, observed, x0, labels)


def init_dummy(
    shape: tuple[int, ...],
    init: str = "randn",
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Initial dummy batch of shape ``(R, B, C, H, W)``.

    ``"randn"``: N(0, 1) (survey Algorithm 1, line 1; DLG, iDLG, IG); ``"rand"``: U[0, 1];
    ``"zeros"``; ``"half"``: constant 0.5; ``"patterned-N"``: a U[0, 1] ``N x N`` patch tiled
    over the image (Wei et al. 2020's patterned random seed, CPL).
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if init == "randn":
        x = torch.randn(shape, generator=gen, dtype=dtype)
    elif init == "rand":
        x = torch.rand(shape, generator=gen, dtype=dtype)
    elif init == "zeros":
        x = torch.zeros(shape, dtype=dtype)
    elif init == "half":
        x = torch.full(shape, 0.5, dtype=dtype)
    elif init.startswith("patterned"):
        try:
            n = int(init.split("-")[1])
        except (IndexError, ValueError):
            raise GradInvError(
                f"init {init!r}: write the pattern size, e.g. 'patterned-4'"
            ) from None
        h, w = shape[-2:]
        patch = torch.rand((*shape[:-2], n, n), generator=gen, dtype=dtype)
        reps = (1,) * (len(shape) - 2) + (math.ceil(h / n), math.ceil(w / n))
        x = patch.repeat(reps)[..., :h, :w].contiguous()
    else:
        raise GradInvError(f"unknown init {init!r}; choose one of {INITS}")
    return x.to(device)


def to_reconstruction(
    result: OptimiseResult, labels: Tensor | None, extras: dict | None = None
) -> Reconstruction:
    """Best restart (lowest final loss) as a :class:`Reconstruction` on CPU in ``[0, 1]``."""
    best = int(result.losses.argmin())
    out = dict(extras or {})
    out["all_restarts"] = result.x.detach().clamp(0, 1).cpu()
    out["restart_losses"] = [float(v) for v in result.losses]
    out["best_restart"] = best
    return Reconstruction(
        images=result.x[best].detach().clamp(0, 1).cpu(),
        labels=None if labels is None else labels.detach().cpu(),
        loss=float(result.losses[best]),
        history=result.history,
        extras=out,
    )


# -- learning-rate schedules -------------------------------------------------------------
def lr_factor(scheduler: str | None, iterations: int, warmup: int = 0) -> Callable[[int], float]:
    """Multiplier of the base learning rate at iteration ``it``.

    ``"multistep"``: 0.1 at 3/8, 5/8, 7/8 of ``iterations`` (Geiping et al. 2020, inversefed);
    ``"cosine"``: cosine decay to 0 (Yin et al. 2021); both after ``warmup`` linear steps.
    """
    if scheduler not in SCHEDULERS:
        raise GradInvError(f"unknown scheduler {scheduler!r}; choose one of {SCHEDULERS}")
    milestones = [int(iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]

    def factor(it: int) -> float:
        w = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
        if scheduler == "multistep":
            return w * 0.1 ** sum(it >= m for m in milestones)
        if scheduler == "cosine":
            return w * 0.5 * (1 + math.cos(math.pi * it / max(1, iterations)))
        return w

    return factor


# -- the loop ----------------------------------------------------------------------------
class _Evaluator:
    """Matcher plus optional cross-restart term; returns the last finite state on failure."""

    def __init__(self, matcher: GradientMatcher, extra_grad: ExtraGrad | None, labels: bool):
        self.matcher, self.extra_grad, self.labels = matcher, extra_grad, labels

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        res = self.matcher(x, y, optimise_labels=self.labels)
        loss, gx = res.loss, res.grad_x
        if self.extra_grad is not None:
            add, gadd = self.extra_grad(x.detach())
            loss, gx = loss + add.detach(), gx + gadd.detach()
        return loss, res.distance, gx, res.grad_y


def optimise_inputs(
    matcher: GradientMatcher,
    x0: Tensor,
    y: Tensor,
    *,
    optimizer: str = "adam",
    lr: float = 0.1,
    iterations: int = 100,
    signed: bool = False,
    boxed: bool = False,
    scheduler: str | None = None,
    warmup: int = 0,
    langevin: float = 0.0,
    optimise_labels: bool = False,
    extra_grad: ExtraGrad | None = None,
    lbfgs_inner: int = 20,
    lbfgs_history: int = 100,
    seed: int = 0,
    callback: Callback | None = None,
    snapshot_every: int = 0,
    progress: bool = False,
) -> OptimiseResult:
    """Minimise ``matcher`` over dummy inputs ``x0`` ``(R, B, C, H, W)`` (and labels ``y``).

    Args:
        y: integer labels ``(R, B)``, or label logits ``(R, B, K)`` with ``optimise_labels``.
        optimizer: ``"adam"`` or ``"lbfgs"`` (see module docstring).
        signed: Adam on ``sign(grad)`` (IG). boxed: clamp inputs to ``[0, 1]`` after each step.
        scheduler: ``None``, ``"multistep"`` (IG) or ``"cosine"`` (GradInversion), ``warmup``
            linear warm-up steps (Adam only).
        langevin: std of Gaussian noise added after each Adam step, times the current lr.
        extra_grad: cross-restart term (GradInversion's group consistency).
        callback: ``callback(iteration, record)`` each iteration, ``record`` holding
            ``"loss"`` (best restart), ``"distance"``, ``"losses"`` (all restarts); every
            ``snapshot_every`` iterations and once at the end also ``"images"``: the best
            restart's batch clamped to ``[0, 1]`` on CPU.
    """
    if optimizer not in OPTIMIZERS:
        raise GradInvError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if x0.ndim != 5:
        raise GradInvError(f"x0 must be (R, B, C, H, W); got {tuple(x0.shape)}")
    if optimizer == "lbfgs" and (lbfgs_history < 1 or lbfgs_inner < 1):
        raise GradInvError(
            f"lbfgs_history and lbfgs_inner must be at least 1; got {lbfgs_history}, {lbfgs_inner}"
        )
    if optimise_labels and y.is_floating_point() is False:
        raise GradInvError("optimise_labels needs float label logits y of shape (R, B, K)")
    evaluate = _Evaluator(matcher, extra_grad, optimise_labels)
    factor = lr_factor(scheduler, iterations, warmup)
    history: list[dict] = []

    def record(it: int, loss: Tensor, dist: Tensor, x: Tensor, lr_now: float, final=False):
        best = int(loss.argmin())
        rec = {
            "iteration": it,
            "loss": float(loss[best]),
            "distance": float(dist[best]),
            "lr": lr_now,
            "losses": [float(v) for v in loss],
        }
        history.append(rec)
        emit(callback, rec, x[best], snapshot_every, final)

    run = _adam if optimizer == "adam" else lbfgs_loop
    x, y, last, stopped = run(
        evaluate, x0.detach().clone(), y.detach().clone(), record, factor,
        lr=lr, iterations=iterations, signed=signed, boxed=boxed, langevin=langevin,
        labels=optimise_labels, inner=lbfgs_inner, history_size=lbfgs_history, seed=seed,
        progress=progress,
    )  # fmt: skip
    if last is None or not stopped:
        try:
            loss, dist, _, _ = evaluate(x, y)
            last = (loss, dist)
        except GradInvError:
            stopped = True
    if last is None:
        raise GradInvError("the matching objective is NaN/Inf at the initial point: check inputs")
    if stopped and history:
        history[-1]["stopped"] = "objective became NaN/Inf; returned the last finite state"
    record(len(history), last[0], last[1], x, float("nan"), final=True)
    return OptimiseResult(x.detach(), y.detach(), last[0], history)


def _adam(
    evaluate: Evaluate,
    x: Tensor,
    y: Tensor,
    record: Record,
    factor: Callable[[int], float],
    *,
    lr: float,
    iterations: int,
    signed: bool,
    boxed: bool,
    langevin: float,
    labels: bool,
    seed: int,
    progress: bool,
    **_: object,
) -> LoopResult:
    """Adam on the dummy batch (and label logits), with IG's signed gradients and box and
    GradInversion's schedule and Langevin noise."""
    x.requires_grad_(True)
    params = [x] + ([y.requires_grad_(True)] if labels else [])
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator(device=x.device).manual_seed(int(seed) + 1)
    last, stopped = None, False
    bar = tqdm(range(iterations), disable=not progress, desc="attack", leave=False)
    for it in bar:
        try:
            loss, dist, gx, gy = evaluate(x, y)
        except GradInvError:
            stopped = True
            break
        last, good = (loss, dist), (x.detach().clone(), y.detach().clone())
        lr_now = lr * factor(it)
        record(it, loss, dist, x, lr_now)
        if progress and it % 10 == 0:
            bar.set_postfix(loss=f"{float(loss.min()):.4g}")
        for group in opt.param_groups:
            group["lr"] = lr_now
        x.grad = gx.sign() if signed else gx
        if labels:
            y.grad = gy
        opt.step()
        with torch.no_grad():
            if langevin > 0:
                noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                x.add_(noise, alpha=langevin * lr_now)
            if boxed:
                x.clamp_(0, 1)
    if stopped and last is not None:
        return good[0], good[1], last, True
    return x.detach(), y.detach(), last, stopped
