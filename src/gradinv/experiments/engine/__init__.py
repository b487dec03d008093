"""The experiment engine: cells, a run store that resumes, and executors.

An experiment is a list of :class:`Cell` specs; :func:`run_cells` returns their
:class:`Record` s, computing only those the :class:`RunStore` lacks, in this process,
``workers`` local processes, on Ray, or as Slurm array jobs::

    cells = [Cell("gia_survey", "attack", "gradinv.experiments.gia_survey:attack_cell",
                  {"attack": a, "size": 16}, seed=s) for a in ("dlg", "ig") for s in range(3)]
    records = run_cells(cells, RunStore(), workers=2)
    table = frame(records)

Modules: ``cells`` (specs, results, records), ``store`` (the run store), ``worker``
(computing one cell), ``executors`` (local, Ray, Slurm), ``execute`` (``run_cells``),
``tables`` (records as a DataFrame).
"""

from gradinv.experiments.engine.cells import Cell, FrozenDict, Record, Result
from gradinv.experiments.engine.execute import CellsFailed, Runner, run_cells
from gradinv.experiments.engine.executors import (
    EXECUTORS,
    LocalExecutor,
    RayExecutor,
    SlurmExecutor,
)
from gradinv.experiments.engine.store import MergeReport, RunStore, default_root, profile_root
from gradinv.experiments.engine.tables import as_tensor, frame, of_kind
from gradinv.experiments.engine.worker import Failure

__all__ = [
    "EXECUTORS",
    "Cell",
    "CellsFailed",
    "Failure",
    "FrozenDict",
    "LocalExecutor",
    "MergeReport",
    "RayExecutor",
    "Record",
    "Result",
    "Runner",
    "RunStore",
    "as_tensor",
    "SlurmExecutor",
    "default_root",
    "frame",
    "of_kind",
    "profile_root",
    "run_cells",
]
