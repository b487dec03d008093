"""The papermill batch runner: discovery, parameters, failure handling and the MANIFEST.

Only ``test_reproduce_executes_notebook_and_writes_manifest`` starts a Jupyter kernel
(~10-20 s); it needs localhost sockets for the kernel's ZMQ channels, nothing else.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from gradinv import reproduce as rp
from gradinv.cli import main
from gradinv.errors import GradInvError

NOTEBOOK = """\
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "default"
n = 1

# %%
from pathlib import Path

out = Path("figures") / "demo"
out.mkdir(parents=True, exist_ok=True)
(out / "result.txt").write_text(f"{profile} {n * 2}")
assert "settings" not in globals()  # only declared parameters are injected
"""


def make_repo(root: Path, body: str = NOTEBOOK, n: int = 21) -> Path:
    """A minimal repository: pyproject, one paired notebook, one smoke profile."""
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fake'\n")
    (root / "notebooks" / "demo.py").write_text(body)
    (root / "papermill_runs" / "demo").mkdir(parents=True)
    (root / "papermill_runs" / "demo" / "smoke.yaml").write_text(f"n: {n}\nsettings: {{size: 8}}\n")
    return root


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root), *args],
        check=True,
        capture_output=True,
    )


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_reproduce_executes_notebook_and_writes_manifest(tmp_path):
    root = make_repo(tmp_path / "repo")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")

    results = rp.reproduce("demo", "smoke", repo_root=root)

    assert [r["ok"] for r in results] == [True], results
    # the notebook ran with cwd = repo root and got the profile's parameters
    assert (root / "figures" / "demo" / "result.txt").read_text() == "smoke 42"
    assert (root / "notebooks" / "demo.ipynb").exists()  # synced from the .py
    assert (root / "papermill_runs" / "out" / "demo-smoke.ipynb").exists()
    manifest = json.loads((root / "figures" / "demo" / "MANIFEST.json").read_text())
    for key in ("paper", "profile", "git_commit", "git_dirty", "device", "torch", "date"):
        assert key in manifest, key
    assert manifest["paper"] == "demo" and manifest["profile"] == "smoke"
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert manifest["git_commit"] == head
    assert manifest["git_dirty"] is False  # only untracked outputs were added
    assert manifest["wall_seconds"] > 0
    assert datetime.fromisoformat(manifest["date"]).utcoffset().total_seconds() == 0
    assert manifest["device"] and manifest["torch"]


def test_discover_papers_finds_py_percent_notebooks_only(tmp_path):
    root = make_repo(tmp_path)
    (root / "notebooks" / "_helpers.py").write_text("# %%\nx = 1\n")
    (root / "notebooks" / "notes.py").write_text("x = 1\n")
    assert rp.discover_papers(root) == ("demo",)


def test_unknown_paper_is_an_error_listing_the_papers(tmp_path):
    root = make_repo(tmp_path)
    with pytest.raises(GradInvError, match="demo"):
        rp.reproduce("nope", repo_root=root)


def test_missing_profile_fails_that_paper_and_cli_exits_nonzero(tmp_path, capsys):
    root = make_repo(tmp_path)
    results = rp.reproduce("demo", "paper", repo_root=root)
    assert results[0]["ok"] is False
    assert "paper.yaml" in results[0]["error"] and "smoke" in results[0]["error"]

    code = main(["reproduce", "--paper", "demo", "--profile", "paper", "--repo-root", str(root)])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED demo" in captured.out
    assert captured.err.strip().startswith("gradinv: error: 1 of 1 notebook(s) failed")


def test_failing_notebook_does_not_stop_the_others(tmp_path, monkeypatch):
    root = make_repo(tmp_path)
    (root / "notebooks" / "other.py").write_text(NOTEBOOK)
    (root / "papermill_runs" / "other").mkdir()
    (root / "papermill_runs" / "other" / "smoke.yaml").write_text("n: 1\n")
    ran = []

    def fake_run_one(paper, profile, repo_root, out_dir, kernel, log_output, engine=None):
        ran.append(paper)
        if paper == "demo":
            raise RuntimeError("cell 3 raised\nTraceback ...")
        return {"paper": paper, "profile": profile, "ok": True, "error": None}

    monkeypatch.setattr(rp, "run_one", fake_run_one)
    results = rp.reproduce("all", "smoke", repo_root=root)
    assert ran == ["demo", "other"]
    assert [r["ok"] for r in results] == [False, True]
    assert results[0]["error"] == "RuntimeError: cell 3 raised"


def test_engine_parameters_must_be_declared_by_the_notebook(tmp_path):
    root = make_repo(tmp_path)
    ipynb = rp.sync_notebook(root / "notebooks" / "demo.py")
    with pytest.raises(GradInvError, match="demo.ipynb does not declare workers"):
        rp.engine_parameters(ipynb, {"workers": 2})
    with pytest.raises(GradInvError, match="unknown engine parameter"):
        rp.engine_parameters(ipynb, {"threads": 2})
    assert rp.engine_parameters(ipynb, {}) == {}


def test_cli_passes_engine_flags_to_every_notebook(tmp_path, monkeypatch):
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return []

    monkeypatch.setattr(rp, "reproduce", fake)
    store = tmp_path / "store"
    assert main(["reproduce", "--workers", "2", "--refresh", "--store", str(store)]) == 0
    assert seen["engine"] == {"workers": 2, "refresh": True, "store": str(store.resolve())}
    assert main(["reproduce", "--executor", "ray"]) == 0 and seen["engine"] == {"executor": "ray"}


def test_missing_kernel_is_a_clear_error(tmp_path):
    root = make_repo(tmp_path)
    with pytest.raises(GradInvError, match="ipykernel install"):
        rp.reproduce("demo", repo_root=root, kernel="no-such-kernel-xyz")


def test_load_parameters_sets_profile_and_leaves_settings_to_the_notebook(tmp_path):
    root = make_repo(tmp_path, n=5)
    # the settings block is read by the notebook itself (load_profile), not injected
    assert rp.load_parameters("demo", "smoke", root) == {"n": 5, "profile": "smoke"}
