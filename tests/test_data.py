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


@pytest.mark.parametrize(
    ("name", "classes"),
    [("digits", 10), ("natural_color", 7), ("faces", 2), ("fundus", 1)],
)
def test_embedded_set_builds_and_loads_in_range(root, name, classes):
    ds = data.load(name, "train", size=16, root=root)
    assert ds.images.dtype == torch.float32 and ds.images.shape[-2:] == (16, 16)
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    assert ds.num_classes == classes and int(ds.labels.max()) < classes
    assert ds.provenance["kind"] == "embedded" and ds.provenance["stands_in_for"]
    assert (root / "embedded" / f"{name}.npz").exists()


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


def test_embedded_build_is_deterministic(tmp_path):
    spec, builder = embedded.SPEC_BUILDERS["natural_color"]
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
