"""The paper drivers the experiment engine knows: each is a package
``gradinv.experiments.<paper>`` exposing ``PAPER``, its typed ``Profile`` and
``all_cells(profile, seed)`` (every cell of its notebook, most valuable first; optionally
``stores=``, the run stores its later cells' inputs are read from), which is what
``scripts/gpu.py`` and ``gradinv store compute`` need to compute a profile outside the
notebook."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from types import ModuleType

from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.engine import Cell, RunStore

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


def cells(paper: str, profile: str, seed: int = 0, stores: Sequence[RunStore] = ()) -> list[Cell]:
    """Every cell of ``paper``'s notebook under ``profile``, most valuable first. A driver
    whose later cells depend on earlier results (tuned values) lists them once those
    results are in ``stores``: list again after computing (:func:`missing_cells`)."""
    module = driver(paper)
    settings = profiles.load(paper, profile, module.Profile)
    if "stores" in inspect.signature(module.all_cells).parameters:
        return module.all_cells(settings, seed, stores=stores)
    return module.all_cells(settings, seed)


def missing_cells(paper: str, profile: str, seed: int, stores: Sequence[RunStore]) -> list[Cell]:
    """The cells of :func:`cells` in none of ``stores``, each once, in order."""
    unique = {c.key: c for c in cells(paper, profile, seed, stores)}
    return [c for k, c in unique.items() if not any(k in st for st in stores)]


__all__ = ["DRIVERS", "cells", "driver", "missing_cells"]
