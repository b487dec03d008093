"""The shadow defense's real datasets read from fake Kaggle / AIROGS folder trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradinv import data
from gradinv.data.real import COVID_CLASSES, EYEPACS_CLASSES
from gradinv.errors import GradInvError, MissingAssetError

COVID_PER_CLASS = (5, 10, 4, 6)


def _write(path: Path, value: int, size: tuple[int, int], mode: str) -> None:
    """A constant image whose pixel value encodes ``value`` (so files can be told apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode).save(path)


@pytest.fixture
def covid_root(tmp_path: Path) -> Path:
    base = tmp_path / "covid_radiography" / "COVID-19_Radiography_Dataset"
    value = 0
    for cls, count in zip(COVID_CLASSES, COVID_PER_CLASS, strict=True):
        for i in range(count):
            _write(base / cls / "images" / f"{cls}-{i + 1}.png", value, (40, 40), "L")
            value += 1
        (base / cls / "masks").mkdir()  # the Kaggle release also ships lung masks: ignored
    return tmp_path


def _pixel_values(ds: data.Dataset) -> list[int]:
    """The encoded value of each (constant) image."""
    return [int(v) for v in (ds.images[:, 0, 0, 0] * 255).round()]


def _values(ds: data.Dataset) -> set[int]:
    return set(_pixel_values(ds))


def test_covid_radiography_loads_grey_four_classes_with_disjoint_stratified_split(covid_root):
    public = data.load("covid_radiography", "public", size=16, root=covid_root)
    train = data.load("covid_radiography", "train", size=16, root=covid_root)
    test = data.load("covid_radiography", "test", size=16, root=covid_root)
    assert train.class_names == list(COVID_CLASSES) == ["COVID", "Normal", "Lung_Opacity",
                                                        "Viral Pneumonia"]  # fmt: skip
    assert train.num_classes == 4
    assert train.images.shape == (len(train), 1, 16, 16) and train.images.dtype == torch.float32
    assert len(public) + len(train) + len(test) == sum(COVID_PER_CLASS)
    # 80/20 per class: 1+2+1+1 test images; then 20 % of each class of the rest is public
    assert torch.bincount(test.labels, minlength=4).tolist() == [1, 2, 1, 1]
    assert torch.bincount(public.labels, minlength=4).tolist() == [1, 2, 1, 1]
    assert torch.bincount(train.labels, minlength=4).tolist() == [3, 6, 2, 4]
    pu, tr, te = _values(public), _values(train), _values(test)
    assert not (tr & te or pu & tr or pu & te)
    assert pu | tr | te == set(range(sum(COVID_PER_CLASS)))
    # labels follow the folders: pixel value v was written into class k's folder
    bounds = np.cumsum((0, *COVID_PER_CLASS))
    for ds in (public, train, test):
        vals = (ds.images[:, 0, 0, 0] * 255).round().long().numpy()
        assert (np.searchsorted(bounds, vals, side="right") - 1 == ds.labels.numpy()).all()
    again = data.load("covid_radiography", "test", size=16, root=covid_root)
    assert torch.equal(again.images, test.images)  # deterministic split


def test_covid_radiography_loads_n_images_in_colour(covid_root):
    ds = data.load("covid_radiography", "train", size=8, n=3, channels=3, root=covid_root)
    assert ds.images.shape == (3, 3, 8, 8)
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])  # grey repeated to three channels


def test_eyepacs_reads_train_test_folders_as_colour_nrg0_rg1(tmp_path):
    base = tmp_path / "eyepacs"
    for split, count in (("train", 3), ("test", 2)):
        for k, cls in enumerate(EYEPACS_CLASSES):
            for i in range(count):
                _write(base / split / cls / f"{i}.jpg", 40 + 150 * k, (60, 40), "RGB")
    train = data.load("eyepacs", "train", size=32, root=tmp_path)
    test = data.load("eyepacs", "test", size=32, root=tmp_path)
    assert train.class_names == ["NRG", "RG"] and train.num_classes == 2
    public = data.load("eyepacs", "public", size=32, root=tmp_path)
    # train/ holds 3 per class: one of each becomes public (20 %, rounded), two stay private
    assert train.images.shape == (4, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.labels.tolist() == [0, 0, 1, 1] and public.labels.tolist() == [0, 1]
    # RG images were written bright, NRG dark (JPEG is lossy: compare loosely)
    mean = train.images.mean((1, 2, 3))
    assert (mean[train.labels == 1] > 0.5).all() and (mean[train.labels == 0] < 0.3).all()


def test_eyepacs_without_split_folders_gets_seeded_disjoint_80_20_split(tmp_path):
    base = tmp_path / "eyepacs"
    for k, cls in enumerate(EYEPACS_CLASSES):
        for i in range(10):
            _write(base / cls / f"img{i}.png", 20 * i + k, (48, 64), "RGB")  # png: lossless
    train = data.load("eyepacs", "train", size=12, root=tmp_path)
    test = data.load("eyepacs", "test", size=12, root=tmp_path)
    public = data.load("eyepacs", "public", size=12, root=tmp_path)
    assert len(train) == 12 and len(public) == 4 and len(test) == 4
    assert torch.bincount(test.labels).tolist() == [2, 2] == torch.bincount(public.labels).tolist()
    tr = {(v, int(y)) for v, y in zip(_pixel_values(train), train.labels, strict=True)}
    te = {(v, int(y)) for v, y in zip(_pixel_values(test), test.labels, strict=True)}
    pu = {(v, int(y)) for v, y in zip(_pixel_values(public), public.labels, strict=True)}
    assert len(tr) == 12 and len(te) == 4 and len(pu) == 4 and not (tr & te or pu & tr or pu & te)


def test_datasets_table_lists_medical_folders_as_absent_with_the_layout(tmp_path):
    rows = {r["name"]: r for r in data.info(tmp_path)}
    assert rows["covid_radiography"]["present"] is False
    assert rows["eyepacs"]["present"] is False
    assert "COVID-19_Radiography_Dataset" in rows["covid_radiography"]["how_to_get"]
    assert "{RG,NRG}" in rows["eyepacs"]["how_to_get"]
    table = data.format_table(list(rows.values()))
    assert "covid_radiography" in table and "eyepacs" in table


def test_missing_medical_folders_raise_a_clear_error(tmp_path):
    for name in ("covid_radiography", "eyepacs"):
        with pytest.raises(MissingAssetError, match="missing"):
            data.load(name, "train", root=tmp_path)
    assert issubclass(MissingAssetError, GradInvError)
