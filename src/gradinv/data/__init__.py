"""The dataset registry: ``load(name, split, size, n, channels, root, seed)``.

Real datasets (MNIST, Fashion-MNIST, CIFAR-10, CelebA, MedMNIST) are read with their own
libraries from the data root (``$GRADINV_DATA``, default ``~/.cache/gradinv/data``);
embedded stand-ins are built offline from images that registry packages ship
(``gradinv assets``). ``info()`` says what is present; DATASETS.md says where each comes from.
"""

from gradinv.data import real as _real  # noqa: F401  (registers the real datasets)
from gradinv.data.embedded import build_embedded
from gradinv.data.registry import SPECS, SPLITS, Dataset, data_root, format_table, info, load

NAMES: tuple[str, ...] = tuple(SPECS)

__all__ = [
    "NAMES",
    "SPECS",
    "SPLITS",
    "Dataset",
    "build_embedded",
    "data_root",
    "format_table",
    "info",
    "load",
]
