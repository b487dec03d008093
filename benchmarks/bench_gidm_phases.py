"""Seconds per iteration of GIDM's two phases (and of one client training step).

The victim is a randomly initialised DDPM UNet with the shipped ``brain_mri-32``
architecture (1.1 M parameters, 32x32x1, T = 1000) and the generative phase's prior
``theta*`` is the shipped ``brain_mri-32`` DDPM. Per row: the mean seconds per iteration of

* the fine-tuning phase (pixels; one double backward through the victim UNet) — the same
  cost as an iteration of DLG-dm / InvG-dm;
* the generative phase with ``k`` DDIM sampling steps of ``theta*`` (``k`` UNet forwards,
  the victim's double backward, the backward through the checkpointed sampler);

with ``eps`` and ``t`` secret (triple optimisation), and each as a multiple of one client
training step (the gradient of eq. 1). CUDA timings are synchronised.

    python benchmarks/bench_gidm_phases.py --device cpu --iterations 10

Writes ``benchmarks/gidm-phases-<cpu|cuda>.json`` (or ``--out``) and prints a Markdown table.
Not a test: timings depend on the machine; the JSON records which one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_attack_speed import machine  # noqa: E402  (same machine record as the other bench)

from gradinv import attacks  # noqa: E402
from gradinv.case import Observed  # noqa: E402
from gradinv.fl.diffusion import parameter_gradient  # noqa: E402
from gradinv.priors import load_prior  # noqa: E402
from gradinv.priors.ddpm import DiffusionPrior, from_image  # noqa: E402


def _timed(fn, device: torch.device, repeat: int = 1) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per phase")
    parser.add_argument("--sampling-steps", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--prior", default="brain_mri-32")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    prior = load_prior(args.prior, device)
    torch.manual_seed(0)
    victim = DiffusionPrior(prior.spec).to(device).eval().requires_grad_(False)
    x = torch.rand(1, *prior.image_shape, device=device)
    eps, t = torch.randn_like(x), torch.tensor([300], device=device)
    grads = parameter_gradient(victim, from_image(x), eps, t)
    obs = Observed(grads, 1, tuple(x.shape[1:]), 0)
    n = args.iterations

    train = _timed(lambda: parameter_gradient(victim, from_image(x), eps, t), device, repeat=n)
    rows = [{"phase": "client training step (eq. 1 gradient)", "seconds": train}]

    def phase(**options) -> float:
        attacks.run("gidm", victim, obs, prior=prior, device=str(device), **options)  # warm-up
        return (
            _timed(
                lambda: attacks.run(
                    "gidm", victim, obs, prior=prior, device=str(device), **options
                ),
                device,
            )
            / n
        )

    rows.append(
        {"phase": "fine-tuning (pixels)", "seconds": phase(generative=False, finetune_iterations=n)}
    )
    for k in args.sampling_steps:
        sec = phase(finetune=False, generative_iterations=n, sampling_steps=k)
        rows.append({"phase": f"generative, {k} DDIM steps", "seconds": sec})
    table = pd.DataFrame(rows)
    table["x training step"] = table.seconds / train
    result = {"machine": machine(device), "note": args.note, "iterations": n,
              "rows": table.to_dict(orient="records")}  # fmt: skip
    out = args.out or Path(__file__).parent / f"gidm-phases-{device.type}.json"
    out.write_text(json.dumps(result, indent=2))
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
