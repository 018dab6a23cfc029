"""An in-memory image data set (uint8 HWC array + integer labels), shared by CIFAR-10, ImageNet32 and TinyImages."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from rsmooth.data.errors import DatasetFormatError


class ArrayImageDataset(Dataset):
    """Items are ``(transform(PIL image), int label)``; ``data`` is uint8 ``[N, H, W, C]`` and ``targets`` a list.

    Images go through PIL, as in the references, so that the torchvision transforms behave identically.
    """

    def __init__(
        self,
        data: np.ndarray,
        targets: Sequence[int],
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        if data.dtype != np.uint8 or data.ndim != 4:
            raise DatasetFormatError(
                f"expected uint8 images of shape [N, H, W, C], got {data.dtype} {data.shape}"
            )
        if len(targets) != len(data):
            raise DatasetFormatError(f"{len(data)} images but {len(targets)} labels")
        self.data = data
        self.targets: list[int] = [int(t) for t in targets]
        self.transform = transform
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[object, int]:
        array = self.data[index]
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def check_label_range(
    labels: np.ndarray, low: int, high: int, path: str | os.PathLike, what: str = "labels"
) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` unless every label lies in ``[low, high]``."""
    if labels.size == 0:
        return
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(f"{path}: {what} must be integers, got dtype {labels.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise DatasetFormatError(
            f"{path}: {what} must lie in {low}..{high}, found {bad} (observed range {lo}..{hi})"
        )
