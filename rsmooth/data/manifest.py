"""The self-training manifest: the format of the merged training set of Salman et al. 2019 (appendix E.2),
CIFAR-10 train + 500K pseudo-labelled TinyImages, and its integrity checks.

The merge is recorded in a small manifest (``.npz``) rather than a copy of the pixels: the 500K images (1.5 GB) stay
in their pickle and the manifest says, row by row, which image of which source carries which label and where that
label came from. Arrays (all of length R, CIFAR-10 rows first, then TinyImages rows)::

    source  uint8   0 = CIFAR-10 train, 1 = TinyImages (SOURCES)
    index   int64   index of the image in that source
    target  int64   the training label, 0..9
    origin  uint8   index into LABEL_ORIGINS: ground_truth (CIFAR-10), shipped (the pickle's
                    ``extrapolated_targets``, Carmon et al.'s) or model (argmax of a standard classifier of ours)
    meta    str     0-d unicode array holding a JSON object (see ``rsmooth.data.pseudolabel.write_merged_trainset``)

Integrity: the manifest stores, per source, the image count and a cheap content fingerprint (:func:`fingerprint`:
sha256 of all labels of the source file plus an evenly spaced sample of at most 512 images), and for TinyImages
also the file's size and full sha256 (:func:`file_sha256`). :func:`read_manifest` checks the file in itself;
``rsmooth.data.selftraining`` checks it against the data files on every load.

Writing the manifest (pseudo-labelling) is ``rsmooth.data.pseudolabel``; reading the training set it describes,
``rsmooth.data.selftraining``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rsmooth.data.base import ArrayImageDataset
from rsmooth.data.errors import DatasetFormatError
from rsmooth.dataset_info import DATASET_SPECS

__all__ = [
    "LABEL_MODES",
    "LABEL_ORIGINS",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "SOURCES",
    "ManifestError",
    "file_sha256",
    "fingerprint",
    "read_manifest",
]

LABEL_ORIGINS: tuple[str, ...] = ("ground_truth", "shipped", "model")
LABEL_MODES: tuple[str, ...] = ("shipped", "model")
SOURCES: tuple[str, ...] = ("cifar10", "tinyimages")  # value of the `source` column = position here
MANIFEST_FORMAT = "rsmooth-selftraining-manifest"
MANIFEST_VERSION = 1
NUM_CLASSES = DATASET_SPECS["cifar10"].num_classes  # CIFAR-10 labels and pseudo-labels

ARRAYS: dict[str, np.dtype] = {
    "source": np.dtype(np.uint8),
    "index": np.dtype(np.int64),
    "target": np.dtype(np.int64),
    "origin": np.dtype(np.uint8),
}
_FINGERPRINT_SAMPLES = 512
_HASH_BLOCK = 1 << 22


class ManifestError(DatasetFormatError):
    """A manifest file is unreadable, incomplete or inconsistent in itself (not a mismatch with the data)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(dataset: ArrayImageDataset) -> str:
    """sha256 of a source's size, all its labels and an evenly spaced sample of its images (see module doc)."""
    n = len(dataset)
    digest = hashlib.sha256(f"n={n};shape={tuple(dataset.data.shape)};".encode())
    digest.update(np.asarray(dataset.targets, dtype="<i8").tobytes())
    if n:
        sample = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_SAMPLES)).astype(np.int64))
        digest.update(np.ascontiguousarray(dataset.data[sample]).tobytes())
    return digest.hexdigest()


def read_manifest(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read and self-check a manifest: returns ``(arrays, meta)``, ``arrays`` with keys source/index/target/origin.

    Raises ``FileNotFoundError`` if absent and :class:`ManifestError` if unreadable, of another format or
    version, or internally inconsistent (lengths, dtypes, value ranges, origins vs sources, counts).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"self-training manifest not found: {path} (create it with scripts/pseudolabel.py)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {key: npz[key] for key in npz.files}
    except Exception as exc:  # truncated zip, not a zip, pickled object arrays: all "not a manifest"
        raise ManifestError(f"{path}: not a readable manifest ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in (*ARRAYS, "meta") if k not in contents]
    if missing:
        raise ManifestError(f"{path}: missing array(s) {missing}; found {sorted(contents)}")
    try:
        meta = json.loads(str(contents["meta"][()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise ManifestError(f"{path}: 'meta' is not a JSON string ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not an {MANIFEST_FORMAT} file (meta format {_get(meta, 'format')!r})")
    if meta.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"{path}: manifest version {meta.get('version')!r}, this code reads version {MANIFEST_VERSION}; "
            "regenerate it with scripts/pseudolabel.py"
        )
    arrays = {k: contents[k] for k in ARRAYS}
    _check_arrays(arrays, meta, path)
    return arrays, meta


def _get(meta: Any, key: str) -> Any:
    return meta.get(key) if isinstance(meta, dict) else None


def _check_arrays(arrays: dict[str, np.ndarray], meta: dict, path: Path) -> None:
    lengths = {k: a.shape for k, a in arrays.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise ManifestError(f"{path}: arrays must be 1-D of one length, got shapes {lengths}")
    for key, dtype in ARRAYS.items():
        if arrays[key].dtype != dtype:
            raise ManifestError(f"{path}: '{key}' must be {dtype}, got {arrays[key].dtype}")
    source, index, target, origin = (arrays[k] for k in ARRAYS)
    labels = meta.get("labels")
    if labels not in LABEL_MODES:
        raise ManifestError(f"{path}: meta labels {labels!r} is not one of {LABEL_MODES}")
    if source.size and int(source.max()) >= len(SOURCES):
        raise ManifestError(f"{path}: source values must be < {len(SOURCES)}, found {int(source.max())}")
    if target.size and (int(target.min()) < 0 or int(target.max()) >= NUM_CLASSES):
        raise ManifestError(f"{path}: targets must lie in 0..{NUM_CLASSES - 1}")
    expected_origin = np.where(
        source == 0, LABEL_ORIGINS.index("ground_truth"), LABEL_ORIGINS.index(labels)
    ).astype(np.uint8)
    if not np.array_equal(origin, expected_origin):
        raise ManifestError(
            f"{path}: origins do not match the sources (CIFAR-10 rows must be ground_truth, TinyImages rows "
            f"{labels!r})"
        )
    counts = meta.get("counts")
    for code, name in enumerate(SOURCES):
        count = _get(counts, name)
        if not isinstance(count, int):
            raise ManifestError(f"{path}: meta counts has no {name} count")
        rows = index[source == code]
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= count):
            raise ManifestError(f"{path}: {name} indices must lie in 0..{count - 1}")
