"""``gradinv priors``: train, sample and list the diffusion priors (train | sample | list)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from gradinv.cli.common import (
    Formatter,
    names,
    positive_float,
    positive_int,
    probability,
    seed,
    wrap,
)
from gradinv.errors import GradInvError


def add_priors_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "priors",
        help="train, sample and list the diffusion priors of the guided attacks",
        formatter_class=Formatter,
        description=wrap(
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
    _add_train_parser(psub)
    _add_sample_parser(psub)
    _add_list_parser(psub)


def _add_train_parser(psub: argparse._SubParsersAction) -> None:
    q = psub.add_parser(
        "train",
        help="train (or resume training) a prior on a dataset",
        formatter_class=Formatter,
        description=wrap(
            "Train a DDPM prior (Ho et al. 2020: simple loss, AdamW, EMA weights) on the public "
            "split of a registry dataset (attacker knowledge; never a private split), "
            "optionally one class of it (--label), and write model.safetensors and config.json (spec, "
            "settings, data hash, final loss) into --out. A checkpoint.pt is written every "
            "--checkpoint-every steps: rerunning the same command resumes an interrupted run "
            "(same dataset and settings required).",
            f"datasets: {names('gradinv.data', 'NAMES')}",
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
        "--size",
        type=positive_int,
        default=32,
        help="image side in pixels, a multiple of 4 (default: 32)",
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
        type=positive_int,
        default=None,
        help="training steps (default: 4000)",
    )
    q.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="batch size (default: 32)",
    )
    q.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="AdamW learning rate (default: 0.0005)",
    )
    q.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="steps between resumable checkpoints (default: 500)",
    )
    q.add_argument("--seed", type=seed, default=0, help="seed of init and batches (default: 0)")
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


def _add_sample_parser(psub: argparse._SubParsersAction) -> None:
    q = psub.add_parser(
        "sample",
        help="draw unguided samples from a prior into an image grid",
        formatter_class=Formatter,
        description=wrap(
            "Draw --n unguided samples (DDPM ancestral sampling or DDIM) from a prior, given "
            "by name (<dataset>-<size>) or folder, and save them as one PNG grid (small "
            "images are enlarged, nearest neighbour, to at least 64 px per cell)."
        ),
        epilog="examples:\n"
        "  gradinv priors sample digits-8 --n 16\n"
        "  gradinv priors sample path/to/prior --method ddim --steps 50 --out ddim.png",
    )
    q.add_argument("prior", metavar="NAME_OR_FOLDER", help="prior name <dataset>-<size> or folder")
    q.add_argument("--n", type=positive_int, default=16, help="number of samples (default: 16)")
    q.add_argument(
        "--steps", type=positive_int, default=100, help="reverse steps, respaced (default: 100)"
    )
    q.add_argument(
        "--method", choices=("ddpm", "ddim"), default="ddpm", help="sampler (default: ddpm)"
    )
    q.add_argument(
        "--eta",
        type=probability,
        default=0.0,
        help="DDIM stochasticity, 0 = deterministic (default: 0)",
    )
    q.add_argument("--seed", type=seed, default=0, help="seed of the noise (default: 0)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    q.add_argument("--out", default="grid.png", help="PNG file to write (default: grid.png)")
    q.set_defaults(func=cmd_priors_sample)


def _add_list_parser(psub: argparse._SubParsersAction) -> None:
    q = psub.add_parser(
        "list",
        help="list the trained and shipped priors",
        formatter_class=Formatter,
        description=wrap(
            "List the priors in $GRADINV_PRIORS (default ~/.cache/gradinv/priors) and those "
            "shipped with the package: dataset, size, channels, training steps and final "
            "loss from their config.json; unfinished runs (a checkpoint only) are marked."
        ),
        epilog="examples:\n  gradinv priors list\n  GRADINV_PRIORS=/data/priors gradinv priors list",
    )
    q.set_defaults(func=cmd_priors_list)


def cmd_priors_train(args: argparse.Namespace) -> int:
    from gradinv.priors import TrainConfig, prior_name, priors_root, train_prior

    given = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "checkpoint_every": args.checkpoint_every,
    }
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
