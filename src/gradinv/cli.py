"""The ``gradinv`` command line: one entry point, one subcommand per job.

    gradinv assets      build the offline assets (LPIPS weights, embedded datasets)
    gradinv datasets    list the datasets present, with provenance
    gradinv attack      run one gradient inversion attack on one case, print metrics
    gradinv priors      train, sample and list the diffusion priors (train | sample | list)
    gradinv reproduce   execute the paper notebooks with papermill
    gradinv lab         open the notebooks in Jupyter Lab

Errors the user can fix (unknown names, bad files, NaN gradients) end the program with
exit status 2 and one line ``gradinv: error: ...`` on stderr, never a traceback.
Heavy imports (torch, the attacks) happen inside the subcommands so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gradinv.errors import GradInvError

PROG = "gradinv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _names(module: str, attr: str) -> str:
    """Comma-separated registry names for help texts (never fails: help must work)."""
    try:
        import importlib

        names = getattr(importlib.import_module(module), attr)
        return ", ".join(sorted(names))
    except Exception:  # noqa: BLE001 - a help text must not crash on a broken module
        return "(could not list: see the module " + module + ")"


def parse_options(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (values stay strings; the registries parse them)."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise GradInvError(f"{what} {pair!r} is not of the form key=value (e.g. lr=0.1)")
        out[key] = value.strip()
    return out


def _finite_or_none(x: Any) -> Any:
    """JSON-safe number: floats, with NaN/Inf as ``null``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    return v if math.isfinite(v) else None


