"""The run store: one record per cell key, written atomically, arrays beside it.

Layout under ``root``: ``<key[:2]>/<key>.json`` holds a record (spec, metrics,
provenance); its arrays, if any, are ``<key[:2]>/<key>.<token>.npz``, named in the JSON
so a record and its arrays always belong together. Every file is written to a temporary
name in the same folder and moved into place with :func:`os.replace`, so a killed run
leaves whole records or none. Folders starting with ``.`` (e.g. submitit's logs) are
not records.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from gradinv.errors import GradInvError
from gradinv.experiments.engine.cells import Cell, Record

log = logging.getLogger(__name__)

#: Environment variable naming the store's folder (default: under the data root).
STORE_ENV = "GRADINV_STORE"


def default_root() -> Path:
    """``$GRADINV_STORE``, else ``<data root>/store`` (the data root of
    :func:`gradinv.data.registry.data_root`: ``$GRADINV_DATA`` or ``~/.cache/gradinv/data``)."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    from gradinv.data.registry import data_root

    return data_root() / "store"


class NpzArrays(Mapping[str, np.ndarray]):
    """A stored record's arrays: names known at once, contents read on first access."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        self._names = list(names)
        self._data: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._data is None:
            with np.load(self.path, allow_pickle=False) as npz:
                self._data = {name: npz[name] for name in npz.files}
        return self._data

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"NpzArrays({self.path.name}, {self._names})"


@dataclass
class MergeReport:
    """What :meth:`RunStore.merge` did: keys copied, keys already present with the same
    content, and conflicts (same key, different content: ours was kept)."""

    copied: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


#: Folder of the repository holding each paper's per-profile stores (committed for the
#: profiles whose figures are committed; ``smoke`` is ignored by git).
STORES_DIR = "stores"


def profile_root(paper: str, profile: str, repo: str | Path | None = None) -> Path:
    """The store of ``paper``'s ``profile``: ``$GRADINV_STORE``, else
    ``<repo>/stores/<paper>/<profile>`` (the one committed with that profile's figures, so a
    notebook opened with it replays from the records)."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    if repo is None:
        from gradinv.reproduce import find_repo_root

        repo = find_repo_root()
    return Path(repo) / STORES_DIR / paper / profile


class RunStore:
    """Records filed under their cell's key in the folder ``root`` (created on first write;
    default :func:`default_root`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the JSON of ``key`` lives."""
        return self.root / key[:2] / f"{key}.json"

    def __contains__(self, item: object) -> bool:
        """``cell in store`` (a stored record of that exact spec) or ``key in store``."""
        if isinstance(item, Cell):
            return self.get(item) is not None
        return isinstance(item, str) and self.path(item).is_file()

    def keys(self) -> list[str]:
        """Keys of every stored record, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("[0-9a-f][0-9a-f]/*.json"))

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, cell: Cell) -> Record | None:
        """The stored record of ``cell``, or ``None``: absent, unreadable, its arrays
        missing, or stored under the same key with a different spec."""
        record = self.load(cell.key)
        if record is None or record.cell.to_json() != cell.to_json():
            return None
        return record

    def load(self, key: str) -> Record | None:
        """The record stored under ``key`` (``None`` when absent or unreadable)."""
        path = self.path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("unreadable record %s (%s): treated as missing", path, exc)
            return None
        arrays: Mapping[str, np.ndarray] = {}
        if data.get("arrays"):
            npz = path.parent / str(data.get("arrays_file", ""))
            if not data.get("arrays_file") or not npz.is_file():
                log.warning("record %s lists arrays but %s is missing", path, npz.name)
                return None
            arrays = NpzArrays(npz, data["arrays"])
        try:
            return Record.from_json(data, arrays)
        except (KeyError, TypeError, ValueError, GradInvError) as exc:
            log.warning("malformed record %s (%s): treated as missing", path, exc)
            return None

    def put(self, cell: Cell, record: Record) -> None:
        """Store ``record`` (of ``cell``) atomically, replacing an earlier one."""
        if record.cell != cell:
            raise GradInvError(f"record of {record.cell.label()} put under {cell.label()}")
        path = self.path(cell.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = record.to_json()
        npz = None
        if record.arrays:
            data["arrays_file"] = f"{cell.key}.{uuid.uuid4().hex[:8]}.npz"
            npz = path.parent / data["arrays_file"]
            arrays = {name: np.asarray(a) for name, a in record.arrays.items()}
            _write_atomic(npz, lambda fh: np.savez_compressed(fh, **arrays), binary=True)
        try:
            _write_atomic(path, lambda fh: fh.write(json.dumps(data, indent=1) + "\n"))
        except BaseException:
            if npz is not None:
                npz.unlink(missing_ok=True)  # the record was not written: nor its arrays
            raise
        self._drop_stale_arrays(cell.key, keep=data.get("arrays_file"))

    def merge(self, other: RunStore | str | Path) -> MergeReport:
        """Copy the records of ``other`` that this store lacks. A key present in both with
        different metrics or arrays keeps ours and is listed in ``conflicts``."""
        other = other if isinstance(other, RunStore) else RunStore(other)
        report = MergeReport()
        for key in other.keys():
            theirs = other.load(key)
            if theirs is None:
                continue
            ours = self.load(key)
            if ours is None:
                self.put(theirs.cell, theirs)
                report.copied.append(key)
            elif ours.same_as(theirs):
                report.same.append(key)
            else:
                report.conflicts.append(key)
        if report.conflicts:
            log.warning(
                "merge from %s: %d record(s) differ from ours, kept ours: %s",
                other.root,
                len(report.conflicts),
                ", ".join(report.conflicts),
            )
        return report

    def _drop_stale_arrays(self, key: str, keep: str | None) -> None:
        for npz in self.path(key).parent.glob(f"{key}.*.npz"):
            if npz.name != keep:
                npz.unlink(missing_ok=True)


def _write_atomic(path: Path, write: Callable[[IO[Any]], Any], binary: bool = False) -> None:
    """Write ``path`` through a temporary file in its folder and :func:`os.replace`: on
    any error the temporary file is removed and ``path`` is untouched."""
    with _temporary(path) as tmp:
        with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide records from others on a cluster
        os.replace(tmp, path)


@contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful os.replace
