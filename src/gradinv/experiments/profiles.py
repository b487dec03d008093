"""Typed profiles: ``papermill_runs/<paper>/<profile>.yaml`` read into a paper's frozen
dataclass (DESIGN.md, "Profiles").

A profile file holds the notebook's papermill parameters (:data:`PARAMETERS`) and a
``settings`` block; :func:`load` builds the paper's ``Profile`` dataclass from that block
with :func:`gradinv.options.build` (nested dataclasses from nested mappings), so a misspelt
or unknown key, anywhere in the file, is a one-line :class:`GradInvError` naming the key and
the file instead of a setting silently ignored::

    profile = profiles.load("gradinvdiff", "smoke", gradinvdiff.Profile)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from gradinv import options
from gradinv.errors import GradInvError

T = TypeVar("T")

#: Top-level keys of a profile file besides ``settings``: the notebooks' parameters.
PARAMETERS = ("profile", "seed", "device", "workers", "executor", "refresh", "store")


def path(paper: str, profile: str, root: str | Path | None = None) -> Path:
    """``papermill_runs/<paper>/<profile>.yaml`` under ``root`` (default: the repository)."""
    if root is None:
        from gradinv.reproduce import find_repo_root

        root = find_repo_root()
    return Path(root) / "papermill_runs" / paper / f"{profile}.yaml"


def read(paper: str, profile: str, root: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """The raw mapping of a profile file and the name errors quote it by (relative to the
    repository root where possible); unknown top-level keys are errors."""
    file = path(paper, profile, root)
    where = _shown(file, root)
    if not file.is_file():
        known = sorted(p.stem for p in file.parent.glob("*.yaml")) if file.parent.is_dir() else []
        raise GradInvError(
            f"no profile {profile!r} for {paper}: {where} is missing "
            f"(profiles present: {', '.join(known) or 'none'})"
        )
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise GradInvError(f"{where}{line}: not valid YAML ({problem})") from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise GradInvError(f"{where}: a profile is a mapping of parameters and settings")
    unknown = sorted(set(raw) - {*PARAMETERS, "settings"})
    if unknown:
        raise GradInvError(
            f"{where}: unknown key {', '.join(map(repr, unknown))} "
            f"(top-level keys: {', '.join(PARAMETERS)}, settings)"
        )
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise GradInvError(f"{where}: settings must be a mapping")
    return raw, where


def load(paper: str, profile: str, cls: type[T], root: str | Path | None = None) -> T:
    """The ``settings`` of ``papermill_runs/<paper>/<profile>.yaml`` as ``cls`` (a frozen
    dataclass; nested sections are nested dataclasses). Unknown keys, bad values and failed
    checks are one-line :class:`GradInvError` s that name the file."""
    raw, where = read(paper, profile, root)
    try:
        return options.build(cls, raw.get("settings") or {}, f"{where}: settings")
    except GradInvError as exc:
        message = str(exc)
        raise GradInvError(message if where in message else f"{where}: {message}") from None


def _shown(file: Path, root: str | Path | None) -> str:
    from gradinv.reproduce import find_repo_root

    base = Path(root) if root is not None else find_repo_root()
    try:
        return file.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(file)


__all__ = ["PARAMETERS", "load", "path", "read"]
