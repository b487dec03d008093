"""Computing one cell in whichever process runs it: seed, call, time, stamp provenance.

Everything here runs inside a worker (this process, a local pool process, a Ray task or
a Slurm job), so it imports torch lazily and returns picklable values: a
:class:`~gradinv.experiments.engine.cells.Record`, or a :class:`Failure` for a cell
whose function raised.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

import numpy as np

from gradinv.errors import GradInvError
from gradinv.experiments.engine.cells import Cell, Record, Result, jsonable

#: Thread-count variables of the OpenMP, MKL and OpenBLAS pools torch and NumPy use.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Failure:
    """A cell whose function raised: the one-line error and the full traceback."""

    cell: Cell
    error: str
    traceback: str


def compute(cell: Cell, commit: tuple[str | None, bool | None] = (None, None)) -> Record | Failure:
    """Seed everything with ``cell.seed``, call the cell's function, and wrap its
    :class:`Result` (or a plain metrics mapping) in a :class:`Record`; ``commit`` is the
    driver's ``(git commit, dirty)``. An exception becomes a :class:`Failure`."""
    try:
        from gradinv.utils import seed_everything

        fn = cell.resolve()
        seed_everything(cell.seed)
        start = time.perf_counter()
        out = fn(cell)
        seconds = time.perf_counter() - start
        result = out if isinstance(out, Result) else Result(metrics=out)
        if not isinstance(result.metrics, Mapping):
            raise GradInvError(
                f"{cell.function} returned {type(out).__name__}: a cell function returns "
                "Result(metrics, arrays) or a mapping of metrics"
            )
        return Record(
            cell=cell,
            metrics=jsonable(dict(result.metrics)),
            arrays={str(k): _numpy(v) for k, v in result.arrays.items()},
            seconds=round(seconds, 4),
            device=result.device or device_name(),
            host=platform.node(),
            versions=versions(),
            commit=commit[0],
            dirty=commit[1],
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            timings={str(k): float(v) for k, v in result.timings.items()},
        )
    except Exception as exc:  # noqa: BLE001 - a failing cell is reported, the others go on
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return Failure(
            cell,
            f"{type(exc).__name__}: {lines[0] if lines else ''}".strip(),
            traceback.format_exc(),
        )


def remote_compute(
    cell: Cell,
    commit: tuple[str | None, bool | None],
    sys_path: Sequence[str] = (),
    threads: int | None = None,
) -> Record | Failure:
    """:func:`compute` in a fresh interpreter (a Ray task, a Slurm job): first make the
    driver's import paths visible (so the cell function imports as it did there) and
    limit the threads."""
    for entry in reversed(sys_path):
        if entry not in sys.path and os.path.isdir(entry):
            sys.path.insert(0, entry)
    if threads:
        limit_threads(threads)
    return compute(cell, commit)


def limit_threads(threads: int) -> None:
    """Use at most ``threads`` threads in torch and the BLAS/OpenMP pools."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


#: The driver's process id in a local pool worker (``None`` elsewhere).
_driver: int | None = None


def init_pool_worker(threads: int, driver: int) -> None:
    """Initializer of a local pool process: limit the threads, and exit as soon as the
    driver (process ``driver``) dies, so a killed run leaves no workers behind."""
    global _driver
    _driver = driver
    limit_threads(threads)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="gradinv-driver-watch", daemon=True).start()


def pool_compute(cell: Cell, commit: tuple[str | None, bool | None]) -> Record | Failure:
    """:func:`compute` in a pool worker; a cell queued before the driver died never starts."""
    if _driver is not None and os.getppid() != _driver:
        os._exit(1)
    return compute(cell, commit)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@cache
def versions() -> dict[str, str]:
    """Versions of Python, torch, NumPy and gradinv in this process."""
    import torch

    import gradinv

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gradinv": gradinv.__version__,
    }


def device_name() -> str:
    """The GPU's name when the cell used CUDA in this process, else the CPU's model."""
    import torch

    if torch.cuda.is_initialized():
        return f"cuda: {torch.cuda.get_device_name(torch.cuda.current_device())}"
    from gradinv.reproduce import cpu_model

    return f"cpu: {cpu_model()}"


def code_commit() -> tuple[str | None, bool | None]:
    """``(short git commit, dirty)`` of the checkout gradinv runs from; ``(None, None)``
    outside a git checkout."""
    from gradinv.reproduce import find_repo_root, git_state

    return git_state(find_repo_root())


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)
