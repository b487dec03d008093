"""Cells and records: what the engine computes, and what it keeps.

A :class:`Cell` is one unit of an experiment (one attack on one case under one defense,
one federation, one RV estimate, one prior training): a frozen, hashable, JSON-able spec
naming the pure function that computes it. ``cell.key`` is the hash the run store files
its :class:`Record` under. A cell function has the signature ``fn(cell) -> Result``;
the engine adds timing, device, library versions and the git commit.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from gradinv.errors import GradInvError

#: Hex characters of ``sha256(canonical spec)`` kept as a cell's key (80 bits).
KEY_LENGTH = 20


class FrozenDict(Mapping[str, Any]):
    """An immutable, hashable mapping with sorted string keys (a cell's settings)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenDict({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._items,))


def freeze(value: Any, where: str = "settings") -> Any:
    """The canonical, hashable form of a JSON value: mappings become :class:`FrozenDict`
    (string keys, sorted), lists and tuples become tuples, NumPy scalars Python scalars.
    Anything else (a path, an array, a NaN) is a :class:`GradInvError` naming ``where``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GradInvError(f"cell {where} is {value}: settings must be finite numbers")
        return value
    if isinstance(value, Mapping):
        for k in value:
            if not isinstance(k, str):
                raise GradInvError(f"cell {where} has a key {k!r}: setting names must be str")
        return FrozenDict({k: freeze(v, f"{where}.{k}") for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise GradInvError(
        f"cell {where} is a {type(value).__name__}: settings must be JSON values "
        "(str, int, float, bool, None, lists and mappings of them)"
    )


def thaw(value: Any) -> Any:
    """The plain JSON form of a frozen value: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII: the same spec always gives the same text."""
    return json.dumps(
        thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


@dataclass(frozen=True)
class Cell:
    """One unit of an experiment: which paper, what kind of cell, the pure function that
    computes it (``"package.module:function"``, importable in a worker process), its
    settings (JSON values, canonicalised) and its seed."""

    paper: str
    kind: str  # "attack", "federation", "rv", "prior", ...
    function: str
    settings: Mapping[str, Any] = field(default_factory=FrozenDict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("paper", "kind", "function"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise GradInvError(f"cell {name} must be a non-empty string")
        module, _, func = self.function.partition(":")
        if not module or not func.isidentifier():
            raise GradInvError(
                f"cell function {self.function!r} must read 'package.module:function'"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise GradInvError(f"cell seed must be an int, not {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.settings, Mapping):
            raise GradInvError("cell settings must be a mapping of names to JSON values")
        object.__setattr__(self, "settings", freeze(self.settings))

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON (what the store keeps and the key hashes)."""
        return {
            "paper": self.paper,
            "kind": self.kind,
            "function": self.function,
            "settings": thaw(self.settings),
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> Cell:
        """The cell of :meth:`to_json`'s output."""
        return cls(spec["paper"], spec["kind"], spec["function"], spec["settings"], spec["seed"])

    @cached_property
    def key(self) -> str:
        """A stable hash of the spec: the first characters of its canonical JSON's SHA-256."""
        return hashlib.sha256(canonical_json(self.to_json()).encode()).hexdigest()[:KEY_LENGTH]

    def resolve(self) -> Callable[[Cell], Result | Mapping[str, Any]]:
        """Import the cell function."""
        module, _, name = self.function.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise GradInvError(f"cannot import cell function {self.function!r}: {exc}") from None
        if not callable(fn):
            raise GradInvError(f"cell function {self.function!r} is not callable")
        return fn

    def label(self) -> str:
        """Short human-readable name: ``paper/kind key (function)``."""
        return f"{self.paper}/{self.kind} {self.key} ({self.function})"


def jsonable(value: Any, where: str = "metrics") -> Any:
    """A metric value as JSON (NumPy and 0-d tensor scalars become numbers; NaN and
    infinities are kept). Arrays belong in ``Result.arrays``: a :class:`GradInvError`."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise GradInvError(
        f"{where} is a {type(value).__name__}: metrics must be JSON values; "
        "put arrays in Result.arrays"
    )


@dataclass(frozen=True)
class Result:
    """What a cell function returns: JSON-able metrics and optional named arrays (a
    reconstruction, a curve); ``device`` names where it ran, if the function knows;
    ``timings`` (seconds) are wall-clock measurements a cell makes of parts of its work
    (e.g. one step of an attack): kept beside the record's own ``seconds``, never among
    the metrics, so a recomputed cell still gives the same record."""

    metrics: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    device: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Record:
    """A computed cell: its spec, metrics and arrays, plus where, when and with what it
    ran. Arrays of a stored record load on first access. Compare with :meth:`same_as`."""

    cell: Cell
    metrics: dict[str, Any]
    seconds: float
    device: str
    host: str
    versions: dict[str, str]  # python, torch, numpy, gradinv
    commit: str | None  # short git commit of the code, None outside a checkout
    dirty: bool | None  # tracked files changed since that commit
    finished: str  # UTC, ISO 8601
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)  # Result.timings, seconds

    @property
    def key(self) -> str:
        return self.cell.key

    def to_json(self) -> dict[str, Any]:
        """Everything but the arrays' contents (their names are listed); ``timings`` only
        when the cell measured any."""
        out = {
            "key": self.key,
            "cell": self.cell.to_json(),
            "metrics": self.metrics,
            "arrays": sorted(self.arrays),
            "seconds": self.seconds,
            "device": self.device,
            "host": self.host,
            "versions": self.versions,
            "commit": self.commit,
            "dirty": self.dirty,
            "finished": self.finished,
        }
        if self.timings:
            out["timings"] = self.timings
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Record:
        return cls(
            cell=Cell.from_json(data["cell"]),
            metrics=dict(data["metrics"]),
            seconds=float(data["seconds"]),
            device=str(data["device"]),
            host=str(data.get("host", "")),
            versions=dict(data.get("versions", {})),
            commit=data.get("commit"),
            dirty=data.get("dirty"),
            finished=str(data["finished"]),
            arrays=arrays,
            timings={str(k): float(v) for k, v in data.get("timings", {}).items()},
        )

    def same_as(self, other: Record) -> bool:
        """Same cell, metrics (NaN equals NaN) and arrays; timings (``seconds``,
        ``timings``) and provenance aside."""
        if self.cell != other.cell or _dump(self.metrics) != _dump(other.metrics):
            return False
        if set(self.arrays) != set(other.arrays):
            return False
        return all(_array_equal(self.arrays[k], other.arrays[k]) for k in self.arrays)


def _dump(metrics: Mapping[str, Any]) -> str:
    return json.dumps(metrics, sort_keys=True, allow_nan=True)


def _array_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan_ok = np.issubdtype(a.dtype, np.inexact)
    return bool(np.array_equal(a, b, equal_nan=nan_ok))
