"""Observe -> attack -> evaluate: the one path from a :class:`~gradinv.case.Case` to scores.

The command line (``gradinv attack``), the paper drivers (:mod:`gradinv.experiments`) and
the tests all run an attack through these functions:

* :func:`observe` -- what the server sees of the case's client: its gradient, through an
  optional defense, checked to fit the model and to be finite;
* :func:`configure` -- an attack's ``Config``: the paper's defaults with overrides (strings
  from the command line are parsed), built once and checked before any work;
* :func:`attack` -- the attack's ``run`` on what was observed;
* :func:`evaluate` -- the reconstruction aligned to the private batch (Hungarian matching)
  and scored: :class:`Scores`;
* :func:`run` -- the four in a row, the attack timed: :class:`AttackRun`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gradinv import attacks, defenses, fl, metrics
from gradinv.attacks.core.progress import Callback
from gradinv.case import Case, Observed, Reconstruction
from gradinv.errors import GradInvError
from gradinv.utils import seed_everything

#: A client-side transform of the gradient (a :func:`gradinv.defenses.build` result or any
#: callable ``grads -> grads``).
GradientTransform = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]

_ATTACK_MODULES = "gradinv.attacks."


def observe(
    case: Case,
    defense: str | GradientTransform | None = None,
    oracle_labels: bool = False,
    options: Mapping[str, Any] | None = None,
) -> Observed:
    """The gradient ``case``'s client shares, through ``defense`` (a registry name built
    with ``options``, a callable, or ``None``), with the true labels when
    ``oracle_labels``; a :class:`GradInvError` if it does not fit the model or is not
    finite."""
    if isinstance(defense, str):
        defense = defenses.build(defense, **dict(options or {}))
    elif options:
        raise GradInvError("defense options were given without a defense name")
    observed = fl.observe(case, defense, oracle_labels=oracle_labels)
    observed.check_against(case.model)
    return observed


def configure(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The ``Config`` of attack ``name``: its paper defaults with ``overrides`` (strings
    parsed to the field types); an unknown attack or option is a :class:`GradInvError`."""
    return attacks.make_config(name, **dict(overrides or {}))


def attack_name(config: Any) -> str:
    """The registry name of the attack whose ``Config`` ``config`` is."""
    module = type(config).__module__
    name = module.removeprefix(_ATTACK_MODULES)
    if module.startswith(_ATTACK_MODULES) and name in attacks.NAMES:
        if attacks.get(name).Config is type(config):
            return name
    raise GradInvError(f"{type(config).__qualname__} is not the Config of a registered attack")


def attack(
    name_or_config: str | Any,
    model: nn.Module,
    observed: Observed,
    callback: Callback | None = None,
) -> Reconstruction:
    """Run an attack, given by name (paper defaults) or by its ``Config``, on ``observed``."""
    if isinstance(name_or_config, str):
        name, config = name_or_config, configure(name_or_config)
    else:
        name, config = attack_name(name_or_config), name_or_config
    return attacks.get(name).run(model, observed, config, callback=callback)


@dataclass(frozen=True)
class Scores:
    """A reconstruction scored against the private batch (means over the batch).

    Attributes:
        mse, psnr, ssim: as :mod:`gradinv.metrics` computes them, pixels in ``[0, 1]``.
        lpips: ``None`` when not computed (``lpips_net=None``).
        label_accuracy: fraction of the true labels recovered, as multisets (order-free,
            like iDLG); ``None`` when the attack returned no labels for the batch.
        images: the reconstruction, ordered to align with ``case.images`` when matched,
            clamped to ``[0, 1]``, on CPU.
    """

    mse: float
    psnr: float
    ssim: float
    lpips: float | None
    label_accuracy: float | None
    images: Tensor

    def metrics(self) -> dict[str, float]:
        """``mse``, ``psnr``, ``ssim`` and (when computed) ``lpips``, as
        :func:`gradinv.metrics.evaluate` returns them."""
        out = {"mse": self.mse, "psnr": self.psnr, "ssim": self.ssim}
        if self.lpips is not None:
            out["lpips"] = self.lpips
        return out


