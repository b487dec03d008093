"""(epsilon, delta) of clipped Gaussian noise, by Rényi-DP accounting (Mironov, CSF 2017).

A client that clips its update to L2 norm ``C`` and adds ``N(0, (z C)^2 I)`` is a Gaussian
mechanism of sensitivity ``C``: its Rényi divergence of order ``alpha`` is
``alpha / (2 z^2)`` (Mironov 2017, Prop. 7), and ``T`` releases compose additively. The
guarantee is converted to ``(epsilon, delta)`` with Canonne, Kamath and Steinke's bound
(NeurIPS 2020, Prop. 12; also Balle et al. 2020),

    epsilon = min_alpha  T alpha / (2 z^2) + log((alpha - 1) / alpha)
                         - (log delta + log alpha) / (alpha - 1),

minimised over ``alpha > 1``. This is the accounting of Opacus' and Google's
``dp_accounting`` RDP accountants for a mechanism applied to every release, with no
subsampling amplification: every client takes part in every round of our federations, so
``T`` is the number of rounds the client sent an update (client-level DP of that client's
data). It says nothing about unclipped noise (the survey's Gaussian or Laplacian noise on
raw gradients), whose sensitivity is unbounded: :func:`guarantee` says "no formal guarantee".
"""

from __future__ import annotations

import math

import numpy as np

from gradinv.errors import GradInvError

#: Rényi orders searched (a fine grid; the bound is smooth in alpha)
ORDERS = np.concatenate([1.0 + np.geomspace(1e-3, 1.0, 200), np.geomspace(2.0, 1e4, 600)])


def gaussian_epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """``epsilon`` at ``delta`` after ``releases`` Gaussian mechanisms of noise multiplier
    ``z = noise_multiplier`` (noise std over clipping norm); ``inf`` when ``z == 0``."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise GradInvError(f"noise_multiplier must be a finite number >= 0, got {noise_multiplier}")
    if releases < 0:
        raise GradInvError(f"releases must be >= 0, got {releases}")
    if not 0.0 < delta < 1.0:
        raise GradInvError(f"delta must be in (0, 1), got {delta}")
    if releases == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    a = ORDERS
    rdp = releases * a / (2.0 * noise_multiplier**2)
    eps = rdp + np.log((a - 1.0) / a) - (math.log(delta) + np.log(a)) / (a - 1.0)
    return float(max(0.0, eps.min()))


def guarantee(defense: str, options: dict, releases: int, delta: float = 1e-5) -> str:
    """A one-line privacy statement for ``defense`` with ``options`` after ``releases``
    updates: ``(epsilon, delta)`` for clipped DP (``dp_clip``), "no formal guarantee" for
    noise without clipping, "" for defenses that claim none."""
    if defense == "dp_clip":
        z = float(options.get("noise_multiplier", 1.0))
        eps = gaussian_epsilon(z, releases, delta)
        return f"(epsilon {eps:.3g}, delta {delta:g}) after {releases} update(s), RDP accountant"
    if defense in ("dp_gaussian", "dp_laplacian", "image_noise"):
        return "no formal guarantee: the noise is not calibrated to a clipped sensitivity"
    return ""


__all__ = ["ORDERS", "gaussian_epsilon", "guarantee"]
