"""LeNet for 28x28 single-channel MNIST, as used by SmoothMix.

SmoothMix (jh-jeong/smoothmix, ``code/architectures.py``) builds ``LeNet(num_classes=10)`` from
``code/archs/lenet.py``; the same file is in jh-jeong/smoothing-consistency and alinlab/smoothing-catrs:
conv5x5 1->20, ReLU, maxpool 2, conv5x5 20->50, ReLU, maxpool 2, flatten (50*4*4=800), Linear 800->500, ReLU,
Linear 500->num_classes. No padding, no dropout, PyTorch default init. Module names match so their state dicts
load. 431,080 parameters for 10 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet"]


class LeNet(nn.Module):
    """The LeNet variant of the SmoothMix / Consistency / CAT-RS MNIST experiments (28x28 inputs)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5, stride=1)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5, stride=1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)  # 28 -> 24 -> 12
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)  # 12 -> 8 -> 4
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
