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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from gradinv import options
from gradinv.errors import GradInvError
from gradinv.experiments.engine.cells import FrozenDict, thaw

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


@dataclass(frozen=True)
class AttackOverrides:
    """Base of a paper's ``attacks`` section: one field per attack, each a mapping of
    Config overrides (the paper's values are each Config's defaults), checked against that
    attack's Config when the profile loads. ``EXTRA`` names keys that are not Config
    options and are kept as given (e.g. the victim an attack needs instead)."""

    EXTRA: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        from gradinv import attacks

        for f in fields(self):
            value = getattr(self, f.name)
            value = {} if value is None else value
            if not isinstance(value, Mapping):
                raise GradInvError(f"attacks.{f.name} is a mapping of Config overrides")
            value = dict(value)
            extra = {key: value.pop(key) for key in self.EXTRA if key in value}
            if self.checks(f.name):
                value = options.parse_overrides(
                    attacks.get(f.name).Config, value, f"attacks.{f.name} (attack {f.name!r})"
                )
            object.__setattr__(self, f.name, FrozenDict({**value, **extra}))

    def checks(self, attack: str) -> bool:
        """Whether ``attack``'s overrides are checked against its Config (default: always)."""
        return True

    def of(self, attack: str) -> dict[str, Any]:
        """The overrides of ``attack`` as a plain dict."""
        return thaw(getattr(self, attack))


def dataset_options(datasets: Any) -> FrozenDict:
    """``settings.datasets``: each role mapped to its dataset names, the first present used
    (a single name is a list of one); an empty list or a non-string name is an error."""
    if not isinstance(datasets, Mapping):
        raise GradInvError("settings.datasets maps each role to its dataset options")
    parsed = {}
    for role, names in datasets.items():
        names = (names,) if isinstance(names, str) else tuple(names or ())
        if not names or not all(isinstance(n, str) for n in names):
            raise GradInvError(f"settings.datasets.{role} lists dataset names")
        parsed[str(role)] = names
    return FrozenDict(parsed)


def check_known(where: str, names: Sequence[str], known: Mapping[str, Any] | Sequence[str]) -> None:
    """A one-line error naming ``where`` when ``names`` holds something not in ``known``."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise GradInvError(f"{where}: unknown {unknown}; known: {sorted(known)}")


__all__ = [
    "PARAMETERS",
    "AttackOverrides",
    "check_known",
    "dataset_options",
    "load",
    "path",
    "read",
]
