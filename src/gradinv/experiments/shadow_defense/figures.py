"""Figures of the shadow-defense study (shadow_defense.txt): Fig. 5 (the noise maps of Sec.
4.3), Fig. 7 (RDLV per client over rounds, Sec. 5.2.1; supplement Fig. 3) and Figs. 9-10
(reconstructions, error maps and their FFT amplitude, Sec. 5.2.3; the FFT phase of supplement
Fig. 1), with :func:`error_spectra`, the arrays behind the last ones. Figs. 6 and 8 are
plain line and bar plots of :func:`~gradinv.experiments.shadow_defense.tables.f1_curves`
and :func:`~gradinv.experiments.shadow_defense.tables.summary_table` (the notebook draws
them with :mod:`gradinv.plots`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from gradinv import metrics, plots
from gradinv.errors import GradInvError
from gradinv.experiments.shadow_defense.results import Results


# -- figures' arrays -------------------------------------------------------------------------
def error_spectra(rec: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Figs. 9-10 and supplement Fig. 1: the error map ``|rec - truth|`` (channel mean), the
    log amplitude and the phase of its centred 2-D FFT, each (B, H, W)."""
    err = (rec - truth).abs().mean(1)
    spec = torch.fft.fftshift(torch.fft.fft2(err), dim=(-2, -1))
    return err, torch.log1p(spec.abs()), spec.angle()


# -- figures ---------------------------------------------------------------------------------
def _panel(m: Tensor) -> Tensor:
    """A map (B, 1|C, H, W) min-max scaled per image to [0, 1] for display."""
    flat = m.float().flatten(1)
    lo, hi = flat.amin(1)[:, None, None, None], flat.amax(1)[:, None, None, None]
    return (m.float() - lo) / (hi - lo).clamp_min(1e-12)


def noise_maps_figure(snapshot: dict[str, Tensor], images: int = 4, path=None):
    """Fig. 5: X, X_rec, X^N, M, N1, N2, N4 (maps min-max scaled per image)."""
    names = ["X", "X_rec", "X^N", "M", "N1", "N2", "N4"]
    cols = [snapshot[n][:images] for n in names]
    cols = [
        c if n in ("X", "X_rec", "X^N") else _panel(c) for n, c in zip(names, cols, strict=True)
    ]
    rows = [torch.stack([c[i] for c in cols]) for i in range(len(cols[0]))]
    return plots.image_grid(rows, [f"image {i + 1}" for i in range(len(rows))], names, path=path)


def rdlv_figure(table: pd.DataFrame, path=None) -> Figure:
    """Fig. 7: RDLV over rounds, one panel per client, one line per method."""
    clients = sorted(table.client.unique())
    fig = Figure(figsize=(2.6 * len(clients), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(clients), sharey=True))
    for ax, c in zip(axes, clients, strict=True):
        for lab, part in table[table.client == c].groupby("method", sort=False):
            part = part.sort_values("round")
            ax.plot(part["round"], part["rdlv"], marker="o", label=lab)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"client {c}")
        ax.set_xlabel("round")
    axes[0].set_ylabel("RDLV")
    axes[-1].legend(fontsize=6, loc="best")
    if path is not None:
        plots.save(fig, path)
    return fig


def reconstruction_figure(
    study: Results, role: str, labels: tuple[str, ...], attack: str, round: int, client: int,
    phase: bool = False, path=None,
):  # fmt: skip
    """Figs. 9-10: per method the reconstruction ('Rec Img'), the error map ('Rec Diff') and
    the log amplitude of its FFT ('FFT Diff'); ``phase=True`` shows the FFT phase instead
    (supplement Fig. 1). Titles carry the PSNR to the original."""
    recs = {lab: _record(study, role, lab, attack, round, client) for lab in labels}
    truth = next(iter(recs.values())).truth[:1]
    rec_row, diff_row, fft_row, titles = [], [], [], []
    for lab, r in recs.items():
        err, amp, ph = error_spectra(r.reconstruction[:1], r.truth[:1])
        rec_row.append(r.reconstruction[0])
        diff_row.append(_panel(err[:, None])[0])
        fft_row.append(_panel((ph if phase else amp)[:, None])[0])
        titles.append(f"{lab}\n{float(metrics.psnr(r.reconstruction[:1], r.truth[:1])):.1f} dB")
    rows = [truth, torch.stack(rec_row), torch.stack(diff_row), torch.stack(fft_row)]
    names = ["original", "Rec Img", "Rec Diff", "FFT phase" if phase else "FFT Diff"]
    return plots.image_grid(rows, names, titles, path=path)


def _record(study: Results, role: str, label: str, attack: str, round: int, client: int):
    for r in study.records_of(role, label, attack):
        if r.round == round and r.client == client:
            return r
    raise GradInvError(f"no attack on client {client} in round {round}; check the profile")
