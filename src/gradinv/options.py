"""One parser for every ``key=value`` override: attacks, defenses and profiles.

Values arrive as Python objects (a notebook, a YAML profile) or as strings (the command
line); :func:`parse_value` turns either into the type a frozen dataclass field declares:
``bool`` (``true/false/1/0/yes/no/on/off``), ``int`` (``"1e3"`` allowed when integral),
``float``, ``str``, ``X | None`` (``"none"``, ``"null"`` or ``""`` give ``None``) and
tuples (``tuple[int, ...]`` from ``"8,16"``, ``"8 16"`` or ``"(8, 16)"``; fixed-length
``tuple[int, float]`` too) and nested frozen dataclasses (an instance, or a mapping of
its options). :func:`build` checks the keys against the dataclass's fields and names the
unknown ones, so a misspelt option is a one-line error, never ignored.

A nested dataclass field declared with ``metadata=INLINE`` also takes its own fields as
top-level options (``schedule="fixed"`` for ``noise: NoiseConfig = field(...,
metadata=INLINE)``), as long as the outer dataclass has no field of that name; :func:`build`
puts them back into the nested config. :func:`defaults` lists every option with its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gradinv.errors import GradInvError

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NONE = frozenset({"none", "null", ""})

#: ``dataclasses.field(metadata=INLINE)`` on a nested dataclass field: its fields are
#: options of the outer dataclass too (module docstring).
INLINE: Mapping[str, Any] = MappingProxyType({"inline": True})


def type_name(hint: Any) -> str:
    """A short readable name of a type hint (``int``, ``tuple[int, ...]``, ``str | None``)."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def parse_value(value: Any, hint: Any, field: str, owner: str) -> Any:
    """``value`` converted to the type ``hint``; a :class:`GradInvError` naming ``field`` of
    ``owner`` (e.g. ``"attack 'ig'"``) when it cannot be. A nested dataclass ``hint``
    takes an instance as is or a mapping of its options (built with :func:`build`)."""
    if _is_dataclass_type(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return build(hint, value, f"{owner} (option {field})")
        raise GradInvError(
            f"option {field}={value!r} of {owner} is not a valid {type_name(hint)} "
            "(give an instance or a mapping of its options)"
        )
    try:
        return _parse(value, hint)
    except (TypeError, ValueError):
        raise GradInvError(
            f"option {field}={value!r} of {owner} is not a valid {type_name(hint)}"
        ) from None


def _parse(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        ):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(value, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is tuple:
        return _parse_tuple(value, args)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(value)
    if hint is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value.strip()
    return value  # Any, callables, tensors: passed through as given


def _parse_tuple(value: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if isinstance(value, str):
        parts: list[Any] = value.strip().strip("()[]").replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_parse(p, args[0]) for p in parts)
    if not args:
        return tuple(parts)
    if len(parts) != len(args):
        raise ValueError(value)
    return tuple(_parse(p, a) for p, a in zip(parts, args, strict=True))


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _inline_fields(cls: type, hints: Mapping[str, Any]) -> list[tuple[str, type]]:
    """``(name, nested dataclass)`` of the fields of ``cls`` marked :data:`INLINE`."""
    return [
        (f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.metadata.get("inline") and _is_dataclass_type(hints[f.name])
    ]


def option_hints(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{option: type hint}`` that :func:`build` accepts for ``cls``: its fields (less
    ``exclude``), then the fields of its :data:`INLINE` nested dataclasses (recursively) that
    no outer field shadows."""
    hints = field_hints(cls)
    out = {k: v for k, v in hints.items() if k not in exclude}
    for name, sub in _inline_fields(cls, hints):
        if name in exclude:
            continue
        for key, hint in option_hints(sub).items():
            if key not in hints:
                out.setdefault(key, hint)
    return out


def defaults(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{option: default}`` for every option of :func:`option_hints` (a required field's
    default is ``dataclasses.MISSING``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = dataclasses.MISSING
    hints = field_hints(cls)
    for name, sub in _inline_fields(cls, hints):
        if name in exclude:
            continue
        for key, value in defaults(sub).items():
            if key not in hints:
                out.setdefault(key, value)
    return out


def field_hints(cls: type) -> dict[str, Any]:
    """``{field name: resolved type hint}`` of dataclass ``cls``, the fields ``cls`` itself
    declares first, then those of its bases (what a reader looks for first in a listing)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    ordered = [n for klass in cls.__mro__ for n in vars(klass).get("__annotations__", {})]
    names = sorted(names, key=lambda n: ordered.index(n) if n in ordered else len(ordered))
    return {n: hints.get(n) for n in names}


def parse_overrides(
    cls: type,
    overrides: Mapping[str, Any],
    owner: str,
    exclude: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``overrides`` checked against the options of dataclass ``cls`` (its fields less
    ``exclude``, and :data:`INLINE` nested fields; :func:`option_hints`) and parsed to their
    types; an unknown key is an error that lists the valid ones. ``extra`` adds options that
    are not fields, ``{name: type hint}`` (e.g. ``{"seed": int}``), listed last."""
    hints = option_hints(cls, exclude)
    hints.update({k: v for k, v in (extra or {}).items() if k not in hints})
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise GradInvError(
            f"{owner} has no option {', '.join(unknown)}; valid options: {', '.join(hints)}"
        )
    return {k: parse_value(v, hints[k], k, owner) for k, v in overrides.items()}


def build(cls: type, overrides: Mapping[str, Any], owner: str, **fixed: Any) -> Any:
    """``cls(**fixed, **parsed overrides)``: a frozen config from (possibly string)
    overrides; ``fixed`` fields are set by the caller and cannot be overridden."""
    values = _nest(cls, parse_overrides(cls, overrides, owner, exclude=tuple(fixed)), owner)
    try:
        return cls(**fixed, **values)
    except (TypeError, ValueError) as err:  # a __post_init__ check
        raise GradInvError(f"{owner}: {err}") from None


def _nest(cls: type, values: dict[str, Any], owner: str) -> dict[str, Any]:
    """Parsed options of ``cls`` -> its fields: the options of :data:`INLINE` nested fields
    replace the matching fields of the nested default (or of the instance given)."""
    hints = field_hints(cls)
    out = {k: v for k, v in values.items() if k in hints}
    for f in dataclasses.fields(cls):
        if not (f.metadata.get("inline") and _is_dataclass_type(hints[f.name])):
            continue
        sub_cls = hints[f.name]
        sub_keys = set(option_hints(sub_cls)) - set(hints)
        sub = {k: v for k, v in values.items() if k in sub_keys}
        if not sub:
            continue
        if f.name in out:
            base = out[f.name]
        elif f.default is not dataclasses.MISSING:
            base = f.default
        elif f.default_factory is not dataclasses.MISSING:
            base = f.default_factory()
        else:
            base = None
        own = _nest(sub_cls, sub, owner)
        try:
            out[f.name] = dataclasses.replace(base, **own) if base is not None else sub_cls(**own)
        except (TypeError, ValueError) as err:
            raise GradInvError(f"{owner}: {err}") from None
    return out


__all__ = [
    "INLINE",
    "build",
    "defaults",
    "field_hints",
    "option_hints",
    "parse_overrides",
    "parse_value",
    "type_name",
]
