"""The papers' real datasets, read with their own libraries from the data root.

Nothing here downloads: every class is constructed with ``download=False``, and a missing
file is a :class:`MissingAssetError` that names the file and where to put it. The shadow
defense's image-folder datasets (COVID-19 Radiography, EyePACS-AIROGS) are read with PIL,
lazily, so ``load(..., n=...)`` opens only the files it keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gradinv.data.registry import Raw, Spec, register
from gradinv.errors import MissingAssetError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_present(folder: Path) -> bool:
    return all((folder / f).exists() for f in MNIST_FILES)


def _torchvision_idx(cls_name: str, sub: str) -> tuple:
    def present(root: Path) -> bool:
        if cls_name == "FashionMNIST" and (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists():
            return True  # Debian's files, gunzipped into place on first load
        return _idx_present(root / sub / cls_name / "raw")

    def read(root: Path, split: str) -> Raw:
        from torchvision import datasets

        folder = root / sub
        raw = folder / cls_name / "raw"
        if not _idx_present(raw) and cls_name == "FashionMNIST":
            from gradinv.data.embedded import install_fashion_mnist

            install_fashion_mnist(root)  # gunzips Debian's IDX files when the package is there
        if not _idx_present(raw):
            raise MissingAssetError(
                f"{cls_name} is missing: put {', '.join(MNIST_FILES)} (gunzipped) into "
                f"{raw} (see DATASETS.md)"
                + (
                    ", or `apt-get install dataset-fashion-mnist` then `gradinv assets`"
                    if cls_name == "FashionMNIST"
                    else ""
                )
            )
        ds = getattr(datasets, cls_name)(str(folder), train=split == "train", download=False)
        return ds.data.numpy(), ds.targets.numpy().astype(np.int64), list(ds.classes)

    return present, read


_mnist_present, _mnist_read = _torchvision_idx("MNIST", "mnist")
register(
    Spec(
        "mnist",
        "real",
        "MNIST (survey)",
        "LeCun et al. MNIST via torchvision.datasets.MNIST",
        "CC BY-SA 3.0",
        _mnist_present,
        _mnist_read,
        "put the four IDX files into <root>/mnist/MNIST/raw/",
    )
)

_fashion_present, _fashion_read = _torchvision_idx("FashionMNIST", "fashion_mnist")
register(
    Spec(
        "fashion_mnist",
        "real",
        "Fashion-MNIST (survey)",
        "Zalando Fashion-MNIST via torchvision.datasets.FashionMNIST (offline: Debian dataset-fashion-mnist)",
        "MIT",
        _fashion_present,
        _fashion_read,
        "apt-get install dataset-fashion-mnist && gradinv assets",
    )
)


def _cifar_present(root: Path) -> bool:
    return (root / "cifar10" / "cifar-10-batches-py" / "data_batch_1").exists()


def _cifar_read(root: Path, split: str) -> Raw:
    from torchvision import datasets

    if not _cifar_present(root):
        raise MissingAssetError(
            f"CIFAR-10 is missing: extract cifar-10-python.tar.gz so that "
            f"{root / 'cifar10' / 'cifar-10-batches-py'} holds data_batch_1..5 and test_batch"
        )
    ds = datasets.CIFAR10(str(root / "cifar10"), train=split == "train", download=False)
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64), list(ds.classes)


register(
    Spec(
        "cifar10",
        "real",
        "CIFAR-10 (survey)",
        "Krizhevsky CIFAR-10 via torchvision.datasets.CIFAR10",
        "no explicit licence (research use)",
        _cifar_present,
        _cifar_read,
        "extract cifar-10-python.tar.gz into <root>/cifar10/",
    )
)


def _celeba_present(root: Path) -> bool:
    base = root / "celeba" / "celeba"
    return (base / "img_align_celeba").is_dir() and (base / "list_eval_partition.txt").exists()


class _LazyImages:
    """Images read from disk only for the indices ``load`` keeps (CelebA has 200k files)."""

    def __init__(self, n: int, get: Callable[[int], np.ndarray]) -> None:
        self.n, self.get = n, get

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return np.stack([self.get(int(i)) for i in np.atleast_1d(idx)])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[np.arange(self.n)]


def _celeba_read(root: Path, split: str) -> Raw:
    """CelebA aligned faces, centre 178x178 (``load`` resizes); label = ``Male`` (2 classes).

    Images are read lazily: ``load(..., n=...)`` opens only the ``n`` files it keeps.
    """
    from torchvision import datasets

    if not _celeba_present(root):
        raise MissingAssetError(
            f"CelebA is missing: put img_align_celeba/ and list_attr_celeba.txt, "
            f"identity_CelebA.txt, list_bbox_celeba.txt, list_landmarks_align_celeba.txt, "
            f"list_eval_partition.txt into {root / 'celeba' / 'celeba'}"
        )
    ds = datasets.CelebA(
        str(root / "celeba"),
        split="train" if split == "train" else "test",
        target_type="attr",
        download=False,
    )
    male = ds.attr_names.index("Male")

    def get(i: int) -> np.ndarray:
        img = np.asarray(ds[i][0].convert("RGB"))
        h, w = img.shape[:2]
        s = min(h, w)
        return img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]

    images = _LazyImages(len(ds), get)
    return images, ds.attr[:, male].numpy().astype(np.int64), ["female", "male"]  # type: ignore[return-value]


register(
    Spec(
        "celeba",
        "real",
        "CelebA (GIDM, GGSS-R)",
        "Liu et al. CelebA via torchvision.datasets.CelebA",
        "non-commercial research only",
        _celeba_present,
        _celeba_read,
        "put img_align_celeba/ and list files into <root>/celeba/celeba/",
    )
)

MEDMNIST = {
    "bloodmnist": "BloodMNIST (GradInvDiff; Acevedo-20)",
    "chestmnist": "ChestMNIST (GradInvDiff; ChestX-ray8)",
    "organamnist": "OrganAMNIST (GradInvDiff; LiTS axial)",
    "organcmnist": "OrganCMNIST (GradInvDiff; LiTS coronal)",
    "organsmnist": "OrganSMNIST (GradInvDiff; LiTS sagittal)",
    "pathmnist": "PathMNIST",
    "dermamnist": "DermaMNIST",
    "retinamnist": "RetinaMNIST (fundus)",
}


def _medmnist_files(root: Path, flag: str) -> list[Path]:
    folder = root / "medmnist"
    return [
        p for p in [folder / f"{flag}.npz", *sorted(folder.glob(f"{flag}_*.npz"))] if p.exists()
    ]


def _medmnist(flag: str) -> tuple:
    def present(root: Path) -> bool:
        return bool(_medmnist_files(root, flag))

    def read(root: Path, split: str) -> Raw:
        """MedMNIST from its exact npz (``<flag>.npz`` = 28 px, ``<flag>_<size>.npz``); the
        largest present is used. ChestMNIST's 14 findings become 'no finding' / 'finding'."""
        files = _medmnist_files(root, flag)
        if not files:
            raise MissingAssetError(
                f"{flag} is missing: put {flag}.npz (28 px) or {flag}_64.npz / _128 / _224 from "
                f"MedMNIST v3 into {root / 'medmnist'}"
            )
        with np.load(files[-1]) as npz:
            images = npz[f"{split}_images"]
            labels = npz[f"{split}_labels"]
        import medmnist

        names = list(medmnist.INFO[flag]["label"].values())
        if labels.shape[1] > 1:  # multi-label (ChestMNIST): any finding
            labels, names = (labels.sum(1) > 0).astype(np.int64), ["no finding", "finding"]
        else:
            labels = labels[:, 0].astype(np.int64)
        return images, labels, names

    return present, read


