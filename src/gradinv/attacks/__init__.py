"""Registry of the attacks: one module per attack, all with a frozen ``Config`` and
``run(model, observed, config=Config(), callback=None) -> Reconstruction``.

``ATTACKS`` maps names to modules; ``rgap`` is loaded lazily (it may be absent).
:func:`run` builds a ``Config`` from keyword overrides, parsing strings (command line). Every
``Config`` extends a typed base of :mod:`gradinv.attacks.core.options`.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Mapping
from typing import Any

from torch import nn

from gradinv import options
from gradinv.attacks.core.progress import Callback
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


def make_config(name: str, **overrides: Any) -> Any:
    """``Config(**overrides)`` of attack ``name``, with strings parsed to the field types
    (:func:`gradinv.options.build`: an unknown option or a bad value is a one-line error)."""
    return options.build(get(name).Config, overrides, f"attack {name!r}")


def run(
    name: str,
    model: nn.Module,
    observed: Observed,
    callback: Callback | None = None,
    **overrides: Any,
) -> Reconstruction:
    """Run attack ``name`` with its paper defaults, overridden by ``overrides``."""
    config = make_config(name, **overrides)
    return get(name).run(model, observed, config, callback=callback)


__all__ = ["ATTACKS", "NAMES", "get", "make_config", "run"]
