"""Gradient matching: every optimisation attack minimises survey eq. (4),

    min_x  Dist( dL(F(W, x), y)/dW , dW_observed ) + Reg(x, y),

over a dummy batch ``x``.

* :mod:`~gradinv.matching.distances` -- the distances ``Dist`` (L2, cosine, un-squared
  norm; per-layer weights) and their plain-autograd reference;
* :mod:`~gradinv.matching.kernels` -- the speed kernels: the fused distance node, the
  constant-weight convolution, the stateless model copy and the ``vmap`` over restarts;
* :mod:`~gradinv.matching.matcher` -- :class:`GradientMatcher`, the objective and its
  input-gradient for ``R`` restarts at once.

The client's training loss lives in :mod:`gradinv.losses` (the FL simulation uses it too).
"""

from gradinv.matching.distances import (
    DISTANCES,
    distance,
    distance_reference,
    layer_sums,
    layer_weight_tensor,
)
from gradinv.matching.kernels import CONST_WEIGHT_CONV_MIN, stateless_copy, trainable
from gradinv.matching.matcher import GradientMatcher, MatchResult, Regulariser

__all__ = [
    "DISTANCES", "distance", "distance_reference", "layer_sums", "layer_weight_tensor",
    "CONST_WEIGHT_CONV_MIN", "stateless_copy", "trainable",
    "GradientMatcher", "MatchResult", "Regulariser",
]  # fmt: skip
