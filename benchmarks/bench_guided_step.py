"""Seconds per reverse step of the diffusion-guided attacks (GradInvDiff, GGDM).

A guided attack runs the prior's reverse process and, at every step ``t -> s``, pays for
gradient matching on top of the noise prediction. Per step:

* **GradInvDiff** (MICCAI 2025, Sec. 2.3): one ``eps_theta`` call for ``mu_theta`` and
  ``K + 1`` matching evaluations for Adaptive Mean Optimization (``K = 5`` Adam steps on the
  mean plus the evaluation of the last iterate), each a victim forward, its parameter gradient
  kept differentiable and the derivative with respect to the input (a double backward);
* **GGDM** (eq. 5, ``guide_on="x_t"``, the default): one ``eps_theta`` call and one matching
  evaluation on ``x_t``;
* **GGDM x0** (``guide_on="x0"``): the matching evaluation on ``x0(x_t)`` plus a backward
  pass through the UNet;
* **unguided**: one DDPM ancestral step of the prior (``eps_theta`` + posterior), the floor.

Victims: LeNet7 and ResNet18 at 64x64x3, 10 classes, oracle labels (label inference is a
one-off cost). The prior is a randomly initialised 64 px ``PriorSpec(image_size=64,
channels=3)`` (default UNet, ~1.1M parameters): its weights do not change the cost.
A step is timed between two consecutive callbacks of the attack (``--warmup`` untimed ones
first; the first interval also holds the attack's set-up); on CUDA every clock reading is
synchronised. Result: the median seconds per step.

    python benchmarks/bench_guided_step.py --device cpu --iters 3 --warmup 1

Writes ``benchmarks/guided-step-<cpu|cuda>.json`` (or ``--out``) and prints a Markdown table.
Not a test: timings depend on the machine; the JSON records which one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gradinv import attacks, models
from gradinv.case import Case
from gradinv.fl import observe
from gradinv.priors import DiffusionPrior, PriorSpec
from gradinv.utils import resolve_device, seed_everything

sys.path.insert(0, str(Path(__file__).parent))
from bench_attack_speed import machine  # noqa: E402  (same machine record as the other bench)

MODELS: tuple[str, ...] = ("lenet7", "resnet18")
SIZE, CHANNELS, CLASSES = 64, 3, 10
#: (row name, attack, Config overrides)
METHODS: tuple[tuple[str, str, dict], ...] = (
    ("gradinvdiff", "gradinvdiff", {"amo_steps": 5}),
    ("ggdm", "ggdm", {"guide_on": "x_t"}),
    ("ggdm_x0", "ggdm", {"guide_on": "x0"}),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_prior(folder: Path) -> str:
    """A randomly initialised 64 px RGB prior saved in ``folder`` (fp32)."""
    seed_everything(0)
    DiffusionPrior(PriorSpec(image_size=SIZE, channels=CHANNELS)).save(folder, note="random")
    return str(folder)


def time_guided(
    attack: str,
    options: dict,
    model_name: str,
    batch: int,
    prior: str,
    device: torch.device,
    iters: int,
    warmup: int,
) -> list[float]:
    """Seconds of each of ``iters`` reverse steps (after ``warmup`` untimed ones)."""
    seed_everything(0)
    model = models.build(model_name, CHANNELS, CLASSES, SIZE).to(device)
    images = torch.rand(batch, CHANNELS, SIZE, SIZE, device=device)
    labels = torch.arange(batch, device=device) % CLASSES
    observed = observe(Case(model, images, labels, CLASSES, "bench"), oracle_labels=True)
    stamps: list[float] = []

    def callback(iteration: int, record: dict) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    _sync(device)
    stamps.append(time.perf_counter())  # the first interval includes the attack's set-up
    steps = warmup + iters + 1  # the last step (to x_0) skips the noise: leave it untimed
    attacks.run(attack, model, observed, callback=callback, prior=prior, steps=steps, **options)
    deltas = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    return deltas[warmup : warmup + iters]


def time_unguided(
    batch: int, prior: str, device: torch.device, iters: int, warmup: int
) -> list[float]:
    """Seconds of each of ``iters`` unguided DDPM steps of the same prior."""
    p = DiffusionPrior.load(prior, device)
    x = torch.randn(batch, CHANNELS, SIZE, SIZE, device=device)
    ts = p.timesteps(warmup + iters + 1)
    out = []
    with torch.no_grad():
        for i, t in enumerate(ts[:-1]):
            _sync(device)
            t0 = time.perf_counter()
            post = p.posterior(x, t, ts[i + 1])
            x = post.mean + post.std * torch.randn_like(x)
            _sync(device)
            out.append(time.perf_counter() - t0)
    return out[warmup : warmup + iters]


def markdown(rows: list[dict]) -> str:
    head = (
        "| victim | image | batch | GradInvDiff (K=5) s/step | GGDM s/step | GGDM x0 s/step "
        "| unguided s/step | GradInvDiff / GGDM |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['model']} | {SIZE}x{SIZE}x{CHANNELS} | {r['batch']} | {r['gradinvdiff']:.4f} "
        f"| {r['ggdm']:.4f} | {r['ggdm_x0']:.4f} | {r['unguided']:.4f} "
        f"| {r['gradinvdiff'] / r['ggdm']:.1f}x |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seconds per reverse step of GradInvDiff (K=5 AMO) and GGDM, LeNet7 and "
        "ResNet18 victims at 64 px, against an unguided DDPM step.",
        epilog="example: python benchmarks/bench_guided_step.py --device cuda --iters 20",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--iters", type=int, default=10, help="timed steps (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (default: 2)")
    parser.add_argument("--models", default=",".join(MODELS), help="subset, e.g. lenet7")
    parser.add_argument("--batches", default="1", help="comma list of batch sizes (default: 1)")
    parser.add_argument(
        "--note", default="", help="free text stored in the JSON (e.g. 'machine busy')"
    )
    parser.add_argument(
        "--out", default=None, help="JSON file (default: benchmarks/guided-step-<device>.json)"
    )
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1:
        parser.error("--iters and --warmup must be >= 1 (the first step holds the set-up)")
    device = resolve_device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prior = make_prior(Path(tmp) / "random-64")
        for model_name in args.models.split(","):
            for batch in batches:
                row: dict = {"model": model_name, "size": SIZE, "batch": batch, "samples": {}}
                for name, attack, options in METHODS:
                    t = time_guided(
                        attack, options, model_name, batch, prior, device, args.iters, args.warmup
                    )
                    row[name], row["samples"][name] = statistics.median(t), t
                t = time_unguided(batch, prior, device, args.iters, args.warmup)
                row["unguided"], row["samples"]["unguided"] = statistics.median(t), t
                rows.append(row)
                print(
                    f"{model_name} batch {batch}: "
                    + ", ".join(f"{k} {row[k]:.4f} s" for k, *_ in (*METHODS, ("unguided",))),
                    file=sys.stderr,
                )
    result = {
        "benchmark": "seconds per reverse step of guided diffusion attacks (median)",
        "prior": f"random PriorSpec(image_size={SIZE}, channels={CHANNELS}), default UNet",
        "iters": args.iters,
        "warmup": args.warmup,
        "note": args.note,
        "load_average_1_5_15min_at_end": list(os.getloadavg())
        if hasattr(os, "getloadavg")
        else None,
        "machine": machine(device),
        "rows": rows,
    }
    m = result["machine"]
    print(f"Device: {m['device_name']} ({m['device']}), torch {m['torch']}, "
          f"{m['cpu_cores']} CPU cores, {m['torch_threads']} torch threads; "
          f"median of {args.iters} steps after {args.warmup} warm-up.\n")  # fmt: skip
    print(markdown(rows))
    out = Path(args.out or Path(__file__).parent / f"guided-step-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
