"""Data-set names, shapes and the single entry point :func:`get_dataset`."""

from __future__ import annotations

import os

from torch.utils.data import Dataset

from rsmooth.data.cifar10 import load_cifar10
from rsmooth.data.imagenet import load_imagenet
from rsmooth.data.imagenet32 import load_imagenet32
from rsmooth.data.mnist import load_mnist
from rsmooth.data.tinyimages import load_tinyimages
from rsmooth.data.transforms import build_transform
from rsmooth.dataset_info import DATASETS
from rsmooth.dataset_info import INPUT_SHAPE as _INPUT_SHAPE
from rsmooth.dataset_info import NUM_CLASSES as _NUM_CLASSES

_SPLITS = {
    "cifar10": ("train", "test"),
    "mnist": ("train", "test"),
    "imagenet": ("train", "test"),
    "imagenet32": ("train", "test"),
    "tinyimages": ("train",),  # unlabelled auxiliary data: there is nothing to test on
}
_LOADERS = {
    "cifar10": load_cifar10,
    "mnist": load_mnist,
    "imagenet": load_imagenet,
    "imagenet32": load_imagenet32,
    "tinyimages": load_tinyimages,
}

# The references certify every 20th CIFAR-10 test image and every 100th ImageNet val image (500 images each).
REFERENCE_SUBSAMPLE_SKIP: dict[str, int] = {"cifar10": 20, "imagenet": 100}


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    return name


def num_classes(name: str) -> int:
    """Number of classes of data set ``name`` (10, 10, 1000, 1000, 10)."""
    return _NUM_CLASSES[_check_name(name)]


def input_shape(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of the tensors :func:`get_dataset` yields for ``name`` (after the test transform)."""
    return _INPUT_SHAPE[_check_name(name)]


def dataset_splits(name: str) -> tuple[str, ...]:
    """The splits :func:`get_dataset` accepts for ``name``."""
    return _SPLITS[_check_name(name)]


def get_dataset(
    name: str,
    split: str,
    root: str | os.PathLike,
    *,
    augment: bool | None = None,
    download: bool = False,
) -> Dataset:
    """Data set ``name``/``split`` under ``root``, yielding ``(FloatTensor [C, H, W] in [0, 1], int label)``.

    ``augment=None`` applies the references' default: augment the train split, not the test split. ``download``
    only has an effect for cifar10 and mnist; every other absent data set raises
    :class:`~rsmooth.data.errors.DatasetNotFoundError` saying which files to put where. Labels are available
    cheaply as the ``targets`` attribute.
    """
    _check_name(name)
    allowed = _SPLITS[name]
    if split not in allowed:
        raise ValueError(
            f"unknown split {split!r} for dataset {name!r}; expected one of: {', '.join(allowed)}"
        )
    if augment is None:
        augment = split == "train"
    transform = build_transform(name, bool(augment))
    return _LOADERS[name](root, split, transform=transform, download=download)
