"""Small convolutional victims: DLG's LeNet, LeNet-5, LeNet7, the GGSS-R CNN and ResNet8."""

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


#: LeNet7's initialisations: DLG's uniform(-0.5, 0.5) (:func:`dlg_init_`) or PyTorch's own
LENET7_INITS = ("dlg", "pytorch")


class LeNet7(nn.Module):
    """LeNet7 of the GradInvDiff paper (gradinvdiff.txt, Sec. 4), which names it without
    defining it. Our choice: seven weight layers, four sigmoid 5x5 convs (12 channels,
    strides 2, 2, 1, 1) as in DLG's LeNet followed by three linear layers (256, 128, K).

    ``init``: ``"dlg"`` (default; DLG's uniform(-0.5, 0.5), as our LeNet) or ``"pytorch"``
    (PyTorch's default). Under PyTorch's default the sigmoids squash the signal: the conv
    layers' gradient is about 1 % of the DLG-initialised one's (norm 0.02 vs 2.6 on a 32 px
    grey image, five seeds), so N(0, 0.01^2) gradient noise drowns them and the dummy
    image's gradient is tiny (issue 19). The paper is silent."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, init: str = "dlg"
    ):
        if init not in LENET7_INITS:
            raise ValueError(f"LeNet7 init must be one of {LENET7_INITS}, got {init!r}")
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
        if init == "dlg":
            dlg_init_(self)

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


class BasicBlock(nn.Module):
    """He et al. (CVPR 2016) basic residual block: two 3x3 conv+BN, ReLU after the sum;
    the shortcut is a 1x1 conv+BN when the shape changes, else identity. The shortcut is
    registered first so that the block's last ``nn.BatchNorm2d`` in module order is the
    residual branch's ``bn2`` (what :func:`gradinv.defenses.shadow.gradcam.default_layer` picks)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet8(nn.Module):
    """CIFAR-style ResNet of He et al. (CVPR 2016, Sec. 4.2) with one basic block per stage
    (6n+2 layers, n=1): a 3x3 stem of 16 channels + BN + ReLU, stages ``layer1``, ``layer2``,
    ``layer3`` of widths 16, 32, 64 and strides 1, 2, 2, global average pooling and a linear
    classifier ``fc``. Our choice: a small residual victim for CPU runs where the shadow
    defense paper (shadow_defense.txt, Sec. 5.1) uses ResNet18. Works for any image size
    >= 8; Grad-CAM++ should hook ``layer3`` (the last block's output)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def last_block(self) -> nn.Module:
        """The final stage (``layer3``), the layer to hook for Grad-CAM(++)."""
        return self.layer3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))
