"""InvG-dm: Inverting Gradients (Geiping et al., NeurIPS 2020) adapted to federated
diffusion training (GIDM sec. 4.2).

The dummy image starts from ``N(0, 1)`` as in InvG and is optimised with Adam (lr 0.01, as
GIDM runs every attack) on the cosine distance of eq. (2) plus InvG's total variation. Like
DLG-dm it is given the client's true ``eps`` and ``t`` when ``observed.meta`` reveals them
(else a random ``eps`` and ``t``, fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

from gradinv.attacks.core.ddpm_matching import PixelConfig, pixel_attack
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.priors.ddpm import DiffusionPrior


@dataclass(frozen=True)
class Config(PixelConfig):
    """InvG-dm: the shared pixel-baseline settings plus InvG's total variation."""

    tv: float = 0.1  # inversefed (InvG code) default total_variation = 1e-1


def run(
    model: DiffusionPrior,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Pixel-space cosine gradient matching with TV against one client's DDPM gradient."""
    return pixel_attack(model, observed, config, "cosine", config.tv, callback)
