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
  no line search). We run torch's L-BFGS recursion *batched over restarts* (one curvature
  history per restart), so restarts do not share step sizes as they would if all restarts
  were one parameter of ``torch.optim.LBFGS``. One *iteration* is one ``optimizer.step`` of
  torch's L-BFGS, i.e. ``lbfgs_inner`` (torch default 20) L-BFGS updates, as in DLG's code;
  for ``R = 1`` and no box the trajectory equals torch's (tested; in float32 the two drift
  apart over tens of steps, as any two round-off orders do under L-BFGS without line
  search). The curvature pairs are applied in compact form (:class:`_CurvatureMemory`),
  the same matrix as torch's two-loop recursion in a fixed number of batched kernels. A
  restart stops when its gradient is below ``1e-7`` (max-norm) or the direction is not a
  descent direction: torch's L-BFGS then stays where it is, re-evaluating the same point
  once per ``step`` call; torch's transient breaks (tiny loss change) only cost torch an
  extra evaluation and are not needed here.

If the objective becomes NaN/Inf, the loop stops and returns the last finite state
(``history[-1]["stopped"]`` says so) instead of losing the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.labels import infer_labels
from gradinv.matching import GradientMatcher
from gradinv.utils import resolve_device

INITS = ("randn", "rand", "zeros", "half", "patterned-N")
OPTIMIZERS = ("adam", "lbfgs")
SCHEDULERS = (None, "multistep", "cosine")

#: ``extra_grad(x) -> (loss_add (R,), grad_add (R, B, C, H, W))``: a term coupling restarts.
ExtraGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
Callback = Callable[[int, dict], None]


class OptimiseResult(NamedTuple):
    """Final state of all restarts."""

    x: Tensor  # (R, B, C, H, W), not clamped
    y: Tensor  # (R, B) integer labels or (R, B, K) label logits
    losses: Tensor  # (R,) final objective per restart
    history: list[dict]  # per-iteration records (no images)


# -- attack plumbing -------------------------------------------------------------------
def prepare(
    model: nn.Module, observed: Observed, device: str | torch.device | None
) -> tuple[nn.Module, Observed]:
    """Move ``model`` and ``observed`` to ``device`` (``None``: keep the model's device)."""
    if device is None:
        dev = next(model.parameters()).device
    else:
        dev = resolve_device(device)
        model = model.to(dev) if next(model.parameters()).device != dev else model
    grads = tuple(g.to(dev) for g in observed.gradients)
    labels = None if observed.labels is None else observed.labels.to(dev)
    obs = Observed(
        grads,
        observed.batch_size,
        observed.image_shape,
        observed.num_classes,
        labels,
        dict(observed.meta),
    )
    return model, obs


@dataclass
class Start:
    """What every pixel-space attack begins with (survey Algorithm 1, lines 1-2)."""

    model: nn.Module
    observed: Observed
    x0: Tensor  # (R, B, C, H, W) dummy batches, one per restart
    labels: Tensor | None  # (B,) inferred labels; None for attacks that optimise them (DLG)


def start(model: nn.Module, observed: Observed, config: Any) -> Start:
    """Place model and gradients on ``config.device``, draw the dummy batches
    (``config.init``, ``config.seed``, ``config.restarts``) and infer the labels with
    ``config.label_method`` when the config has one."""
    model, observed = prepare(model, observed, config.device)
    p = next(model.parameters())
    shape = (config.restarts, observed.batch_size, *observed.image_shape)
    x0 = init_dummy(shape, config.init, config.seed, p.device, p.dtype)
    method = getattr(config, "label_method", None)
    labels = infer_labels(observed, model, method) if method else None
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
        history.append(dict(rec))
        if callback is not None:
            if final or (snapshot_every and it % snapshot_every == 0):
                rec["images"] = x[best].detach().clamp(0, 1).cpu()
            callback(it, rec)

    run = _adam if optimizer == "adam" else _lbfgs
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


def _adam(evaluate, x, y, record, factor, *, lr, iterations, signed, boxed, langevin, labels,
          seed, progress, **_):  # fmt: skip
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


