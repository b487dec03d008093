"""The papers' real datasets, read with their own libraries from the data root.

Nothing here downloads: every class is constructed with ``download=False``, and a missing
file is a :class:`MissingAssetError` that names the file and where to put it.
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