for _flag, _role in MEDMNIST.items():
    _p, _r = _medmnist(_flag)
    register(
        Spec(
            _flag,
            "real",
            _role,
            "Yang et al. MedMNIST v3, read from its npz with the medmnist package's names",
            "CC BY 4.0 (most subsets)",
            _p,
            _r,
            f"put {_flag}.npz or {_flag}_<size>.npz into <root>/medmnist/",
        )
    )


# -- image-folder datasets of the shadow defense paper (shadow_defense.txt, Sec. 5.1) -------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLIT_SEED = 0  # seed of the 80/20 train/test split of folder layouts that have no split
TEST_FRACTION = 0.2


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _seeded_split(files: list[list[Path]], split: str, seed: int = SPLIT_SEED) -> list[list[Path]]:
    """Per-class (stratified) seeded 80/20 split of sorted file lists: disjoint, deterministic."""
    out = []
    for k, paths in enumerate(files):
        order = np.random.default_rng([seed, k]).permutation(len(paths))
        n_test = int(round(TEST_FRACTION * len(paths)))
        keep = order[:n_test] if split == "test" else order[n_test:]
        out.append([paths[i] for i in np.sort(keep)])
    return out


def _read_square(path: Path, mode: str, side: int) -> np.ndarray:
    """One image file as uint8 (side, side[, 3]): centre square crop, PIL resize to ``side``."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(mode)
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
        if s != side:
            img = img.resize(
                (side, side),
                Image.Resampling.BILINEAR,
            )
        return np.asarray(img, dtype=np.uint8)


def _folder_raw(files: list[list[Path]], names: list[str], mode: str, side: int) -> Raw:
    """Lazily read per-class file lists: ``load(..., n=...)`` opens only the files it keeps."""
    paths = [p for group in files for p in group]
    labels = np.concatenate([np.full(len(g), k, dtype=np.int64) for k, g in enumerate(files)])
    images = _LazyImages(len(paths), lambda i: _read_square(paths[i], mode, side))
    return images, labels, list(names)  # type: ignore[return-value]


COVID_CLASSES = ("COVID", "Normal", "Lung_Opacity", "Viral Pneumonia")
COVID_SIDE = 299  # native size of the Kaggle release (every image is 299 x 299)


def _covid_base(root: Path) -> Path:
    return root / "covid_radiography" / "COVID-19_Radiography_Dataset"


def _covid_files(root: Path) -> list[list[Path]]:
    """``<class>/images/*.png`` (release 2+), or ``<class>/*.png`` (flat copies)."""
    base = _covid_base(root)
    return [_images_in(base / c / "images") or _images_in(base / c) for c in COVID_CLASSES]


def _covid_present(root: Path) -> bool:
    return all((_covid_base(root) / c).is_dir() for c in COVID_CLASSES)


def _covid_read(root: Path, split: str) -> Raw:
    """COVID-19 Radiography Database: grey chest X-rays, 4 classes in ``COVID_CLASSES`` order,
    seeded stratified 80/20 train/test split (the release has no split)."""
    files = _covid_files(root)
    empty = [c for c, f in zip(COVID_CLASSES, files, strict=True) if not f]
    if empty:
        raise MissingAssetError(
            f"COVID-19 Radiography is missing: no PNG images for {', '.join(empty)}; extract the "
            f"Kaggle archive so that {_covid_base(root)}/<class>/images/*.png exist for the "
            f"classes {', '.join(COVID_CLASSES)}"
        )
    return _folder_raw(_seeded_split(files, split), list(COVID_CLASSES), "L", COVID_SIDE)


register(
    Spec(
        "covid_radiography",
        "real",
        "COVID-19 Radiography = ChestXRay (shadow defense)",
        "Chowdhury et al. 2020 / Rahman et al. 2021 COVID-19 Radiography Database (Kaggle "
        "tawsifurrahman/covid19-radiography-database), PNG folders read with PIL; 299 px grey",
        "research use; cite Chowdhury 2020, Rahman 2021 (sources keep their terms)",
        _covid_present,
        _covid_read,
        "extract the Kaggle archive into <root>/covid_radiography/ so that "
        "COVID-19_Radiography_Dataset/{COVID,Normal,Lung_Opacity,Viral Pneumonia}/images/*.png exist",
    )
)

EYEPACS_CLASSES = ("NRG", "RG")  # no referable glaucoma = 0, referable glaucoma = 1
EYEPACS_SIDE = 256  # our choice: centre square resized to 256 px, above the paper's 224


def _eyepacs_base(root: Path) -> Path:
    return root / "eyepacs"


def _eyepacs_has_split(root: Path) -> bool:
    base = _eyepacs_base(root)
    return all((base / s / c).is_dir() for s in ("train", "test") for c in EYEPACS_CLASSES)


def _eyepacs_present(root: Path) -> bool:
    base = _eyepacs_base(root)
    return _eyepacs_has_split(root) or all((base / c).is_dir() for c in EYEPACS_CLASSES)


def _eyepacs_read(root: Path, split: str) -> Raw:
    """EyePACS-AIROGS glaucoma fundus photographs (colour), NRG = 0, RG = 1. The layout's own
    ``train``/``test`` folders are used when present (a ``validation`` folder is ignored),
    else a seeded stratified 80/20 split of ``<root>/eyepacs/{RG,NRG}``. Each image is
    centre-cropped to a square and resized to ``EYEPACS_SIDE`` px on reading."""
    base = _eyepacs_base(root)
    if _eyepacs_has_split(root):
        files = [_images_in(base / split / c) for c in EYEPACS_CLASSES]
    else:
        files = _seeded_split([_images_in(base / c) for c in EYEPACS_CLASSES], split)
    if not any(files):
        raise MissingAssetError(
            f"EyePACS is missing: put the fundus images into {base}/{{train,test}}/{{RG,NRG}}/*.jpg "
            f"or {base}/{{RG,NRG}}/*.jpg (AIROGS, Zenodo record 5793241)"
        )
    return _folder_raw(files, list(EYEPACS_CLASSES), "RGB", EYEPACS_SIDE)


register(
    Spec(
        "eyepacs",
        "real",
        "EyePACS-AIROGS glaucoma fundus (shadow defense)",
        "de Vente et al. 2023 Rotterdam EyePACS AIROGS (Zenodo 5793241), RG/NRG JPEG folders "
        "read with PIL; centre square at 256 px",
        "Zenodo 5793241 terms (access on request; non-commercial)",
        _eyepacs_present,
        _eyepacs_read,
        "put the images into <root>/eyepacs/{train,test}/{RG,NRG}/*.jpg (or <root>/eyepacs/{RG,NRG}/)",
    )
)
