"""gradinv against breaching (Geiping et al., PyPI ``breaching`` 0.1.2), side by side.

The same victim model object, the same observed gradient, the same labels, the same
hyper-parameters and the same initial point go to both implementations, run alternately
(gradinv, breaching, breaching, gradinv, ...) so drift in the machine's speed hits both
alike. Run ``k`` of both starts from gradinv's initial dummy batch for seed ``k`` (and, for
DLG, its initial label logits), so the final PSNRs are paired: equal algorithms end near
each other, up to the float round-off that L-BFGS without line search amplifies.

Reported per case: seconds per objective evaluation of each (the whole attack call, set-up
included, over the number of evaluations; median over the runs), as wall clock and as this
process's CPU time (robust to other jobs on a shared machine; on CUDA read the wall clock),
the ratio breaching / gradinv (above 1: gradinv is faster), seconds per whole attack (they
differ from per-evaluation when one implementation stops earlier), the mean final PSNR of
each and the largest paired gap, and one plain training step (forward, cross-entropy,
backward, SGD step) of the same model and batch, so that an evaluation can be read as a
multiple of it.

Cases (issue "Speed"): IG (cosine + TV, signed Adam, boxed, step decay) on ResNet18 at
32x32 with batch 1 (``--iters-ig1``) and batch 8 (``--iters-ig8``), and DLG (L2, L-BFGS
with 20 evaluations per iteration, joint labels) on DLG's LeNet at 32x32 (``--iters-dlg``). Then batched restarts: IG with R restarts in one
call vs R sequential one-restart calls, R = 1, 4, 16.

Adapter notes. breaching runs unpatched on torch 2.14; it only needs its data config to
describe our images: mean 0 and std 1 (our images are in [0, 1] and the victims take them
unnormalised), the shape and the number of classes. Its TV differs slightly from ours
(3x3 convolution with zero padding and an epsilon, vs. inversefed's mean absolute
differences): the same weight is used for both. IG gets the true labels in both, DLG
optimises them in both. The initial images go in through ``reconstruct(initial_data=...)``;
DLG's initial label logits through the attacker object's ``_initialize_data``, replaced on
that object only.

    pip install breaching==0.1.2        # or: pip install -e ".[bench]"
    OMP_NUM_THREADS=1 python benchmarks/bench_vs_breaching.py --out benchmarks/vs-breaching-cpu.json
    python benchmarks/bench_vs_breaching.py --device cuda --iters-ig1 1000 --iters-ig8 200 \
        --restart-iters 50 --out benchmarks/vs-breaching-cuda.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from gradinv import attacks, data, metrics, models
from gradinv.case import Case
from gradinv.fl import observe
from gradinv.matching import GradientMatcher
from gradinv.reproduce import machine_info
from gradinv.utils import resolve_device, seed_everything

#: (attack, model, image size, batch, name of the iterations option)
CASES = (
    ("ig", "resnet18", 32, 1, "iters_ig1"),
    ("ig", "resnet18", 32, 8, "iters_ig8"),
    ("dlg", "lenet", 32, 1, "iters_dlg"),
)
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


class _count_calls:  # noqa: N801 - used like a context
    """Counts calls of ``cls.name`` (patched on the class) until :meth:`restore`; keeps the
    first call's positional arguments in ``first``."""

    def __init__(self, cls: type, name: str):
        self.cls, self.name, self.orig, self.n = cls, name, getattr(cls, name), 0
        self.first: tuple = ()

        def wrapped(obj, *args, **kwargs):
            if self.n == 0:
                self.first = tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args)
            self.n += 1
            return self.orig(obj, *args, **kwargs)

        setattr(cls, name, wrapped)

    def restore(self) -> None:
        setattr(self.cls, self.name, self.orig)


