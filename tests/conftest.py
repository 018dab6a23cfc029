"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from rsmooth.data.synthetic import write_synthetic_cifar10
from rsmooth.models import get_architecture, save_checkpoint


class CheckpointFiles(NamedTuple):
    data_root: Path  # generated CIFAR-10 in the published python format: 10 train, 40 test images
    checkpoint: Path  # a ResNet-20 (seed 0) saved by rsmooth, trained at sigma 0.25
    released: Path  # the same weights in the references' format (epoch, arch, state_dict, optimizer)


@pytest.fixture(scope="session")
def cifar10_checkpoint(tmp_path_factory) -> CheckpointFiles:
    """One data root and one untrained checkpoint for the scripts' end-to-end tests (certify.py, attack.py)."""
    base = tmp_path_factory.mktemp("checkpoint")
    data_root = base / "data"
    write_synthetic_cifar10(data_root, n_train=10, n_test=40, seed=0)
    torch.manual_seed(0)
    model = get_architecture("cifar_resnet20", "cifar10")
    checkpoint = base / "model.pt"
    save_checkpoint(
        checkpoint, model, arch="cifar_resnet20", epoch=1, normalization="cifar10", dataset="cifar10",
        num_classes=10, sigma=0.25,
    )  # fmt: skip
    released = base / "released.pth.tar"
    state = {"epoch": 1, "arch": "cifar_resnet20", "state_dict": model.state_dict(), "optimizer": None}
    torch.save(state, released)
    return CheckpointFiles(data_root, checkpoint, released)
