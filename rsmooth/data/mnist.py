"""MNIST through torchvision's own ``MNIST`` class and folder layout.

On-disk layout (what ``torchvision.datasets.MNIST(root, download=True)`` produces)::

    <root>/MNIST/raw/train-images-idx3-ubyte   # idx3: big-endian magic 0x00000803, N, 28, 28, then N*784 bytes
    <root>/MNIST/raw/train-labels-idx1-ubyte   # idx1: big-endian magic 0x00000801, N, then N label bytes
    <root>/MNIST/raw/t10k-images-idx3-ubyte
    <root>/MNIST/raw/t10k-labels-idx1-ubyte

torchvision checks the md5 of the downloaded ``.gz`` archives but, when loading, only checks that the four
uncompressed files exist (checked in torchvision 0.29), so stand-ins in the same idx format load unchanged.
``targets`` is torchvision's int64 tensor of labels.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from rsmooth.data.errors import DatasetFormatError, DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS

SPEC = DATASET_SPECS["mnist"]
MNIST_RAW_FILES = tuple(f.path for f in SPEC.files)


def _mnist_class():
    """torchvision's ``MNIST``, imported on first use (importing torchvision takes about 2 s)."""
    from torchvision.datasets import MNIST

    return MNIST


def mnist_raw_dir(root: str | os.PathLike) -> Path:
    """``<root>/MNIST/raw`` (torchvision names the folder after the class)."""
    return Path(root) / SPEC.folder


def download_mnist(root: str | os.PathLike) -> Path:
    """Fetch MNIST with torchvision's downloader (mirrors + md5 checks) into a temporary folder under ``root``,
    then move the four raw files into ``<root>/MNIST/raw`` so no half-written file ever has a final name."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = mnist_raw_dir(root)
    with tempfile.TemporaryDirectory(prefix=".mnist-download-", dir=root) as tmp:
        _mnist_class()(tmp, train=False, download=True)
        final.mkdir(parents=True, exist_ok=True)
        for name in MNIST_RAW_FILES:
            os.replace(mnist_raw_dir(tmp) / name, final / name)
    return final


def fetch_mnist(root: str | os.PathLike) -> str:
    """Put MNIST in place: the four files already under ``<root>/MNIST/raw`` are used when each is a complete
    idx file (an offline compute node with MNIST in place needs no network), else they are downloaded.
    Returns what was found and done, for the data job's log."""
    raw = mnist_raw_dir(root)
    present = [name for name in MNIST_RAW_FILES if (raw / name).is_file()]
    if len(present) == len(MNIST_RAW_FILES):
        for name in MNIST_RAW_FILES:
            check_idx_file(raw / name)  # a damaged file is an error naming it, not a silent re-download
        return f"MNIST: the four idx files are present in {raw} and complete; nothing downloaded"
    download_mnist(root)
    found = f"only {', '.join(present)}" if present else "no MNIST files"
    return f"MNIST: found {found} in {raw}; downloaded the four files (md5-checked archives)"


def load_mnist(
    root: str | os.PathLike, split: str, transform: Callable | None = None, download: bool = False
) -> Dataset:
    """MNIST ``split`` ("train" or "test") as a torchvision ``MNIST`` data set."""
    if split not in SPEC.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset 'mnist'; expected one of: {', '.join(SPEC.splits)}"
        )
    raw = mnist_raw_dir(root)
    # torchvision's MNIST needs all four files whichever split is asked for.
    missing = [raw / name for name in MNIST_RAW_FILES if not (raw / name).is_file()]
    if missing and download:
        download_mnist(root)
        missing = [raw / name for name in MNIST_RAW_FILES if not (raw / name).is_file()]
    if missing:
        lines = "\n".join(f"  {p}" for p in missing)
        MNIST = _mnist_class()
        mirrors = " or ".join(MNIST.mirrors)
        raise DatasetNotFoundError(
            f"MNIST files not found:\n{lines}\n"
            f"Pass download=True to fetch them with torchvision (from {mirrors}, md5-checked), or download "
            f"{', '.join(name for name, _ in MNIST.resources)} from one of those mirrors and gunzip them into {raw}.",
            missing,
        )
    for name in MNIST_RAW_FILES:
        check_idx_file(raw / name)
    return _mnist_class()(str(root), train=split == "train", transform=transform, download=False)


def check_idx_file(path: Path) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` unless it is a complete uint8 idx file: magic
    ``0x0000 08 <ndim>``, ``ndim`` big-endian sizes, then exactly their product of bytes (torchvision would
    otherwise fail with a reshape error, or read a foreign file)."""
    with open(path, "rb") as handle:
        header = handle.read(4)
        if len(header) < 4 or header[:3] != b"\x00\x00\x08" or not 1 <= header[3] <= 3:
            raise DatasetFormatError(
                f"{path}: not an uint8 idx file (magic {header.hex() or 'missing'}, expected 00000801 or 00000803)",
                path,
            )
        ndim = header[3]
        dims_bytes = handle.read(4 * ndim)
        if len(dims_bytes) < 4 * ndim:
            raise DatasetFormatError(f"{path}: truncated idx header", path)
        dims = struct.unpack(f">{ndim}I", dims_bytes)
    expected = 4 + 4 * ndim + math.prod(dims)
    size = path.stat().st_size
    if size != expected:
        raise DatasetFormatError(
            f"{path}: {size} bytes, but its idx header {list(dims)} says {expected} (truncated or corrupted)",
            path,
        )
