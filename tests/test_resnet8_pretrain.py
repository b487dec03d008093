"""ResNet8 (CIFAR-style residual victim) and the cached natural-image pre-training that
stands in for the shadow defense paper's ImageNet weights (shadow_defense.txt, Sec. 5.1)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gradinv import models
from gradinv.defenses.shadow.gradcam import default_layer, grad_cam_pp
from gradinv.errors import GradInvError, MissingAssetError
from gradinv.models.pretrain import (
    augment,
    cache_path,
    pretrain_record,
    pretrain_with_record,
    pretrained,
    replace_head,
)


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 16), (1, 32), (3, 33)])
def test_resnet8_classifies_any_size_from_8_px(channels, size):
    torch.manual_seed(0)
    model = models.build("resnet8", channels, 5, size)
    assert isinstance(model, models.ResNet8)
    assert model(torch.rand(2, channels, size, size)).shape == (2, 5)
    assert sum(p.numel() for p in model.parameters()) < 100_000  # small CPU victim


def test_resnet8_has_three_one_block_stages_with_projection_shortcuts():
    model = models.build("resnet8", 3, 10, 32)
    assert "resnet8" in models.NAMES
    widths = [model.layer1.conv2.out_channels, model.layer2.conv2.out_channels,
              model.layer3.conv2.out_channels]  # fmt: skip
    assert widths == [16, 32, 64] and model.last_block is model.layer3
    assert isinstance(model.layer1.shortcut, nn.Identity)
    assert isinstance(model.layer2.shortcut, nn.Sequential)  # 1x1 conv + BN, stride 2
    assert model.layer3.conv1.stride == (2, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 2 + 2  # stem, two per block, two 1x1 shortcuts
    assert model.fc.in_features == 64


def test_grad_cam_pp_runs_on_resnet8_last_block_at_32_px():
    torch.manual_seed(0)
    model = models.build("resnet8", 1, 4, 32).eval()
    assert default_layer(model) is model.layer3  # the last block (last_block), its output
    x = torch.rand(3, 1, 32, 32)
    for layer in (None, "layer3"):
        cam = grad_cam_pp(model, x, layer=layer)
        assert cam.shape == (3, 1, 32, 32)
        assert float(cam.min()) == 0.0 and float(cam.max()) == pytest.approx(1.0)
        assert (cam.flatten(1).std(1) > 0.05).all()  # a real map, not a constant


def test_augment_flips_and_crops_within_the_padding():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment(x, 0, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = augment(x, 2, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    padded = nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            for img in (padded[i], padded[i].flip(-1))
            if torch.equal(out[i], img[:, dy : dy + 8, dx : dx + 8])
        ]
        assert hits  # every output is a (flipped) window of the zero-padded image


def test_replace_head_swaps_fc_or_last_linear_with_a_seeded_fresh_layer():
    resnet = models.build("resnet8", 3, 7, 16)
    body = {k: v.clone() for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    replace_head(resnet, 2, seed=3)
    assert resnet.fc.out_features == 2
    assert all(torch.equal(resnet.state_dict()[k], v) for k, v in body.items())
    lenet5 = replace_head(models.build("lenet5", 1, 7, 16), 3, seed=3)
    assert (
        lenet5.classifier[-1].out_features == 3 and lenet5(torch.rand(1, 1, 16, 16)).shape[1] == 3
    )
    again = replace_head(models.build("resnet8", 3, 7, 16), 2, seed=3)
    assert torch.equal(again.fc.weight, resnet.fc.weight)  # same seed, same head


def test_pretrained_resnet8_beats_chance_caches_the_backbone_and_swaps_the_head(tmp_path):
    torch.manual_seed(123)
    state_before = torch.random.get_rng_state()
    # 4 epochs of the 440 public photographs: as many SGD steps as 2 epochs of the old 840
    kw = dict(dataset="natural_color", size=16, epochs=4, batch_size=64, seed=0,
              device="cpu", progress=False, cache_dir=tmp_path)  # fmt: skip
    model, record = pretrain_with_record("resnet8", num_classes=4, **kw)
    assert torch.equal(torch.random.get_rng_state(), state_before)  # global RNG untouched
    path = cache_path("resnet8", "natural_color", 16, 3, 4, 0, cache_dir=tmp_path)
    assert path.name == "resnet8-natural_color-public-16-c3-e4-s0.pt"
    assert path.exists() and path.with_suffix(".json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["test_accuracy"] == record.test_accuracy and meta["torch_version"]
    assert record.num_classes == 7 and not record.cached and record.seconds > 0
    assert record.train_loss[-1] < record.train_loss[0]
    assert record.test_accuracy > 2 / 7  # chance is 1/7 on the seven photographs
    assert "test accuracy" in record.summary() and "4 epochs" in record.summary()
    assert model.fc.out_features == 4 and not model.training

    # second call: loaded from the cache, same backbone, same seeded head
    model2, record2 = pretrain_with_record("resnet8", num_classes=4, **kw)
    assert record2.cached and record2.test_accuracy == record.test_accuracy
    s1, s2 = model.state_dict(), model2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    cached = torch.load(path, weights_only=True)
    assert cached["fc.weight"].shape == (7, 64)  # the cache holds the backbone's own head
    assert pretrain_record("resnet8", **kw).cached

    backbone = pretrained("resnet8", **kw)  # no num_classes: the pre-training head stays
    assert backbone.fc.out_features == 7
    x = torch.rand(2, 3, 16, 16)
    feats = lambda m: m.avgpool(m.layer3(m.layer2(m.layer1(torch.relu(m.bn1(m.conv1(x)))))))  # noqa: E731
    assert torch.allclose(feats(backbone), feats(model))


def test_pretrained_grey_backbone_for_one_channel_targets(tmp_path):
    model, record = pretrain_with_record(
        "resnet8", size=8, in_channels=1, num_classes=2, epochs=1, progress=False,
        cache_dir=tmp_path,
    )  # fmt: skip
    assert model.conv1.in_channels == 1 and model.fc.out_features == 2
    assert (
        record.in_channels == 1
        and (tmp_path / "resnet8-natural_color-public-8-c1-e1-s0.pt").exists()
    )
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 2)


def test_pretrained_says_what_is_missing(tmp_path):
    with pytest.raises(MissingAssetError, match="cannot pre-train resnet8 on 'covid_radiography'"):
        pretrained("resnet8", dataset="covid_radiography", root=tmp_path, progress=False)
    with pytest.raises(GradInvError, match="unknown dataset"):
        pretrained("resnet8", dataset="no_such_set", cache_dir=tmp_path, progress=False)
