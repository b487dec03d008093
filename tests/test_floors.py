"""Floors of a reconstruction table: what an attacker gets from public data alone."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from gradinv import data
from gradinv.errors import GradInvError
from gradinv.experiments.floors import (
    NEAREST_PUBLIC,
    PUBLIC_MEAN,
    floor_images,
    floor_rows,
    split_floors,
)


def test_nearest_public_finds_a_public_image_and_the_mean_is_the_public_mean():
    public = data.load("digits", "public", size=16).images
    floors = floor_images(public[:3], "digits")
    assert torch.equal(floors[NEAREST_PUBLIC], public[:3])  # a public target is its own floor
    torch.testing.assert_close(floors[PUBLIC_MEAN][0], public.mean(0))
    assert set(floors) == {PUBLIC_MEAN, NEAREST_PUBLIC}  # no prior: no prior sample


def test_a_class_filter_restricts_the_floors_to_that_class():
    public = data.load("digits", "public", size=16)
    sevens = public.images[public.labels == 7]
    for label in (7, "7"):
        floors = floor_images(sevens[:2], "digits", label=label)
        torch.testing.assert_close(floors[PUBLIC_MEAN][0], sevens.mean(0))
    with pytest.raises(GradInvError, match="no class"):
        floor_images(sevens[:1], "digits", label="eleven")


def test_floor_rows_score_like_attacks_and_split_apart_from_them():
    private = data.load("digits", "test", size=16, n=2).images
    rows = floor_rows(private, "digits", lpips_net=None, role="r")
    table = pd.DataFrame([{"method": "IG", "psnr": 20.0, "role": "r"}, *rows])
    attacks, floors = split_floors(table)
    assert list(attacks["method"]) == ["IG"] and set(floors["method"]) == {
        PUBLIC_MEAN,
        NEAREST_PUBLIC,
    }
    assert (floors["psnr"] < 28.0).all()  # private digits stay below the overlap limit