class _CurvatureMemory:
    """L-BFGS curvature pairs of ``R`` independent rows, applied in compact form.

    The inverse-Hessian approximation of the two-loop recursion that ``torch.optim.LBFGS``
    runs, written as in Byrd, Nocedal and Schnabel (Math. Prog. 1994, eq. 3.13-3.14) with
    ``H_0 = gamma I``::

        H g = gamma g + S top + gamma Y bottom,    bottom = -R^-1 S^T g,
        top = R^-T ((D + gamma Y^T Y) R^-1 S^T g - gamma Y^T g),

    ``R`` the upper triangle of ``S^T Y`` (pairs oldest first) and ``D`` its diagonal. The
    small ``S^T Y`` and ``Y^T Y`` matrices gain one row and column per stored pair, so a
    direction costs about fifteen batched kernels whatever the history length, where the
    recursion launches four per stored pair and loop (800 for torch's default 100 pairs:
    more than the whole matching objective of a small victim).

    Each row keeps its own newest ``size`` accepted pairs (``s.y > 1e-10``, as torch) in a
    ring of slots; an empty slot holds a zero pair with a unit diagonal, which leaves
    ``H`` unchanged.
    """

    def __init__(self, rows: int, dim: int, size: int, like: Tensor):
        self.size, self.rows, self.dim = size, rows, dim
        self.s = like.new_zeros(rows, 0, dim)
        self.y = like.new_zeros(rows, 0, dim)
        self.sy = like.new_zeros(rows, 0, 0)  # sy[r, i, j] = s_i . y_j over slots
        self.yy = like.new_zeros(rows, 0, 0)
        self.gamma = like.new_ones(rows)
        self.count, self.head = [0] * rows, [0] * rows  # head: oldest slot once full

    def _grow(self) -> None:
        old = self.s.shape[1]
        cap = min(self.size, max(8, 2 * old))
        for name in ("s", "y"):
            buf = self.s.new_zeros(self.rows, cap, self.dim)
            buf[:, :old] = getattr(self, name)
            setattr(self, name, buf)
        for name in ("sy", "yy"):
            buf = self.s.new_zeros(self.rows, cap, cap)
            buf[:, :old, :old] = getattr(self, name)
            setattr(self, name, buf)
        self.sy.diagonal(dim1=1, dim2=2)[:, old:] = 1.0  # empty slots

    def push(self, s: Tensor, y: Tensor, ok: Tensor) -> None:
        """Store the pair ``(s, y)`` (``(R, N)``) for the rows where ``ok``."""
        rows, slots = [], []
        for r, accept in enumerate(ok.tolist()):
            if not accept:
                continue
            if self.count[r] == self.size:  # full: overwrite the oldest
                slot, self.head[r] = self.head[r], (self.head[r] + 1) % self.size
            else:
                slot, self.count[r] = self.count[r], self.count[r] + 1
            rows.append(r)
            slots.append(slot)
        if max(self.count) > self.s.shape[1]:
            self._grow()
        if len(rows) == self.rows and len(set(slots)) == 1:  # every row, one slot: views
            ri, si = slice(None), slots[0]
        else:
            ri = torch.tensor(rows, device=s.device)
            si = torch.tensor(slots, device=s.device)
        self.s[ri, si], self.y[ri, si] = s[ri], y[ri]
        # dots of every slot with the new pair, over all rows (cheap), kept for the accepted
        s_dot_y = torch.bmm(self.s, y[:, :, None])[ri, :, 0]  # s_i . y_new
        y_dot_s = torch.bmm(self.y, s[:, :, None])[ri, :, 0]  # y_i . s_new
        y_dot_y = torch.bmm(self.y, y[:, :, None])[ri, :, 0]
        self.sy[ri, :, si], self.sy[ri, si, :] = s_dot_y, y_dot_s
        self.yy[ri, :, si], self.yy[ri, si, :] = y_dot_y, y_dot_y
        pick = torch.arange(len(rows), device=s.device)
        sy_new, yy_new = s_dot_y[pick, si], y_dot_y[pick, si]
        self.sy[ri, si, si] = sy_new
        self.gamma[ri] = sy_new / yy_new.clamp_min(1e-30)

    def direction(self, g: Tensor) -> Tensor:
        """The quasi-Newton direction ``-H g`` for gradients ``g`` ``(R, N)``."""
        gam = self.gamma[:, None, None]
        m = max(self.count)
        if m == 0:
            return -gam[..., 0] * g
        s, y = self.s[:, :m], self.y[:, :m]
        u = torch.bmm(s, g[:, :, None])  # S^T g, (R, m, 1), slot order
        v = torch.bmm(y, g[:, :, None])  # Y^T g
        sy, yy = self.sy[:, :m, :m], self.yy[:, :m, :m]
        perm, shift = None, 0
        if len(set(self.head)) == 1:  # slot order -> pair order, oldest first: one rotation
            shift = self.head[0]
            if shift:
                u, v = u.roll(-shift, 1), v.roll(-shift, 1)
                sy, yy = sy.roll((-shift, -shift), (1, 2)), yy.roll((-shift, -shift), (1, 2))
        else:  # rows wrapped differently: a permutation per row
            arange = torch.arange(m, device=g.device)
            perm = (torch.tensor(self.head, device=g.device)[:, None] + arange) % m
            u, v = u.gather(1, perm[..., None]), v.gather(1, perm[..., None])
            rows_i, cols_i = perm[:, :, None].expand(-1, -1, m), perm[:, None, :].expand(-1, m, -1)
            sy = sy.gather(1, rows_i).gather(2, cols_i)
            yy = yy.gather(1, rows_i).gather(2, cols_i)
        r_up = sy.triu()
        p = torch.linalg.solve_triangular(r_up, u, upper=True)  # R^-1 S^T g
        inner = sy.diagonal(dim1=1, dim2=2)[..., None] * p + gam * (yy @ p - v)
        top = torch.linalg.solve_triangular(r_up.mT, inner, upper=False)
        bottom = -gam * p
        if shift:  # back to slot order
            top, bottom = top.roll(shift, 1), bottom.roll(shift, 1)
        elif perm is not None:
            top = torch.empty_like(top).scatter_(1, perm[..., None], top)
            bottom = torch.empty_like(bottom).scatter_(1, perm[..., None], bottom)
        hg = torch.baddbmm(gam * g[:, :, None], s.mT, top)
        return -torch.baddbmm(hg, y.mT, bottom)[..., 0]


