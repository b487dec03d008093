"""Image-level DP: Gaussian noise on a client's images before local training
(shadow_defense.txt, Sec. 5.2.2 "Image-level noise", Table 4: "directly applying DP to
images instead of gradients", weak and strong noise).

The paper gives neither the noise scale nor a privacy budget; :class:`ImageNoise` adds
``N(0, sigma^2)`` i.i.d. to every pixel of the images (in [0, 1]) and clamps back to
[0, 1], the same clamp the shadow defense applies to ``x + N``. ``sigma`` is the profile's
choice (weak / strong). Unlike the shadow defense's noise, it is the same everywhere in
the image: that contrast is what Table 4 measures.

Registered as the data-level defense ``image_noise``:
``gradinv.defenses.build_data("image_noise", sigma="0.3", seed=0)`` builds it from
:class:`Config` (options may be strings).

What the server sees afterwards: the update of a model trained on the noised images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Config:
    """Image-level Gaussian noise (Table 4)."""

    sigma: float = 0.05  # our choice (paper silent): the profiles' "weak" level of Table 4
    clamp: bool = True  # our choice: keep x + noise in [0, 1], like the shadow defense
    seed: int = 0  # our choice: noise stream, drawn per (seed, client, round)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise GradInvError(f"image noise sigma must be a finite number >= 0, got {self.sigma}")


class ImageNoise:
    """``image_transform(images, labels, context) -> noised images`` for
    :func:`gradinv.fl.rounds.run_federated`; fresh noise every round, seeded by
    ``(seed, client, round)`` so runs are reproducible and clients independent."""

    def __init__(self, sigma: float, seed: int = 0, clamp: bool = True):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise GradInvError(f"image noise sigma must be a finite number >= 0, got {sigma}")
        self.sigma, self.seed, self.clamp = float(sigma), int(seed), bool(clamp)

    def __call__(self, images: Tensor, labels: Tensor, context: Any = None) -> Tensor:
        client = int(getattr(context, "client", 0))
        round_ = int(getattr(context, "round", 0))
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + client) * 10_007 + round_)
        noise = torch.randn(images.shape, generator=gen).to(images)
        out = images + self.sigma * noise
        return out.clamp(0, 1) if self.clamp else out

    def __repr__(self) -> str:
        return f"ImageNoise(sigma={self.sigma}, seed={self.seed}, clamp={self.clamp})"


def make(config: Config, client: int = 0) -> ImageNoise:
    """The registry's constructor: the :class:`ImageNoise` of ``config`` (the same for
    every ``client``: the noise is drawn per client from ``context.client``)."""
    del client
    return ImageNoise(config.sigma, seed=config.seed, clamp=config.clamp)


__all__ = ["Config", "ImageNoise", "make"]
