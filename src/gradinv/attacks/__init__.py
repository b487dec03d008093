"""Registry of the attacks: one module per attack, all with a frozen ``Config`` and
``run(model, observed, config=Config(), callback=None) -> Reconstruction``.

``ATTACKS`` maps names to modules; ``rgap`` is loaded lazily (it may be absent).
:func:`run` builds a ``Config`` from keyword overrides, parsing strings (command line).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from gradinv.case import Observed, Reconstruction
from gradinv.errors import GradInvError

NAMES: tuple[str, ...] = (
    "dlg",
    "idlg",
    "ig",
    "cpl",
    "gradinversion",
    "rgap",
    "ggdm",
    "gradinvdiff",
    "ggss_r",
    "finetuned_diff",
    "gias",
    "ggl",
    "gifd",
    "gidm",
    "dlg_dm",
    "invg_dm",
    "bn_prior",
)


class _Registry(Mapping):
    """A read-only name -> module mapping that imports each module on first access."""

    def __getitem__(self, name: str) -> types.ModuleType:
        if name not in NAMES:
            raise KeyError(name)
        try:
            return importlib.import_module(f"gradinv.attacks.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"gradinv.attacks.{name}":
                raise
            raise GradInvError(f"attack {name!r} is not available in this installation") from None

    def __iter__(self):
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


ATTACKS: Mapping[str, types.ModuleType] = _Registry()


def get(name: str) -> types.ModuleType:
    """The attack module called ``name`` (one of :data:`NAMES`)."""
    key = name.lower()
    if key not in NAMES:
        raise GradInvError(f"unknown attack {name!r}; choose one of: {', '.join(NAMES)}")
    return ATTACKS[key]


def _parse(value: Any, annotation: Any, field: str) -> Any:
    """Convert a command-line string to the field's annotated type."""
    if not isinstance(value, str):
        return value
    hint = annotation if not isinstance(annotation, str) else None
    args = typing.get_args(hint) if hint is not None else ()
    text = str(annotation)
    optional = type(None) in args or "None" in text
    if optional and value.lower() in ("none", "null", ""):
        return None
    kinds = [a for a in args if a is not type(None)] if args else [hint]
    names = [getattr(k, "__name__", str(k)) for k in kinds] if hint is not None else []
    if hint is None:  # postponed annotation: use the string
        names = [t.strip() for t in text.split("|") if t.strip() != "None"]
    try:
        if "bool" in names:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if "int" in names:
            return int(float(value)) if float(value).is_integer() else int(value)
        if "float" in names:
            return float(value)
    except ValueError:
        raise GradInvError(
            f"option {field}={value!r} is not a valid {' or '.join(names)}"
        ) from None
    return value


def make_config(name: str, **overrides: Any) -> Any:
    """``Config(**overrides)`` of attack ``name``, with strings parsed to the field types."""
    module = get(name)
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise GradInvError(
            f"attack {name!r} has no option {', '.join(unknown)}; valid options: "
            f"{', '.join(fields)}"
        )
    hints = typing.get_type_hints(module.Config)
    parsed = {k: _parse(v, hints.get(k, fields[k].type), k) for k, v in overrides.items()}
    return module.Config(**parsed)


def run(
    name: str,
    model: nn.Module,
    observed: Observed,
    callback: Callable[[int, dict], None] | None = None,
    **overrides: Any,
) -> Reconstruction:
    """Run attack ``name`` with its paper defaults, overridden by ``overrides``."""
    config = make_config(name, **overrides)
    return get(name).run(model, observed, config, callback=callback)


__all__ = ["ATTACKS", "NAMES", "get", "make_config", "run"]
