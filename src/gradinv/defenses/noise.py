"""DP-Gaussian and DP-Laplacian gradient noise, the two differential-privacy baselines of
the survey (gia_survey.txt, Sec. IV "Defense Methods", Fig. 6, Table I; refs. [14], [15]).

The client adds i.i.d. zero-mean noise of a given *variance* to every entry of every
gradient tensor before sharing it. The survey sweeps the variance over 1e-4 .. 1e-1 and
reports that 1e-1 is the smallest level that stops every attack it tried (and costs
15-20 accuracy points in FL, Table I). As in the survey (and DLG's defense section) the
noise is added directly, without clipping or privacy accounting: it is a "DP baseline",
not DP-SGD.

What the server sees afterwards: ``g + n`` with ``n ~ N(0, variance)`` (Gaussian) or
``n ~ Laplace(0, b)`` with ``b = sqrt(variance / 2)`` (Laplacian, whose variance is
``2 b^2``), independently for every entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gradinv.errors import GradInvError

if TYPE_CHECKING:
    from gradinv.defenses.context import ClientContext

KINDS = ("gaussian", "laplacian")
#: how the draws are made: "direct" (``randn``; Laplace as a difference of exponentials) or
#: "common" (both kinds from the same uniforms by their inverse CDFs, so a Gaussian and a
#: Laplacian defense of one seed add comonotone noise: a paired comparison of the kinds)
DRAWS = ("direct", "common")


@dataclass(frozen=True)
class Config:
    """Gradient-noise defense."""

    kind: str = "gaussian"  # Sec. IV: "DP-Gaussian" or "DP-Laplacian"
    variance: float = 1e-1  # Sec. IV-A: 1e-1 is the least variance that defends (sweep 1e-4..1e-1)
    draws: str = "direct"  # ours: "common" pairs the kinds (see DRAWS)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GradInvError(f"unknown noise kind {self.kind!r}; choose one of {KINDS}")
        if self.draws not in DRAWS:
            raise GradInvError(f"unknown noise draws {self.draws!r}; choose one of {DRAWS}")
        if not (math.isfinite(self.variance) and self.variance >= 0):
            raise GradInvError(f"noise variance must be a finite number >= 0, got {self.variance}")


def sample(
    numel: int,
    config: Config,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``numel`` i.i.d. float32 noise draws with zero mean and ``config.variance``.

    Drawn on ``generator.device`` when a generator is given (then moved to ``device``),
    else on ``device`` from torch's default generator. Laplace noise is the difference of
    two Exp(1) draws scaled by ``b = sqrt(variance / 2)`` (always finite). With
    ``draws="common"`` both kinds come from one uniform draw ``u`` by their inverse CDFs
    (``sqrt(variance) ndtri(u)``; ``-b sign(u - 1/2) log(1 - 2|u - 1/2|)``), ``u`` kept
    inside ``(0, 1)`` so every draw is finite.
    """
    where = generator.device if generator is not None else device
    if config.draws == "common":
        tiny = torch.finfo(torch.float32).tiny
        u = torch.rand(numel, device=where, generator=generator).clamp(tiny, 1.0 - 2**-24)
        if config.kind == "gaussian":
            z = torch.special.ndtri(u) * math.sqrt(config.variance)
        else:
            c = u - 0.5
            z = -torch.sign(c) * torch.log1p(-2.0 * c.abs()) * math.sqrt(config.variance / 2.0)
        return z.to(device)
    if config.kind == "gaussian":
        z = torch.randn(numel, device=where, generator=generator)
        z = z * math.sqrt(config.variance)
    else:
        e = torch.empty(2, numel, device=where).exponential_(1.0, generator=generator)
        z = (e[0] - e[1]) * math.sqrt(config.variance / 2.0)
    return z.to(device)


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """Add zero-mean Gaussian or Laplacian noise of ``config.variance`` to every entry.

    One draw of ``sum(numel)`` values covers all tensors (one kernel, not one per layer);
    shapes, dtypes and devices are preserved. ``context`` is unused (the noise is
    data-free); it is accepted for the common defense signature.
    """
    del context
    config = config or Config()
    gradients = tuple(gradients)
    if not gradients or config.variance == 0:
        return tuple(g.clone() for g in gradients)
    device = gradients[0].device
    sizes = [g.numel() for g in gradients]
    noise = sample(sum(sizes), config, device, generator).split(sizes)
    return tuple(
        (g + n.view_as(g).to(device=g.device, dtype=g.dtype))
        for g, n in zip(gradients, noise, strict=True)
    )


def noise_to_signal(clean: tuple[Tensor, ...], noisy: tuple[Tensor, ...]) -> float:
    """``||noisy - clean||_2 / ||clean||_2`` over all tensors: a noise level in units of the
    victim's own gradient, so a threshold such as the survey's "variance below 1e-2 does not
    stop the attack" can be compared across victims whose gradients differ in scale."""
    if len(clean) != len(noisy):
        raise GradInvError(f"{len(noisy)} noisy tensors for {len(clean)} clean ones")
    diff = sum(float((n - c).square().sum()) for c, n in zip(clean, noisy, strict=True))
    norm = sum(float(c.square().sum()) for c in clean)
    if norm == 0:
        raise GradInvError("the clean gradient is zero: its noise-to-signal ratio is undefined")
    return math.sqrt(diff / norm)


def expected_noise_to_signal(clean: tuple[Tensor, ...], variance: float) -> float:
    """The expected ratio of :func:`noise_to_signal` for noise of ``variance`` per entry
    (Gaussian or Laplacian alike): ``sqrt(variance * numel) / ||clean||_2``."""
    numel = sum(c.numel() for c in clean)
    norm = math.sqrt(sum(float(c.square().sum()) for c in clean))
    if norm == 0:
        raise GradInvError("the clean gradient is zero: its noise-to-signal ratio is undefined")
    return math.sqrt(variance * numel) / norm
