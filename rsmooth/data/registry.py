"""The single entry point :func:`get_dataset`, and the code behind each data set's spec.

The facts about a data set (shape, classes, splits, files, transforms) are its
:class:`~rsmooth.dataset_info.DatasetSpec`; this module pairs each spec with the code that reads, fetches and
synthesizes its files (:class:`DatasetBackend`). ``num_classes``, ``input_shape`` and ``dataset_splits`` read
the specs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from rsmooth.data import synthetic
from rsmooth.data.cifar10 import fetch_cifar10, load_cifar10
from rsmooth.data.imagenet import load_imagenet
from rsmooth.data.imagenet32 import load_imagenet32
from rsmooth.data.mnist import fetch_mnist, load_mnist
from rsmooth.data.tinyimages import load_tinyimages
from rsmooth.data.transforms import build_transform
from rsmooth.dataset_info import DATASET_SPECS, DATASETS, dataset_spec

__all__ = [
    "DATASETS",
    "REFERENCE_SUBSAMPLE_SKIP",
    "DatasetBackend",
    "SyntheticSizes",
    "backend",
    "dataset_splits",
    "get_dataset",
    "input_shape",
    "num_classes",
]

# The references certify every 20th CIFAR-10 test image and every 100th ImageNet val image (500 images each).
REFERENCE_SUBSAMPLE_SKIP: dict[str, int] = {
    n: s.reference_subsample_skip for n, s in DATASET_SPECS.items() if s.reference_subsample_skip is not None
}


@dataclass(frozen=True)
class SyntheticSizes:
    """Sizes of the synthetic stand-ins (``scripts/prepare_data.py`` options; defaults live there)."""

    n_train: int
    n_test: int
    n_tinyimages: int
    imagenet32_per_batch: int
    imagenet32_val: int
    seed: int


@dataclass(frozen=True)
class DatasetBackend:
    """The code of one data set: ``load(root, split, transform=, download=)``, ``fetch(root)`` (put verified
    files in place; None where the spec says the files cannot be downloaded) and ``synthesize(root, sizes)``
    (write stand-ins in the same on-disk format)."""

    load: Callable[..., Dataset]
    synthesize: Callable[[Path, SyntheticSizes], object]
    fetch: Callable[[Path], object] | None = None


# The stand-ins of the 1000-class data sets have ten classes (the CIFAR-10 stand-in's prototypes) in the
# 1000-class formats, so that pre-training on the ImageNet32 stand-in transfers to the CIFAR-10 stand-in.
_BACKENDS: dict[str, DatasetBackend] = {
    "cifar10": DatasetBackend(
        load_cifar10,
        lambda root, s: synthetic.write_synthetic_cifar10(
            root, n_train=s.n_train, n_test=s.n_test, seed=s.seed
        ),
        fetch=fetch_cifar10,
    ),
    "mnist": DatasetBackend(
        load_mnist,
        lambda root, s: synthetic.write_synthetic_mnist(
            root, n_train=s.n_train, n_test=s.n_test, seed=s.seed
        ),
        fetch=fetch_mnist,
    ),
    "imagenet": DatasetBackend(
        load_imagenet,
        lambda root, s: synthetic.write_synthetic_imagenet(
            root, num_classes=10, n_per_class=s.n_train // 10, seed=s.seed, n_val=s.n_test
        ),
    ),
    "imagenet32": DatasetBackend(
        load_imagenet32,
        lambda root, s: synthetic.write_synthetic_imagenet32(
            root, n_per_batch=s.imagenet32_per_batch, n_val=s.imagenet32_val, num_classes=10, seed=s.seed
        ),
    ),
    "tinyimages": DatasetBackend(
        load_tinyimages,
        lambda root, s: synthetic.write_synthetic_tinyimages(root, n=s.n_tinyimages, seed=s.seed),
    ),
}
assert tuple(_BACKENDS) == DATASETS, "every data-set spec needs a backend, in the same order"


def backend(name: str) -> DatasetBackend:
    """The loader, fetcher and synthetic writer of data set ``name``."""
    return _BACKENDS[dataset_spec(name).name]


def num_classes(name: str) -> int:
    """Number of classes of data set ``name`` (10, 10, 1000, 1000, 10)."""
    return dataset_spec(name).num_classes


def input_shape(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of the tensors :func:`get_dataset` yields for ``name`` (after the test transform)."""
    return dataset_spec(name).input_shape


def dataset_splits(name: str) -> tuple[str, ...]:
    """The splits :func:`get_dataset` accepts for ``name``."""
    return dataset_spec(name).splits


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
    spec = dataset_spec(name)
    if split not in spec.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset {name!r}; expected one of: {', '.join(spec.splits)}"
        )
    if augment is None:
        augment = split == "train"
    transform = build_transform(name, bool(augment))
    return _BACKENDS[name].load(root, split, transform=transform, download=download)
