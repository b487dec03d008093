"""Checks every paper's tests share: a misspelt profile key is a one-line error naming the key
and the file; a cell computed again elsewhere gives the same record, so stores merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradinv.errors import GradInvError
from gradinv.experiments import profiles
from gradinv.experiments.engine import Cell, Record, RunStore, run_cells

ROOT = Path(__file__).resolve().parents[1]


def assert_typo_named(tmp_path: Path, paper: str, cls: type, edit: tuple[str, str], key: str):
    """Write ``smoke.yaml`` of ``paper`` with ``edit`` (old, new) applied as ``typo.yaml`` under
    ``tmp_path`` and check that loading it into ``cls`` fails naming ``key`` and the file."""
    folder = tmp_path / "papermill_runs" / paper
    folder.mkdir(parents=True)
    text = (ROOT / "papermill_runs" / paper / "smoke.yaml").read_text()
    assert edit[0] in text
    (folder / "typo.yaml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(GradInvError) as err:
        profiles.load(paper, "typo", cls, root=tmp_path)
    message = str(err.value)
    assert key in message and f"papermill_runs/{paper}/typo.yaml" in message
    assert "\n" not in message


def assert_recomputed_cells_merge(
    cells: list[Cell], records: list[Record], store: RunStore, elsewhere: Path
) -> None:
    """Compute ``cells`` again into ``elsewhere``: each record equals the stored one (no
    wall-clock time among the metrics), and merging the two stores finds no conflict."""
    fresh = run_cells(cells, elsewhere, progress=False)
    stored = {r.key: r for r in records}
    assert all(r.same_as(stored[r.key]) for r in fresh)
    report = RunStore(elsewhere).merge(store)
    assert not report.conflicts and set(report.same) == {c.key for c in cells}
