"""Where cells run: in this process, a local process pool, a Ray cluster, or Slurm.

Each executor takes the cells still to compute and yields one outcome per cell (a
:class:`Record` or a :class:`Failure`) as it finishes, in any order. Ray and submitit
are optional extras (``pip install gradinv[ray]``, ``gradinv[slurm]``).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import sys
import time
import traceback
import warnings
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol

from gradinv.errors import GradInvError
from gradinv.experiments.engine.cells import Cell, Record
from gradinv.experiments.engine.worker import (
    THREAD_ENV,
    Failure,
    compute,
    cores,
    init_pool_worker,
    pool_compute,
    remote_compute,
)

Outcome = Record | Failure
Outcomes = Generator[Outcome, None, None]
Commit = tuple[str | None, bool | None]


class Executor(Protocol):
    """Runs cells; :meth:`run` yields an outcome per cell as each finishes."""

    name: ClassVar[str]

    def describe(self) -> str: ...

    def run(self, cells: Sequence[Cell], commit: Commit, root: Path) -> Outcomes: ...


@dataclass(frozen=True)
class LocalExecutor:
    """This process when ``workers == 1``, else a pool of ``workers`` spawned processes,
    each with ``cores // workers`` threads (at least one) so they do not oversubscribe."""

    name: ClassVar[str] = "local"
    workers: int = 1

    def __post_init__(self) -> None:
        _check_workers(self.workers)

    def threads(self) -> int:
        return max(1, cores() // self.workers)

    def describe(self) -> str:
        if self.workers == 1:
            return "in this process"
        return f"{self.workers} local worker processes, {self.threads()} thread(s) each"

    def run(self, cells: Sequence[Cell], commit: Commit, root: Path) -> Outcomes:
        if self.workers == 1:
            for cell in cells:
                yield compute(cell, commit)
            return
        threads = self.threads()
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(cells)) or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_pool_worker,
            initargs=(threads, os.getpid()),
        )
        try:
            with _thread_env(threads):  # workers start during submit and read these at import
                futures = {pool.submit(pool_compute, cell, commit): cell for cell in cells}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - the worker process died
                    yield _failure(futures[future], "its worker process died", exc)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=True)


@dataclass(frozen=True)
class RayExecutor:
    """One Ray task per cell. ``address`` (else ``$RAY_ADDRESS``) joins a running cluster;
    without either a local Ray of ``workers`` CPUs starts on 127.0.0.1, without dashboard
    or usage reporting. ``num_cpus`` and ``num_gpus`` are each cell's resources."""

    name: ClassVar[str] = "ray"
    workers: int = 1
    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 0

    def __post_init__(self) -> None:
        _check_workers(self.workers)
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise GradInvError("ray executor: num_cpus must be > 0 and num_gpus >= 0")
        optional("ray", "ray")

    def describe(self) -> str:
        where = self.address or os.environ.get("RAY_ADDRESS") or f"local, {self.workers} CPUs"
        return f"Ray ({where}; {self.num_cpus} CPU, {self.num_gpus} GPU per cell)"

    def run(self, cells: Sequence[Cell], commit: Commit, root: Path) -> Outcomes:
        ray = self.connect()
        task = ray.remote(remote_compute).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0
        )
        threads = max(1, int(self.num_cpus))
        refs = {task.remote(cell, commit, list(sys.path), threads): cell for cell in cells}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a worker or node died
                        yield _failure(refs[ref], "its Ray task failed", exc)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def connect(self) -> ModuleType:
        """Ray, initialised (a running session is reused and left running)."""
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # read at init: no usage reporting
        ray = optional("ray", "ray")
        if ray.is_initialized():
            return ray
        address = self.address or os.environ.get("RAY_ADDRESS")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*")
            if address:
                ray.init(address=address, include_dashboard=False)
            else:
                ray.init(
                    num_cpus=self.workers,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",  # loopback only: no network
                )
        return ray


