"""How close private images come to public ones: the memorisation floor of a split.

For every private (``train`` / ``test``) image, the PSNR to its nearest ``public`` image,
pixel-aligned and best over integer shifts of up to ``max_shift`` pixels (both images cut to
the common interior). A prior trained on ``public`` can at best re-find that nearest image
without any gradient, so an attack only shows a leak above it (DESIGN.md, floors).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from gradinv.data.registry import SPECS, data_root, load
from gradinv.errors import GradInvError, MissingAssetError

LIMIT_DB = 28.0  # no private image of a prior-backed set may come this close to a public one


def _psnr_from_mse(mse: Tensor) -> Tensor:
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _pairwise_mse(a: Tensor, b: Tensor, chunk: int = 512) -> Tensor:
    """Mean squared error between every row of ``a`` (N, D) and of ``b`` (M, D), as (N, M)."""
    b2 = b.square().sum(1)
    out = []
    for i in range(0, len(a), chunk):
        x = a[i : i + chunk]
        d = x.square().sum(1, keepdim=True) + b2[None] - 2 * x @ b.T
        out.append(d.clamp_min(0) / a.shape[1])
    return torch.cat(out)


def nearest_public(
    private: Tensor, public: Tensor, max_shift: int = 2
) -> tuple[Tensor, Tensor, Tensor]:
    """Per private image (N, C, H, W): PSNR to the nearest public image (M, C, H, W)
    pixel-aligned, the same best over shifts of up to ``max_shift`` px, and the index of the
    nearest public image (aligned)."""
    if private.shape[1:] != public.shape[1:]:
        raise GradInvError(
            f"private {tuple(private.shape[1:])} and public {tuple(public.shape[1:])} differ in shape"
        )
    a, b = private.double().flatten(1), public.double().flatten(1)
    aligned = _pairwise_mse(a, b)
    best_idx = aligned.argmin(1)
    best = aligned.min(1).values
    m, (h, w) = max_shift, private.shape[-2:]
    if m > 0:
        inner = public[..., m : h - m, m : w - m].double().flatten(1)
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                moved = private[..., m + dy : h - m + dy, m + dx : w - m + dx].double().flatten(1)
                best = torch.minimum(best, _pairwise_mse(moved, inner).min(1).values)
    return _psnr_from_mse(aligned.min(1).values), _psnr_from_mse(best), best_idx


@dataclass(frozen=True)
class OverlapRow:
    """Nearest-public PSNR (dB) of one private split of one dataset."""

    dataset: str
    split: str
    n_public: int
    n_private: int  # compared (a seeded sample when the split holds more than max_private)
    n_private_total: int
    aligned_min: float
    aligned_median: float
    aligned_max: float
    shifted_min: float
    shifted_median: float
    shifted_max: float

    def to_dict(self) -> dict:
        return asdict(self)


def overlap(
    name: str,
    size: int = 32,
    max_shift: int = 2,
    root: str | Path | None = None,
    max_private: int = 2000,
) -> list[OverlapRow]:
    """:class:`OverlapRow` for the ``train`` and ``test`` splits of dataset ``name`` at
    ``size`` px (grey and colour kept as stored), against every public image; a private split
    larger than ``max_private`` is represented by a seeded sample of that many images."""
    public = load(name, "public", size=size, root=root).images
    rows = []
    for split in ("train", "test"):
        private = load(name, split, size=size, root=root).images
        total = len(private)
        if total > max_private:
            pick = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:max_private]
            private = private[pick]
        aligned, shifted, _ = nearest_public(private, public, max_shift)
        q = torch.tensor([0.0, 0.5, 1.0], dtype=aligned.dtype)
        a, s = aligned.quantile(q).tolist(), shifted.quantile(q).tolist()
        rows.append(OverlapRow(name, split, len(public), len(private), total, *a, *s))
    return rows


def overlap_report(
    names: list[str] | None = None, size: int = 32, root: str | Path | None = None
) -> tuple[list[OverlapRow], dict[str, str]]:
    """Rows for every dataset in ``names`` (default: every dataset present) and, per dataset
    that could not be read, why."""
    base = data_root(root)
    rows, skipped = [], {}
    for name in names or list(SPECS):
        spec = SPECS[name]
        try:
            if not spec.present(base) and spec.kind != "embedded":
                skipped[name] = "not present"
                continue
            rows += overlap(name, size=size, root=base)
        except (MissingAssetError, GradInvError, OSError) as err:
            skipped[name] = str(err).splitlines()[0]
    return rows, skipped


def format_overlap(rows: list[OverlapRow]) -> str:
    """A plain-text table of :func:`overlap_report` rows (min / median / max, dB)."""
    from tabulate import tabulate

    def trio(lo: float, mid: float, hi: float) -> str:
        return f"{lo:.1f} / {mid:.1f} / {hi:.1f}"

    table = [
        [
            r.dataset,
            r.split,
            r.n_public,
            r.n_private
            if r.n_private == r.n_private_total
            else f"{r.n_private} of {r.n_private_total}",
            trio(r.aligned_min, r.aligned_median, r.aligned_max),
            trio(r.shifted_min, r.shifted_median, r.shifted_max),
        ]
        for r in rows
    ]
    return tabulate(
        table,
        headers=[
            "dataset",
            "private split",
            "public",
            "private",
            "nearest public PSNR aligned (min / median / max dB)",
            "best over ±2 px shifts",
        ],
    )
