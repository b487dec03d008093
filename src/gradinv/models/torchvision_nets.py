"""ResNet18 and VGG16 from torchvision's builders (random init, never downloaded),
adapted to small 1- or 3-channel inputs the way CIFAR-style work does: ResNet18 gets a
3x3 stride-1 stem without max-pooling below 64 px; VGG16 pools adaptively to 1x1 and ends
in GGSS-R's classifier (Appendix B: two 4096-unit ReLU layers with dropout) or, as
``vgg16-small``, a 512-512-K one."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm


def resnet18(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """torchvision ResNet18 with the stem adapted to ``image_size`` and ``in_channels``."""
    net = tvm.resnet18(weights=None, num_classes=num_classes)
    if image_size < 64:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


#: VGG16 classifiers: GGSS-R Appendix B ("paper") or the earlier small one ("small")
VGG16_CLASSIFIERS = ("paper", "small")


def vgg16(
    in_channels: int = 3, num_classes: int = 10, image_size: int = 32, classifier: str = "paper"
) -> nn.Module:
    """torchvision VGG16 (no BN) with adaptive 1x1 pooling (the flattened features of a
    32 px input are 512 wide) and a classifier: ``"paper"``, GGSS-R Appendix B, "two
    4096-unit ReLU layers (with dropout)" (dropout 0.5 as in the classic VGG, the paper
    gives no rate); ``"small"``, 512-512-K without dropout (our earlier choice)."""
    if classifier not in VGG16_CLASSIFIERS:
        raise ValueError(f"VGG16 classifier must be one of {VGG16_CLASSIFIERS}, got {classifier!r}")
    net = tvm.vgg16(weights=None)
    if in_channels != 3:
        net.features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    if classifier == "paper":
        net.classifier = nn.Sequential(
            nn.Linear(512, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )  # fmt: skip
    else:
        net.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, num_classes))
    return net