def _to_chw(arr, channels: int | None):
    """``(N,H,W)`` / ``(N,H,W,C)`` numpy images -> float tensor ``(N,C,H,W)`` in [0, 1]."""
    import numpy as np
    import torch

    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4) or arr.shape[0] < 1:
        raise GradInvError(
            f"'images' in the .npz must have shape (N, H, W) or (N, H, W, C) with C in 1, 3; "
            f"got {tuple(arr.shape)}"
        )
    arr = arr[..., :3] if arr.shape[-1] == 4 else arr  # drop alpha
    if arr.dtype == np.uint8:
        x = torch.from_numpy(arr.astype(np.float32) / 255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        x = torch.from_numpy(arr.astype(np.float32))
        if not torch.isfinite(x).all():
            raise GradInvError("'images' in the .npz contains NaN or Inf values")
        if x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise GradInvError(
                f"float 'images' must lie in [0, 1]; got [{float(x.min()):.3g}, "
                f"{float(x.max()):.3g}] (save uint8 0..255 or divide by 255)"
            )
        x = x.clamp(0, 1)
    else:
        raise GradInvError(f"'images' in the .npz must be uint8 or float, got {arr.dtype}")
    x = x.permute(0, 3, 1, 2).contiguous()
    return _set_channels(x, channels)


def _set_channels(x, channels: int | None):
    """Convert ``(N,C,H,W)`` between grey (1) and RGB (3)."""
    import torch

    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if channels == 1 and x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise GradInvError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


def read_images(
    paths: Sequence[str | Path], size: int, channels: int | None = None
) -> tuple[Any, Any]:
    """Read the user's images: PNG/JPG/... files, or one ``.npz`` holding ``images``
    ``(N,H,W[,C])`` (uint8 or float in [0,1]) and optional integer ``labels`` ``(N,)``.

    Image files are centre-cropped to a square and resized to ``size``; their channel
    count is ``channels`` or that of the first image (grey -> 1, anything else -> 3).
    Returns ``(images (N,C,size,size) float in [0,1], labels (N,) int64 or None)``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    paths = [Path(p) for p in paths]
    npz = [p for p in paths if p.suffix.lower() == ".npz"]
    if npz:
        if len(paths) != 1:
            raise GradInvError("give either one .npz file or image files to --images, not both")
        try:
            with np.load(npz[0], allow_pickle=False) as f:
                if "images" not in f.files:
                    raise GradInvError(
                        f"{npz[0]} has no array named 'images' (it has: {', '.join(f.files)})"
                    )
                arr = f["images"]
                labels = f["labels"] if "labels" in f.files else None
        except (ValueError, OSError) as exc:
            raise GradInvError(f"cannot read {npz[0]}: {exc}") from None
        x = _to_chw(arr, channels)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            x = x.clamp(0, 1)
        y = None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
                raise GradInvError(
                    f"'labels' in the .npz must be integers of shape ({x.shape[0]},); "
                    f"got {labels.dtype} {tuple(labels.shape)}"
                )
            y = torch.from_numpy(labels.astype(np.int64))
        return x, y

    from PIL import Image, UnidentifiedImageError

    tensors = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                if channels is None:
                    channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
                im = im.convert("L" if channels == 1 else "RGB")
        except UnidentifiedImageError:
            raise GradInvError(
                f"cannot read image {p}: not an image file PIL understands"
            ) from None
        except OSError as exc:
            raise GradInvError(f"cannot read image {p}: {exc.strerror or exc}") from None
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im = im.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        tensors.append(torch.from_numpy(np.ascontiguousarray(a)))
    return torch.stack(tensors).clamp(0, 1), None


# --------------------------------------------------------------------------------------
# subcommands
# --------------------------------------------------------------------------------------
def _print_mapping(d: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, dict | list | tuple) and v:
                print(f"{pad}{k}:")
                _print_mapping(v, indent + 1)
            else:
                print(f"{pad}{k}: {v}")
    elif isinstance(d, list | tuple):
        for v in d:
            if isinstance(v, dict):
                _print_mapping(v, indent)
                print()
            else:
                print(f"{pad}- {v}")
    else:
        print(f"{pad}{d}")


def cmd_assets(args: argparse.Namespace) -> int:
    from gradinv.assets import build_assets

    summary = build_assets(root=args.root, force=args.force)
    _print_mapping(summary)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    import json

    from gradinv import data

    if not args.overlap:
        print(data.format_table(data.info(root=args.root)))
        return 0
    if args.size < 1:
        raise GradInvError(f"--size must be at least 1, got {args.size}")
    from gradinv.data.overlap import LIMIT_DB, format_overlap, overlap_report

    rows, skipped = overlap_report(args.name or None, size=args.size, root=args.root)
    if args.json:
        report = {"size": args.size, "limit_db": LIMIT_DB, "rows": [r.to_dict() for r in rows]}
        print(json.dumps({**report, "skipped": skipped}, indent=2))
        return 0
    print(format_overlap(rows))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return 0


def _load_batch(args: argparse.Namespace):
    """``(images, labels, num_classes, description)`` for ``gradinv attack``."""
    import torch

    if args.dataset:
        from gradinv import data

        ds = data.load(
            args.dataset,
            split=args.split,
            size=args.size,
            n=args.batch or 1,
            channels=args.channels,
            root=args.root,
            seed=args.seed,
        )
        batch = args.batch or 1
        if len(ds.images) < batch:
            raise GradInvError(
                f"--batch {batch} is larger than the {len(ds.images)} images of dataset "
                f"{args.dataset!r} ({args.split}); lower --batch"
            )
        labels = ds.labels[:batch].long()
        return ds.images[:batch].float(), labels, int(ds.num_classes), f"{ds.name}:{args.split}"

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


def cmd_attack(args: argparse.Namespace) -> int:
    import contextlib

    if args.json:  # stdout carries the JSON object only: anything a library prints -> stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = run_attack(args)
        print(json.dumps(result))
        return 0
    result = run_attack(args)
    scores, wall = result, result["wall_seconds"]
    lp = "skipped (--no-lpips)" if scores["lpips"] is None else f"{scores['lpips']:.4f}"
    print(
        f"{result['attack']} on {result['model']}, {result['batch']} image(s) "
        f"{result['image_size']}x{result['image_size']}x{result['channels']} from "
        f"{result['source']}, defense {result['defense']}, {wall:.1f} s"
    )
    print(f"  PSNR  {_fmt(scores['psnr'], '.2f')} dB   (higher = better reconstruction)")
    print(f"  SSIM  {_fmt(scores['ssim'], '.4f')}")
    print(f"  LPIPS {lp}")
    print(f"  MSE   {_fmt(scores['mse'], '.5f')}")
    if result["label_accuracy"] is not None:
        print(f"  labels recovered: {result['label_accuracy']:.0%}")
    print(f"wrote {result['grid']} and {Path(result['out_dir']) / 'metrics.json'}")
    return 0


def run_attack(args: argparse.Namespace) -> dict[str, Any]:
    """The work of ``gradinv attack``: returns the metrics.json record (also written)."""
    from tqdm import tqdm

    from gradinv import attacks, metrics, models, plots
    from gradinv.case import Case
    from gradinv.fl import observe
    from gradinv.utils import resolve_device, seed_everything

    if args.batch is not None and args.batch < 1:
        raise GradInvError(f"--batch must be at least 1, got {args.batch}")
    if args.size < 8:
        raise GradInvError(f"--size must be at least 8 pixels, got {args.size}")
    attack_module = attacks.get(args.attack)  # fails early on an unknown attack
    if args.model.lower() not in models.NAMES:
        raise GradInvError(
            f"unknown model {args.model!r}; choose one of: {', '.join(models.NAMES)}"
        )
    defense_opts = parse_options(args.defense_opt, "--defense-opt")
    overrides: dict[str, Any] = parse_options(args.attack_opt, "--attack-opt")
    if args.iters is not None:
        overrides["iterations"] = args.iters
    if args.restarts is not None:
        overrides["restarts"] = args.restarts
    overrides.setdefault("seed", args.seed)
    device = resolve_device(args.device)
    # validate the attack options before any work (unknown field, unparsable value)
    make_config = getattr(attacks, "make_config", None)
    config = make_config(args.attack, **overrides) if make_config else attack_module.Config()

    seed_everything(args.seed)
    images, labels, num_classes, source = _load_batch(args)
    channels = int(images.shape[1])
    model = models.build(args.model, channels, num_classes, args.size).to(device)
    case = Case(model, images.to(device), labels.to(device), num_classes, f"{source}/{args.model}")

    defense = None
    if args.defense and args.defense.lower() != "none":
        from gradinv import defenses

        defense = defenses.build(args.defense, **defense_opts)
    elif defense_opts:
        raise GradInvError("--defense-opt given without --defense NAME")
    observed = observe(case, defense=defense, oracle_labels=args.oracle_labels)
    observed.check_against(model)

    total = int(getattr(config, "iterations", 0) or 0)
    bar = tqdm(
        total=total or None,
        desc=f"{args.attack}",
        unit="it",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )

    def callback(iteration: int, record: dict) -> None:
        done = min(int(iteration) + 1, total) if total else int(iteration) + 1
        if done < bar.n:  # a new (sequential) restart started
            bar.reset(total=total or None)
        bar.update(done - bar.n)
        if "loss" in record:
            bar.set_postfix(loss=f"{float(record['loss']):.4g}", refresh=False)

    seed_everything(args.seed)
    start = time.perf_counter()
    try:
        rec = attacks.run(args.attack, model, observed, callback=callback, **overrides)
    finally:
        bar.close()
    wall = time.perf_counter() - start

    rec_images = rec.images.detach().float().to(device).clamp(0, 1)
    if rec_images.shape != case.images.shape:
        raise GradInvError(
            f"attack {args.attack!r} returned images of shape {tuple(rec_images.shape)}, "
            f"expected {tuple(case.images.shape)}"
        )
    if rec_images.shape[0] > 1 and hasattr(metrics, "match_order"):
        # show each reconstruction under its best-matching original (as the metrics do)
        rec_images = rec_images[metrics.match_order(rec_images, case.images)]
    values = metrics.evaluate(
        rec_images, case.images, lpips_net=None if args.no_lpips else "alex", match=True
    )
    scores = {k: _finite_or_none(_mean(values.get(k))) for k in ("psnr", "ssim", "lpips", "mse")}

    out_dir = Path(args.out or Path("runs") / f"attack-{datetime.now():%Y%m%d-%H%M%S}")
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path = out_dir / "grid.png"
    fig = plots.image_grid(
        [case.images.detach().cpu(), rec_images.cpu()],
        row_labels=["original", "reconstruction"],
        path=grid_path,
        title=f"{args.attack}: PSNR {_fmt(scores['psnr'], '.2f')} dB",
    )
    _close(fig)

    rec_labels = None if rec.labels is None else [int(v) for v in rec.labels.reshape(-1).tolist()]
    true_labels = [int(v) for v in labels.tolist()]
    result: dict[str, Any] = {
        **scores,
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
        "labels": true_labels,
        "recovered_labels": rec_labels,
        "label_accuracy": _label_accuracy(rec_labels, true_labels),
        "final_loss": _finite_or_none(rec.loss),
        "seed": args.seed,
        "device": str(device),
        "wall_seconds": round(wall, 3),
        "out_dir": str(out_dir),
        "grid": str(grid_path),
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _label_accuracy(recovered: list[int] | None, true: list[int]) -> float | None:
    """Fraction of the true labels recovered, as multisets (order-free, like iDLG)."""
    from collections import Counter

    if recovered is None or len(recovered) != len(true):
        return None
    return sum((Counter(recovered) & Counter(true)).values()) / len(true)


def _mean(v: Any) -> Any:
    """Scalar of a metric value (float, 0-d/1-d tensor or list): its mean."""
    if v is None:
        return None
    try:
        import torch

        if isinstance(v, torch.Tensor):
            return float(v.float().mean())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, list | tuple):
        return sum(float(x) for x in v) / len(v) if v else None
    return v


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _close(fig: Any) -> None:
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def cmd_reproduce(args: argparse.Namespace) -> int:
    from gradinv.reproduce import reproduce

    results = reproduce(
        paper=args.paper,
        profile=args.profile,
        out_dir=args.out,
        repo_root=args.repo_root,
        kernel=args.kernel,
        log_output=args.log_output,
    )
    failed = [r for r in results if not r["ok"]]
    for r in results:
        if r["ok"]:
            print(
                f"ok     {r['paper']} ({r['profile']}): {r['wall_seconds']:.1f} s -> {r['output']}"
            )
        else:
            print(f"FAILED {r['paper']} ({r['profile']}): {r['error']} (see {r['output']})")
    if failed:
        print(
            f"{PROG}: error: {len(failed)} of {len(results)} notebook(s) failed: "
            + ", ".join(r["paper"] for r in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    import subprocess

    from gradinv.reproduce import find_repo_root

    root = find_repo_root()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--user",
            "--name",
            "gradinv",
            "--display-name",
            "Python (gradinv)",
        ],
        check=True,
    )
    argv = [sys.executable, "-m", "jupyterlab", str(root / "notebooks"), *args.lab_args]
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return


def cmd_priors_train(args: argparse.Namespace) -> int:
    from gradinv.priors import TrainConfig, prior_name, priors_root, train_prior

    given = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "checkpoint_every": args.checkpoint_every,
    }
    for key, value in given.items():
        if value is not None and value <= 0:
            raise GradInvError(f"--{key.replace('_', '-')} must be positive, got {value}")
    config = TrainConfig(
        dataset=args.dataset,
        label=args.label,
        size=args.size,
        channels=args.channels,
        seed=args.seed,
        device=args.device,
        **{k: v for k, v in given.items() if v is not None},
    )
    levels = 2 ** (len(config.block_out_channels) - 1)  # the UNet halves the size per level
    if args.size < levels or args.size % levels:
        raise GradInvError(
            f"--size must be a multiple of {levels} (the prior's UNet halves it "
            f"{levels.bit_length() - 1} times), got {args.size}"
        )
    out = Path(args.out) if args.out else priors_root() / prior_name(args.dataset, args.size)
    prior = train_prior(config, out, resume=not args.no_resume, save_half=not args.full_precision)
    meta = prior.meta
    print(
        f"wrote {out} ({meta['steps_done']} steps, final loss {meta['final_loss']:.4f}, "
        f"{meta['seconds']} s on {meta['device']})"
    )
    return 0


def cmd_priors_sample(args: argparse.Namespace) -> int:
    import torch.nn.functional as F
    from torchvision.utils import save_image

    from gradinv.priors import load_prior
    from gradinv.utils import resolve_device

    if args.n < 1:
        raise GradInvError(f"--n must be at least 1, got {args.n}")
    if args.method == "ddpm" and args.eta != 0:
        raise GradInvError("--eta applies to --method ddim only (DDPM's noise is fixed)")
    prior = load_prior(args.prior, resolve_device(args.device))
    images = prior.sample(
        args.n, steps=args.steps, method=args.method, eta=args.eta, seed=args.seed, progress=True
    ).cpu()
    scale = max(1, 64 // images.shape[-1])  # small priors: nearest-neighbour zoom to >= 64 px
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, str(out), nrow=math.ceil(math.sqrt(args.n)), padding=2, pad_value=1.0)
    print(f"wrote {out} ({args.n} {args.method} samples, {args.steps} steps, seed {args.seed})")
    return 0


def _prior_rows() -> list[dict[str, Any]]:
    """One row per prior folder (``config.json`` or ``checkpoint.pt``) in both prior roots."""
    from gradinv.priors import priors_root, shipped_root

    rows: list[dict[str, Any]] = []
    for where, root in (("trained", priors_root()), ("shipped", shipped_root())):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            config, weights = folder / "config.json", folder / "model.safetensors"
            row: dict[str, Any] = {"name": folder.name, "where": where, "path": str(folder)}
            if config.exists() and weights.exists():
                try:
                    meta = json.loads(config.read_text())
                    spec = meta.get("spec", {})
                    row.update(
                        dataset=meta.get("dataset", "?"),
                        size=spec.get("image_size", "?"),
                        channels=spec.get("channels", "?"),
                        steps_done=meta.get("steps_done", "?"),
                        final_loss=meta.get("final_loss"),
                        status="ready",
                    )
                except (ValueError, AttributeError):
                    row["status"] = "unreadable config.json"
            elif (folder / "checkpoint.pt").exists():
                row["status"] = "unfinished: rerun `gradinv priors train` with --out to resume"
            else:
                continue
            rows.append(row)
    return rows


def _cell(value: Any, key: str) -> str:
    if key == "final_loss" and isinstance(value, int | float):
        return format(value, ".4f")
    return "n/a" if value is None else str(value)


def cmd_priors_list(args: argparse.Namespace) -> int:
    from gradinv.priors import priors_root, shipped_root

    rows = _prior_rows()
    if not rows:
        print(
            f"no priors in {priors_root()} or {shipped_root()}; train one with "
            "`gradinv priors train --dataset NAME --size S`"
        )
        return 0
    head = ("name", "where", "dataset", "size", "channels", "steps_done", "final_loss", "status")
    table = [[_cell(r.get(k, ""), k) for k in head] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip())
    print(f"\ntrained: {priors_root()}  (set $GRADINV_PRIORS to change)\nshipped: {shipped_root()}")
    return 0


# --------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks (examples stay readable)."""


def _wrap(*paragraphs: str) -> str:
    """Wrap each paragraph to 88 columns; paragraphs are separated by a blank line."""
    import textwrap

    return "\n\n".join(
        "\n".join(textwrap.fill(line, 88) for line in p.splitlines()) for p in paragraphs
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_Formatter,
        description=_wrap(
            "Gradient inversion attacks and defenses in federated learning: run one attack on "
            "a dataset or your own images, or reproduce the papers' notebooks."
        ),
        epilog="first steps:\n"
        "  gradinv assets                 # build offline LPIPS weights and datasets (once)\n"
        "  gradinv datasets               # what data is present\n"
        "  gradinv attack --attack ig --model lenet --dataset digits --iters 200\n"
        "  gradinv reproduce --paper all --profile smoke\n"
        "Run `gradinv COMMAND --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "assets",
        help="build offline assets (LPIPS weights, embedded datasets)",
        formatter_class=_Formatter,
        description=_wrap(
            "Build everything the project needs offline: the LPIPS backbone weights and the "
            "embedded datasets made from data that installed packages ship. Nothing is "
            "downloaded; already built assets are kept unless --force."
        ),
        epilog="examples:\n  gradinv assets\n  gradinv assets --root /data/gradinv --force",
    )
    p.add_argument("--root", help="asset/data directory (default: the project's default root)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser(
        "datasets",
        help="list the datasets that are present, with provenance",
        formatter_class=_Formatter,
        description=_wrap(
            "Print a table of every registered dataset: present or missing, size, and where "
            "the data comes from (provenance)."
        ),
        epilog=(
            "examples:\n  gradinv datasets\n  gradinv datasets --root /data/gradinv\n"
            "  gradinv datasets --overlap\n  gradinv datasets --overlap --json --name chest_xray"
        ),
    )
    p.add_argument("--root", help="data directory (default: the project's default root)")
    p.add_argument(
        "--overlap",
        action="store_true",
        help="for each dataset with a public split: the PSNR of every private (train, test) "
        "image to its nearest public image, aligned and best over +-2 px shifts "
        "(min / median / max)",
    )
    p.add_argument("--json", action="store_true", help="with --overlap: JSON instead of a table")
    p.add_argument("--size", type=int, default=32, help="with --overlap: compare at this size")
    p.add_argument("--name", action="append", help="with --overlap: only this dataset (repeatable)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "attack",
        help="run one gradient inversion attack and print PSNR/SSIM/LPIPS/MSE",
        formatter_class=_Formatter,
        description=_wrap(
            "Simulate one FL client: build a randomly initialised victim model (seeded), take "
            "a batch of private images (from a dataset or your own files), compute the "
            "gradient the client would share (optionally through a defense), run the attack "
            "on it, save grid.png (original | reconstruction) and metrics.json in --out and "
            "print PSNR, SSIM, LPIPS and MSE.",
            f"attacks:  {_names('gradinv.attacks', 'ATTACKS')}\n"
            f"models:   {_names('gradinv.models', 'NAMES')}\n"
            f"datasets: {_names('gradinv.data', 'NAMES')}\n"
            f"defenses: {_names('gradinv.defenses', 'DEFENSES')}, none",
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
    p.add_argument("--size", type=int, default=32, help="image side length in pixels (default: 32)")
    p.add_argument(
        "--batch",
        type=int,
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
        type=int,
        nargs="+",
        default=None,
        help="class labels of --images files, one per image",
    )
    p.add_argument(
        "--num-classes",
        type=int,
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
        type=int,
        default=None,
        help="attack iterations (default: the attack's paper value)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="random restarts (default: the attack's paper value)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of model init, data and attack (default: 0)"
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

    p = sub.add_parser(
        "reproduce",
        help="execute the paper notebooks with papermill",
        formatter_class=_Formatter,
        description=_wrap(
            "Execute notebooks/<paper>.ipynb (re-synced from its .py with jupytext when the "
            ".py is newer) with the parameters of papermill_runs/<paper>/<profile>.yaml, from "
            "the repository root. Figures land in figures/<paper>/ with a MANIFEST.json "
            "(commit, device, date, wall time); executed notebooks in --out. A failing "
            "notebook does not stop the others; the exit status is 1 if any failed.",
            f"papers:   {_papers()}\n"
            "profiles: smoke (CPU, minutes per notebook), paper (the papers' settings; GPU)",
        ),
        epilog="examples:\n"
        "  gradinv reproduce --paper all --profile smoke\n"
        "  gradinv reproduce --paper gia_survey --profile paper --log-output",
    )
    p.add_argument("--paper", default="all", help="paper notebook name, or all (default: all)")
    p.add_argument(
        "--profile", default="smoke", help="parameter profile: smoke or paper (default: smoke)"
    )
    p.add_argument(
        "--out",
        default="papermill_runs/out",
        help="where executed notebooks go, relative to the repository root (default: %(default)s)",
    )
    p.add_argument(
        "--kernel",
        default="python3",
        help="Jupyter kernel that runs the notebooks (default: python3)",
    )
    p.add_argument("--log-output", action="store_true", help="stream cell outputs to the terminal")
    p.add_argument("--repo-root", default=None, help="repository root (default: auto-detected)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser(
        "lab",
        help="register the gradinv Jupyter kernel and open the notebooks in Jupyter Lab",
        formatter_class=_Formatter,
        description=_wrap(
            "Install this environment as the Jupyter kernel 'gradinv' (for the current user) "
            "and start Jupyter Lab in notebooks/. Extra arguments are passed to jupyter lab."
        ),
        epilog="examples:\n  gradinv lab\n  gradinv lab --no-browser --port 8890",
    )
    p.set_defaults(func=cmd_lab, lab_args=[])

    p = sub.add_parser(
        "priors",
        help="train, sample and list the diffusion priors of the guided attacks",
        formatter_class=_Formatter,
        description=_wrap(
            "Diffusion priors (DDPM UNets) for the diffusion-guided attacks (GradInvDiff, "
            "GGDM, GGSS-R, GIDM). No pretrained prior can be downloaded: they are trained "
            "here on a registry dataset. A prior named <dataset>-<size> lives in "
            "$GRADINV_PRIORS (default ~/.cache/gradinv/priors) or among the checkpoints "
            "shipped with the package; attacks take it as prior=<dataset>-<size> or a folder."
        ),
        epilog="examples:\n"
        "  gradinv priors train --dataset chest_xray --size 32 --steps 4000\n"
        "  gradinv priors sample chest_xray-32 --n 16 --out samples.png\n"
        "  gradinv priors list\n"
        "Run `gradinv priors ACTION --help` for the options of an action.",
    )
    psub = p.add_subparsers(dest="priors_command", metavar="ACTION")
    psub.required = True

    q = psub.add_parser(
        "train",
        help="train (or resume training) a prior on a dataset",
        formatter_class=_Formatter,
        description=_wrap(
            "Train a DDPM prior (Ho et al. 2020: simple loss, AdamW, EMA weights) on the public "
            "split of a registry dataset (attacker knowledge; never a private split), "
            "optionally one class of it (--label), and write model.safetensors and config.json (spec, "
            "settings, data hash, final loss) into --out. A checkpoint.pt is written every "
            "--checkpoint-every steps: rerunning the same command resumes an interrupted run "
            "(same dataset and settings required).",
            f"datasets: {_names('gradinv.data', 'NAMES')}",
        ),
        epilog="examples:\n"
        "  gradinv priors train --dataset digits --size 8 --steps 300\n"
        "  gradinv priors train --dataset chest_xray --size 32 --steps 4000 --device cuda\n"
        "  gradinv priors train --dataset bloodmnist --size 64 --channels 3 "
        "--out priors/blood-64",
    )
    q.add_argument("--dataset", required=True, metavar="NAME", help="registry dataset to learn")
    q.add_argument(
        "--label", metavar="CLASS", help="train on this class only (e.g. face for faces)"
    )
    q.add_argument(
        "--size", type=int, default=32, help="image side in pixels, a multiple of 4 (default: 32)"
    )
    q.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="grey (1) or RGB (3) (default: the dataset's own)",
    )
    q.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: 4000)",
    )
    q.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="batch size (default: 32)",
    )
    q.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW learning rate (default: 0.0005)",
    )
    q.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between resumable checkpoints (default: 500)",
    )
    q.add_argument("--seed", type=int, default=0, help="seed of init and batches (default: 0)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    q.add_argument(
        "--out",
        metavar="FOLDER",
        default=None,
        help="output folder (default: $GRADINV_PRIORS/<dataset>-<size>)",
    )
    q.add_argument(
        "--no-resume",
        action="store_true",
        help="start over even if --out holds a checkpoint of the same run",
    )
    q.add_argument(
        "--full-precision",
        action="store_true",
        help="save fp32 weights (default: fp16, half the size)",
    )
    q.set_defaults(func=cmd_priors_train)

    q = psub.add_parser(
        "sample",
        help="draw unguided samples from a prior into an image grid",
        formatter_class=_Formatter,
        description=_wrap(
            "Draw --n unguided samples (DDPM ancestral sampling or DDIM) from a prior, given "
            "by name (<dataset>-<size>) or folder, and save them as one PNG grid (small "
            "images are enlarged, nearest neighbour, to at least 64 px per cell)."
        ),
        epilog="examples:\n"
        "  gradinv priors sample digits-8 --n 16\n"
        "  gradinv priors sample path/to/prior --method ddim --steps 50 --out ddim.png",
    )
    q.add_argument("prior", metavar="NAME_OR_FOLDER", help="prior name <dataset>-<size> or folder")
    q.add_argument("--n", type=int, default=16, help="number of samples (default: 16)")
    q.add_argument("--steps", type=int, default=100, help="reverse steps, respaced (default: 100)")
    q.add_argument(
        "--method", choices=("ddpm", "ddim"), default="ddpm", help="sampler (default: ddpm)"
    )
    q.add_argument(
        "--eta", type=float, default=0.0, help="DDIM stochasticity, 0 = deterministic (default: 0)"
    )
    q.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    q.add_argument("--out", default="grid.png", help="PNG file to write (default: grid.png)")
    q.set_defaults(func=cmd_priors_sample)

    q = psub.add_parser(
        "list",
        help="list the trained and shipped priors",
        formatter_class=_Formatter,
        description=_wrap(
            "List the priors in $GRADINV_PRIORS (default ~/.cache/gradinv/priors) and those "
            "shipped with the package: dataset, size, channels, training steps and final "
            "loss from their config.json; unfinished runs (a checkpoint only) are marked."
        ),
        epilog="examples:\n  gradinv priors list\n  GRADINV_PRIORS=/data/priors gradinv priors list",
    )
    q.set_defaults(func=cmd_priors_list)
    return parser


def _papers() -> str:
    try:
        from gradinv.reproduce import discover_papers

        return ", ".join(discover_papers()) or "(none found)"
    except Exception:  # noqa: BLE001 - a help text must not crash
        return "(could not list)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradinv`` console script; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "lab":
            args.lab_args = extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except GradInvError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:  # unreadable files, full disks, PIL decoding errors
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _error(f"{exc.strerror or exc}{':' + where if where else ''}")
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str) -> None:
    line = " ".join(message.split())  # one line, whatever the exception said
    print(f"{PROG}: error: {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
