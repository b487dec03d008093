"""Small convolutional victims: DLG's LeNet, LeNet-5, LeNet7 and the GGSS-R CNN."""

from __future__ import annotations

import torch
from torch import nn


def _flat_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, in_channels, image_size, image_size)).numel())


def dlg_init_(model: nn.Module, bound: float = 0.5) -> nn.Module:
    """DLG's initialisation (Zhu et al. 2019, reference code ``weights_init``): every weight
    and bias uniform in ``(-bound, bound)``. Under PyTorch's default init the gradients of
    the sigmoid LeNet are tiny and DLG-style matching barely moves."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.uniform_(-bound, bound)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound)
    return model


def keras_init_(model: nn.Module) -> nn.Module:
    """Keras' default initialisation: Glorot-uniform weights and zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class LeNet(nn.Module):
    """The LeNet of DLG (Zhu et al., NeurIPS 2019): three 5x5 conv layers with sigmoid
    activations (strides 2, 2, 1, 12 channels) and one linear layer; twice
    differentiable everywhere, which is what DLG's L-BFGS attack needs. Initialised as
    DLG's code does (:func:`dlg_init_`) unless ``dlg_init=False``."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        dlg_init: bool = True,
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 12, 5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=1),
            nn.Sigmoid(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(_flat_size(self.features, in_channels, image_size), num_classes)
        if dlg_init:
            dlg_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) as used by the survey (gia_survey.txt, Sec. IV):
    conv6-pool-conv16-pool-fc120-fc84-fc. The paper's model is Keras and its activation
    is not given: we use the classic tanh with average pooling (smooth, so every
    optimisation attack applies; ``activation="relu"`` is available) and Keras' default
    initialisation (Glorot-uniform weights, zero biases; ``keras_init=False`` keeps
    PyTorch's)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
        activation: str = "tanh",
        keras_init: bool = True,
    ):
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            act(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5),
            act(),
            nn.AvgPool2d(2),
            nn.Flatten(),
        )
        flat = _flat_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes)
        )
        if keras_init:
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet7(nn.Module):
    """LeNet7 of the GradInvDiff paper (gradinvdiff.txt, Sec. 4), which names it without
    defining it. Our choice: seven weight layers, four sigmoid 5x5 convs (12 channels,
    strides 2, 2, 1, 1) as in DLG's LeNet followed by three linear layers (256, 128, K)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        convs: list[nn.Module] = []
        c = in_channels
        for stride in (2, 2, 1, 1):
            convs += [nn.Conv2d(c, 12, 5, padding=2, stride=stride), nn.Sigmoid()]
            c = 12
        self.features = nn.Sequential(*convs, nn.Flatten())
        flat = _flat_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 256),
            nn.Sigmoid(),
            nn.Linear(256, 128),
            nn.Sigmoid(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CNN(nn.Module):
    """The default attacked CNN of GGSS-R (ggss_r.txt, Appendix B): two 3x3 conv layers
    (64, 128 channels, padding 1) each with ReLU and 2x2 max-pooling, a 256-unit ReLU
    layer and a linear classifier (softmax lives in the loss)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = _flat_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
