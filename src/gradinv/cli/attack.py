"""``gradinv attack``: one gradient inversion attack on one case, scored and saved.

The work is :mod:`gradinv.pipeline`'s (observe -> attack -> evaluate); this module reads
the case from the command line, shows progress and writes ``grid.png`` and
``metrics.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from gradinv.cli.common import (
    Formatter,
    finite_or_none,
    fmt,
    int_at_least,
    names,
    nonnegative_int,
    parse_options,
    positive_int,
    seed,
    wrap,
)
from gradinv.errors import GradInvError

MIN_SIZE = 8  # pixels: the smallest victim input the models take


def add_attack_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack",
        help="run one gradient inversion attack and print PSNR/SSIM/LPIPS/MSE",
        formatter_class=Formatter,
        description=wrap(
            "Simulate one FL client: build a randomly initialised victim model (seeded), take "
            "a batch of private images (from a dataset or your own files), compute the "
            "gradient the client would share (optionally through a defense), run the attack "
            "on it, save grid.png (original | reconstruction) and metrics.json in --out and "
            "print PSNR, SSIM, LPIPS and MSE.",
            f"attacks:  {names('gradinv.attacks', 'ATTACKS')}\n"
            f"models:   {names('gradinv.models', 'NAMES')}\n"
            f"datasets: {names('gradinv.data', 'NAMES')}\n"
            f"defenses: {names('gradinv.defenses', 'DEFENSES')}, none",
        ),
        epilog="examples:\n"
        "  gradinv attack --attack dlg --model lenet --dataset digits --size 32 --iters 300\n"
        "  gradinv attack --attack ig --model resnet18 --dataset brain_mri --batch 4 --size 64\n"
        "  gradinv attack --attack ig --model resnet18 --images me.png --size 64 --device cuda\n"
        "  gradinv attack --attack ig --model lenet --images batch.npz --batch 4 \\\n"
        "      --defense dp_gaussian --defense-opt variance=1e-4 --iters 500 --json\n"
        "notes:\n"
        "  --images takes PNG/JPG files (centre-cropped and resized to --size; labels 0,1,2,.. "
        "unless --labels)\n"
        "  or one .npz with 'images' (N,H,W[,C], uint8 or float in [0,1]) and optional "
        "'labels' (N,).\n"
        "  --attack-opt/--defense-opt set fields of the attack's/defense's Config, e.g. lr=0.1.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help="take the private batch from this dataset")
    src.add_argument("--images", metavar="FILE", nargs="+", help="your image files or one .npz")
    p.add_argument("--attack", required=True, metavar="NAME", help="attack to run (see list above)")
    p.add_argument("--model", required=True, metavar="NAME", help="victim model (see list above)")
    p.add_argument(
        "--size",
        type=int_at_least(MIN_SIZE, "pixels"),
        default=32,
        help="image side length in pixels (default: 32)",
    )
    p.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="client batch size (default: 1 for --dataset, all files for --images)",
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="force grey (1) or RGB (3) (default: from the data)",
    )
    p.add_argument(
        "--labels",
        type=nonnegative_int,
        nargs="+",
        default=None,
        help="class labels of --images files, one per image",
    )
    p.add_argument(
        "--num-classes",
        type=positive_int,
        default=10,
        help="classes of the victim model for --images (default: 10)",
    )
    p.add_argument(
        "--split",
        default="train",
        choices=("train", "test", "public"),
        help="dataset split for --dataset (default: train, private; shipped priors were "
        "trained on public, content-disjoint from train and test: see "
        "`gradinv datasets --overlap`)",
    )
    p.add_argument("--root", default=None, help="data directory for --dataset")
    p.add_argument(
        "--defense",
        metavar="NAME",
        default=None,
        help="defense the client applies to its gradient (default: none)",
    )
    p.add_argument(
        "--defense-opt",
        metavar="K=V",
        nargs="+",
        action="extend",
        default=None,
        help="defense Config option, repeatable (e.g. variance=1e-4, percent=90)",
    )
    p.add_argument(
        "--attack-opt",
        metavar="K=V",
        nargs="+",
        action="extend",
        default=None,
        help="attack Config override, repeatable (e.g. lr=0.1)",
    )
    p.add_argument(
        "--iters",
        type=positive_int,
        default=None,
        help="attack iterations (default: the attack's paper value)",
    )
    p.add_argument(
        "--restarts",
        type=positive_int,
        default=None,
        help="random restarts (default: the attack's paper value)",
    )
    p.add_argument(
        "--seed", type=seed, default=0, help="seed of model init, data and attack (default: 0)"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1 or auto (default: auto = cuda if present)",
    )
    p.add_argument(
        "--oracle-labels",
        action="store_true",
        help="give the attacker the true labels (default: it infers them)",
    )
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (faster, no weights needed)")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output directory (default: runs/attack-<timestamp>)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout and nothing else (progress on stderr)",
    )
    p.set_defaults(func=cmd_attack)


def cmd_attack(args: argparse.Namespace) -> int:
    if args.json:  # stdout carries the JSON object only: anything a library prints -> stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = run_attack(args)
        print(json.dumps(result))
        return 0
    result = run_attack(args)
    lp = "skipped (--no-lpips)" if result["lpips"] is None else f"{result['lpips']:.4f}"
    print(
        f"{result['attack']} on {result['model']}, {result['batch']} image(s) "
        f"{result['image_size']}x{result['image_size']}x{result['channels']} from "
        f"{result['source']}, defense {result['defense']}, {result['wall_seconds']:.1f} s"
    )
    print(f"  PSNR  {fmt(result['psnr'], '.2f')} dB   (higher = better reconstruction)")
    print(f"  SSIM  {fmt(result['ssim'], '.4f')}")
    print(f"  LPIPS {lp}")
    print(f"  MSE   {fmt(result['mse'], '.5f')}")
    if result["label_accuracy"] is not None:
        print(f"  labels recovered: {result['label_accuracy']:.0%}")
    print(f"wrote {result['grid']} and {Path(result['out_dir']) / 'metrics.json'}")
    return 0


def run_attack(args: argparse.Namespace) -> dict[str, Any]:
    """The work of ``gradinv attack``: returns the metrics.json record (also written)."""
    from gradinv import models, pipeline
    from gradinv.case import Case
    from gradinv.utils import resolve_device, seed_everything

    defense_opts = parse_options(args.defense_opt, "--defense-opt")
    overrides: dict[str, Any] = parse_options(args.attack_opt, "--attack-opt")
    if args.iters is not None:
        overrides["iterations"] = args.iters
    if args.restarts is not None:
        overrides["restarts"] = args.restarts
    overrides.setdefault("seed", args.seed)
    # the attack's Config, built once: an unknown attack or option fails before any work
    config = pipeline.configure(args.attack, overrides)
    if args.model.lower() not in models.NAMES:
        raise GradInvError(
            f"unknown model {args.model!r}; choose one of: {', '.join(models.NAMES)}"
        )
    defense = args.defense if args.defense and args.defense.lower() != "none" else None
    if defense is None and defense_opts:
        raise GradInvError("--defense-opt given without --defense NAME")
    device = resolve_device(args.device)

    seed_everything(args.seed)
    images, labels, num_classes, source = _load_batch(args)
    channels = int(images.shape[1])
    model = models.build(args.model, channels, num_classes, args.size).to(device)
    case = Case(model, images.to(device), labels.to(device), num_classes, f"{source}/{args.model}")

    with _progress_bar(args.attack, int(getattr(config, "iterations", 0) or 0)) as callback:
        run = pipeline.run(
            case,
            config,
            defense,
            defense_options=defense_opts,
            oracle_labels=args.oracle_labels,
            callback=callback,
            lpips_net=None if args.no_lpips else "alex",
            seed=args.seed,
        )
    scores, rec = run.scores, run.reconstruction

    out_dir = Path(args.out or Path("runs") / f"attack-{datetime.now():%Y%m%d-%H%M%S}")
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path = out_dir / "grid.png"
    _save_grid(case, scores.images, grid_path, f"{args.attack}: PSNR {fmt(scores.psnr, '.2f')} dB")

    result: dict[str, Any] = {
        **{k: finite_or_none(getattr(scores, k)) for k in ("psnr", "ssim", "lpips", "mse")},
        "attack": args.attack,
        "model": args.model,
        "source": source,
        "image_size": args.size,
        "channels": channels,
        "batch": int(images.shape[0]),
        "num_classes": num_classes,
        "defense": args.defense or "none",
        "defense_options": defense_opts,
        "attack_options": {k: str(v) for k, v in overrides.items()},
        "oracle_labels": bool(args.oracle_labels),
        "labels": [int(v) for v in labels.tolist()],
        "recovered_labels": (
            None if rec.labels is None else [int(v) for v in rec.labels.reshape(-1).tolist()]
        ),
        "label_accuracy": scores.label_accuracy,
        "final_loss": finite_or_none(rec.loss),
        "seed": args.seed,
        "device": str(device),
        "wall_seconds": round(run.seconds, 3),
        "out_dir": str(out_dir),
        "grid": str(grid_path),
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


@contextlib.contextmanager
def _progress_bar(desc: str, total: int):
    """A tqdm bar on stderr, fed by the attack's ``callback(iteration, record)``; it
    appears at the first iteration, so an error before the attack prints one line only."""
    from tqdm import tqdm

    bars: list[tqdm] = []

    def callback(iteration: int, record: dict) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=total or None,
                    desc=desc,
                    unit="it",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    leave=False,
                )
            )
        bar = bars[0]
        done = min(int(iteration) + 1, total) if total else int(iteration) + 1
        if done < bar.n:  # a new (sequential) restart started
            bar.reset(total=total or None)
        bar.update(done - bar.n)
        if "loss" in record:
            bar.set_postfix(loss=f"{float(record['loss']):.4g}", refresh=False)

    try:
        yield callback
    finally:
        for bar in bars:
            bar.close()


def _save_grid(case: Any, reconstruction: Any, path: Path, title: str) -> None:
    """Originals above their (matched) reconstructions, as one PNG."""
    import matplotlib.pyplot as plt

    from gradinv import plots

    fig = plots.image_grid(
        [case.images.detach().cpu(), reconstruction],
        row_labels=["original", "reconstruction"],
        path=path,
        title=title,
    )
    plt.close(fig)


def _load_batch(args: argparse.Namespace):
    """``(images, labels, num_classes, description)`` for ``gradinv attack``."""
    import torch

    if args.dataset:
        from gradinv import data

        batch = args.batch or 1
        ds = data.load(
            args.dataset,
            split=args.split,
            size=args.size,
            n=batch,
            channels=args.channels,
            root=args.root,
            seed=args.seed,
        )
        if len(ds.images) < batch:
            raise GradInvError(
                f"--batch {batch} is larger than the {len(ds.images)} images of dataset "
                f"{args.dataset!r} ({args.split}); lower --batch"
            )
        labels = ds.labels[:batch].long()
        return ds.images[:batch].float(), labels, int(ds.num_classes), f"{ds.name}:{args.split}"

    from gradinv.data.files import read_images

    images, labels = read_images(args.images, args.size, args.channels)
    n = images.shape[0]
    batch = args.batch or n
    if batch > n:
        raise GradInvError(
            f"--batch {batch} is larger than the {n} image(s) given with --images; "
            "give more images or lower --batch"
        )
    images = images[:batch]
    if args.labels is not None:
        if len(args.labels) != batch:
            raise GradInvError(
                f"--labels needs {batch} integers (one per image), got {len(args.labels)}"
            )
        labels = torch.tensor(args.labels, dtype=torch.long)
    elif labels is not None:
        labels = labels[:batch]
    else:  # distinct labels, the usual single-client test case
        labels = torch.arange(batch, dtype=torch.long) % args.num_classes
    num_classes = max(args.num_classes, int(labels.max()) + 1)
    if int(labels.min()) < 0:
        raise GradInvError("labels must be non-negative integers")
    return images, labels, num_classes, "images:" + ",".join(Path(p).name for p in args.images)