def evaluate(
    rec: Reconstruction, case: Case, lpips_net: str | None = "alex", match: bool = True
) -> Scores:
    """Score ``rec`` against ``case.images`` on CPU. With ``match`` each original gets its
    best-matching reconstruction (extra reconstructions are dropped), else they must pair
    up in order."""
    truth = case.images.detach().cpu()
    images = rec.images.detach().float().cpu()
    fits = images.ndim == 4 and images.shape[1:] == truth.shape[1:]
    if not fits or len(images) < len(truth) or (not match and len(images) != len(truth)):
        raise GradInvError(
            f"the attack returned images of shape {tuple(images.shape)}, expected "
            f"{tuple(truth.shape)}"
        )
    if match:
        images = images[metrics.match_order(images, truth)]
    images = images.clamp(0, 1)
    values = metrics.evaluate(images, truth, lpips_net=lpips_net, match=False)
    return Scores(
        mse=values["mse"],
        psnr=values["psnr"],
        ssim=values["ssim"],
        lpips=values.get("lpips"),
        label_accuracy=label_accuracy(rec.labels, case.labels),
        images=images,
    )


def label_accuracy(recovered: Tensor | None, true: Tensor) -> float | None:
    """Fraction of the ``true`` labels among the ``recovered`` ones, as multisets;
    ``None`` when nothing or a different number of labels was recovered."""
    if recovered is None or recovered.numel() != true.numel():
        return None
    got = Counter(int(v) for v in recovered.reshape(-1).tolist())
    want = Counter(int(v) for v in true.reshape(-1).tolist())
    return sum((got & want).values()) / true.numel()


@dataclass
class AttackRun:
    """One attack on one case: the reconstruction, its scores and the attack's wall time."""

    attack: str
    defense: str
    reconstruction: Reconstruction
    scores: Scores
    seconds: float

    @property
    def metrics(self) -> dict[str, float]:
        """``mse``, ``psnr``, ``ssim`` (and ``lpips``): :meth:`Scores.metrics`."""
        return self.scores.metrics()

    def row(self, **extra: Any) -> dict[str, Any]:
        """A flat table row."""
        return {
            "attack": self.attack,
            "defense": self.defense,
            **extra,
            **self.metrics,
            "seconds": self.seconds,
        }


def run(
    case: Case,
    attack_spec: str | Any,
    defense: str | GradientTransform | None = "none",
    *,
    defense_options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    oracle_labels: bool = False,
    callback: Callback | None = None,
    lpips_net: str | None = "alex",
    match: bool = True,
    seed: int | None = None,
) -> AttackRun:
    """Observe ``case`` through ``defense``, run the attack (a name with ``overrides``, or
    a ``Config``) on it and score the result; ``seed`` reseeds the global generators just
    before the attack starts."""
    if isinstance(attack_spec, str):
        label, config = attack_spec, configure(attack_spec, overrides)
    elif overrides:
        raise GradInvError("give the attack either a Config or overrides, not both")
    else:
        label, config = attack_name(attack_spec), attack_spec
    observed = observe(case, defense, oracle_labels, defense_options)
    if seed is not None:
        seed_everything(seed)
    start = time.perf_counter()
    rec = attack(config, case.model, observed, callback)
    seconds = time.perf_counter() - start
    scores = evaluate(rec, case, lpips_net=lpips_net, match=match)
    return AttackRun(label, defense_label(defense, defense_options), rec, scores, seconds)


def defense_label(
    defense: str | GradientTransform | None, options: Mapping[str, Any] | None = None
) -> str:
    """``"none"``, ``"pruning"`` or ``"dp_gaussian(variance=0.01)"``: a table's name of it."""
    if defense is None:
        return "none"
    name = defense if isinstance(defense, str) else getattr(defense, "name", type(defense).__name__)
    if not options:
        return name
    return f"{name}({','.join(f'{k}={v}' for k, v in options.items())})"


__all__ = [
    "AttackRun",
    "Callback",
    "GradientTransform",
    "Scores",
    "attack",
    "attack_name",
    "configure",
    "defense_label",
    "evaluate",
    "label_accuracy",
    "observe",
    "run",
]
