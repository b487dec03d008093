"""DLG: Deep Leakage from Gradients (Zhu, Liu and Han, NeurIPS 2019).

The attacker initialises a dummy image *and* a dummy soft label at random and minimises
the squared L2 distance between the dummy gradient and the shared one (survey eq. 5,
no regulariser) jointly over both with L-BFGS. The recovered label is the argmax of the
optimised label logits. Implements survey eq. (4)-(5) and Algorithm 1 without line 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gradinv.attacks.core.options import PixelOptions
from gradinv.attacks.core.pixel import optimise_inputs, start, to_reconstruction
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.matching import GradientMatcher


@dataclass(frozen=True)
class Config(PixelOptions):
    iterations: int = 300  # DLG code: 300 optimizer.step() calls of L-BFGS
    restarts: int = 1  # DLG: one random initialisation
    lr: float = 1.0  # DLG code: torch.optim.LBFGS(lr=1)
    init: str = "randn"  # DLG code: torch.randn for data and label; survey Alg. 1 line 1
    lbfgs_inner: int = 20  # torch.optim.LBFGS default max_iter, used by DLG's code
    boxed: bool = False  # DLG: unconstrained pixels


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Joint image-and-label reconstruction by L2 gradient matching (DLG)."""
    s = start(model, observed, config)  # DLG has no label_method: it optimises the labels
    model, observed, x0 = s.model, s.observed, s.x0
    (r, b), k = x0.shape[:2], observed.num_classes
    gen = torch.Generator(device="cpu").manual_seed(config.seed + 7)
    y0 = torch.randn((r, b, k), generator=gen, dtype=x0.dtype).to(x0.device)
    matcher = GradientMatcher(model, observed, distance="l2")
    res = optimise_inputs(
        matcher, x0, y0, optimizer="lbfgs", lr=config.lr, iterations=config.iterations,
        boxed=config.boxed, optimise_labels=True, lbfgs_inner=config.lbfgs_inner,
        seed=config.seed, callback=callback, snapshot_every=config.snapshot_every,
        progress=config.progress,
    )  # fmt: skip
    best = int(res.losses.argmin())
    labels = res.y[best].argmax(dim=-1)
    return to_reconstruction(res, labels, {"label_logits": res.y.detach().cpu()})
