"""Script for test_engine's resume test: run N slow toy cells into a store.

python tests/engine_resume.py STORE N SLEEP WORKERS
"""

from __future__ import annotations

import sys

from gradinv.experiments.engine import Cell, run_cells


def cells(n: int, sleep: float) -> list[Cell]:
    return [
        Cell("toy", "resume", "engine_toy:slow", {"i": i, "sleep": sleep}, seed=i) for i in range(n)
    ]


if __name__ == "__main__":
    store, n, sleep, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    run_cells(cells(n, sleep), store, workers=workers, progress=True)
