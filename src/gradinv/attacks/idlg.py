"""iDLG: Improved Deep Leakage from Gradients (Zhao, Mopuri and Bilen, arXiv 2001.02610, 2020).

iDLG first reads the ground-truth label off the sign of the last layer's gradient
(:func:`gradinv.attacks.core.labels.idlg_label`; survey Algorithm 1, line 2) and then runs DLG's L2
gradient matching (survey eq. 5) over the image only, with L-BFGS. For batches we use the
batch label-count rule of :mod:`gradinv.attacks.core.labels` (iDLG itself is defined for B = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradinv.attacks.core.options import LabelOptions, PixelOptions
from gradinv.attacks.core.pixel import optimise_inputs, start, to_reconstruction
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.matching import GradientMatcher


@dataclass(frozen=True)
class Config(LabelOptions, PixelOptions):
    iterations: int = 300  # iDLG code: 300 L-BFGS optimizer.step() calls
    restarts: int = 1  # iDLG: one random initialisation
    lr: float = 1.0  # iDLG code: torch.optim.LBFGS(lr=1)
    init: str = "randn"  # iDLG code: torch.randn; survey Alg. 1 line 1
    lbfgs_inner: int = 20  # torch.optim.LBFGS default max_iter, as in iDLG's code
    boxed: bool = False  # iDLG: unconstrained pixels
    label_method: str = "auto"  # iDLG rule for B=1 (Sec. 3.1), count rule for batches


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """Label from the gradient, then L2 gradient matching over the image (iDLG)."""
    s = start(model, observed, config)
    model, observed, x0, labels = s.model, s.observed, s.x0, s.labels
    r, b = x0.shape[:2]
    matcher = GradientMatcher(model, observed, distance="l2")
    res = optimise_inputs(
        matcher, x0, labels.expand(r, b), optimizer="lbfgs", lr=config.lr,
        iterations=config.iterations, boxed=config.boxed, lbfgs_inner=config.lbfgs_inner,
        seed=config.seed, callback=callback, snapshot_every=config.snapshot_every,
        progress=config.progress,
    )  # fmt: skip
    return to_reconstruction(res, labels)