@dataclass(frozen=True)
class SlurmExecutor:
    """Cells as Slurm array jobs through submitit: one array of up to ``batch_size``
    cells per submission, ``workers`` running at once. ``cluster``: ``"slurm"``,
    ``"local"`` (local processes, for tests and machines without Slurm) or ``None``
    (submitit picks: Slurm where ``sbatch`` exists). Job files go to ``folder`` (default
    ``<store>/.submitit``) and are removed after a run without failures; ``parameters``
    pass on to submitit (e.g. ``{"slurm_partition": "gpu"}``)."""

    name: ClassVar[str] = "slurm"
    workers: int = 1
    cluster: str | None = None
    folder: str | Path | None = None
    batch_size: int = 500
    timeout_min: int = 24 * 60
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    poll_seconds: float = 0.2

    def __post_init__(self) -> None:
        _check_workers(self.workers)
        if self.cluster not in (None, "slurm", "local"):
            raise GradInvError(
                f"slurm executor: cluster must be slurm, local or None, not {self.cluster!r}"
            )
        optional("submitit", "slurm")

    def describe(self) -> str:
        return f"submitit ({self.cluster or 'auto'} cluster, {self.workers} job(s) at once)"

    def run(self, cells: Sequence[Cell], commit: Commit, root: Path) -> Outcomes:
        submitit = optional("submitit", "slurm")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path(self.folder) if self.folder is not None else root / ".submitit"
        run_dir = folder / f"{stamp}-{os.getpid()}"
        executor = submitit.AutoExecutor(folder=run_dir / "%j", cluster=self.cluster)
        local = executor.cluster != "slurm"
        params: dict[str, Any] = {
            "timeout_min": self.timeout_min,
            "cpus_per_task": self.cpus_per_task,
            "gpus_per_node": self.gpus_per_node,
            "name": "gradinv-cells",
        }
        if not local:
            params["slurm_array_parallelism"] = self.workers
        executor.update_parameters(**{**params, **self.parameters})
        threads = max(1, cores() // self.workers) if local else self.cpus_per_task
        # Slurm queues whole arrays; local jobs start at once, so keep `workers` in flight
        window = self.workers if local else None
        queue = deque(cells)
        running: list[tuple[Any, Cell]] = []
        failed = False
        try:
            while queue or running:
                free = len(queue) if window is None else window - len(running)
                if queue and free > 0:
                    batch = [queue.popleft() for _ in range(min(free, self.batch_size, len(queue)))]
                    n = len(batch)
                    jobs = executor.map_array(
                        remote_compute, batch, [commit] * n, [list(sys.path)] * n, [threads] * n
                    )
                    running.extend(zip(jobs, batch, strict=True))
                    continue
                finished = [(job, cell) for job, cell in running if job.done()]
                if not finished:
                    time.sleep(self.poll_seconds)
                    continue
                for job, cell in finished:
                    running.remove((job, cell))
                    try:
                        outcome = job.result()
                    except Exception as exc:  # noqa: BLE001 - the job failed outside the cell
                        outcome = _failure(cell, f"job {job.job_id} failed (logs: {run_dir})", exc)
                    failed = failed or isinstance(outcome, Failure)
                    yield outcome
        except BaseException:
            for job, _ in running:
                job.cancel(check=False)
            raise
        if not failed:
            shutil.rmtree(run_dir, ignore_errors=True)


EXECUTORS: dict[str, type[LocalExecutor] | type[RayExecutor] | type[SlurmExecutor]] = {
    "local": LocalExecutor,
    "ray": RayExecutor,
    "slurm": SlurmExecutor,
}


def make_executor(executor: str | Executor, workers: int, options: Mapping[str, Any]) -> Executor:
    """The executor named ``executor`` with ``workers`` and its ``options`` (an executor
    object is returned as it is)."""
    if not isinstance(executor, str):
        if options:
            raise GradInvError("pass executor options to the executor object, not run_cells")
        return executor
    cls = EXECUTORS.get(executor)
    if cls is None:
        raise GradInvError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    known = set(cls.__dataclass_fields__) - {"workers", "name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise GradInvError(
            f"unknown option(s) for the {executor} executor: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known)) or 'none'}"
        )
    return cls(workers=workers, **options)


def optional(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise GradInvError(
            f"the {extra} executor needs {module}: pip install gradinv[{extra}]"
        ) from None


def _check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GradInvError(f"workers must be a positive integer, not {workers!r}")


def _failure(cell: Cell, what: str, exc: BaseException) -> Failure:
    tb = "".join(traceback.format_exception(exc))
    return Failure(cell, f"{what}: {type(exc).__name__}: {exc}".splitlines()[0], tb)


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Set the thread-count variables for processes started inside, then restore them."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (an interrupted run)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())  # gone after shutdown
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
