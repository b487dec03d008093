"""Figures and tables for the paper notebooks: image grids, curves, Markdown tables.

One seaborn theme (whitegrid, paper context) is set on import. Figures are built with
``matplotlib.figure.Figure`` directly, not pyplot, so they render headless (Agg canvas) under
any backend, are never shown twice in Jupyter, and leak no global figure state. A returned
``Figure`` displays inline as the last expression of a notebook cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

DPI = 150  # our choice: sharp in the README, small in git
CELL_INCHES = 1.0  # our choice: one image cell of a grid is 1 in = 150 px at DPI
FONT_SCALE = 1.0

sns.set_theme(style="whitegrid", context="paper", font_scale=FONT_SCALE)


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` (PNG at 150 dpi unless ``path`` ends in another format), creating folders."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) numpy for imshow."""
    x = img.detach().float().clamp(0, 1).cpu()
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


def image_grid(
    rows: Sequence[torch.Tensor],
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """A grid with one row per ``(B, C, H, W)`` batch (1 or 3 channels, values in [0, 1]).

    Rows may differ in length (missing cells stay blank). Each cell is 1 in (150 px) wide.
    Saved to ``path`` when given.
    """
    if len(row_labels) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(row_labels)} row labels")
    ncols = max(len(r) for r in rows)
    nrows = len(rows)
    top = 0.35 if title else 0.0
    head = 0.25 if col_labels else 0.0
    fig = Figure(
        figsize=(CELL_INCHES * ncols + 0.3, CELL_INCHES * nrows + top + head), layout="constrained"
    )
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    for i, batch in enumerate(rows):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(batch):
                img = _to_hwc(batch[j])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(row_labels[i])
            if i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(col_labels[j])
    if title:
        fig.suptitle(title)
    if path is not None:
        save(fig, path)
    return fig


def image_row(
    images: Mapping[str, torch.Tensor],
    path: str | Path | None = None,
    title: str | None = None,
    row_label: str = "",
) -> Figure:
    """One row of single images, each column titled by its key (e.g. attack or level)."""
    batch = torch.cat([img.reshape(-1, *img.shape[-3:])[:1] for img in images.values()])
    return image_grid([batch], [row_label], list(images), path=path, title=title)


def curves(
    df_or_dict: pd.DataFrame | Mapping[str, Any],
    x: str,
    y: str,
    hue: str | None = None,
    path: str | Path | None = None,
    logx: bool = False,
) -> Figure:
    """Line plot of ``y`` against ``x`` (one line per ``hue`` value) from a long-format table.

    ``df_or_dict`` is a DataFrame or a mapping of equal-length columns. Repeated ``x`` values
    per line are averaged by seaborn with a 95% band. Saved to ``path`` when given.
    """
    df = df_or_dict if isinstance(df_or_dict, pd.DataFrame) else pd.DataFrame(dict(df_or_dict))
    fig = Figure(figsize=(4.5, 3.0), layout="constrained")
    ax = fig.subplots()
    sns.lineplot(data=df, x=x, y=y, hue=hue, marker="o", ax=ax)
    if logx:
        ax.set_xscale("log")
    if path is not None:
        save(fig, path)
    return fig


def scatter(
    df: pd.DataFrame, x: str, y: str, hue: str | None = None, path: str | Path | None = None
) -> Figure:
    """One point per row of ``df``: ``y`` against ``x``, coloured by ``hue``."""
    fig = Figure(figsize=(4.5, 3.0), layout="constrained")
    ax = fig.subplots()
    sns.scatterplot(data=df, x=x, y=y, hue=hue, style=hue, ax=ax)
    if path is not None:
        save(fig, path)
    return fig


def metric_bars(
    df: pd.DataFrame,
    metrics: Sequence[str],
    x: str,
    hue: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One bar panel per metric (columns of ``df``), bars by ``x`` coloured by ``hue``."""
    fig = Figure(figsize=(3.0 * len(metrics), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, m in zip(axes, metrics, strict=True):
        sns.barplot(data=df, x=x, y=m, hue=hue, ax=ax)
        ax.set_title(m.upper())
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        if hue is not None and ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if path is not None:
        save(fig, path)
    return fig


def table_markdown(df: pd.DataFrame, path: str | Path, floatfmt: str = ".4g") -> str:
    """Write ``df`` as Markdown to ``path`` (``.md``) and as CSV beside it; return the Markdown.

    The index is written unless it is a plain ``RangeIndex``.
    """
    path = Path(path)
    if path.suffix != ".md":
        path = path.with_suffix(".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    index = not isinstance(df.index, pd.RangeIndex)  # a plain 0..n-1 index is noise
    text = df.to_markdown(index=index, floatfmt=floatfmt) + "\n"
    path.write_text(text)
    df.to_csv(path.with_suffix(".csv"), index=index)
    return text
