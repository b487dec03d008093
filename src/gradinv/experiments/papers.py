"""The paper drivers the experiment engine knows: each is a package
``gradinv.experiments.<paper>`` exposing ``PAPER``, its typed ``Profile`` and
``all_cells(profile, seed)`` (every cell of its notebook, most valuable first), which is
what ``scripts/gpu.py`` and ``gradinv reproduce`` need to compute a profile outside the
notebook."""

from __future__ import annotations

import importlib
from types import ModuleType

from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.engine import Cell

#: Papers whose driver runs on the engine, in the order their notebooks are listed.
DRIVERS = ("gia_survey", "gradinvdiff", "ggss_r", "gidm", "shadow_defense")


def driver(paper: str) -> ModuleType:
    """The driver package of ``paper``; an unknown paper is a one-line error."""
    if paper not in DRIVERS:
        raise GradInvError(f"no engine driver for {paper!r}; choose one of {', '.join(DRIVERS)}")
    module = importlib.import_module(f"gradinv.experiments.{paper}")
    missing = [name for name in ("PAPER", "Profile", "all_cells") if not hasattr(module, name)]
    if missing:
        raise GradInvError(f"gradinv.experiments.{paper} lacks {', '.join(missing)}")
    return module


def cells(paper: str, profile: str, seed: int = 0) -> list[Cell]:
    """Every cell of ``paper``'s notebook under ``profile``, most valuable first."""
    module = driver(paper)
    return module.all_cells(profiles.load(paper, profile, module.Profile), seed)


__all__ = ["DRIVERS", "cells", "driver"]
