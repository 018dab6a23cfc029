"""ILSVRC2012 ImageNet as class folders, read with torchvision's ``ImageFolder``.

On-disk layout (the references' ``$IMAGENET_DIR``, placed under the data root)::

    <root>/imagenet/train/<wnid>/*.JPEG   # e.g. train/n01440764/n01440764_10026.JPEG
    <root>/imagenet/val/<wnid>/*.JPEG     # the 50,000 val images moved into class folders by valprep.sh

Class indices are the sorted wnids (ImageFolder), which is Cohen et al.'s order; the test split is ``val``.
``targets`` is ImageFolder's list of labels. ImageNet cannot be downloaded automatically (it needs a licence).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from rsmooth.data.errors import DatasetFormatError, DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS
from rsmooth.errors import describe_exception

if TYPE_CHECKING:
    from torchvision.datasets import ImageFolder

SPEC = DATASET_SPECS["imagenet"]
IMAGENET_URL = SPEC.url  # ILSVRC2012 after registration
VALPREP_URL = SPEC.links["valprep"]


def imagenet_dir(root: str | os.PathLike, split: str) -> Path:
    """``<root>/imagenet/train`` or ``<root>/imagenet/val`` (split "test" reads the val images)."""
    (folder,) = SPEC.split_files("train" if split == "train" else "test")
    return Path(root) / SPEC.folder / folder.path


def _not_found(folder: Path, reason: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"ImageNet {reason}: {folder}\n"
        f"Expected layout: {folder.parent}/train/<wnid>/*.JPEG and {folder.parent}/val/<wnid>/*.JPEG.\n"
        f"ImageNet cannot be downloaded automatically: get ILSVRC2012 (ILSVRC2012_img_train.tar and "
        f"ILSVRC2012_img_val.tar) from {IMAGENET_URL}, unpack the train tar (and the per-class tars inside it) "
        f"into {folder.parent}/train, unpack the val tar into {folder.parent}/val and re-folder the val images "
        f"into class sub-folders with {VALPREP_URL}.",
        [folder],
    )


def load_image(path: str) -> Image.Image:
    """An RGB image, or :class:`DatasetFormatError` naming a truncated or non-image file (PIL's own errors do
    not say which of a million files it was)."""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise DatasetFormatError(f"{path}: not a readable image ({describe_exception(exc)})", path) from exc


def load_imagenet(
    root: str | os.PathLike, split: str, transform: Callable | None = None, download: bool = False
) -> ImageFolder:
    """ImageNet ``split`` ("train" or "test" = val) as an ``ImageFolder``; ``download`` cannot be honoured."""
    if split not in SPEC.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset 'imagenet'; expected one of: {', '.join(SPEC.splits)}"
        )
    folder = imagenet_dir(root, split)
    if not folder.is_dir():
        raise _not_found(
            folder, "folder not found" + (" (download=True is not possible)" if download else "")
        )
    try:
        from torchvision.datasets import ImageFolder  # imported lazily: it takes about 2 s

        return ImageFolder(str(folder), transform=transform, loader=load_image)
    except FileNotFoundError as exc:  # no class folders, or class folders without images
        raise _not_found(folder, f"folder has no usable class sub-folders ({exc})") from exc
