"""Toy cell functions for test_engine.py: a module of its own so that spawned workers,
Ray tasks and Slurm jobs import them by name (``engine_toy:noise``)."""

from __future__ import annotations

import os
import time

import torch

from gradinv.experiments.engine import Cell, Result

#: File each cell appends ``start <key>`` to (set by the test).
LOG_ENV = "GRADINV_TOY_LOG"


def noise(cell: Cell) -> Result:
    """Seeded draws: the same cell gives the same numbers in any process."""
    x = torch.randn(int(cell.settings["n"]))
    _log(cell)
    return Result({"mean": float(x.mean()), "n": cell.settings["n"]}, {"x": x.numpy()})


def slow(cell: Cell) -> dict[str, float]:
    """Log the start, sleep ``settings["sleep"]`` seconds, return a small table row."""
    _log(cell)
    time.sleep(float(cell.settings["sleep"]))
    i = int(cell.settings["i"])
    return {"i": i, "square": i * i, "draw": float(torch.rand(()))}


def timed(cell: Cell) -> Result:
    """A metric and a timing of part of the work (kept apart from the metrics)."""
    return Result({"i": int(cell.settings["i"])}, timings={"step": 0.25})


def fail(cell: Cell) -> dict[str, int]:
    """Raise when ``settings["fail"]`` is true."""
    _log(cell)
    if cell.settings.get("fail"):
        raise ValueError(f"toy failure in cell {cell.settings['i']}")
    return {"i": int(cell.settings["i"])}


def threads(cell: Cell) -> dict[str, object]:
    """The thread settings of the process that computes the cell."""
    return {"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}


def _log(cell: Cell) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"start {cell.key}\n")