def initial_point(attack: str, case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """gradinv's initial dummy batch ``(B, C, H, W)`` for ``seed`` (and DLG's initial label
    logits ``(B, K)``): the arguments of its first objective evaluation."""
    observed = observe(case, oracle_labels=attack == "ig")
    calls = _count_calls(GradientMatcher, "__call__")
    try:
        attacks.run(attack, case.model, observed, iterations=1, restarts=1, seed=seed)
    finally:
        calls.restore()
    x, y = calls.first[:2]
    return x[0], (y[0] if y.is_floating_point() else None)


def run_gradinv(
    attack: str, case: Case, iters: int, seed: int, start
) -> tuple[float, float, int, torch.Tensor]:
    observed = observe(case, oracle_labels=attack == "ig")
    opts = {"iterations": iters, "restarts": 1, "seed": seed}
    if attack == "ig":
        opts["tv"] = TV
    calls = _count_calls(GradientMatcher, "__call__")
    _sync(case.device)
    began, cpu = time.perf_counter(), time.process_time()
    try:
        rec = attacks.run(attack, case.model, observed, **opts)
    finally:
        calls.restore()
    _sync(case.device)
    return time.perf_counter() - began, time.process_time() - cpu, calls.n, rec.images


def run_breaching(
    attack: str, case: Case, iters: int, seed: int, start
) -> tuple[float, float, int, torch.Tensor]:
    """breaching's attack from ``start`` = (initial images, initial label logits or None):
    the images go in through ``reconstruct(initial_data=...)``, the label logits through
    the attacker's ``_initialize_data`` (patched on this attacker object only)."""
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
    x0, y0 = start
    if y0 is not None:
        init_data = attacker._initialize_data

        def same_labels(shape):
            if tuple(shape) != tuple(y0.shape):
                return init_data(shape)
            labels = y0.detach().clone().to(case.device).requires_grad_(True)
            labels.grad = torch.zeros_like(labels)
            return labels

        attacker._initialize_data = same_labels
    calls = _count_calls(type(attacker.objective), "forward")  # also counts restart scoring
    _sync(case.device)
    began, cpu = time.perf_counter(), time.process_time()
    try:
        rec, _ = attacker.reconstruct(payload, shared, {}, initial_data=x0, dryrun=False)
    finally:
        calls.restore()
    _sync(case.device)
    return (
        time.perf_counter() - began,
        time.process_time() - cpu,
        calls.n,
        rec["data"].detach().clamp(0, 1).cpu(),
    )


def train_step_seconds(case: Case, reps: int = 10) -> float:
    """Median seconds of one plain SGD training step of the case's model on its batch."""
    model = copy.deepcopy(case.model).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for i in range(reps + 2):
        _sync(case.device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(case.images), case.labels).backward()
        opt.step()
        _sync(case.device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(attack: str, model: str, size: int, batch: int, iters: int, reps: int, device) -> dict:
    case = make_case(model, size, batch, device)
    runners = {"gradinv": run_gradinv, "breaching": run_breaching}
    attack_s: dict[str, list[float]] = {k: [] for k in runners}
    wall: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    evals: dict[str, list[int]] = {k: [] for k in runners}
    psnr: dict[str, list[float]] = {k: [] for k in runners}
    starts = [initial_point(attack, case, seed) for seed in range(reps)]
    for name in runners:  # untimed warm-up: one-off kernel selection and allocations
        runners[name](attack, case, 2, 0, starts[0])
    for rep in range(reps):  # run `rep` of both starts from the same point (seed `rep`)
        order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
        for name in order:
            seconds, cpu_seconds, n_evals, images = runners[name](
                attack, case, iters, rep, starts[rep]
            )
            attack_s[name].append(seconds)
            wall[name].append(seconds / n_evals)
            cpu[name].append(cpu_seconds / n_evals)
            evals[name].append(n_evals)
            psnr[name].append(
                float(metrics.evaluate(images.cpu(), case.images.cpu(), lpips_net=None)["psnr"])
            )
    train = train_step_seconds(case)
    g, b = statistics.median(wall["gradinv"]), statistics.median(wall["breaching"])
    gc, bc = statistics.median(cpu["gradinv"]), statistics.median(cpu["breaching"])
    return {
        "attack": attack,
        "model": model,
        "size": size,
        "batch": batch,
        "iterations": iters,
        "reps": reps,
        "gradinv_s_per_eval": g,
        "breaching_s_per_eval": b,
        "speedup": b / g,
        "gradinv_cpu_s_per_eval": gc,
        "breaching_cpu_s_per_eval": bc,
        "speedup_cpu_time": bc / gc,
        "train_step_s": train,
        "gradinv_eval_over_train_step": g / train,
        "breaching_eval_over_train_step": b / train,
        "gradinv_s_per_attack": statistics.median(attack_s["gradinv"]),
        "breaching_s_per_attack": statistics.median(attack_s["breaching"]),
        "gradinv_evaluations": statistics.median(evals["gradinv"]),
        "breaching_evaluations": statistics.median(evals["breaching"]),
        "gradinv_psnr": statistics.mean(psnr["gradinv"]),
        "breaching_psnr": statistics.mean(psnr["breaching"]),
        "psnr_gap_max": max(
            abs(a - b) for a, b in zip(psnr["gradinv"], psnr["breaching"], strict=True)
        ),
        "samples": {
            "attack_s": attack_s,
            "wall": wall,
            "cpu": cpu,
            "evaluations": evals,
            "psnr": psnr,
        },
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
    ap.add_argument("--iters-ig1", type=int, default=200, help="IG ResNet18 batch 1")
    ap.add_argument("--iters-ig8", type=int, default=30, help="IG ResNet18 batch 8")
    ap.add_argument("--iters-dlg", type=int, default=50, help="DLG LeNet (L-BFGS steps)")
    ap.add_argument(
        "--reps", type=int, default=3, help="runs of each implementation (seeds 0..reps-1)"
    )
    ap.add_argument("--restart-iters", type=int, default=10)
    ap.add_argument("--cases", default="ig1,ig8,dlg", help="subset of ig1,ig8,dlg")
    ap.add_argument("--no-restarts", action="store_true", help="skip the restart benchmark")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    logging.disable(logging.INFO)
    warnings.filterwarnings("ignore")
    device = resolve_device(args.device)
    wanted = set(args.cases.split(","))
    rows = []
    for attack, model, size, batch, opt in CASES:
        if opt.removeprefix("iters_") in wanted:
            rows.append(compare(attack, model, size, batch, getattr(args, opt), args.reps, device))
            print(f"done: {attack} {model} b{batch}", file=sys.stderr, flush=True)
    restarts = (
        []
        if args.no_restarts
        else restart_throughput("resnet18", 32, 1, args.restart_iters, device)
    )
    print(
        "| attack | model | batch | iterations | evaluations gradinv / breaching | gradinv s/eval "
        "| breaching s/eval | breaching / gradinv (wall) | (CPU time) | gradinv eval / train step "
        "| PSNR gradinv | PSNR breaching | s per attack gradinv / breaching |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attack']} | {r['model']} {r['size']}px | {r['batch']} | {r['iterations']} | "
            f"{r['gradinv_evaluations']:.0f} / {r['breaching_evaluations']:.0f} | "
            f"{r['gradinv_s_per_eval']:.4f} | {r['breaching_s_per_eval']:.4f} | "
            f"{r['speedup']:.2f}x | {r['speedup_cpu_time']:.2f}x | "
            f"{r['gradinv_eval_over_train_step']:.1f}x | "
            f"{r['gradinv_psnr']:.2f} | {r['breaching_psnr']:.2f} | "
            f"{r['gradinv_s_per_attack']:.2f} / {r['breaching_s_per_attack']:.2f} |"
        )
    if restarts:
        print(
            "\n| restarts | batched s | sequential s | sequential / batched | batched / one restart |"
        )
        print("|---|---|---|---|---|")
        for r in restarts:
            print(
                f"| {r['restarts']} | {r['batched_s']:.2f} | {r['sequential_s']:.2f} | "
                f"{r['speedup']:.2f}x | {r['batched_over_one']:.2f}x |"
            )
    if args.out:
        result = {
            "machine": machine_info(),
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()),
            "args": {k: str(v) for k, v in vars(args).items()},
            "vs_breaching": rows,
            "restarts": restarts,
        }
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
