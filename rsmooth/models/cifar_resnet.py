"""CIFAR ResNet (He et al. 2016, section 4.2) as in Cohen et al. / Salman et al. ``code/archs/cifar_resnet.py``.

Their file comes from bearpaw/pytorch-classification. This is a re-implementation with the same module names,
so released state dicts (``1.conv1.weight``, ``1.layer2.0.downsample.0.weight``, ``1.fc.bias``, ...) load, and
the same initialization.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "cifar_resnet"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: stages of 16/32/64 channels at strides 1/2/2, n BasicBlocks each."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"CIFAR ResNet depth must be 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110), got {depth!r}"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        n = (depth - 2) // 6
        self.depth = depth
        self._width = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(16, n, stride=1)
        self.layer2 = self._make_stage(32, n, stride=2)
        self.layer3 = self._make_stage(64, n, stride=2)
        # Fixed 8x8 pooling, as the reference: the network assumes 32x32 inputs (8x8 after two stride-2 stages).
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

        # Reference init: fan-out He normal for every conv (shortcut convs included), BN weight 1 / bias 0,
        # Linear keeps the PyTorch default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_stage(self, channels: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._width != channels:
            # Projection shortcut (1x1 conv + BN, "option B"), named `downsample.0` / `downsample.1`.
            downsample = nn.Sequential(
                nn.Conv2d(self._width, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )
        layers = [BasicBlock(self._width, channels, stride, downsample)]
        self._width = channels
        layers += [BasicBlock(channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def cifar_resnet(depth: int, num_classes: int, in_channels: int = 3) -> CifarResNet:
    """A CIFAR ResNet of the given depth (6n+2)."""
    return CifarResNet(depth=depth, num_classes=num_classes, in_channels=in_channels)
