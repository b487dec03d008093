"""DLG-dm: DLG (Zhu, Liu and Han, NeurIPS 2019) adapted to federated diffusion training
(GIDM sec. 4.2).

The dummy image starts from ``N(0, 1)`` as in DLG and is optimised with Adam (GIDM: "with
Adam optimizer", lr 0.01) on the squared L2 distance of eq. (2). DLG knows no ``eps`` or
``t``: GIDM hands the baselines the client's true values, held fixed, which is what the
attack uses when ``observed.meta`` reveals them (else a random ``eps`` and ``t``, fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

from gradinv.attacks.core.ddpm_matching import PixelConfig, pixel_attack
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.priors.ddpm import DiffusionPrior


@dataclass(frozen=True)
class Config(PixelConfig):
    """DLG-dm: the shared pixel-baseline settings (L2, no regulariser)."""


def run(
    model: DiffusionPrior,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Pixel-space L2 gradient matching against one client's DDPM gradient."""
    return pixel_attack(model, observed, config, "l2", callback=callback)
