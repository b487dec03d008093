"""Where generative priors live and how their files are written and read (shared by the
diffusion priors of :mod:`gradinv.priors.ddpm` and the GANs of :mod:`gradinv.priors.gan`).

A prior is a folder with ``model.safetensors`` (weights, fp16 or fp32) and ``config.json``
(architecture, training settings, data hash). Named priors are looked up in
:func:`priors_root` (trained here), then :func:`shipped_root` (committed with the package).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradinv.errors import GradInvError, MissingAssetError


def priors_root() -> Path:
    """Where trained priors go: ``$GRADINV_PRIORS`` or ``~/.cache/gradinv/priors``."""
    return Path(os.environ.get("GRADINV_PRIORS", Path.home() / ".cache" / "gradinv" / "priors"))


def shipped_root() -> Path:
    """The small checkpoints committed with the package."""
    return Path(__file__).parent / "checkpoints"


def find_folder(name: str) -> Path | None:
    """The folder of the prior called ``name`` (trained first, then shipped), or None."""
    for root in (priors_root(), shipped_root()):
        if (root / name / "model.safetensors").exists():
            return root / name
    return None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file: an interrupted save never corrupts the last
    checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def write_weights(module: nn.Module, folder: str | Path, half: bool, config: dict) -> Path:
    """Write ``module``'s state as ``model.safetensors`` (floating tensors in fp16 with
    ``half``, else fp32) and ``config`` as ``config.json`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in module.state_dict().items()
    }
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    return folder


def read_config(folder: str | Path, how_to_train: str) -> dict[str, Any]:
    """``config.json`` of a prior folder; a clear error (saying ``how_to_train``) when the
    folder lacks its weights or config."""
    folder = Path(folder)
    weights, config = folder / "model.safetensors", folder / "config.json"
    if not (weights.exists() and config.exists()):
        raise MissingAssetError(
            f"no prior in {folder} (model.safetensors and config.json expected); {how_to_train}"
        )
    return json.loads(config.read_text())


def read_weights(module: nn.Module, folder: str | Path) -> None:
    """Load ``model.safetensors`` of ``folder`` into ``module`` (floating tensors as fp32);
    a clear error when they do not fit its architecture."""
    from safetensors.torch import load_file

    weights = Path(folder) / "model.safetensors"
    state = {
        k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(weights)).items()
    }
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise GradInvError(
            f"the weights in {weights} do not fit the architecture in {Path(folder) / 'config.json'}"
            f" ({str(err).splitlines()[0]}); retrain the prior or restore both files"
        ) from None


def run_settings(config: Any) -> dict[str, Any]:
    """A training config as the settings stored with its checkpoints (device left out, tuples
    as lists so they compare equal after a pickle or JSON round trip)."""
    d = {**dataclasses.asdict(config), "device": None}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def resume_state(
    ckpt: Path, settings: dict[str, Any], digest: str, device: torch.device, resume: bool
) -> dict[str, Any] | None:
    """The checkpoint at ``ckpt`` to resume from (``None``: start fresh). A run may resume
    to more steps, with other checkpoint intervals or on another device; other data
    (``digest``) or other settings raise instead of mixing two runs."""
    if not (resume and ckpt.exists()):
        return None
    state = torch.load(ckpt, map_location=device, weights_only=False)
    same_run = {k: v for k, v in settings.items() if k not in ("steps", "checkpoint_every")}
    stored = {k: list(v) if isinstance(v, tuple) else v for k, v in state["settings"].items()}
    theirs = {k: v for k, v in stored.items() if k in same_run}
    if state["data_hash"] != digest or theirs != same_run:
        raise GradInvError(
            f"{ckpt} belongs to a different run (other data or settings); delete it, pick "
            "another output folder, or pass resume=False (--no-resume) to start over"
        )
    return state
