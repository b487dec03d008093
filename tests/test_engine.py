"""The experiment engine: cell keys, the run store, run_cells, resume, and the executors."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import engine_toy
import numpy as np
import pandas as pd
import pytest
from engine_resume import cells as resume_cells

from gradinv.errors import GradInvError
from gradinv.experiments.engine import (
    Cell,
    CellsFailed,
    Record,
    Runner,
    RunStore,
    default_root,
    frame,
    profile_root,
    run_cells,
)
from gradinv.experiments.engine import store as store_module
from gradinv.experiments.engine.store import NpzArrays
from gradinv.experiments.engine.worker import compute, cores

TESTS = Path(__file__).resolve().parent


def noise_cells(n: int = 4) -> list[Cell]:
    return [Cell("toy", "noise", "engine_toy:noise", {"n": 5 + i}, seed=i) for i in range(n)]


def fail_cells(failing: set[int]) -> list[Cell]:
    return [
        Cell("toy", "fail", "engine_toy:fail", {"i": i, "fail": i in failing}) for i in range(4)
    ]


@pytest.fixture
def toy_log(tmp_path, monkeypatch) -> Path:
    """The file toy cells log their starts to."""
    path = tmp_path / "toy.log"
    monkeypatch.setenv(engine_toy.LOG_ENV, str(path))
    return path


def starts(log: Path) -> Counter[str]:
    lines = log.read_text().split() if log.exists() else []
    return Counter(lines[1::2])


# --- cells ---------------------------------------------------------------------------


def test_cell_key_is_stable_and_ignores_mapping_order_and_list_type():
    a = Cell("p", "attack", "m.n:f", {"b": [1, 2], "a": {"y": 1.5, "x": "s"}}, seed=3)
    b = Cell("p", "attack", "m.n:f", {"a": {"x": "s", "y": 1.5}, "b": (1, 2)}, seed=3)
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert len(a.key) == 20 and int(a.key, 16) >= 0
    # the hash of the canonical JSON, fixed: a change here orphans every stored record
    assert a.key == "4008356b06d7c10c08fc"
    assert Cell.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert pickle.loads(pickle.dumps(a)).key == a.key
    assert len({a, b}) == 1


def test_cell_key_changes_with_settings_seed_and_function():
    base = Cell("p", "attack", "m.n:f", {"lr": 0.1, "steps": 10}, seed=0)
    others = [
        Cell("p", "attack", "m.n:f", {"lr": 0.1, "steps": 11}, seed=0),
        Cell("p", "attack", "m.n:f", {"lr": 0.1, "steps": 10}, seed=1),
        Cell("p", "attack", "m.n:g", {"lr": 0.1, "steps": 10}, seed=0),
        Cell("p", "rv", "m.n:f", {"lr": 0.1, "steps": 10}, seed=0),
        Cell("q", "attack", "m.n:f", {"lr": 0.1, "steps": 10}, seed=0),
        Cell("p", "attack", "m.n:f", {"lr": 0.1, "steps": 10, "extra": None}, seed=0),
    ]
    assert len({base.key, *(c.key for c in others)}) == len(others) + 1


def test_cell_settings_must_be_json_values():
    with pytest.raises(GradInvError, match=r"settings\.path is a PosixPath"):
        Cell("p", "k", "m:f", {"path": Path("/tmp")})
    with pytest.raises(GradInvError, match="finite"):
        Cell("p", "k", "m:f", {"lr": float("nan")})
    with pytest.raises(GradInvError, match="package.module:function"):
        Cell("p", "k", "no_colon", {})
    assert Cell("p", "k", "m:f", {"n": np.int64(3)}).settings["n"] == 3


# --- the store -----------------------------------------------------------------------


def test_store_round_trip_with_lazy_arrays(tmp_path):
    store = RunStore(tmp_path / "store")
    record = compute(noise_cells(1)[0])
    assert isinstance(record, Record)
    assert record.cell not in store
    store.put(record.cell, record)
    assert record.cell in store and record.key in store and store.keys() == [record.key]
    back = store.get(record.cell)
    assert isinstance(back.arrays, NpzArrays) and back.arrays._data is None  # not read yet
    np.testing.assert_array_equal(back.arrays["x"], record.arrays["x"])
    assert back.same_as(record) and back.metrics == record.metrics
    assert back.versions["torch"] and back.finished == record.finished


def test_a_cell_s_timings_are_kept_beside_its_metrics_not_among_them(tmp_path):
    plain = compute(noise_cells(1)[0])
    assert plain.timings == {} and "timings" not in plain.to_json()  # old records unchanged
    cell = Cell("toy", "timed", "engine_toy:timed", {"i": 0})
    record = compute(cell)
    assert record.timings == {"step": 0.25} and "step" not in record.metrics
    store = RunStore(tmp_path / "store")
    store.put(cell, record)
    back = store.get(cell)
    assert back.timings == {"step": 0.25} and back.same_as(record)
    assert back.same_as(dataclasses.replace(record, timings={"step": 0.5}))  # timings aside


def test_store_misses_a_record_whose_stored_spec_differs(tmp_path):
    store = RunStore(tmp_path)
    record = compute(noise_cells(1)[0])
    store.put(record.cell, record)
    path = store.path(record.key)
    data = json.loads(path.read_text())
    data["cell"]["settings"]["n"] = 99  # same key, another spec (a collision or an edit)
    path.write_text(json.dumps(data))
    assert store.get(record.cell) is None


def test_store_write_is_atomic(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    first = compute(noise_cells(1)[0])
    store.put(first.cell, first)
    second = Record(**{**first.__dict__, "metrics": {"mean": -1.0, "n": 5}})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.json, "dumps", broken)
    with pytest.raises(OSError, match="disk full"):
        store.put(second.cell, second)
    monkeypatch.undo()
    shard = store.path(first.key).parent
    assert sorted(p.name for p in shard.iterdir() if p.name.startswith(".")) == []
    assert len(list(shard.glob("*.npz"))) == 1  # the new arrays file was removed too
    assert store.get(first.cell).same_as(first)  # the earlier record is intact


def test_store_merge_copies_missing_and_keeps_ours_on_conflict(tmp_path):
    ours, theirs = RunStore(tmp_path / "ours"), RunStore(tmp_path / "theirs")
    a, b, c = (compute(cell) for cell in noise_cells(3))
    ours.put(a.cell, a)
    ours.put(b.cell, b)
    theirs.put(a.cell, a)  # same content
    changed = Record(**{**b.__dict__, "metrics": {**b.metrics, "mean": 42.0}})
    theirs.put(b.cell, changed)  # same key, other content
    theirs.put(c.cell, c)
    report = ours.merge(tmp_path / "theirs")
    assert report.copied == [c.key] and report.same == [a.key] and report.conflicts == [b.key]
    assert ours.get(b.cell).metrics["mean"] == b.metrics["mean"]
    np.testing.assert_array_equal(ours.get(c.cell).arrays["x"], c.arrays["x"])


def test_default_root_is_the_env_var_else_under_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADINV_STORE", str(tmp_path / "s"))
    assert default_root() == tmp_path / "s"
    monkeypatch.delenv("GRADINV_STORE")
    monkeypatch.setenv("GRADINV_DATA", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / "store"


# --- run_cells -----------------------------------------------------------------------


def test_run_cells_computes_once_then_reads_the_store(tmp_path, toy_log, capsys):
    store = RunStore(tmp_path)
    cells = noise_cells(3)
    seen: list[str] = []
    first = run_cells(cells, store, on_record=lambda r: seen.append(r.key))
    assert [r.cell for r in first] == cells and sorted(seen) == sorted(c.key for c in cells)
    assert "0 of 3 cells from the store" in capsys.readouterr().err
    second = run_cells(cells, store, on_record=seen.append)
    assert "3 of 3 cells from the store" in capsys.readouterr().err
    assert len(seen) == 3 and sum(starts(toy_log).values()) == 3  # nothing recomputed
    assert all(a.same_as(b) for a, b in zip(first, second, strict=True))

    run_cells(cells, store, refresh=True, progress=False)
    assert sum(starts(toy_log).values()) == 6  # refresh recomputes all
    changed = [*cells[:2], Cell("toy", "noise", "engine_toy:noise", {"n": 50}, seed=2)]
    run_cells(changed, store)
    assert "2 of 3 cells from the store" in capsys.readouterr().err
    assert starts(toy_log)[changed[2].key] == 1 and sum(starts(toy_log).values()) == 7


def test_a_papers_profile_has_its_own_store_unless_the_env_var_says(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADINV_STORE", raising=False)
    assert profile_root("gidm", "cpu", tmp_path) == tmp_path / "stores" / "gidm" / "cpu"
    monkeypatch.setenv("GRADINV_REPO_ROOT", str(tmp_path))
    assert Runner(paper="gidm", profile="cpu").store.root == tmp_path / "stores" / "gidm" / "cpu"
    monkeypatch.setenv("GRADINV_STORE", str(tmp_path / "s"))
    assert Runner(paper="gidm", profile="cpu").store.root == tmp_path / "s"
    assert Runner(tmp_path / "t", paper="gidm", profile="cpu").store.root == tmp_path / "t"


def test_runner_keeps_the_manifest_up_to_date_as_cells_finish(tmp_path, toy_log, monkeypatch):
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(json.dumps({"paper": "toy"}))
    monkeypatch.setenv("GRADINV_MANIFEST", str(manifest))
    seen = []

    def progress(record):
        seen.append(json.loads(manifest.read_text())["cells"]["computed"])

    run = Runner(RunStore(tmp_path / "s"), progress=False)
    run(noise_cells(2), on_record=progress)
    assert seen == [1, 2]  # written before the section ended
    run(noise_cells(3))
    cells = json.loads(manifest.read_text())["cells"]
    assert (cells["asked"], cells["computed"], cells["from_store"]) == (3, 3, 0)
    assert json.loads(manifest.read_text())["paper"] == "toy"  # other keys kept


def test_runner_refreshes_each_cell_once_across_sections(tmp_path, toy_log, capsys):
    store = RunStore(tmp_path)
    cells = noise_cells(3)
    run_cells(cells, store, progress=False)
    run = Runner(store, refresh=True, progress=False)
    first = run(cells[:2])
    assert sum(starts(toy_log).values()) == 5  # the two asked for are recomputed
    again = run(cells)  # a later section sharing two cells: only the third is recomputed
    assert sum(starts(toy_log).values()) == 6
    assert all(a.same_as(b) for a, b in zip(first, again[:2], strict=True))
    assert "workers 1, refresh" in run.describe()
    assert run.describe().startswith(f"store {store.root}")


def test_a_failing_cell_keeps_the_others_and_is_named(tmp_path, toy_log):
    store = RunStore(tmp_path)
    with pytest.raises(CellsFailed) as info:
        run_cells(fail_cells({1, 3}), store, progress=False)
    err = info.value
    assert "2 of 4 cells failed (2 stored)" in str(err)
    assert "ValueError: toy failure in cell 1" in str(err) and "engine_toy:fail" in str(err)
    assert [r is None for r in err.records] == [False, True, False, True]
    assert "Traceback" in err.failures[0].traceback
    assert len(store) == 2


def test_unknown_executor_options_and_missing_extras_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(GradInvError, match="unknown executor 'dask'"):
        run_cells(noise_cells(1), tmp_path, executor="dask")
    with pytest.raises(GradInvError, match="unknown option.*adress"):
        run_cells(noise_cells(1), tmp_path, executor="local", adress="x")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(GradInvError, match=r"pip install gradinv\[ray\]"):
        run_cells(noise_cells(1), tmp_path, executor="ray")
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(GradInvError, match=r"pip install gradinv\[slurm\]"):
        run_cells(noise_cells(1), tmp_path, executor="slurm")


def test_two_local_workers_give_the_same_records_as_one(tmp_path):
    cells = noise_cells(4)
    probe = Cell("toy", "threads", "engine_toy:threads")
    one = run_cells(cells, tmp_path / "one", progress=False)
    *two, used = run_cells([*cells, probe], tmp_path / "two", workers=2, progress=False)
    assert [r.cell for r in two] == cells
    assert all(a.same_as(b) for a, b in zip(one, two, strict=True))
    per_worker = max(1, cores() // 2)  # two workers share the cores
    assert used.metrics == {"torch": per_worker, "omp": str(per_worker)}


# --- resume --------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(p) for p in task.read_text().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("workers", "sig"), [(1, signal.SIGKILL), (2, signal.SIGTERM), (2, signal.SIGKILL)]
)
def test_a_killed_run_resumes_without_recomputing_stored_cells(tmp_path, workers, sig):
    n, sleep, kill_after = 8, 0.3, 3
    store, log = RunStore(tmp_path / "store"), tmp_path / "toy.log"
    env = {
        **os.environ,
        engine_toy.LOG_ENV: str(log),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, str(TESTS / "engine_resume.py"), str(store.root), str(n)]
    command += [str(sleep), str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers_seen: set[int] = set()
    while len(store.keys()) < kill_after:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.perf_counter() - start < 180, "the first run stored too few cells"
        workers_seen.update(_children(proc.pid))
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == -sig  # it died of the signal, after stopping its workers
    first_s = time.perf_counter() - start
    stored_at_kill = set(store.keys())
    time.sleep(1.0)  # a pool worker checks for its driver every 0.2 s
    assert not [pid for pid in workers_seen if _alive(pid)], "workers outlived the killed run"

    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    second_s = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(stored_at_kill)} of {n} cells from the store" in done.stderr

    counts = starts(log)
    recomputed = {key for key, count in counts.items() if count > 1}
    assert not recomputed & stored_at_kill  # nothing stored was computed again
    # only what was in flight at the kill: a running cell per worker, and with a pool at
    # most one finished result per worker that the driver had not stored yet
    assert len(recomputed) <= (1 if workers == 1 else 2 * workers)
    assert set(counts) == set(store.keys()) and len(store.keys()) == n

    fresh = run_cells(resume_cells(n, 0.0), tmp_path / "fresh", progress=False)
    resumed = [store.get(cell) for cell in resume_cells(n, sleep)]
    columns = ["i", "square", "draw", "seed"]
    pd.testing.assert_frame_equal(frame(resumed)[columns], frame(fresh)[columns])
    print(
        f"\nresume ({workers} worker(s), {signal.Signals(sig).name}): {len(stored_at_kill)} of "
        f"{n} cells stored at the kill after {first_s:.1f} s; second run {second_s:.1f} s, "
        f"recomputed {len(recomputed)} (in flight at the kill)"
    )


# --- distributed executors -----------------------------------------------------------


@pytest.mark.enable_socket  # Ray's processes talk to each other over loopback sockets
@pytest.mark.allow_hosts(["127.0.0.1"])  # and only there: no network
def test_ray_executor_on_a_local_two_cpu_cluster(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install gradinv[ray]")
    cells = noise_cells(4)
    expected = run_cells(cells, tmp_path / "serial", progress=False)
    try:
        got = run_cells(cells, tmp_path / "ray", workers=2, executor="ray", progress=False)
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    assert all(a.same_as(b) for a, b in zip(expected, got, strict=True))


def test_slurm_executor_in_submitit_local_mode(tmp_path):
    pytest.importorskip("submitit", reason="submitit is an optional extra: gradinv[slurm]")
    cells = noise_cells(3)
    expected = run_cells(cells, tmp_path / "serial", progress=False)
    store = RunStore(tmp_path / "slurm")
    got = run_cells(cells, store, workers=2, executor="slurm", cluster="local", progress=False)
    assert all(a.same_as(b) for a, b in zip(expected, got, strict=True))
    assert not list((store.root / ".submitit").iterdir())  # job files removed after success
