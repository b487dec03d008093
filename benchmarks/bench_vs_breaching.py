"""gradinv against breaching (Geiping et al., PyPI ``breaching`` 0.1.2), side by side.

The same victim model object, the same observed gradient, the same labels and the same
hyper-parameters go to both implementations, run alternately (gradinv, breaching,
breaching, gradinv, ...) so drift in the machine's speed hits both alike. Reported: median
seconds per attack iteration of each, the ratio breaching / gradinv (above 1: gradinv is
faster) and the final PSNR of each.

Cases (issue "Speed"): IG (cosine + TV, signed Adam, boxed, step decay) on ResNet18 at
32x32 with batch 1 and 8, and DLG (L2, L-BFGS, joint labels) on DLG's LeNet at 32x32.

Adapter notes. breaching runs unpatched on torch 2.14; it only needs its data config to
describe our images: mean 0 and std 1 (our images are in [0, 1] and the victims take them
unnormalised), the shape and the number of classes. Its TV differs slightly from ours
(3x3 convolution with zero padding and an epsilon, vs. inversefed's mean absolute
differences): the same weight is used for both. IG gets the true labels in both, DLG
optimises them in both.

    pip install breaching==0.1.2        # or: pip install -e ".[bench]"
    python benchmarks/bench_vs_breaching.py --iters 20 --reps 3 --out benchmarks/vs-breaching-cpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from pathlib import Path

import torch

from gradinv import attacks, data, metrics, models
from gradinv.case import Case
from gradinv.fl import observe
from gradinv.reproduce import machine_info
from gradinv.utils import resolve_device, seed_everything

#: (attack, model, image size, batch)
CASES = (("ig", "resnet18", 32, 1), ("ig", "resnet18", 32, 8), ("dlg", "lenet", 32, 1))
TV = 0.2  # breaching invertinggradients.yaml total_variation scale


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_case(model_name: str, size: int, batch: int, device: torch.device) -> Case:
    """A seeded victim (train mode, as a client trains) and a batch of embedded images."""
    ds = data.load("natural_color", size=size, n=max(batch, 8), seed=0)
    seed_everything(0)
    net = models.build(model_name, 3, ds.num_classes, size).to(device).train()
    return Case(net, ds.images[:batch].to(device), ds.labels[:batch].to(device), ds.num_classes)


def run_gradinv(attack: str, case: Case, iters: int) -> tuple[float, torch.Tensor]:
    observed = observe(case, oracle_labels=attack == "ig")
    opts = {"iterations": iters, "restarts": 1}
    if attack == "ig":
        opts["tv"] = TV
    _sync(case.device)
    start = time.perf_counter()
    rec = attacks.run(attack, case.model, observed, **opts)
    _sync(case.device)
    return time.perf_counter() - start, rec.images


def run_breaching(attack: str, case: Case, iters: int) -> tuple[float, torch.Tensor]:
    import breaching

    cfg = breaching.get_config(
        overrides=[f"attack={'invertinggradients' if attack == 'ig' else 'deepleakage'}"]
    )
    cfg.attack.optim.max_iterations = iters
    cfg.attack.optim.callback = 10**9
    if attack == "ig":
        cfg.attack.regularization.total_variation.scale = TV
    c, h, w = case.image_shape
    meta = cfg.case.data
    meta.mean, meta.std, meta.shape, meta.classes = (
        [0.0] * c,
        [1.0] * c,
        [c, h, w],
        case.num_classes,
    )
    setup = {"device": case.device, "dtype": torch.float32}
    attacker = breaching.attacks.prepare_attack(
        case.model, torch.nn.CrossEntropyLoss(), cfg.attack, setup
    )
    observed = observe(case)
    payload = [
        {
            "parameters": [p.detach() for p in case.model.parameters()],
            "buffers": None,
            "metadata": meta,
        }
    ]
    labels = case.labels if attack == "ig" else None
    shared = [
        {
            "gradients": list(observed.gradients),
            "buffers": None,
            "metadata": {
                "num_data_points": case.batch_size,
                "labels": labels,
                "local_hyperparams": None,
            },
        }
    ]
    _sync(case.device)
    start = time.perf_counter()
    rec, _ = attacker.reconstruct(payload, shared, {}, dryrun=False)
    _sync(case.device)
    return time.perf_counter() - start, rec["data"].detach().clamp(0, 1).cpu()


def compare(attack: str, model: str, size: int, batch: int, iters: int, reps: int, device) -> dict:
    case = make_case(model, size, batch, device)
    runners = {"gradinv": run_gradinv, "breaching": run_breaching}
    secs: dict[str, list[float]] = {k: [] for k in runners}
    psnr: dict[str, float] = {}
    for rep in range(reps):
        order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
        for name in order:
            seconds, images = runners[name](attack, case, iters)
            secs[name].append(seconds / iters)
            psnr[name] = float(
                metrics.evaluate(images.cpu(), case.images.cpu(), lpips_net=None)["psnr"]
            )
    g, b = statistics.median(secs["gradinv"]), statistics.median(secs["breaching"])
    return {
        "attack": attack,
        "model": model,
        "size": size,
        "batch": batch,
        "iterations": iters,
        "gradinv_s_per_it": g,
        "breaching_s_per_it": b,
        "speedup": b / g,
        "gradinv_psnr": psnr["gradinv"],
        "breaching_psnr": psnr["breaching"],
    }


def restart_throughput(
    model: str, size: int, batch: int, iters: int, device, counts=(1, 4, 16)
) -> list[dict]:
    """R restarts in one batched IG call vs R sequential single-restart calls."""
    case = make_case(model, size, batch, device)
    observed = observe(case, oracle_labels=True)
    rows = []
    for r in counts:
        _sync(device)
        t0 = time.perf_counter()
        attacks.run("ig", case.model, observed, iterations=iters, restarts=r)
        _sync(device)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(r):
            attacks.run("ig", case.model, observed, iterations=iters, restarts=1)
        _sync(device)
        sequential = time.perf_counter() - t0
        rows.append(
            {
                "restarts": r,
                "batched_s": batched,
                "sequential_s": sequential,
                "speedup": sequential / batched,
            }
        )
    single = rows[0]["batched_s"]
    for row in rows:
        row["batched_over_one"] = row["batched_s"] / single
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--restart-iters", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    logging.disable(logging.INFO)
    warnings.filterwarnings("ignore")
    device = resolve_device(args.device)
    rows = [compare(*case, args.iters, args.reps, device) for case in CASES]
    restarts = restart_throughput("resnet18", 32, 1, args.restart_iters, device)
    print(
        "| attack | model | batch | gradinv s/it | breaching s/it | breaching / gradinv | PSNR gradinv | PSNR breaching |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attack']} | {r['model']} {r['size']}px | {r['batch']} | {r['gradinv_s_per_it']:.4f} | "
            f"{r['breaching_s_per_it']:.4f} | {r['speedup']:.2f}x | {r['gradinv_psnr']:.2f} | {r['breaching_psnr']:.2f} |"
        )
    print(
        "\n| restarts | batched s | sequential s | sequential / batched | batched / one restart |"
    )
    print("|---|---|---|---|---|")
    for r in restarts:
        print(
            f"| {r['restarts']} | {r['batched_s']:.2f} | {r['sequential_s']:.2f} | {r['speedup']:.2f}x | "
            f"{r['batched_over_one']:.2f}x |"
        )
    if args.out:
        result = {
            "machine": machine_info(),
            "device": str(device),
            "vs_breaching": rows,
            "restarts": restarts,
        }
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
