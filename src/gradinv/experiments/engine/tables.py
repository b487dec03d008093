"""Records as a table: one row per record, the cell's settings and metrics as columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gradinv.experiments.engine.cells import Record, thaw

if TYPE_CHECKING:
    import pandas as pd
    import torch


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted columns: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        column = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{column}."))
        else:
            out[column] = thaw(value)
    return out


def frame(records: Iterable[Record]) -> pd.DataFrame:
    """``key, paper, kind, seed``, the settings, then the metrics (both flattened; a
    metric named like a setting gets a ``metric.`` prefix), one row per record."""
    import pandas as pd

    rows = []
    for record in records:
        cell = record.cell
        row: dict[str, Any] = {"key": cell.key, "paper": cell.paper, "kind": cell.kind}
        row["seed"] = cell.seed
        row.update(flatten(cell.settings))
        for name, value in flatten(record.metrics).items():
            row[f"metric.{name}" if name in row else name] = value
        rows.append(row)
    return pd.DataFrame(rows)


def of_kind(records: Iterable[Record], kind: str) -> list[Record]:
    """The records whose cell is of ``kind`` (e.g. ``"attack"``, ``"floors"``), in order."""
    return [r for r in records if r.cell.kind == kind]


def as_tensor(array: Any) -> torch.Tensor:
    """A stored array (read-only, lazily loaded) as a tensor of its own memory."""
    import numpy as np
    import torch

    return torch.from_numpy(np.array(array))
