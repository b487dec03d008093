"""Compute the ``paper`` profiles' missing cells on a bare GPU machine, for a time budget.

One command on a machine that has only Python and torch (the device machine's image)::

    python3 scripts/gpu.py --bundle .gpu --budget 500 --out "$OUT/stores"

1. installs the wheels in ``<bundle>/wheels`` (``pip --no-index --target``: nothing is
   downloaded) and puts them and this checkout's ``src`` on the path;
2. unpacks ``<bundle>/data.tar.gz`` (the offline data root and the LPIPS backbone, built
   here by ``scripts/gpu_bundle.sh``) unless ``$GRADINV_DATA`` already holds data;
3. lists every cell of each paper's profile (``gradinv.experiments.papers.missing_cells``:
   most valuable first, without those already in the committed store (``stores/<paper>/
   <profile>``) or in ``--out``), and computes them one at a time, taking the papers in
   turn, until the budget is spent (a cell is not started when the time left is below the
   longest cell of its kind seen so far); then lists again, for the cells a driver lists
   only once earlier results are stored (values tuned on public images);
4. leaves each new record in ``<out>/<paper>/<profile>/`` as it finishes (a killed run
   keeps them) and writes ``<out>/summary.json``.

Back on a development machine, ``gradinv store merge <out>`` copies the new records into
``stores/``; a record that differs from one already there keeps the committed one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: after this many cells fail in a row the rest are not started (a missing asset, say)
MAX_FAILURES_IN_A_ROW = 3


def install(bundle: Path, site: Path) -> None:
    """Install the bundle's wheels into ``site`` (no index, no dependencies resolved)."""
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    if wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
             *map(str, wheels)],
            check=True,
        )  # fmt: skip
    sys.path[:0] = [str(ROOT / "src"), str(site)]


def unpack_data(bundle: Path, target: Path) -> None:
    """Unpack ``data.tar.gz`` (``data/`` -> the data root, ``hub/`` -> the torch hub)."""
    archive = bundle / "data.tar.gz"
    if os.environ.get("GRADINV_DATA") and Path(os.environ["GRADINV_DATA"]).is_dir():
        return
    if not archive.is_file():
        sys.exit(f"gpu: {archive} is missing; build it with scripts/gpu_bundle.sh")
    if not (target / "data").is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    os.environ["GRADINV_DATA"] = str(target / "data")
    os.environ["TORCH_HOME"] = str(target)  # torch.hub.get_dir() is $TORCH_HOME/hub


def plan(papers: list[str], profile: str, out: Path) -> list[tuple[str, object]]:
    """``(paper, cell)`` still to compute, the papers interleaved, each in its own order."""
    from gradinv.experiments import papers as drivers
    from gradinv.experiments import profiles
    from gradinv.experiments.engine import RunStore, profile_root

    queues = []
    for paper in papers:
        seed = int(profiles.read(paper, profile)[0].get("seed", 0))
        committed = RunStore(profile_root(paper, profile, ROOT))
        new = RunStore(out / paper / profile)
        todo = drivers.missing_cells(paper, profile, seed, [committed, new])
        print(f"{paper}: {len(todo)} cells to compute", flush=True)
        queues.append([(paper, cell) for cell in todo])
    return [item for row in zip_longest(*queues) for item in row if item is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / ".gpu", help="default: .gpu")
    parser.add_argument("--budget", type=float, required=True, help="seconds to spend")
    parser.add_argument("--out", type=Path, required=True, help="where new records go")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--papers", default="all", help="comma-separated, or all")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gradinv-gpu"))
    args = parser.parse_args(argv)
    start = time.monotonic()
    install(args.bundle, args.work / "site")
    unpack_data(args.bundle, args.work)

    from gradinv.experiments import papers as drivers
    from gradinv.experiments.common import use_device
    from gradinv.experiments.engine import CellsFailed, RunStore, run_cells

    use_device(args.device)
    names = list(drivers.DRIVERS) if args.papers == "all" else args.papers.split(",")
    longest: dict[str, float] = defaultdict(float)
    done: dict[str, int] = defaultdict(int)
    failed: list[str] = []
    attempted: set[str] = set()
    skipped = 0
    streak = 0  # failures in a row: a missing asset fails every cell, so stop early
    from tqdm.auto import tqdm

    # a driver lists cells that need earlier results (tuned values) once those are stored:
    # plan again after each pass until a pass has nothing new to start
    while todo := [(p, c) for p, c in plan(names, args.profile, args.out)
                   if c.key not in attempted]:  # fmt: skip
        for paper, cell in tqdm(todo, desc="cells", unit="cell"):
            attempted.add(cell.key)
            if streak == MAX_FAILURES_IN_A_ROW:
                skipped += 1
                continue
            left = args.budget - (time.monotonic() - start)
            if left <= longest[cell.function] or left <= 0:
                skipped += 1
                continue
            began = time.monotonic()
            try:
                run_cells([cell], RunStore(args.out / paper / args.profile), progress=False)
            except CellsFailed as exc:
                failed.append(f"{cell.label()}: {exc.failures[0].error}")
                streak += 1
            else:
                done[paper] += 1
                streak = 0
            longest[cell.function] = max(longest[cell.function], time.monotonic() - began)
    summary = {
        "profile": args.profile,
        "device": args.device,
        "seconds": round(time.monotonic() - start, 1),
        "computed": dict(done),
        "not_started": skipped,
        "failed": failed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
