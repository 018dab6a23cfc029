"""The self-training set (Salman et al. 2019, appendix E.2) that a manifest describes, read for training.

Training samples whole labelled or whole pseudo-labelled minibatches (reference facts §3.5), hence
:func:`load_merged_trainset` returns the two halves as separate data sets. The data must be what the manifest was
made from (``rsmooth.data.manifest``): count, size and fingerprint are checked on every load (milliseconds); the
full sha256 of the 1.5 GB pickle only with ``verify_sha256=True`` (seconds), because the fingerprint already
catches a different or regenerated file and hashing on every training start would add nothing but time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from rsmooth.data.base import ArrayImageDataset
from rsmooth.data.cifar10 import load_cifar10
from rsmooth.data.errors import DatasetIntegrityError
from rsmooth.data.manifest import LABEL_ORIGINS, file_sha256, fingerprint, read_manifest
from rsmooth.data.tinyimages import load_tinyimages, tinyimages_path
from rsmooth.data.transforms import build_transform

__all__ = ["MergedDataset", "load_merged_trainset"]


class MergedDataset(Dataset):
    """Rows of one source: items ``(transform(PIL image of data[indices[i]]), targets[i])``.

    Shares the source's image array (no copy of the 500K images). ``targets`` (list of int) are the manifest's
    labels, ``origins`` (list of str from :data:`LABEL_ORIGINS`) where each came from, ``indices`` (int64 array)
    the rows of the source file.
    """

    def __init__(
        self,
        source: ArrayImageDataset,
        indices: np.ndarray,
        targets: np.ndarray,
        origins: np.ndarray,
        transform: Callable | None,
    ) -> None:
        self.data = source.data
        self.classes = source.classes
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets: list[int] = np.asarray(targets, dtype=np.int64).tolist()
        self.origins: list[str] = [LABEL_ORIGINS[o] for o in np.asarray(origins).tolist()]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        # Through PIL, as ArrayImageDataset does, so the torchvision transforms behave identically.
        image = Image.fromarray(self.data[int(self.indices[i])])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]


def _check_source(meta: dict, name: str, dataset: ArrayImageDataset, path: Path) -> None:
    recorded = meta.get(name) or {}
    if recorded.get("count") != len(dataset):
        raise DatasetIntegrityError(
            f"{path} was made from {recorded.get('count')} {name} images, the data root has {len(dataset)}; "
            "regenerate the manifest with scripts/pseudolabel.py"
        )
    if recorded.get("fingerprint") != fingerprint(dataset):
        raise DatasetIntegrityError(
            f"{path} was made from different {name} files than those in the data root (content fingerprint "
            "differs); regenerate the manifest with scripts/pseudolabel.py"
        )


def load_merged_trainset(
    path: str | os.PathLike,
    data_root: str | os.PathLike,
    *,
    augment: bool = True,
    verify_sha256: bool = False,
) -> tuple[Dataset, Dataset]:
    """``(labelled, pseudo_labelled)`` data sets of the manifest at ``path`` over the files under ``data_root``.

    Items are ``(FloatTensor [3, 32, 32] in [0, 1], int)`` with the CIFAR-10 / TinyImages train transforms of
    :func:`~rsmooth.data.build_transform` (``augment=False``: their test-time versions). Both are
    :class:`MergedDataset` with ``targets`` and ``origins``. The data must be what the manifest was made from:
    counts, TinyImages file size and content fingerprints are always checked, the TinyImages sha256 only with
    ``verify_sha256=True`` (see module doc); CIFAR-10 ground-truth and shipped labels are compared row by row.
    Raises :class:`DatasetIntegrityError` on a mismatch, ``FileNotFoundError`` / :class:`ManifestError` for a
    missing / bad manifest, :class:`DatasetNotFoundError` for missing data.
    """
    path = Path(path)
    arrays, meta = read_manifest(path)
    ti_file = tinyimages_path(data_root)
    recorded_ti = meta.get("tinyimages") or {}
    if ti_file.is_file() and ti_file.stat().st_size != recorded_ti.get("size"):
        raise DatasetIntegrityError(
            f"{ti_file} has {ti_file.stat().st_size} bytes but {path} was made from a file of "
            f"{recorded_ti.get('size')} bytes; regenerate the manifest with scripts/pseudolabel.py"
        )
    if verify_sha256 and ti_file.is_file():
        actual = file_sha256(ti_file)
        if actual != recorded_ti.get("sha256"):
            raise DatasetIntegrityError(
                f"{ti_file}: sha256 {actual} differs from {recorded_ti.get('sha256')} recorded in {path}"
            )
    cifar_tf = build_transform("cifar10", augment)
    tiny_tf = build_transform("tinyimages", augment)
    cifar = load_cifar10(data_root, "train")
    tiny = load_tinyimages(data_root, "train")  # raises DatasetNotFoundError when absent
    _check_source(meta, "cifar10", cifar, path)
    _check_source(meta, "tinyimages", tiny, path)

    halves = []
    for code, (name, source, transform) in enumerate(
        (("cifar10", cifar, cifar_tf), ("tinyimages", tiny, tiny_tf))
    ):
        rows = arrays["source"] == code
        index, target, origin = arrays["index"][rows], arrays["target"][rows], arrays["origin"][rows]
        # Labels that can be re-derived from the files must agree with them row by row.
        derivable = np.isin(origin, [LABEL_ORIGINS.index("ground_truth"), LABEL_ORIGINS.index("shipped")])
        file_labels = np.asarray(source.targets, dtype=np.int64)[index[derivable]]
        bad = np.flatnonzero(file_labels != target[derivable])
        if bad.size:
            raise DatasetIntegrityError(
                f"{path}: {bad.size} {name} label(s) differ from the data files (first at {name} index "
                f"{int(index[derivable][bad[0]])}); regenerate the manifest with scripts/pseudolabel.py"
            )
        halves.append(MergedDataset(source, index, target, origin, transform))
    return halves[0], halves[1]