def _lbfgs(evaluate, x, y, record, factor, *, lr, iterations, boxed, labels, inner,
           history_size, progress, **_):  # fmt: skip
    """torch.optim.LBFGS (no line search) batched over restarts: one curvature memory per row."""
    tol_grad, tol_change = 1e-7, 1e-9
    r, nx = x.shape[0], x[0].numel()
    xshape, yshape = x.shape, y.shape
    z = torch.cat([x.reshape(r, -1), y.reshape(r, -1)], 1) if labels else x.reshape(r, -1)
    active = torch.ones(r, dtype=torch.bool, device=z.device)
    memory = _CurvatureMemory(r, z.shape[1], history_size, z)
    d = prev_g = step = None
    n_iter = 0
    last, stopped = None, False
    good = (x, y)

    def split(z: Tensor) -> tuple[Tensor, Tensor]:
        xs = z[:, :nx].reshape(xshape)
        return xs, (z[:, nx:].reshape(yshape) if labels else y)

    bar = tqdm(range(iterations), disable=not progress, desc="attack", leave=False)
    for it in bar:
        for k in range(inner):
            xs, ys_ = split(z)
            try:
                loss, dist, gx, gy = evaluate(xs, ys_)
            except GradInvError:
                stopped = True
                break
            good, last = (xs, ys_), (loss, dist)
            if k == 0:
                record(it, loss, dist, xs, lr)
                if progress and it % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss.min()):.4g}")
            g = gx.reshape(r, -1)
            if labels:
                g = torch.cat([g, gy.reshape(r, -1)], 1)
            active &= g.abs().amax(1) > tol_grad
            if n_iter == 0:
                d = -g
            else:
                yv = g - prev_g
                ok = ((yv * step).sum(1) > 1e-10) & active
                if bool(ok.any()):
                    memory.push(step, yv, ok)
                d = memory.direction(g)
            prev_g = g
            if n_iter == 0:
                t = torch.clamp(1.0 / g.abs().sum(1), max=1.0) * lr
            else:
                t = torch.full((r,), float(lr), dtype=z.dtype, device=z.device)
            active &= (g * d).sum(1) <= -tol_change
            t = torch.where(active, t, torch.zeros_like(t))
            z_new = z + t[:, None] * d
            if boxed:
                z_new[:, :nx] = z_new[:, :nx].clamp(0, 1)
            step, z = z_new - z, z_new
            n_iter += 1
            if not bool(active.any()):
                break
        if stopped or not bool(active.any()):
            break
    if stopped:
        return good[0], good[1], last, True
    xs, ys_ = split(z)
    return xs, ys_, None, False
