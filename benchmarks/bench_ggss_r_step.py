"""Seconds per conditional reverse step and peak memory of GGSS-R per victim (Table 8).

Computes the ``cost`` cells of :func:`gradinv.experiments.ggss_r.table8_cells` -- GGSS-R
with the profile's prior against each of its ``table8.models`` at its size, batch 1 --
always afresh (a benchmark never reads a run store), and reports per model the mean seconds
per conditional step (an ``eps_theta`` forward, the victim's double backward at the
posterior mean ``x0(x_t)``, the backward through the UNet and the spherical step), the peak
accelerator memory (CUDA only; ``nan`` on a CPU) and the step's cost as a multiple of one SGD
training step of the same victim. The victims are freshly initialised in the profile's
``victims.mode``: the cost of a step does not depend on the weights, and training them would
cost more than the benchmark. The paper's Table 8 (A100, 256 px) sits beside it; its absolute
numbers are not comparable (8x the resolution: its MLP-5 has 200M weights in the first layer
alone), its ordering and the ratio to a training step are.

    OMP_NUM_THREADS=1 python benchmarks/bench_ggss_r_step.py --device cpu   # as one worker runs
    python benchmarks/bench_ggss_r_step.py --device cuda --steps 50

Writes ``benchmarks/ggss-r-step-<cpu|cuda>.json`` (or ``--out``), which the notebook's
Table 8 reads (:func:`gradinv.experiments.ggss_r.load_benchmark`), and prints a Markdown
table. Not a test: timings depend on the machine; the JSON records which one and how busy
it was (the load average).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_attack_speed import machine  # noqa: E402  (same machine record as the other bench)

from gradinv.experiments import ggss_r, profiles  # noqa: E402
from gradinv.experiments.common import use_device  # noqa: E402
from gradinv.experiments.engine import run_cells  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", default="cpu", help="whose prior, size and table8 to use")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (profile's)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    args = parser.parse_args(argv)
    settings = profiles.load(ggss_r.PAPER, args.profile, ggss_r.Profile)
    table8 = settings.table8
    if args.steps is not None:
        table8 = dataclasses.replace(table8, steps=args.steps)
    settings = dataclasses.replace(
        settings, table8=table8, victims=ggss_r.Victims(epochs=0, mode=settings.victims.mode)
    )
    device = use_device(args.device)
    with tempfile.TemporaryDirectory() as store:
        records = run_cells(ggss_r.table8_cells(settings), store)
    measurements = ggss_r.cost_measurements(records)
    result = {
        "machine": machine(device),
        "load_average": os.getloadavg(),
        "note": args.note,
        "profile": args.profile,
        "size": settings.size,
        "prior": settings.prior,
        "victims": dataclasses.asdict(settings.victims),
        "steps": table8.steps,
        "measurements": measurements,
    }
    out = args.out or ggss_r.benchmark_path(device.type)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(ggss_r.table8(measurements).to_markdown(index=False, floatfmt=".4g"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
