"""Shared check of the paper tests: a misspelt key in a copy of a paper's smoke profile is a
one-line error naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradinv.errors import GradInvError
from gradinv.experiments import profiles

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
