"""Architecture registry: ``get_architecture`` returns ``nn.Sequential(normalization, network)``.

The layout (index 0 normalization, index 1 network) is the reference one (Cohen et al. / Salman et al.
``code/architectures.py``), so state-dict keys are ``1.<network key>`` as in the released checkpoints.
Unlike the references, no ``DataParallel`` wrapper and no ``.cuda()`` here: device placement is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from rsmooth.dataset_info import DATASET_SPECS

from .cifar_resnet import cifar_resnet
from .lenet import LeNet
from .normalization import Normalization, resolve_normalization

__all__ = [
    "ARCHITECTURES",
    "classifier_name",
    "count_parameters",
    "default_num_classes",
    "get_architecture",
    "replace_classifier_head",
]

ARCHITECTURES: tuple[str, ...] = (
    "cifar_resnet20",
    "cifar_resnet56",
    "cifar_resnet110",
    "imagenet32_resnet110",
    "resnet50",
    "lenet",
)

_CIFAR_RESNET = re.compile(r"cifar_resnet(\d+)")


@dataclass(frozen=True)
class _ArchSpec:
    build: Callable[[int], nn.Module]
    dataset: str  # the data set the architecture is made for: its spec gives the default number of classes
    head: str  # attribute name of the final Linear layer

    @property
    def num_classes(self) -> int:
        return DATASET_SPECS[self.dataset].num_classes


def _resnet50(num_classes: int) -> nn.Module:
    import torchvision  # imported lazily: only ImageNet needs it

    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


def _allowed() -> str:
    return ", ".join(ARCHITECTURES) + " (or any cifar_resnet<6n+2>)"


def _spec(arch: str) -> _ArchSpec:
    if not isinstance(arch, str):
        raise ValueError(f"architecture must be a string, got {arch!r}; allowed: {_allowed()}")
    if arch == "imagenet32_resnet110":
        # Salman et al.: the CIFAR ResNet-110 with a 1000-way head, for 32x32 downsampled ImageNet.
        return _ArchSpec(lambda k: cifar_resnet(110, k), "imagenet32", "fc")
    if arch == "resnet50":
        return _ArchSpec(_resnet50, "imagenet", "fc")
    if arch == "lenet":
        return _ArchSpec(lambda k: LeNet(num_classes=k), "mnist", "fc2")
    match = _CIFAR_RESNET.fullmatch(arch)
    if match:
        depth = int(match.group(1))
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"unknown architecture {arch!r}: CIFAR ResNet depth must be 6n+2 with n >= 1 "
                f"(e.g. 20, 56, 110), got {depth}; allowed: {_allowed()}"
            )
        return _ArchSpec(lambda k: cifar_resnet(depth, k), "cifar10", "fc")
    raise ValueError(f"unknown architecture {arch!r}; allowed: {_allowed()}")


def default_num_classes(arch: str) -> int:
    """Number of outputs ``arch`` has when ``num_classes`` is not given."""
    return _spec(arch).num_classes


def classifier_name(arch: str) -> str:
    """Attribute name of the network's final Linear layer (``fc``, or ``fc2`` for LeNet)."""
    return _spec(arch).head


def get_architecture(
    arch: str, normalization: Normalization | str | Mapping[str, Any], num_classes: int | None = None
) -> nn.Sequential:
    """Build ``nn.Sequential(normalization layer, network)`` with fresh weights, on the CPU."""
    spec = _spec(arch)
    norm = resolve_normalization(normalization)
    k = spec.num_classes if num_classes is None else int(num_classes)
    if k < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return nn.Sequential(norm.layer(), spec.build(k))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _unwrap(module: nn.Module) -> nn.Module:
    # DataParallel and DistributedDataParallel both keep the real network in `.module`.
    while isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        module = module.module
    return module


def replace_classifier_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the network's final Linear by a fresh ``nn.Linear(in_features, num_classes)`` (default init).

    ``model`` is the ``nn.Sequential(normalization, network)`` (the network at index 1), possibly wrapped in
    DataParallel, or a bare network. Used for Salman et al.'s ImageNet32 -> CIFAR-10 fine-tuning, which sets
    ``model[1].fc = nn.Linear(64, 10)``. Works in place; returns ``model`` for convenience.
    """
    outer = _unwrap(model)
    network = _unwrap(outer[1]) if isinstance(outer, nn.Sequential) and len(outer) == 2 else outer
    name = "fc" if isinstance(getattr(network, "fc", None), nn.Linear) else None
    if name is None:
        # e.g. LeNet's `fc2`: take the last Linear registered directly on the network.
        linears = [n for n, m in network.named_children() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"no final Linear layer found on {type(network).__name__}")
        name = linears[-1]
    old: nn.Linear = getattr(network, name)
    new = nn.Linear(old.in_features, int(num_classes), bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    new.train(old.training)
    setattr(network, name, new)
    return model
