"""``run_cells``: look every cell up in the run store, compute the missing ones, store
each record the moment it finishes.

A killed run resumes: run it again and only the cells not yet stored are computed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gradinv.errors import GradInvError
from gradinv.experiments.engine.cells import Cell, Record
from gradinv.experiments.engine.executors import Executor, LocalExecutor, make_executor
from gradinv.experiments.engine.store import RunStore, profile_root
from gradinv.experiments.engine.worker import Failure, code_commit

log = logging.getLogger(__name__)

#: Environment variable naming the MANIFEST.json a :class:`Runner` keeps up to date.
MANIFEST_ENV = "GRADINV_MANIFEST"
#: How many failing cells the error message names (all are in ``CellsFailed.failures``).
SHOWN_FAILURES = 5


class CellsFailed(GradInvError):
    """Some cells raised; every other cell was computed and stored. ``failures`` holds
    each failing cell with its traceback, ``records`` the records in the cells' order
    (``None`` where the cell failed)."""

    def __init__(self, failures: Sequence[Failure], records: list[Record | None]) -> None:
        self.failures = list(failures)
        self.records = records
        shown = "; ".join(f"{f.cell.label()}: {f.error}" for f in failures[:SHOWN_FAILURES])
        more = len(failures) - SHOWN_FAILURES
        stored = sum(r is not None for r in records)
        super().__init__(
            f"{len(failures)} of {len(records)} cells failed ({stored} stored): {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )


def run_cells(
    cells: Iterable[Cell],
    store: RunStore | str | Path | None = None,
    *,
    workers: int = 1,
    executor: str | Executor = "local",
    refresh: bool | Callable[[Cell], bool] = False,
    progress: bool = True,
    on_record: Callable[[Record], Any] | None = None,
    **options: Any,
) -> list[Record]:
    """The records of ``cells``, in their order.

    Each cell is first looked up in ``store`` (a :class:`RunStore`, a folder, or ``None``
    for the default store); ``refresh=True`` recomputes every cell, a predicate those for
    which it is true. The missing cells run
    on ``executor`` (``"local"``, ``"ray"`` or ``"slurm"``, with ``workers`` at once and
    its ``options``, e.g. ``address=`` or ``num_gpus=`` for Ray, ``cluster=`` for Slurm),
    each record stored as soon as it finishes and then passed to ``on_record``. Cells
    that raise do not stop the others: :class:`CellsFailed` is raised at the end.

    With more than one local worker, cell functions run in spawned processes: call
    ``run_cells`` under ``if __name__ == "__main__":`` in a script.
    """
    cells = list(cells)
    for cell in cells:
        if not isinstance(cell, Cell):
            raise GradInvError(f"run_cells takes Cell objects, not {type(cell).__name__}")
    store = store if isinstance(store, RunStore) else RunStore(store)
    backend = make_executor(executor, workers, options)
    unique = {cell.key: cell for cell in cells}
    for function in sorted({cell.function for cell in unique.values()}):
        next(c for c in unique.values() if c.function == function).resolve()  # fail fast
    records: dict[str, Record] = {}
    stale = refresh if callable(refresh) else (lambda cell: bool(refresh))
    for key, cell in unique.items():
        found = None if stale(cell) else store.get(cell)
        if found is not None:
            records[key] = found
    todo = [cell for key, cell in unique.items() if key not in records]
    n_found = sum(cell.key in records for cell in cells)
    message = f"{n_found} of {len(cells)} cells from the store ({store.root})"
    if todo:
        message += f"; computing {len(todo)} ({backend.describe()})"
    log.info(message)
    if progress:
        print(message, file=sys.stderr, flush=True)
    failures: list[Failure] = []
    if todo:
        bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress)
        interruptible = not (isinstance(backend, LocalExecutor) and backend.workers == 1)
        with _terminate_raises(interruptible), bar:
            with closing(backend.run(todo, code_commit(), store.root)) as outcomes:
                for outcome in outcomes:
                    if isinstance(outcome, Failure):
                        failures.append(outcome)
                        log.error("cell %s failed:\n%s", outcome.cell.label(), outcome.traceback)
                    else:
                        store.put(outcome.cell, outcome)
                        records[outcome.key] = outcome
                        if on_record is not None:
                            on_record(outcome)
                    bar.update(1)
    if failures:
        raise CellsFailed(failures, [records.get(cell.key) for cell in cells])
    return [records[cell.key] for cell in cells]


class Runner:
    """``run_cells`` with a notebook's engine parameters bound: ``run = Runner(store,
    paper="gidm", profile="cpu", workers=2)`` then ``records = run(cells)`` per section.
    Without ``store``, a paper's profile uses its own store (:func:`profile_root`:
    ``$GRADINV_STORE``, else ``stores/<paper>/<profile>`` in the repository). With
    ``refresh=True`` each cell is recomputed once per runner, so cells two sections share
    (e.g. the floors of an image) are not computed twice."""

    def __init__(
        self,
        store: RunStore | str | Path | None = None,
        *,
        paper: str | None = None,
        profile: str | None = None,
        workers: int = 1,
        executor: str | Executor = "local",
        refresh: bool = False,
        progress: bool = True,
        **options: Any,
    ) -> None:
        if store is None and paper is not None and profile is not None:
            store = profile_root(paper, profile)
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self.workers = workers
        self.executor = executor
        self.refresh = refresh
        self.progress = progress
        self.options = options
        self._fresh: set[str] = set()
        self._asked: set[str] = set()
        self._computed: set[str] = set()
        manifest = os.environ.get(MANIFEST_ENV)
        self.manifest = Path(manifest) if manifest else None

    def __call__(
        self, cells: Iterable[Cell], on_record: Callable[[Record], Any] | None = None
    ) -> list[Record]:
        """The records of ``cells`` (see :func:`run_cells`); with ``$GRADINV_MANIFEST`` set
        (``gradinv reproduce`` sets it), that manifest's ``cells`` entry is updated as each
        cell finishes."""
        cells = list(cells)

        def finished(record: Record) -> None:
            self._computed.add(record.key)
            self._note()
            if on_record is not None:
                on_record(record)

        records = run_cells(
            cells,
            self.store,
            workers=self.workers,
            executor=self.executor,
            refresh=(lambda cell: cell.key not in self._fresh) if self.refresh else False,
            progress=self.progress,
            on_record=finished,
            **self.options,
        )
        self._fresh.update(cell.key for cell in cells)
        self._asked.update(cell.key for cell in cells)
        self._note()
        return records

    def _note(self) -> None:
        """Record progress in the manifest: cells of the finished sections (``asked``), cells
        computed so far (this section's included) and those read from the store."""
        if self.manifest is None:
            return
        from gradinv.reproduce import write_manifest

        cells = {
            "asked": len(self._asked),
            "computed": len(self._computed),
            "from_store": len(self._asked - self._computed),
            "store": str(self.store.root),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_manifest(self.manifest, {"cells": cells})

    def describe(self) -> str:
        """``store <root>, <executor> x <workers>`` for a notebook's first output."""
        name = self.executor if isinstance(self.executor, str) else self.executor.name
        refresh = ", refresh" if self.refresh else ""
        return f"store {self.store.root}, executor {name}, workers {self.workers}{refresh}"


class _Terminated(BaseException):
    """SIGTERM arrived while workers ran: unwind (stopping them), then die of it."""


@contextmanager
def _terminate_raises(active: bool) -> Iterator[None]:
    """While active (and in the main thread), turn SIGTERM into an exception so the
    executor can stop its workers; afterwards deliver it again with the old handler."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None  # the old handler did not exit
    finally:
        signal.signal(signal.SIGTERM, previous)
