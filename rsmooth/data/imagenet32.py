"""Downsampled ImageNet 32x32 (Chrabaszcz et al. 2017), pickle version, as used for SmoothAdv pre-training.

On-disk layout (the official ``Imagenet32_train.zip`` / ``Imagenet32_val.zip`` from image-net.org, unpacked into
folders named after the zips)::

    <root>/imagenet32/Imagenet32_train/train_data_batch_1 ... train_data_batch_10
    <root>/imagenet32/Imagenet32_val/val_data

Each file is a Python 3 pickle of a dict: ``'data'`` uint8 ``[N, 3072]`` (rows CHW-flattened like CIFAR),
``'labels'`` a list of N ints, **1-based** in 1..1000, and in the train files ``'mean'`` (the mean image, unused).
Labels are shifted to 0-based on load (as SA does) after checking the range. There is no md5 check (SA has none
either). Note SA itself read ``val_data`` from the data-set root rather than a ``*_val`` folder; we keep the folder
the val zip is named after.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rsmooth.data._pickles import read_image_rows
from rsmooth.data.base import ArrayImageDataset, check_label_range
from rsmooth.data.errors import DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS

SPEC = DATASET_SPECS["imagenet32"]
IMAGENET32_NUM_CLASSES = SPEC.num_classes
IMAGENET32_TRAIN_FILES = tuple(Path(f.path).name for f in SPEC.split_files("train"))
IMAGENET32_VAL_FILE = Path(SPEC.split_files("test")[0].path).name
IMAGENET32_URL = SPEC.url  # "Downsampled ImageNet 32x32" after registration
_HEIGHT, _WIDTH = SPEC.input_shape[1:]


def imagenet32_dir(root: str | os.PathLike) -> Path:
    """``<root>/imagenet32``."""
    return Path(root) / SPEC.folder


def imagenet32_files(root: str | os.PathLike, split: str) -> list[Path]:
    """Paths of the pickles making up ``split`` ("train": 10 batches, "test": the val file)."""
    return [imagenet32_dir(root) / f.path for f in SPEC.split_files("train" if split == "train" else "test")]


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, labels = read_image_rows(path)
    check_label_range(labels, 1, IMAGENET32_NUM_CLASSES, path, what="labels (1-based)")
    return data, labels.astype(np.int64) - 1


def load_imagenet32(
    root: str | os.PathLike, split: str, transform: Callable | None = None, download: bool = False
) -> ArrayImageDataset:
    """ImageNet32 ``split`` ("train" or "test" = val) with 0-based labels; ``download`` cannot be honoured."""
    if split not in SPEC.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset 'imagenet32'; expected one of: {', '.join(SPEC.splits)}"
        )
    files = imagenet32_files(root, split)
    missing = [p for p in files if not p.is_file()]
    if missing:
        lines = "\n".join(f"  {p}" for p in missing)
        base = imagenet32_dir(root)
        raise DatasetNotFoundError(
            f"ImageNet32 files not found:\n{lines}\n"
            + ("(download=True is not possible for ImageNet32.)\n" if download else "")
            + f"Get the pickle version of 'Downsampled ImageNet 32x32' from {IMAGENET32_URL}: "
            f"Imagenet32_train.zip and Imagenet32_val.zip (not the *_npz variants). Unpack them so that the "
            f"train batches are in {base / 'Imagenet32_train'} and val_data is in {base / 'Imagenet32_val'}.",
            missing,
        )
    chunks, targets = [], []
    for path in files:
        data, labels = _read(path)
        chunks.append(data)
        targets.append(labels)
    # Fill one preallocated HWC array chunk by chunk, releasing each raw chunk, so the 3.9 GB real train set
    # does not need twice its size in memory.
    total = sum(len(c) for c in chunks)
    images = np.empty((total, _HEIGHT, _WIDTH, 3), dtype=np.uint8)
    start = 0
    while chunks:
        chunk = chunks.pop(0)
        images[start : start + len(chunk)] = chunk.reshape(-1, 3, _HEIGHT, _WIDTH).transpose(0, 2, 3, 1)
        start += len(chunk)
        del chunk
    return ArrayImageDataset(images, np.concatenate(targets).tolist(), transform=transform)
