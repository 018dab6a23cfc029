"""500K pseudo-labelled TinyImages of Carmon et al. 2019 ("Unlabeled data improves adversarial robustness"),
the unlabelled data of SmoothAdv's self-training experiments.

On-disk layout::

    <root>/tinyimages/ti_500K_pseudo_labeled.pickle

A Python 3 pickle of a dict with ``'data'`` (uint8 ``[N, 32, 32, 3]``, HWC) and ``'extrapolated_targets'`` (N ints,
the CIFAR-10 pseudo-labels 0..9); it may carry further keys (``'ti_index'``, ``'prediction_model'``,
``'prediction_model_epoch'``) which are ignored. Only a "train" split exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rsmooth.data._pickles import load_pickle_dict, require_keys
from rsmooth.data.base import ArrayImageDataset, check_label_range
from rsmooth.data.errors import DatasetFormatError, DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS

SPEC = DATASET_SPECS["tinyimages"]
(_FILE,) = SPEC.files
TINYIMAGES_FILE = _FILE.path
TINYIMAGES_URL = SPEC.url
TINYIMAGES_REPO = SPEC.links["repository"]
TINYIMAGES_NUM_CLASSES = SPEC.num_classes


def tinyimages_path(root: str | os.PathLike) -> Path:
    """``<root>/tinyimages/ti_500K_pseudo_labeled.pickle``."""
    return Path(root) / SPEC.folder / TINYIMAGES_FILE


def load_tinyimages(
    root: str | os.PathLike, split: str = "train", transform: Callable | None = None, download: bool = False
) -> ArrayImageDataset:
    """The pseudo-labelled TinyImages (``targets`` = the pseudo-labels); ``download`` cannot be honoured."""
    if split not in SPEC.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset 'tinyimages'; expected one of: {', '.join(SPEC.splits)}"
        )
    path = tinyimages_path(root)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"TinyImages pseudo-labelled data not found: {path}\n"
            + ("(download=True is not possible for TinyImages.)\n" if download else "")
            + f"Download {TINYIMAGES_FILE} (500K TinyImages with CIFAR-10 pseudo-labels) from Carmon et al. 2019, "
            f"'Unlabeled data improves adversarial robustness' ({TINYIMAGES_REPO}, file link {TINYIMAGES_URL}) "
            f"and save it as {path}.",
            [path],
        )
    entry = load_pickle_dict(path)
    require_keys(entry, ("data", "extrapolated_targets"), path)
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["extrapolated_targets"])
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[3] != 3:
        raise DatasetFormatError(f"{path}: 'data' must be uint8 [N, H, W, 3], got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DatasetFormatError(
            f"{path}: {data.shape[0]} images but extrapolated_targets of shape {labels.shape}"
        )
    check_label_range(labels, 0, TINYIMAGES_NUM_CLASSES - 1, path, what="extrapolated_targets")
    return ArrayImageDataset(data, labels.astype(np.int64).tolist(), transform=transform)
