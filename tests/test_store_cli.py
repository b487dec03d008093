"""``gradinv store``: merging stores laid out as ``<paper>/<profile>/`` into the
repository's, and counting a profile's stored cells."""

from __future__ import annotations

import re

import pytest

from gradinv.cli import main
from gradinv.experiments.engine import Cell, RunStore, run_cells


def noise_cells(n: int) -> list[Cell]:
    return [Cell("toy", "noise", "engine_toy:noise", {"n": 5 + i}, seed=i) for i in range(n)]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADINV_STORE", raising=False)
    monkeypatch.setenv("GRADINV_REPO_ROOT", str(tmp_path / "repo"))
    return tmp_path / "repo"


def test_merge_copies_new_records_and_keeps_ours(repo, tmp_path, capsys):
    cells = noise_cells(3)
    elsewhere = tmp_path / "out" / "toy" / "paper"
    run_cells(cells, RunStore(elsewhere), progress=False)
    ours = RunStore(repo / "stores" / "toy" / "paper")
    run_cells(cells[:1], ours, progress=False)
    assert main(["store", "merge", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out
    assert "toy/paper: 2 copied, 1 already present, 0 differing" in line
    assert all(cell.key in ours for cell in cells)


def test_merge_of_a_folder_without_stores_is_one_line(tmp_path, capsys):
    assert main(["store", "merge", str(tmp_path)]) == 2
    assert "holds no <paper>/<profile>/ store folders" in capsys.readouterr().err


def test_status_counts_a_profiles_stored_cells(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRADINV_STORE", str(tmp_path))
    assert main(["store", "status", "--paper", "gradinvdiff", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gradinvdiff\s+smoke: 0 of \d+ cells stored", out), out


def test_compute_fills_a_profile_store_and_a_rerun_computes_nothing(repo, monkeypatch, capsys):
    from gradinv.experiments import papers, profiles

    cells = noise_cells(3)
    monkeypatch.setattr(papers, "cells", lambda paper, profile, seed=0, stores=(): cells)
    monkeypatch.setattr(profiles, "read", lambda paper, profile: ({"device": "cpu"}, "x.yaml"))
    assert main(["store", "compute", "--paper", "toy", "--profile", "cpu"]) == 0
    assert "toy cpu: computing 3 of 3 cells listed" in capsys.readouterr().out
    store = RunStore(repo / "stores" / "toy" / "cpu")
    assert all(cell.key in store for cell in cells)
    assert main(["store", "compute", "--paper", "toy", "--profile", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "computing" not in out and "toy cpu: 3 of 3 cells stored" in out


def test_compute_lists_again_until_cells_that_need_stored_results_are_done(repo, monkeypatch):
    """A driver that lists its second phase (tuned cells) once the first is stored."""
    from gradinv.experiments import papers, profiles

    first, second = noise_cells(2), [Cell("toy", "noise", "engine_toy:noise", {"n": 9}, seed=7)]

    def cells(paper, profile, seed=0, stores=()):
        done = all(any(c.key in st for st in stores) for c in first)
        return first + (second if done else [])

    monkeypatch.setattr(papers, "cells", cells)
    monkeypatch.setattr(profiles, "read", lambda paper, profile: ({"device": "cpu"}, "x.yaml"))
    assert main(["store", "compute", "--paper", "toy", "--profile", "cpu"]) == 0
    store = RunStore(repo / "stores" / "toy" / "cpu")
    assert all(c.key in store for c in first + second)
