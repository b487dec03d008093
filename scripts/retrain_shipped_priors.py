"""Retrain the shipped priors on their dataset's ``public`` split (issue: honest data).

Each prior keeps its architecture and training settings from its shipped ``config.json``;
the split becomes ``public``, ``--steps`` sets the budget, ``faces-32`` keeps faces only (its
role is CelebA's). Training runs in ``--work`` (resumable: rerun the same command), then the
weights, ``config.json`` and a grid of 16 unguided samples replace the shipped ones.

    python scripts/retrain_shipped_priors.py chest_xray-32 gan-chest_xray-32 --steps 1500
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from gradinv.priors.gan import GanTrainConfig, load_gan, train_gan
from gradinv.priors.storage import shipped_root
from gradinv.priors.train import TrainConfig, train_prior

LABELS = {"faces-32": "face"}  # priors trained on one class of their dataset


def retrain(name: str, steps: int, work: Path) -> None:
    folder = shipped_root() / name
    old = json.loads((folder / "config.json").read_text())
    settings = {**old["training"], "split": "public", "label": LABELS.get(name), "steps": steps}
    settings["checkpoint_every"] = min(250, steps)
    if old.get("kind") == "gan":
        train_gan(GanTrainConfig(**settings), work / name)
    else:
        train_prior(TrainConfig(**settings), work / name)
    for file in ("model.safetensors", "config.json"):
        shutil.copyfile(work / name / file, folder / file)
    if old.get("kind") == "gan":
        grid = load_gan(name).sample(16, seed=0).cpu()
        grid = F.interpolate(grid, scale_factor=2, mode="nearest")
        save_image(grid, str(folder / "samples.png"), nrow=4, padding=2, pad_value=1.0)
    else:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gradinv.cli",
                "priors",
                "sample",
                name,
                "--n",
                "16",
                "--out",
                str(folder / "samples.png"),
            ],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped priors, e.g. chest_xray-32")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/gradinv/retrain")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.names:
        retrain(name, args.steps, args.work)


if __name__ == "__main__":
    main()
