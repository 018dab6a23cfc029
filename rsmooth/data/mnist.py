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

import gzip
import math
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from rsmooth.data.errors import DatasetFormatError, DatasetNotFoundError
from rsmooth.dataset_info import DATASET_SPECS
from rsmooth.io import atomic_open

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


def read_idx(path: str | os.PathLike) -> tuple[tuple[int, ...], bytes]:
    """(dimensions, data bytes) of a uint8 idx file, gzipped (``.gz``) or not; checked like
    :func:`check_idx_file`."""
    path = Path(path)
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[:3] != b"\x00\x00\x08" or not 1 <= content[3] <= 3:
        raise DatasetFormatError(
            f"{path}: not an uint8 idx file (magic {content[:4].hex() or 'missing'})", path
        )
    ndim = content[3]
    if len(content) < 4 + 4 * ndim:
        raise DatasetFormatError(f"{path}: truncated idx header", path)
    dims = struct.unpack(f">{ndim}I", content[4 : 4 + 4 * ndim])
    data = content[4 + 4 * ndim :]
    if len(data) != math.prod(dims):
        raise DatasetFormatError(
            f"{path}: {len(data)} data bytes, but its idx header {list(dims)} says {math.prod(dims)}", path
        )
    return dims, data


def write_mnist_split(
    images: str | os.PathLike, labels: str | os.PathLike, root: str | os.PathLike, num_test: int
) -> tuple[int, int]:
    """Write a pool of MNIST digits (idx files, gzipped or not) as MNIST's four files under
    ``<root>/MNIST/raw``: the last ``num_test`` digits as the test split, the others as the training split (the
    pool's own order: shuffle it beforehand if it is sorted). Returns (training, test) sizes. Every file is
    written atomically, so an interrupted run leaves no half-written file under its final name."""
    image_dims, image_bytes = read_idx(images)
    label_dims, label_bytes = read_idx(labels)
    if len(image_dims) != 3 or image_dims[1:] != (28, 28):
        raise DatasetFormatError(
            f"{images}: images of shape {list(image_dims)}, expected N x 28 x 28", Path(images)
        )
    if label_dims != image_dims[:1]:
        raise DatasetFormatError(
            f"{labels}: {label_dims[0]} labels for {image_dims[0]} images in {images}", Path(labels)
        )
    if any(label > 9 for label in label_bytes):
        raise DatasetFormatError(f"{labels}: labels outside 0-9", Path(labels))
    total = image_dims[0]
    if not 1 <= num_test < total:
        raise ValueError(
            f"num_test must be between 1 and {total - 1} (the pool holds {total} digits), got {num_test}"
        )
    num_train = total - num_test
    pixels = 28 * 28
    parts = {
        "train-images-idx3-ubyte": (3, (num_train, 28, 28), image_bytes[: num_train * pixels]),
        "train-labels-idx1-ubyte": (1, (num_train,), label_bytes[:num_train]),
        "t10k-images-idx3-ubyte": (3, (num_test, 28, 28), image_bytes[num_train * pixels :]),
        "t10k-labels-idx1-ubyte": (1, (num_test,), label_bytes[num_train:]),
    }
    raw = mnist_raw_dir(root)
    for name, (ndim, dims, data) in parts.items():
        with atomic_open(raw / name, "wb") as handle:
            handle.write(bytes([0, 0, 8, ndim]) + struct.pack(f">{ndim}I", *dims) + data)
    return num_train, num_test
