"""Seconds per conditional reverse step and peak memory of GGSS-R per victim (Table 8).

Runs :func:`gradinv.experiments.ggss_r.table8` — GGSS-R with the shipped ``chest_xray-32``
prior against each of the paper's six victims at 32x32x1, batch 1 — and reports, per model,
the mean seconds per conditional step (an ``eps_theta`` forward, the victim's double backward
at the posterior mean ``x0(x_t)``, the backward through the UNet and the spherical step), the
peak accelerator memory (CUDA only; ``nan`` on a CPU) and the step's cost as a multiple of one
SGD training step of the same victim. The paper's Table 8 (A100, 256 px) sits beside it; its
absolute numbers are not comparable (8x the resolution: its MLP-5 has 200M weights in the
first layer alone), its ordering and the ratio to a training step are.

    python benchmarks/bench_ggss_r_step.py --device cpu --steps 10

Writes ``benchmarks/ggss-r-step-<cpu|cuda>.json`` (or ``--out``) and prints a Markdown table.
Not a test: timings depend on the machine; the JSON records which one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_attack_speed import machine  # noqa: E402  (same machine record as the other bench)

from gradinv.experiments import ggss_r  # noqa: E402
from gradinv.experiments.common import load_profile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed reverse steps per model")
    parser.add_argument("--models", nargs="+", default=list(ggss_r.MODEL_LABELS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    args = parser.parse_args(argv)
    settings = load_profile(ggss_r.PAPER, "smoke")
    settings["table8"] = {"models": args.models, "steps": args.steps}
    device = torch.device(args.device)
    table = ggss_r.table8(settings, seed=0, device=str(device))
    result = {
        "machine": machine(device),
        "note": args.note,
        "steps": args.steps,
        "rows": table.to_dict(orient="records"),
    }
    out = args.out or Path(__file__).parent / f"ggss-r-step-{device.type}.json"
    out.write_text(json.dumps(result, indent=2))
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
