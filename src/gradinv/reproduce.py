"""Papermill batch runner behind ``gradinv reproduce``: execute the paper notebooks.

Every paper has one paired notebook, ``notebooks/<paper>.py`` (py:percent, the source
of truth) plus ``notebooks/<paper>.ipynb``, and one parameter set per profile in
``papermill_runs/<paper>/<profile>.yaml`` (see DESIGN.md, "Profiles"). For each
requested paper :func:`reproduce`

1. reads the profile's parameters (``profile`` is always passed too),
2. re-creates the ``.ipynb`` from the ``.py`` with jupytext when the ``.py`` is newer,
3. executes the ``.ipynb`` with papermill, with the **repository root as working
   directory** (so notebooks write ``figures/<paper>/...`` relative to it; the kernel
   also gets ``GRADINV_REPO_ROOT`` in its environment, see :func:`find_repo_root`),
4. writes the executed notebook to ``<out_dir>/<paper>-<profile>.ipynb`` and
5. writes ``figures/<paper>/MANIFEST.json``: paper, profile, git commit and dirty flag,
   device, torch version, UTC date and wall time.

A failing notebook is reported and the others still run; the caller (the CLI) exits
non-zero when any failed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gradinv.errors import GradInvError
from gradinv.experiments.engine.execute import MANIFEST_ENV

#: Environment variable that points notebooks (and this module) at the repository root.
ROOT_ENV = "GRADINV_REPO_ROOT"
PROFILES = ("smoke", "paper")
DEFAULT_KERNEL = "python3"


def find_repo_root(start: str | Path | None = None) -> Path:
    """The repository root: ``$GRADINV_REPO_ROOT`` if set, else the first directory at or
    above ``start`` (default: the working directory) holding ``pyproject.toml`` and
    ``notebooks/``, else the checkout this package was imported from.

    Notebooks call it to build figure paths that work both under papermill (cwd = root)
    and in Jupyter Lab (cwd = ``notebooks/``).
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "notebooks").is_dir():
            return d
    pkg_root = Path(__file__).resolve().parents[2]  # src/gradinv/reproduce.py -> repo
    if (pkg_root / "pyproject.toml").is_file():
        return pkg_root
    return here


def discover_papers(repo_root: str | Path | None = None) -> tuple[str, ...]:
    """Paper names: the stems of ``notebooks/*.py`` files that are jupytext notebooks
    (a jupytext header or a sibling ``.ipynb``), sorted; files starting with ``_`` are
    helpers, not papers."""
    nb_dir = Path(repo_root or find_repo_root()) / "notebooks"
    if not nb_dir.is_dir():
        return ()
    names = []
    for py in sorted(nb_dir.glob("*.py")):
        if py.name.startswith("_"):
            continue
        head = py.read_text(encoding="utf-8", errors="replace")[:2000]
        if "jupytext" in head or "# %%" in head or py.with_suffix(".ipynb").exists():
            names.append(py.stem)
    return tuple(names)


#: Papers of this checkout (computed at import; :func:`reproduce` re-discovers per root).
PAPERS: tuple[str, ...] = discover_papers()


def load_parameters(paper: str, profile: str, repo_root: Path) -> dict[str, Any]:
    """Papermill parameters of ``papermill_runs/<paper>/<profile>.yaml``, with ``profile``
    set. The ``settings`` block is not a parameter: the notebook reads it from the same
    file by profile name (``gradinv.experiments.common.load_profile``)."""
    import yaml

    path = repo_root / "papermill_runs" / paper / f"{profile}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise GradInvError(
            f"no parameter file {path.relative_to(repo_root)}; "
            f"profiles present for {paper!r}: {', '.join(have) or 'none'}"
        )
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(params, dict):
        raise GradInvError(f"{path} must hold a mapping of parameter names to values")
    params.pop("settings", None)
    params.setdefault("profile", profile)
    return params


