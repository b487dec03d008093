"""Figures and tables (gradinv.plots): headless PNGs and Markdown/CSV tables."""

from __future__ import annotations

import matplotlib.image as mpimg
import pandas as pd
import pytest
import torch

from gradinv import plots


def test_image_grid_saves_png_of_one_inch_cells_with_gray_and_rgb_rows(tmp_path):
    g = torch.Generator().manual_seed(0)
    rows = [torch.rand(4, 1, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)]
    path = tmp_path / "sub" / "grid.png"
    fig = plots.image_grid(rows, ["truth", "DLG"], col_labels=list("abcd"), path=path, title="t")
    assert path.is_file() and fig.get_axes()
    h, w = mpimg.imread(path).shape[:2]
    # 4 columns x 1 in, plus a 0.3 in label margin, at 150 dpi; 2 rows + title/header
    assert w == pytest.approx(150 * (4 + 0.3), abs=2)
    assert h == pytest.approx(150 * (2 + 0.35 + 0.25), abs=2)


def test_save_adds_png_suffix_and_creates_folders(tmp_path):
    fig = plots.image_grid([torch.zeros(1, 3, 8, 8)], ["x"])
    out = plots.save(fig, tmp_path / "a" / "b" / "fig")
    assert out.suffix == ".png" and out.is_file()


def test_curves_from_dict_with_log_x(tmp_path):
    data = {
        "step": [1, 10, 100] * 2,
        "psnr": [10, 12, 15, 9, 10, 11],
        "attack": ["a"] * 3 + ["b"] * 3,
    }
    fig = plots.curves(data, x="step", y="psnr", hue="attack", path=tmp_path / "c.png", logx=True)
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log" and len(ax.get_lines()) >= 2
    assert (tmp_path / "c.png").is_file()


def test_scatter_draws_one_point_per_row(tmp_path):
    data = pd.DataFrame({"dt": [0, 5, 300, 40], "psnr": [25.0, 24.0, 11.0, 15.0],
                         "variant": ["a", "a", "b", "b"]})  # fmt: skip
    fig = plots.scatter(data, "dt", "psnr", hue="variant", path=tmp_path / "s.png")
    points = sum(len(c.get_offsets()) for c in fig.get_axes()[0].collections)
    assert points == 4 and (tmp_path / "s.png").is_file()


def test_table_markdown_writes_md_and_csv_beside_it(tmp_path):
    df = pd.DataFrame({"method": ["DLG", "IG"], "PSNR": [12.3456, 20.5]})
    text = plots.table_markdown(df, tmp_path / "t" / "table1.md")
    md = (tmp_path / "t" / "table1.md").read_text()
    assert md == text and "| method   |" in md and "12.35" in md
    assert pd.read_csv(tmp_path / "t" / "table1.csv").equals(df)
