"""Victim classifiers named as in the papers, built for 1- or 3-channel small inputs.

``build(name, in_channels, num_classes, image_size)`` is the one entry point; ``NAMES``
lists what exists. No builder downloads weights; :func:`pretrained` trains a backbone on
an embedded dataset (the offline stand-in for ImageNet weights) and caches it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gradinv.errors import GradInvError
from gradinv.models.convnets import CNN, LeNet, LeNet5, LeNet7, ResNet8
from gradinv.models.mlp import MLP
from gradinv.models.pretrain import PretrainRecord, pretrain_record, pretrained
from gradinv.models.torchvision_nets import resnet18, vgg16

_BUILDERS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "lenet": lambda c, k, s: LeNet(c, k, s),
    "lenet5": lambda c, k, s: LeNet5(c, k, s),
    "lenet7": lambda c, k, s: LeNet7(c, k, s),  # DLG's init (issue 19)
    "lenet7-pytorch": lambda c, k, s: LeNet7(c, k, s, init="pytorch"),  # PyTorch's default init
    "cnn": lambda c, k, s: CNN(c, k, s),
    "mlp3": lambda c, k, s: MLP(c * s * s, k, (512, 128)),
    "mlp4": lambda c, k, s: MLP(c * s * s, k, (512, 256, 64)),
    "mlp5": lambda c, k, s: MLP(c * s * s, k, (1028, 512, 256, 64)),
    "resnet8": lambda c, k, s: ResNet8(c, k, s),
    "resnet18": lambda c, k, s: resnet18(c, k, s),
    "vgg16": lambda c, k, s: vgg16(c, k, s),  # GGSS-R Appendix B classifier (4096-4096-K)
    "vgg16-small": lambda c, k, s: vgg16(c, k, s, classifier="small"),
}
NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build(
    name: str, in_channels: int = 3, num_classes: int = 10, image_size: int = 32
) -> nn.Module:
    """Build victim model ``name`` (one of :data:`NAMES`) with fresh random weights."""
    key = name.lower()
    if key not in _BUILDERS:
        raise GradInvError(f"unknown model {name!r}; choose one of: {', '.join(NAMES)}")
    if image_size < 8:
        raise GradInvError(f"image_size must be at least 8 pixels, got {image_size}")
    return _BUILDERS[key](in_channels, num_classes, image_size)


__all__ = [
    "NAMES",
    "build",
    "LeNet",
    "LeNet5",
    "LeNet7",
    "CNN",
    "MLP",
    "ResNet8",
    "resnet18",
    "vgg16",
    "PretrainRecord",
    "pretrain_record",
    "pretrained",
]