def sync_notebook(py_path: Path) -> Path:
    """Make ``<name>.ipynb`` current: run jupytext when the ``.py`` is newer (or the
    ``.ipynb`` is missing). Paired notebooks are ``--sync``-ed (outputs kept), others
    converted with ``--to ipynb``. Returns the ``.ipynb`` path."""
    ipynb = py_path.with_suffix(".ipynb")
    if ipynb.exists() and ipynb.stat().st_mtime >= py_path.stat().st_mtime:
        return ipynb
    head = py_path.read_text(encoding="utf-8", errors="replace")[:2000]
    paired = "formats:" in head and "ipynb" in head
    args = ["--sync"] if paired and ipynb.exists() else ["--to", "ipynb"]
    proc = subprocess.run(
        [sys.executable, "-m", "jupytext", *args, str(py_path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not ipynb.exists():
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise GradInvError(
            f"jupytext could not convert {py_path.name}: {msg[-1] if msg else 'no output'}"
        )
    return ipynb


def declared_parameters(ipynb: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that the notebook's ``parameters`` cell declares.

    Profile files may hold more than the parameter cell (e.g. a ``settings`` block the
    notebook reads itself with ``load_profile``); only declared names are injected, so
    papermill neither warns nor injects large unused literals. A notebook without a
    parameters cell gets everything."""
    import papermill

    declared = papermill.inspect_notebook(str(ipynb))
    if not declared:
        return params
    return {k: v for k, v in params.items() if k in declared}


def git_state(repo_root: Path) -> tuple[str | None, bool | None]:
    """``(short commit, dirty)`` of ``repo_root``; dirty counts changes to tracked files
    only. ``(None, None)`` outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo_root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo_root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit or None, bool(status)


def cpu_model() -> str:
    """Human-readable CPU model (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """CPU model, core count, torch version and GPU name (``None`` without CUDA)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def check_kernel(kernel: str) -> None:
    """Raise a clear error when no Jupyter kernel ``kernel`` is installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise GradInvError(
            f"no Jupyter kernel named {kernel!r}; install one with "
            f"`{sys.executable} -m ipykernel install --sys-prefix --name {kernel}` "
            "or pass --kernel NAME (see `jupyter kernelspec list`)"
        ) from None


def write_manifest(path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` into ``path`` (JSON), keeping keys an earlier manifest or the
    notebook itself wrote there."""
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
        if not isinstance(data, dict):
            data = {}
    data.update(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


#: Engine parameters ``gradinv reproduce`` passes to every notebook (each declares them).
ENGINE_PARAMETERS = ("workers", "executor", "refresh", "store")


def engine_parameters(ipynb: Path, engine: dict[str, Any]) -> dict[str, Any]:
    """``engine`` (a subset of :data:`ENGINE_PARAMETERS`), checked against the parameters
    the notebook declares: an undeclared one is an error, not a setting silently dropped."""
    import papermill

    unknown = sorted(set(engine) - set(ENGINE_PARAMETERS))
    if unknown:
        raise GradInvError(f"unknown engine parameter(s) {', '.join(unknown)}")
    declared = papermill.inspect_notebook(str(ipynb))
    missing = sorted(set(engine) - set(declared))
    if missing:
        raise GradInvError(
            f"{ipynb.name} does not declare {', '.join(missing)} in its parameters cell; "
            "it cannot run on the experiment engine's options"
        )
    return dict(engine)


def run_one(
    paper: str,
    profile: str,
    repo_root: Path,
    out_dir: Path,
    kernel: str = DEFAULT_KERNEL,
    log_output: bool = False,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute one paper notebook; return its result record (raises on failure).
    ``engine``: experiment-engine parameters (:data:`ENGINE_PARAMETERS`) that override the
    profile's."""
    import papermill

    params = load_parameters(paper, profile, repo_root)
    ipynb = sync_notebook(repo_root / "notebooks" / f"{paper}.py")
    params = declared_parameters(ipynb, params)
    params.update(engine_parameters(ipynb, engine or {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{paper}-{profile}.ipynb"
    commit, dirty = git_state(repo_root)
    machine = machine_info()
    env_before = {name: os.environ.get(name) for name in (ROOT_ENV, MANIFEST_ENV)}
    manifest = repo_root / "figures" / paper / "MANIFEST.json"
    os.environ[ROOT_ENV] = str(repo_root)  # inherited by the kernel process
    os.environ[MANIFEST_ENV] = str(manifest)  # the notebook's Runner notes cells as they finish
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_manifest(manifest, {"paper": paper, "profile": profile, "status": "running",
                              "started": started, "git_commit": commit})  # fmt: skip
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(ipynb),
            str(output),
            parameters=params,
            kernel_name=kernel,
            language="python",
            cwd=str(repo_root),
            log_output=log_output,
            progress_bar=log_output,
        )
    except Exception:
        write_manifest(manifest, {"status": "failed"})
        raise
    finally:
        for name, value in env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    wall = time.perf_counter() - start
    on_gpu = machine["gpu"] is not None and str(params.get("device", "auto")) != "cpu"
    entry = {
        "paper": paper,
        "profile": profile,
        "status": "complete",
        "started": started,
        "git_commit": commit,
        "git_dirty": dirty,
        "device": machine["gpu"] if on_gpu else machine["cpu"],
        "cpu": machine["cpu"],
        "cpu_cores": machine["cpu_cores"],
        "gpu": machine["gpu"],
        "torch": machine["torch"],
        "python": machine["python"],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 2),
        "parameters": params,
        "executed_notebook": os.path.relpath(output, repo_root),
    }
    write_manifest(manifest, entry)
    return {
        "paper": paper,
        "profile": profile,
        "ok": True,
        "wall_seconds": wall,
        "output": str(output),
        "manifest": str(manifest),
        "error": None,
    }


def reproduce(
    paper: str = "all",
    profile: str = "smoke",
    out_dir: str | Path = "papermill_runs/out",
    repo_root: str | Path | None = None,
    kernel: str = DEFAULT_KERNEL,
    log_output: bool = False,
    engine: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Execute the notebook of ``paper`` (or of every paper with ``"all"``) with profile
    ``profile``; return one record per paper: ``{paper, profile, ok, wall_seconds,
    output, manifest, error}``. A failing notebook does not stop the others: its record
    has ``ok=False`` and a one-line ``error``. A relative ``out_dir`` is taken relative
    to the repository root. ``engine`` (``workers``, ``executor``, ``refresh``, ``store``)
    overrides the profile's experiment-engine parameters in every notebook."""
    root = Path(repo_root).resolve() if repo_root is not None else find_repo_root()
    papers = discover_papers(root)
    if not papers:
        raise GradInvError(f"no paper notebooks found in {root / 'notebooks'} (*.py, py:percent)")
    if paper == "all":
        todo = list(papers)
    elif paper in papers:
        todo = [paper]
    else:
        raise GradInvError(f"unknown paper {paper!r}; choose one of: all, {', '.join(papers)}")
    check_kernel(kernel)
    out = Path(out_dir)
    out = out if out.is_absolute() else root / out
    results = []
    for name in todo:
        try:
            results.append(run_one(name, profile, root, out, kernel, log_output, engine))
        except Exception as exc:  # noqa: BLE001 - one failing notebook must not stop the rest
            results.append(
                {
                    "paper": name,
                    "profile": profile,
                    "ok": False,
                    "wall_seconds": None,
                    "output": str(out / f"{name}-{profile}.ipynb"),
                    "manifest": None,
                    "error": _one_line(exc),
                }
            )
    return results


def _one_line(exc: BaseException) -> str:
    """``Type: first meaningful line`` of an exception (papermill errors are long)."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    # papermill's PapermillExecutionError carries ename/evalue: the most useful part
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f" (cell [{cell}])" if cell is not None else ""
        return f"{ename}: {evalue}".splitlines()[0] + where
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
