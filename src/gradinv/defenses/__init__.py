"""Gradient-level defenses: pure transforms of what a client sends.

Every defense maps a gradient -- ``tuple[Tensor, ...]``, one tensor per trainable
parameter -- to a gradient of the same shapes, dtypes and device. The baselines of the
survey (gia_survey.txt, Sec. IV "Defense Methods", Table I):

* ``dp_gaussian`` / ``dp_laplacian`` -- additive zero-mean noise of a given variance
  (:mod:`gradinv.defenses.noise`),
* ``pruning`` -- zero the smallest-magnitude entries (:mod:`gradinv.defenses.pruning`),
* ``quantization`` -- mixed int8/int16 quantization (:mod:`gradinv.defenses.quantization`),
* ``none`` -- the identity.

and baselines of the shadow-defense paper (shadow_defense.txt, Sec. 2 and Tables 1-2):
``gc`` (gradient clipping, :mod:`~gradinv.defenses.clipping`), ``dp_clip`` (DP with norm
clipping, :mod:`~gradinv.defenses.dp`), ``outpost`` (:mod:`~gradinv.defenses.outpost`), ``soteria`` and ``censor`` (which read the
client's model and batch);
gradient sparsification (GS) is ``pruning``. Defenses that read the client's model, data or
round take a :class:`~gradinv.defenses.context.ClientContext` (``defense(grads, context)``).

``build(name, **options)`` returns a :class:`Defense`, a callable ``defense(grads) ->
grads`` with ``.name`` and ``.config`` that owns a seeded random generator (option
``seed``), so it plugs into :func:`gradinv.fl.observe` and the FedAvg loop as is.
Options may be strings as they come from the command line (``variance="1e-2"``,
``bits="8,16"``, ``dequantize="false"``); they are parsed to the ``Config`` field types.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradinv.defenses import censor, clipping, dp, noise, outpost, pruning, quantization, soteria
from gradinv.defenses.context import ClientContext
from gradinv.errors import GradInvError

Gradients = tuple[Tensor, ...]

#: Registered defenses and what they do (``build`` also accepts ``"none"``).
DEFENSES: dict[str, str] = {
    "dp_gaussian": "add N(0, variance) noise to every gradient entry (Sec. IV, DP-Gaussian)",
    "dp_laplacian": "add Laplace noise of the given variance to every entry (Sec. IV, DP-Laplacian)",
    "pruning": "zero the percent % smallest-magnitude entries per tensor (Sec. IV, DLG's defense)",
    "quantization": "mixed int8/int16 per-layer quantization, dequantized at the server (Sec. IV, ref. [16])",
    "gc": "clip every entry to +-threshold (mode=value) or the update's L2 norm (mode=norm) (shadow defense, GC)",
    "dp_clip": "clip the update to L2 norm clip_norm, add N(0, (noise_multiplier clip_norm)^2) (Abadi et al. 2016)",
    "outpost": "OUTPOST: with prob. 1/(1 + beta round) prune low-Fisher entries, noise the top ones by layer variance",
    "soteria": "Soteria: drop the rate fraction of last-FC input features with largest ||r||/||dr/dx|| (Sun et al. 2021)",
    "censor": "Censor: the best one-step-loss of `trials` random per-layer orthogonal directions (Zhang et al. 2025)",
}

# name -> (module with Config/apply, options fixed by the name)
_SPECS: dict[str, tuple[Any, dict[str, Any]]] = {
    "dp_gaussian": (noise, {"kind": "gaussian"}),
    "dp_laplacian": (noise, {"kind": "laplacian"}),
    "pruning": (pruning, {}),
    "quantization": (quantization, {}),
    "gc": (clipping, {}),
    "dp_clip": (dp, {}),
    "outpost": (outpost, {}),
    "soteria": (soteria, {}),
    "censor": (censor, {}),
}


class Defense:
    """A configured defense: ``defense(gradients) -> gradients``.

    Attributes:
        name: registry name (``"dp_gaussian"``, ..., ``"none"``).
        config: the module's frozen ``Config`` (``None`` for ``"none"``).
        seed: seed of the defense's own random generators, one per device, created on
            first use on that device (CPU and CUDA draw different streams from one seed).
    """

    def __init__(
        self,
        name: str,
        config: Any = None,
        apply: Callable[..., Gradients] | None = None,
        seed: int = 0,
    ):
        self.name = name
        self.config = config
        self.seed = int(seed)
        self._apply = apply
        self._takes_context = apply is not None and "context" in inspect.signature(apply).parameters
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """This defense's generator on ``device`` (seeded with ``seed`` on first use)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def reset(self) -> None:
        """Restart the random stream(s) from ``seed``."""
        self._generators.clear()

    def __call__(self, gradients: Gradients, context: ClientContext | None = None) -> Gradients:
        """The defended gradients; ``context`` reaches the defenses that read the client's
        model, data or round (the others ignore it)."""
        gradients = tuple(gradients)
        if self._apply is None or not gradients:
            return gradients
        generator = self.generator(gradients[0].device)
        if self._takes_context:
            return self._apply(gradients, self.config, generator, context=context)
        return self._apply(gradients, self.config, generator)

    def __repr__(self) -> str:
        return f"Defense({self.name!r}, {self.config!r}, seed={self.seed})"


