"""CPL: Client Privacy Leakage (Wei, Liu, Loper, Chow, Gursoy, Truex and Wu, ESORICS 2020,
"A Framework for Evaluating Gradient Leakage Attacks in Federated Learning").

CPL keeps DLG's L2 gradient matching and adds a label-based regulariser
``alpha ||F(x, W) - y||^2`` that pulls the model's prediction on the dummy batch towards the
(inferred) labels, which stabilises the optimisation (survey eq. 7). The labels come from
the gradient (survey Algorithm 1 line 2), the image from a *patterned* random seed (a small
random tile repeated over the image, Wei et al.'s best initialisation), optimised with
L-BFGS. Implements survey eqs. (4) and (7). Values the survey leaves open follow
breaching's ``wei.yaml`` configuration of this attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from gradinv.attacks.core.options import LabelOptions, PixelOptions
from gradinv.attacks.core.pixel import optimise_inputs, start, to_reconstruction
from gradinv.attacks.core.progress import Callback
from gradinv.case import Observed, Reconstruction
from gradinv.matching import GradientMatcher
from gradinv.regularisers import output_label


@dataclass(frozen=True)
class Config(LabelOptions, PixelOptions):
    iterations: int = 300  # breaching wei.yaml: 300 L-BFGS steps
    restarts: int = 1  # Wei et al.: a single seed
    lr: float = 1.0  # breaching wei.yaml: L-BFGS step size 1
    init: str = "patterned-16"  # Wei et al. patterned random seed; breaching wei.yaml
    alpha: float = 1.0  # survey eq. 7 weight; breaching wei.yaml task_regularization 1.0
    lbfgs_inner: int = 20  # torch.optim.LBFGS default max_iter
    boxed: bool = True  # breaching wei.yaml: boxed
    label_method: str = "auto"  # iDLG rule for B=1, counts for B>1


def run(
    model: nn.Module,
    observed: Observed,
    config: Config = Config(),
    callback: Callback | None = None,
) -> Reconstruction:
    """L2 gradient matching with CPL's label regulariser (survey eq. 7)."""
    s = start(model, observed, config)
    model, observed, x0, labels = s.model, s.observed, s.x0, s.labels
    r, b = x0.shape[:2]
    regs = [(config.alpha, partial(output_label, y=labels))] if config.alpha > 0 else []
    matcher = GradientMatcher(model, observed, distance="l2", regularisers=regs)
    res = optimise_inputs(
        matcher, x0, labels.expand(r, b), optimizer="lbfgs", lr=config.lr,
        iterations=config.iterations, boxed=config.boxed, lbfgs_inner=config.lbfgs_inner,
        seed=config.seed, callback=callback, snapshot_every=config.snapshot_every,
        progress=config.progress,
    )  # fmt: skip
    return to_reconstruction(res, labels)
