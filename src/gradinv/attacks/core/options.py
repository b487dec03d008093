"""The typed contract between attacks and their engines.

Every attack's frozen ``Config`` extends one of these bases, so an engine reads typed
fields instead of probing with ``getattr``:

* :class:`RunOptions` -- what every attack has: ``seed``, ``device``, ``progress``,
  ``snapshot_every``;
* :class:`PixelOptions` -- attacks that optimise a dummy batch in pixel space
  (survey Algorithm 1): ``iterations``, ``restarts``, ``lr``, ``init``, ``boxed``;
* :class:`LabelOptions` -- attacks that infer the labels before they start
  (``label_method``, survey Algorithm 1 line 2); DLG, which optimises them, does not;
* :class:`GuidedOptions` -- diffusion-guided attacks: a ``prior``, reverse ``steps``, the
  gradient ``distance`` and RLU's auxiliary data;
* :class:`GanOptions` -- GAN-prior attacks: a ``gan``, the ``distance`` and a TV weight.

What a callback receives is fixed in :mod:`gradinv.attacks.core.progress`.

Numbers are checked when a config is built: a negative or non-finite number, or an
iteration count below one, is a one-line :class:`~gradinv.errors.GradInvError`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from gradinv.errors import GradInvError

#: Integer options that count work and must be at least one when set.
COUNTS: frozenset[str] = frozenset(
    {"iterations", "restarts", "steps", "population", "lbfgs_inner", "sampling_steps"}
)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Options of every attack run (all "our choice": the papers do not fix them)."""

    seed: int = 0  # our choice
    device: str | None = None  # None: the model's device
    progress: bool = False  # our choice: quiet in library calls
    snapshot_every: int = 0  # our choice: images in the callback only at the end

    def __post_init__(self) -> None:
        owner = f"{type(self).__module__.rsplit('.', 1)[-1]}.{type(self).__qualname__}"
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            for item in value if isinstance(value, tuple) else (value,):
                _check_number(owner, f.name, item)


def _check_number(owner: str, name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise GradInvError(f"{owner}: {name} must be a finite number, got {value}")
    if name in COUNTS and value < 1:
        raise GradInvError(f"{owner}: {name} must be at least 1, got {value}")
    if value < 0:  # no attack option is signed
        raise GradInvError(f"{owner}: {name} must be >= 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class PixelOptions(RunOptions):
    """A dummy batch optimised in pixel space, ``restarts`` at once (survey Alg. 1)."""

    # no defaults: every attack states its own paper's values, with their source
    iterations: int
    restarts: int
    lr: float
    init: str  # survey Alg. 1 line 1: "randn"
    boxed: bool


@dataclass(frozen=True, kw_only=True)
class LabelOptions:
    """Labels inferred from the gradient before the search (survey Alg. 1 line 2)."""

    label_method: str = "auto"  # iDLG rule for B = 1, label counts for B > 1


@dataclass(frozen=True, kw_only=True)
class GuidedOptions(LabelOptions, RunOptions):
    """A reverse diffusion process of a trained prior steered by gradient matching."""

    prior: str | None = None  # a prior name "<dataset>-<size>" or a folder
    steps: int | None = None  # reverse steps; None: the prior's own schedule
    distance: str = "cosine"  # gradient distance of the matching loss
    label_method: str = "rlu"  # GradInvDiff Sec. 2.1: RLU
    aux_dataset: str | None = None  # RLU's labelled public data (None: no auxiliary data)
    aux_per_class: int = 32  # our choice


@dataclass(frozen=True, kw_only=True)
class GanOptions(LabelOptions, RunOptions):
    """A search through a trained GAN's latent (or weights, or features)."""

    gan: str | None = None  # a GAN name "gan-<dataset>-<size>" or a folder
    distance: str = "cosine"  # "sim" in the GIAS/GGL/GIFD code
    tv: float = 0.0  # weight of a total-variation term on the generated images


__all__ = [
    "COUNTS",
    "GanOptions",
    "GuidedOptions",
    "LabelOptions",
    "PixelOptions",
    "RunOptions",
]
