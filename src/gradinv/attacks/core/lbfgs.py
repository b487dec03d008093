"""DLG's L-BFGS, batched over restarts (survey Algorithm 1 with ``torch.optim.LBFGS``).

DLG's optimiser is ``torch.optim.LBFGS(lr=1)`` without line search (Zhu et al., NeurIPS
2019). :func:`lbfgs_loop` runs torch's L-BFGS recursion *batched over restarts* (one curvature
history per restart), so restarts do not share step sizes as they would if all restarts
were one parameter of ``torch.optim.LBFGS``. One *iteration* is one ``optimizer.step`` of
torch's L-BFGS, i.e. ``lbfgs_inner`` (torch default 20) L-BFGS updates, as in DLG's code;
for ``R = 1`` and no box the trajectory equals torch's (tested; in float32 the two drift
apart over tens of steps, as any two round-off orders do under L-BFGS without line
search). The curvature pairs are applied in compact form (:class:`CurvatureMemory`),
the same matrix as torch's two-loop recursion in a fixed number of batched kernels. A
restart stops when its gradient is below ``1e-7`` (max-norm) or the direction is not a
descent direction: torch's L-BFGS then stays where it is, re-evaluating the same point
once per ``step`` call; torch's transient breaks (tiny loss change) only cost torch an
extra evaluation and are not needed here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gradinv.errors import GradInvError

#: ``evaluate(x, y) -> (loss (R,), distance (R,), dloss/dx, dloss/dy or None)``.
Evaluate = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor | None]]
#: ``record(iteration, loss, distance, x, lr)``: log one iteration (and call the callback).
Record = Callable[[int, Tensor, Tensor, Tensor, float], None]
#: ``(x, y, last finite (loss, distance) or None, stopped on a non-finite objective)``.
LoopResult = tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None, bool]


class CurvatureMemory:
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


def lbfgs_loop(
    evaluate: Evaluate,
    x: Tensor,
    y: Tensor,
    record: Record,
    factor: Callable[[int], float],
    *,
    lr: float,
    iterations: int,
    boxed: bool,
    labels: bool,
    inner: int,
    history_size: int,
    progress: bool,
    **_: object,
) -> LoopResult:
    """``torch.optim.LBFGS`` (no line search) batched over restarts: one curvature memory per
    row of ``x`` ``(R, B, C, H, W)`` (and of the label logits ``y`` when ``labels``). The
    learning-rate ``factor`` is unused (L-BFGS has a fixed step), accepted so both loops of
    :func:`~gradinv.attacks.core.pixel.optimise_inputs` share one call.

    The stopping tolerances are torch's (``tolerance_grad=1e-7`` on max |g|,
    ``tolerance_change=1e-9`` on the directional derivative, 1e-10 on the curvature
    pair), taken *relative* to each row's first max |g| (squared for the products): an
    objective whose gradients are small in absolute terms (a sigmoid victim under
    PyTorch's default init, issue 19) is not mistaken for a converged one at iteration 0;
    on objectives of scale 1 the absolute and relative tolerances coincide."""
    tol_grad, tol_change, tol_curvature = 1e-7, 1e-9, 1e-10
    r, nx = x.shape[0], x[0].numel()
    xshape, yshape = x.shape, y.shape
    z = torch.cat([x.reshape(r, -1), y.reshape(r, -1)], 1) if labels else x.reshape(r, -1)
    active = torch.ones(r, dtype=torch.bool, device=z.device)
    memory = CurvatureMemory(r, z.shape[1], history_size, z)
    d = prev_g = step = scale = None
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
            if n_iter == 0:  # the objective's scale, per row
                scale = g.abs().amax(1).clamp_min(torch.finfo(g.dtype).tiny)
            active &= g.abs().amax(1) > tol_grad * scale
            if n_iter == 0:
                d = -g
            else:
                yv = g - prev_g
                ok = ((yv * step).sum(1) > tol_curvature * scale) & active
                if bool(ok.any()):
                    memory.push(step, yv, ok)
                d = memory.direction(g)
            prev_g = g
            if n_iter == 0:
                t = torch.clamp(1.0 / g.abs().sum(1), max=1.0) * lr
            else:
                t = torch.full((r,), float(lr), dtype=z.dtype, device=z.device)
            active &= (g * d).sum(1) <= -tol_change * scale.square()
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
