"""Defenses: pure transforms of what a client sends (gradient level) or of its images
before local training (data level), in one registry.

Gradient-level defenses map a gradient -- ``tuple[Tensor, ...]``, one tensor per trainable
parameter -- to a gradient of the same shapes, dtypes and device. The baselines of the
survey (gia_survey.txt, Sec. IV "Defense Methods", Table I):

* ``dp_gaussian`` / ``dp_laplacian`` -- additive zero-mean noise of a given variance
  (:mod:`gradinv.defenses.noise`),
* ``pruning`` -- zero the smallest-magnitude entries (:mod:`gradinv.defenses.pruning`),
* ``quantization`` -- mixed int8/int16 quantization (:mod:`gradinv.defenses.quantization`),
* ``none`` -- the identity.

and baselines of the shadow-defense paper (shadow_defense.txt, Sec. 2 and Tables 1-2):
``gc`` (gradient clipping, :mod:`~gradinv.defenses.clipping`), ``dp_clip`` (DP with norm
clipping, :mod:`~gradinv.defenses.dp`), ``outpost`` (:mod:`~gradinv.defenses.outpost`),
``soteria`` and ``censor`` (which read the client's model and batch); gradient
sparsification (GS) is ``pruning``. Every gradient defense module has a frozen ``Config``
and ``apply(gradients, config, generator, context=None)``; the defenses that read the
client's model, data or round take them from ``context``, a
:class:`~gradinv.defenses.context.ClientContext`.

Data-level defenses change a client's images before its local training
(shadow_defense.txt, Sec. 4 and Table 4): ``shadow`` (:mod:`gradinv.defenses.shadow`) and
``image_noise`` (:mod:`gradinv.defenses.image_noise`). Each module has a frozen ``Config``
and ``make(config, client, **needs)``, the client's transform
``transform(images, labels, context) -> images``.

``build(name, **options)`` returns a :class:`Defense`, a callable ``defense(grads,
context=None) -> grads`` with ``.name`` and ``.config`` that owns a seeded random generator
(option ``seed``), so it plugs into :func:`gradinv.fl.observe` and the FedAvg loop as is.
``build_data(name, **options)`` returns a :class:`DataDefense`, a callable
``defense(images, labels, context) -> images`` (the ``image_transform`` of
:func:`gradinv.fl.rounds.run_federated`) that keeps one transform per client. Options may be
strings as they come from the command line (``variance="1e-2"``, ``bits="8,16"``,
``dequantize="false"``); :mod:`gradinv.options` parses them to the ``Config`` field types.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import torch
from torch import Tensor

from gradinv import options as _options
from gradinv.defenses import censor, clipping, dp, noise, outpost, pruning, quantization, soteria
from gradinv.defenses.context import ClientContext
from gradinv.errors import GradInvError

Gradients = tuple[Tensor, ...]
Level = Literal["gradient", "data"]
LEVELS: tuple[str, ...] = ("gradient", "data")


@dataclass(frozen=True)
class DefenseSpec:
    """One registered defense.

    Attributes:
        module: dotted path of the module with the defense's ``Config`` and, at the gradient
            level, ``apply(gradients, config, generator, context=None)``; at the data level,
            ``make(config, client, **needs)`` (imported on first use).
        description: one line, for listings and ``--help``.
        level: ``"gradient"`` (transforms what a client sends) or ``"data"`` (transforms the
            client's images before local training).
        fixed: ``Config`` fields set by the name (``dp_gaussian``: ``kind="gaussian"``).
        config_name: name of the options dataclass in ``module``.
        needs: objects :func:`build_data` needs besides options, ``{name: what it is}``
            (``shadow``: ``prior``).
    """

    module: str
    description: str
    level: Level = "gradient"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    config_name: str = "Config"
    needs: Mapping[str, str] = field(default_factory=dict)

    def load(self) -> ModuleType:
        """The defense's module."""
        return importlib.import_module(self.module)

    @property
    def config_class(self) -> type:
        """The frozen dataclass of the defense's options."""
        return getattr(self.load(), self.config_name)


_P = "gradinv.defenses."

#: Every registered defense, gradient level first (``build`` also accepts ``"none"``).
REGISTRY: dict[str, DefenseSpec] = {
    "dp_gaussian": DefenseSpec(
        _P + "noise",
        "add N(0, variance) noise to every gradient entry (Sec. IV, DP-Gaussian)",
        fixed={"kind": "gaussian"},
    ),
    "dp_laplacian": DefenseSpec(
        _P + "noise",
        "add Laplace noise of the given variance to every entry (Sec. IV, DP-Laplacian)",
        fixed={"kind": "laplacian"},
    ),
    "pruning": DefenseSpec(
        _P + "pruning",
        "zero the percent % smallest-magnitude entries per tensor (Sec. IV, DLG's defense)",
    ),
    "quantization": DefenseSpec(
        _P + "quantization",
        "mixed int8/int16 per-layer quantization, dequantized at the server (Sec. IV, ref. [16])",
    ),
    "gc": DefenseSpec(
        _P + "clipping",
        "clip every entry to +-threshold (mode=value) or the update's L2 norm (mode=norm) "
        "(shadow defense, GC)",
    ),
    "dp_clip": DefenseSpec(
        _P + "dp",
        "clip the update to L2 norm clip_norm, add N(0, (noise_multiplier clip_norm)^2) "
        "(Abadi et al. 2016)",
    ),
    "outpost": DefenseSpec(
        _P + "outpost",
        "OUTPOST: with prob. 1/(1 + beta round) prune low-Fisher entries, noise the top ones "
        "by layer variance",
    ),
    "soteria": DefenseSpec(
        _P + "soteria",
        "Soteria: drop the rate fraction of last-FC input features with largest "
        "||r||/||dr/dx|| (Sun et al. 2021)",
    ),
    "censor": DefenseSpec(
        _P + "censor",
        "Censor: the best one-step-loss of `trials` random per-layer orthogonal directions "
        "(Zhang et al. 2025)",
    ),
    "shadow": DefenseSpec(
        _P + "shadow.defense",
        "shadow defense: noise each image where a GAN shadow model, fine-tuned to invert the "
        "client's own update, reconstructs it best (Jiang et al. 2025); needs prior=",
        level="data",
        config_name="ShadowConfig",
        needs={"prior": "the shadow model's GAN: a GanPrior or a name like 'gan-chest_xray-32'"},
    ),
    "image_noise": DefenseSpec(
        _P + "image_noise",
        "add N(0, sigma^2) to every pixel before local training, clamp to [0, 1] "
        "(shadow defense, Table 4 image-level DP)",
        level="data",
    ),
}


def listing(level: str | None = None) -> dict[str, str]:
    """``{name: one-line description}`` of the registered defenses, of one ``level``
    (``"gradient"`` or ``"data"``) or of both (``None``)."""
    if level is not None and level not in LEVELS:
        raise GradInvError(f"unknown defense level {level!r}; choose one of: {', '.join(LEVELS)}")
    return {k: s.description for k, s in REGISTRY.items() if level in (None, s.level)}


#: Gradient-level defenses and what they do (``build`` also accepts ``"none"``).
DEFENSES: dict[str, str] = listing("gradient")
#: Data-level defenses and what they do (``build_data``).
DATA_DEFENSES: dict[str, str] = listing("data")


class Defense:
    """A configured gradient-level defense: ``defense(gradients, context=None) -> gradients``.

    Attributes:
        name: registry name (``"dp_gaussian"``, ..., ``"none"``).
        config: the module's frozen ``Config`` (``None`` for ``"none"``).
        seed: seed of the defense's own random generators, one per device, created on
            first use on that device (CPU and CUDA draw different streams from one seed).
    """

    level = "gradient"

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
        return self._apply(gradients, self.config, generator, context=context)

    def __repr__(self) -> str:
        return f"Defense({self.name!r}, {self.config!r}, seed={self.seed})"


class DataDefense:
    """A configured data-level defense: ``defense(images, labels, context=None) -> images``,
    the images (same shape, in [0, 1]) the client trains on instead of its own; an
    ``image_transform`` for :func:`gradinv.fl.rounds.run_federated`.

    It keeps one transform per client (``context.client``, 0 without a context), made on
    first use by the module's ``make(config, client, **needs)``: the shadow defense keeps
    per-image latents and a shadow model per client. :meth:`for_client` returns it (e.g. a
    :class:`~gradinv.defenses.shadow.ShadowDefense` with its ``history`` and timings).

    Attributes:
        name: registry name (``"shadow"``, ``"image_noise"``).
        config: the module's frozen ``Config`` (its ``seed`` field holds the seed).
    """

    level = "data"

    def __init__(
        self,
        name: str,
        config: Any,
        make: Callable[..., Callable[..., Tensor]],
        needs: Mapping[str, Any] | None = None,
    ):
        self.name = name
        self.config = config
        self._make = make
        self._needs = dict(needs or {})
        self._clients: dict[int, Callable[..., Tensor]] = {}

    @property
    def seed(self) -> int:
        return int(getattr(self.config, "seed", 0))

    def for_client(self, client: int) -> Callable[..., Tensor]:
        """Client ``client``'s transform (made on first use, then kept)."""
        client = int(client)
        if client not in self._clients:
            self._clients[client] = self._make(self.config, client, **self._needs)
        return self._clients[client]

    def reset(self) -> None:
        """Forget every client's transform and its state."""
        self._clients.clear()

    def __call__(self, images: Tensor, labels: Tensor, context: Any = None) -> Tensor:
        """The images the client of ``context`` trains on this round; ``context`` (a
        :class:`~gradinv.defenses.ClientContext`) gives the client, its round and, for the
        shadow defense, the global model."""
        client = 0 if context is None else int(getattr(context, "client", 0))
        return self.for_client(client)(images, labels, context)

    def __repr__(self) -> str:
        return f"DataDefense({self.name!r}, {self.config!r})"


def spec(name: str) -> DefenseSpec:
    """The registry entry of defense ``name`` (case and ``-``/``_`` insensitive)."""
    key = _normalise(name)
    if key not in REGISTRY:
        raise GradInvError(
            f"unknown defense {name!r}; gradient defenses: {', '.join([*DEFENSES, 'none'])}; "
            f"data-level defenses: {', '.join(DATA_DEFENSES)}"
        )
    return REGISTRY[key]


def options(name: str) -> dict[str, Any]:
    """The options ``build(name, ...)`` or ``build_data(name, ...)`` accepts, with their
    default values (``seed`` included; not the ``needs`` such as the shadow's ``prior``)."""
    if _normalise(name) == "none":
        return {"seed": 0}
    s = spec(name)
    return {**_options.defaults(s.config_class, exclude=(*s.fixed, "seed")), "seed": 0}


def build(name: str, **opts: Any) -> Defense:
    """Build gradient-level defense ``name`` (a key of :data:`DEFENSES`, or ``"none"``) with
    ``opts`` overriding its ``Config`` defaults; string values are parsed to the field types.

    Example: ``build("dp_gaussian", variance="1e-2", seed="3")``.
    """
    key = _normalise(name)
    owner = f"defense {key!r}"
    if key == "none":
        seed = _options.parse_value(opts.pop("seed", 0), int, "seed", owner)
        if opts:
            raise GradInvError(f"defense 'none' takes no options, got {sorted(opts)}")
        return Defense("none", None, None, seed)
    s = _level(key, "gradient")
    cls = s.config_class
    values = _options.parse_overrides(cls, opts, owner, exclude=tuple(s.fixed), extra={"seed": int})
    seed = values.pop("seed", 0)
    config = _options.build(cls, values, owner, **s.fixed)
    return Defense(key, config, s.load().apply, seed)


def build_data(name: str, **opts: Any) -> DataDefense:
    """Build data-level defense ``name`` (a key of :data:`DATA_DEFENSES`) with ``opts``
    overriding its ``Config`` defaults (string values are parsed to the field types;
    ``seed`` goes into the config) and passing the objects it ``needs``.

    Examples: ``build_data("image_noise", sigma="0.3", seed=2)``;
    ``build_data("shadow", prior="gan-chest_xray-32", latent_epochs="80", schedule="fixed")``
    (``prior``: a :class:`~gradinv.priors.gan.GanPrior` or the name of one).
    """
    key = _normalise(name)
    owner = f"defense {key!r}"
    s = _level(key, "data")
    missing = [f"{n}= ({what})" for n, what in s.needs.items() if n not in opts]
    if missing:
        raise GradInvError(f"{owner} needs {'; '.join(missing)}")
    needs = {n: opts.pop(n) for n in s.needs}
    config = _options.build(s.config_class, opts, owner, **s.fixed)
    return DataDefense(key, config, s.load().make, needs)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def _level(key: str, level: str) -> DefenseSpec:
    s = spec(key)
    if s.level != level:
        how = "build_data" if s.level == "data" else "build"
        raise GradInvError(
            f"defense {key!r} is a {s.level}-level defense; build it with "
            f"gradinv.defenses.{how}({key!r}, ...)"
        )
    return s


__all__ = [
    "DATA_DEFENSES", "DEFENSES", "LEVELS", "REGISTRY",
    "ClientContext", "DataDefense", "Defense", "DefenseSpec",
    "build", "build_data", "listing", "options", "spec",
    "censor", "clipping", "dp", "noise", "outpost", "pruning", "quantization", "soteria",
]  # fmt: skip
