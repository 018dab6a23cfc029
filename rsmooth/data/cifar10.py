"""CIFAR-10, "python version" (Krizhevsky 2009), read from the official pickled batches.

On-disk layout (exactly what the official ``cifar-10-python.tar.gz`` unpacks to)::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   # train, 10,000 images each
    <root>/cifar-10-batches-py/test_batch                      # test, 10,000 images
    <root>/cifar-10-batches-py/batches.meta                    # label names

Each batch is a Python 2 pickle of a dict with ``b'data'`` (uint8 ``[N, 3072]``, each row a 32x32 image stored
channel-major: 1024 red, 1024 green, 1024 blue values, rows top to bottom) and ``b'labels'`` (N ints in 0..9).

The reader is our own: torchvision's ``CIFAR10`` re-hashes all 180 MB on every construction and rejects any
stand-in file. Checksums are instead verified once, after a download, by :func:`verify_cifar10`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rsmooth.data._pickles import load_pickle_dict, read_image_rows
from rsmooth.data.base import ArrayImageDataset, check_label_range
from rsmooth.data.errors import DatasetIntegrityError, DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS

SPEC = DATASET_SPECS["cifar10"]
# Module-level names for the spec's facts (read when called, so that tests can substitute stand-ins).
CIFAR10_DIRNAME = SPEC.folder
CIFAR10_URL = SPEC.url
CIFAR10_ARCHIVE = SPEC.archive
CIFAR10_ARCHIVE_MD5 = SPEC.archive_md5
CIFAR10_TRAIN_FILES = tuple(f.path for f in SPEC.split_files("train") if f.splits == ("train",))
CIFAR10_TEST_FILES = tuple(f.path for f in SPEC.split_files("test") if f.splits == ("test",))
CIFAR10_META_FILE = next(f.path for f in SPEC.files if len(f.splits) > 1)  # batches.meta
CIFAR10_FILE_MD5 = SPEC.file_md5s
CIFAR10_CLASSES = SPEC.class_names
_HEIGHT, _WIDTH = SPEC.input_shape[1:]


# torchvision's downloader and md5, imported on first use: importing torchvision takes about 2 s, and the
# certification and attack jobs, which only read the files, start one process each.
def download_and_extract_archive(*args, **kwargs):
    from torchvision.datasets.utils import download_and_extract_archive as download

    return download(*args, **kwargs)


def calculate_md5(path: str) -> str:
    from torchvision.datasets.utils import calculate_md5 as md5

    return md5(path)


def cifar10_dir(root: str | os.PathLike) -> Path:
    """``<root>/cifar-10-batches-py``."""
    return Path(root) / CIFAR10_DIRNAME


def cifar10_files(root: str | os.PathLike, split: str) -> list[Path]:
    """The files a split needs: its batches plus ``batches.meta`` (last)."""
    return [cifar10_dir(root) / f.path for f in SPEC.split_files("train" if split == "train" else "test")]


def _not_found(root: str | os.PathLike, missing: list[Path]) -> DatasetNotFoundError:
    lines = "\n".join(f"  {p}" for p in missing)
    return DatasetNotFoundError(
        f"CIFAR-10 files not found:\n{lines}\n"
        f"Pass download=True to fetch {CIFAR10_URL} (md5 {CIFAR10_ARCHIVE_MD5}) automatically, or download that "
        f"archive yourself and unpack it inside {Path(root)} so that the files above exist "
        f"(it unpacks to {CIFAR10_DIRNAME}/).",
        missing,
    )


def download_cifar10(root: str | os.PathLike) -> Path:
    """Download the official archive (md5-checked), verify every file's md5, then move the files into place.

    Everything happens in a temporary folder under ``root`` first, so an interrupted download never leaves a
    partial file under a final name. Returns ``<root>/cifar-10-batches-py``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = cifar10_dir(root)
    with tempfile.TemporaryDirectory(prefix=".cifar10-download-", dir=root) as tmp:
        download_and_extract_archive(
            CIFAR10_URL, download_root=tmp, filename=CIFAR10_ARCHIVE, md5=CIFAR10_ARCHIVE_MD5
        )
        extracted = Path(tmp) / CIFAR10_DIRNAME
        verify_cifar10(tmp)
        final.mkdir(parents=True, exist_ok=True)
        for item in sorted(extracted.iterdir()):  # includes readme.html, kept as shipped
            if item.is_file():
                os.replace(item, final / item.name)  # same file system: each rename is atomic
    return final


def verify_cifar10(root: str | os.PathLike) -> None:
    """Check every official CIFAR-10 file under ``<root>/cifar-10-batches-py`` against its published md5.

    Raises :class:`DatasetNotFoundError` for absent files and :class:`DatasetIntegrityError` (naming the file, the
    expected and the actual md5) for the first mismatch.
    """
    folder = cifar10_dir(root)
    missing = [folder / name for name in CIFAR10_FILE_MD5 if not (folder / name).is_file()]
    if missing:
        raise _not_found(root, missing)
    for name, expected in CIFAR10_FILE_MD5.items():
        path = folder / name
        actual = calculate_md5(str(path))
        if actual != expected:
            raise DatasetIntegrityError(
                f"{path}: md5 {actual} does not match the official CIFAR-10 md5 {expected}; "
                f"the file is corrupt or not the official one (re-download {CIFAR10_URL})"
            )


def fetch_cifar10(root: str | os.PathLike) -> str:
    """Verify the files when all are present (a corrupt copy is never used), else download them; returns
    what was done, for the data job's log."""
    if all(p.exists() for p in cifar10_files(root, "train") + cifar10_files(root, "test")):
        verify_cifar10(root)
        return f"CIFAR-10: every file present under {root} matches its official md5; nothing downloaded"
    download_cifar10(root)
    return f"CIFAR-10: files missing under {root}; downloaded and verified the official archive"


def _read_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    data, labels = read_image_rows(path)
    check_label_range(labels, 0, SPEC.num_classes - 1, path)
    # CHW-flattened rows -> [N, 32, 32, 3] for PIL.
    images = data.reshape(-1, 3, _HEIGHT, _WIDTH).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64).tolist()


def load_cifar10(
    root: str | os.PathLike, split: str, transform: Callable | None = None, download: bool = False
) -> ArrayImageDataset:
    """CIFAR-10 ``split`` ("train" or "test") as an :class:`ArrayImageDataset` (``targets`` = list of labels)."""
    if split not in SPEC.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset 'cifar10'; expected one of: {', '.join(SPEC.splits)}"
        )
    files = cifar10_files(root, split)
    missing = [p for p in files if not p.is_file()]
    if missing and download:
        download_cifar10(root)
        missing = [p for p in files if not p.is_file()]
    if missing:
        raise _not_found(root, missing)
    images, targets = [], []
    for path in files[:-1]:
        x, y = _read_batch(path)
        images.append(x)
        targets.extend(y)
    meta = load_pickle_dict(files[-1])
    classes = meta.get("label_names", CIFAR10_CLASSES)
    classes = [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in classes]
    return ArrayImageDataset(np.concatenate(images), targets, transform=transform, classes=classes)