def options(name: str) -> dict[str, Any]:
    """The options ``build(name, ...)`` accepts, with their default values."""
    module, fixed = _spec(name)
    defaults = {f.name: f.default for f in dataclasses.fields(module.Config) if f.name not in fixed}
    return {**defaults, "seed": 0}


def build(name: str, **opts: Any) -> Defense:
    """Build defense ``name`` (a key of :data:`DEFENSES`, or ``"none"``) with ``opts``
    overriding its ``Config`` defaults; string values are parsed to the field types.

    Example: ``build("dp_gaussian", variance="1e-2", seed="3")``.
    """
    key = _normalise(name)
    seed = _coerce(opts.pop("seed", 0), int, "seed", key)
    if key == "none":
        if opts:
            raise GradInvError(f"defense 'none' takes no options, got {sorted(opts)}")
        return Defense("none", None, None, seed)
    module, fixed = _spec(key)
    hints = typing.get_type_hints(module.Config)
    allowed = [f.name for f in dataclasses.fields(module.Config) if f.name not in fixed]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise GradInvError(
            f"unknown option(s) {unknown} for defense {key!r}; valid options: "
            f"{', '.join(allowed + ['seed'])}"
        )
    values = {k: _coerce(v, hints[k], k, key) for k, v in opts.items()}
    return Defense(key, module.Config(**fixed, **values), module.apply, seed)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def _spec(name: str) -> tuple[Any, dict[str, Any]]:
    key = _normalise(name)
    if key not in _SPECS:
        raise GradInvError(
            f"unknown defense {name!r}; choose one of: {', '.join([*DEFENSES, 'none'])}"
        )
    return _SPECS[key]


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(value: Any, typ: Any, field: str, defense: str) -> Any:
    """Parse ``value`` (possibly a CLI string) to ``typ``: bool, int, float, str or
    ``tuple[int, ...]`` (``"8,16"``, ``"8 16"`` or ``"(8, 16)"``)."""
    bad = GradInvError(
        f"option {field}={value!r} of defense {defense!r} is not a valid {_type_name(typ)}"
    )
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise bad
        if typ is int:
            if isinstance(value, bool):
                raise bad
            number = float(value) if isinstance(value, str) and "." in value else value
            if isinstance(number, float) and not number.is_integer():
                raise bad
            return int(number)
        if typ is float:
            if isinstance(value, bool):
                raise bad
            return float(value)
        if typ is str:
            return str(value).strip().lower()
        if typing.get_origin(typ) is tuple:
            (item,) = [a for a in typing.get_args(typ) if a is not Ellipsis]
            if isinstance(value, str):
                parts = value.strip().strip("()[]").replace(",", " ").split()
            elif isinstance(value, (list, tuple)):
                parts = list(value)
            else:
                parts = [value]
            return tuple(_coerce(p, item, field, defense) for p in parts)
    except (TypeError, ValueError, GradInvError) as err:
        raise bad from err
    return value


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")


__all__ = [
    "DEFENSES", "ClientContext", "Defense", "build", "options",
    "censor", "clipping", "dp", "noise", "outpost", "pruning", "quantization", "soteria",
]  # fmt: skip
