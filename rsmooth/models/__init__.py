"""Models: normalization layers, CIFAR ResNet, LeNet, ResNet-50, the architecture registry and checkpoints."""

from .architectures import (
    ARCHITECTURES,
    classifier_name,
    count_parameters,
    default_num_classes,
    get_architecture,
    replace_classifier_head,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .cifar_resnet import BasicBlock, CifarResNet, cifar_resnet
from .lenet import LeNet
from .normalization import (
    NORMALIZATIONS,
    InputCenterLayer,
    Normalization,
    NormalizeLayer,
    dataset_normalization,
    resolve_normalization,
)

__all__ = [
    "ARCHITECTURES",
    "NORMALIZATIONS",
    "BasicBlock",
    "CifarResNet",
    "InputCenterLayer",
    "LeNet",
    "Normalization",
    "NormalizeLayer",
    "cifar_resnet",
    "classifier_name",
    "count_parameters",
    "dataset_normalization",
    "default_num_classes",
    "get_architecture",
    "load_checkpoint",
    "replace_classifier_head",
    "resolve_normalization",
    "save_checkpoint",
]
