"""Speed of one Inverting Gradients (IG) iteration versus one plain training step.

IG (Geiping et al., NeurIPS 2020; the survey's "GS") minimises a cosine gradient distance
plus total variation with Adam: each iteration needs the victim's parameter gradient *and*
its derivative with respect to the input (a double backward), so it costs a small multiple
of a training step. This script measures that multiple for

* LeNet (DLG's) at 32x32 and ResNet18 at 64x64, 3 channels, 10 classes,
* batch 1 and 8, one restart, oracle labels (the label inference is a one-off cost),

as the median over ``--iters`` timed iterations after ``--warmup`` untimed ones. An IG
iteration is timed between consecutive callbacks of ``gradinv.attacks.run("ig", ...)``, the
training step (forward, cross-entropy, backward, ``torch.optim.SGD.step``) around itself;
on CUDA both are synchronised before each clock reading.

    python benchmarks/bench_attack_speed.py --device cpu --iters 10 --out results.json

Not a test: timings depend on the machine; the JSON records which one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from gradinv import attacks, models
from gradinv.case import Case
from gradinv.fl import observe
from gradinv.reproduce import cpu_model
from gradinv.utils import resolve_device, seed_everything

#: (model, image size) pairs measured, each at every batch size in BATCHES.
CASES: tuple[tuple[str, int], ...] = (("lenet", 32), ("resnet18", 64))
BATCHES: tuple[int, ...] = (1, 8)
CHANNELS, CLASSES = 3, 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ig(
    model_name: str, size: int, batch: int, device: torch.device, iters: int, warmup: int
) -> list[float]:
    """Seconds of each of ``iters`` IG iterations (after ``warmup`` untimed ones)."""
    seed_everything(0)
    model = models.build(model_name, CHANNELS, CLASSES, size).to(device)
    images = torch.rand(batch, CHANNELS, size, size, device=device)
    labels = torch.arange(batch, device=device) % CLASSES
    observed = observe(Case(model, images, labels, CLASSES, "bench"), oracle_labels=True)
    stamps: list[float] = []

    def callback(iteration: int, record: dict) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    _sync(device)
    stamps.append(time.perf_counter())  # the first interval includes the attack's set-up
    attacks.run("ig", model, observed, callback=callback, iterations=warmup + iters, restarts=1)
    deltas = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    if len(deltas) < warmup + iters:
        raise RuntimeError(f"IG reported {len(deltas)} iterations, expected {warmup + iters}")
    return deltas[warmup : warmup + iters]


def time_train_step(
    model_name: str, size: int, batch: int, device: torch.device, iters: int, warmup: int
) -> list[float]:
    """Seconds of each of ``iters`` SGD training steps (after ``warmup`` untimed ones)."""
    seed_everything(0)
    model = models.build(model_name, CHANNELS, CLASSES, size).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(batch, CHANNELS, size, size, device=device)
    y = torch.arange(batch, device=device) % CLASSES

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return _timed(step, device, iters, warmup)


def _timed(fn: Callable[[], None], device: torch.device, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | image | batch | IG s/iter (median) | train step s (median) | IG / train step |\n"
        "|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['model']} | {r['size']}x{r['size']} | {r['batch']} | {r['ig_s_per_iter']:.4f} "
        f"| {r['train_step_s']:.4f} | {r['ratio']:.1f}x |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seconds per IG iteration vs one training step (LeNet 32px, ResNet18 64px; "
        "batch 1 and 8).",
        epilog="example: python benchmarks/bench_attack_speed.py --device cuda --iters 50 "
        "--out benchmarks/results-h100.json",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (default: 3)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--models", default=",".join(m for m, _ in CASES), help="subset, e.g. lenet"
    )
    parser.add_argument(
        "--batches", default=",".join(map(str, BATCHES)), help="comma list (default: 1,8)"
    )
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")
    device = resolve_device(args.device)
    wanted = set(args.models.split(","))
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for model_name, size in CASES:
        if model_name not in wanted:
            continue
        for batch in batches:
            ig = time_ig(model_name, size, batch, device, args.iters, args.warmup)
            train = time_train_step(model_name, size, batch, device, args.iters, args.warmup)
            row = {
                "model": model_name,
                "size": size,
                "batch": batch,
                "ig_s_per_iter": statistics.median(ig),
                "train_step_s": statistics.median(train),
                "ig_samples": ig,
                "train_samples": train,
            }
            row["ratio"] = row["ig_s_per_iter"] / row["train_step_s"]
            rows.append(row)
            print(
                f"{model_name} {size}px batch {batch}: IG {row['ig_s_per_iter']:.4f} s/iter, "
                f"train {row['train_step_s']:.4f} s, ratio {row['ratio']:.1f}",
                file=sys.stderr,
            )
    result = {
        "benchmark": "IG (cosine + TV, Adam) iteration vs SGD training step",
        "iters": args.iters,
        "warmup": args.warmup,
        "machine": machine(device),
        "rows": rows,
    }
    table = markdown(rows)
    m = result["machine"]
    print(f"Device: {m['device_name']} ({m['device']}), torch {m['torch']}, "
          f"{m['cpu_cores']} CPU cores, {m['torch_threads']} torch threads; "
          f"median of {args.iters} iterations after {args.warmup} warm-up.\n")  # fmt: skip
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
