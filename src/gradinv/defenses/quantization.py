"""Mixed-precision gradient quantization (Ovi, Dey, Roy & Gangopadhyay, "Mixed precision
quantization to tackle gradient leakage attacks in federated learning", arXiv:2210.13457,
2022; survey ref. [16]) as evaluated by the survey (gia_survey.txt, Sec. IV "Defense
Methods", Fig. 5, Sec. IV-A, Table I).

Each layer's gradient is quantized with a different bit width -- a combination of int8
and int16 -- before it leaves the client; the server, which knows the scheme, dequantizes
(before or after aggregation). The survey reports that attacks fail to match the
quantized gradients while FL accuracy drops by only 0.5-1 point.

Neither paper gives the exact scheme, so ours is stated here (our choice):

* Quantizer: symmetric, per-tensor, linear, round-to-nearest (ties to even, as
  ``torch.round``): ``s = max|g| / (2^(b-1) - 1)``, ``q = clamp(round(g / s), -Q, Q)``
  with ``Q = 2^(b-1) - 1``, stored as int8 (b <= 8) or int16 (b <= 16); the server
  dequantizes ``g_hat = q * s``, so ``|g - g_hat| <= s / 2`` elementwise (up to float
  rounding of the output). An all-zero tensor has ``s = 0``, ``q = 0``, ``g_hat = 0``.
* Bit widths: ``bits`` is cycled over *layers*, default ``(8, 16)``, i.e. int8, int16,
  int8, ... in module order. A layer starts at every parameter tensor with two or more
  dimensions (a conv kernel or a linear weight); 1-D tensors (biases, normalisation
  affine parameters) belong to the layer before them and share its bit width.

What the server sees afterwards: with ``dequantize=True`` (default) the dequantized
gradient ``q * s`` (what the honest server aggregates and an honest-but-curious server
attacks). With ``dequantize=False`` the raw integer codes ``q`` as floats: what an
eavesdropper who intercepts the message sees without knowing the scales and layer
bit widths (the survey's argument for why matching fails, Sec. IV-A).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gradinv.errors import GradInvError

if TYPE_CHECKING:
    from gradinv.defenses.context import ClientContext


@dataclass(frozen=True)
class Config:
    """Mixed-precision quantization defense."""

    bits: tuple[int, ...] = (
        8,
        16,
    )  # ref. [16] via Sec. IV: int8 and int16 mixed; cycled over layers (our choice)
    dequantize: bool = True  # Sec. IV-A: the server dequantizes; False = eavesdropper's view

    def __post_init__(self) -> None:
        bits = (self.bits,) if isinstance(self.bits, int) else tuple(self.bits)
        if not bits or any(not isinstance(b, int) or not 2 <= b <= 16 for b in bits):
            raise GradInvError(
                f"quantization bits must be integers in 2..16 (e.g. (8, 16)), got {self.bits!r}"
            )
        object.__setattr__(self, "bits", bits)


def _int_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16


def quantize(g: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Symmetric per-tensor linear quantization of ``g`` to signed ``bits``-bit codes.

    Returns ``(q, scale)``: integer codes (int8 or int16, same shape and device as ``g``)
    in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and a 0-dim scale of ``g``'s dtype,
    ``max|g| / (2^(b-1)-1)`` (0 for an all-zero tensor). ``g / scale`` is evaluated in
    float64 (float32 on MPS) so the codes are the exact round-to-nearest of it.
    """
    if not 2 <= bits <= 16:
        raise GradInvError(f"quantization bits must lie in 2..16, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    scale = g.detach().abs().amax() / qmax if g.numel() else g.new_zeros(())
    wide = torch.float32 if g.device.type == "mps" else torch.float64
    safe = torch.where(scale > 0, scale, torch.ones_like(scale)).to(wide)
    q = torch.round(g.detach().to(wide) / safe).clamp_(-qmax, qmax).to(_int_dtype(bits))
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """Server-side inverse of :func:`quantize`: ``q * scale`` in the scale's dtype."""
    return q.to(scale.dtype) * scale


def layer_bits(shapes: Sequence[torch.Size], bits: Sequence[int]) -> list[int]:
    """Bit width of every parameter tensor: ``bits`` cycled over layers, where a layer
    starts at each tensor with ``ndim >= 2`` and 1-D tensors join the layer before."""
    out, layer = [], -1
    for i, shape in enumerate(shapes):
        if i == 0 or len(shape) >= 2:
            layer += 1
        out.append(bits[layer % len(bits)])
    return out


def apply(
    gradients: tuple[Tensor, ...],
    config: Config | None = None,
    generator: torch.Generator | None = None,
    context: ClientContext | None = None,
) -> tuple[Tensor, ...]:
    """Quantize every tensor with its layer's bit width, then dequantize (what the server
    sees) or, with ``config.dequantize=False``, return the integer codes as floats.

    ``generator`` and ``context`` are unused (round-to-nearest is deterministic and
    data-free). Shapes, dtypes and
    devices are preserved.
    """
    del generator, context
    config = config or Config()
    gradients = tuple(gradients)
    out = []
    for g, b in zip(gradients, layer_bits([g.shape for g in gradients], config.bits), strict=True):
        q, scale = quantize(g, b)
        out.append(dequantize(q, scale) if config.dequantize else q.to(g.dtype))
    return tuple(out)
