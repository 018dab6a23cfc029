"""Small, seeded synthetic stand-ins for every data set, written in exactly the published on-disk formats.

They exist so that the real loaders (and the whole pipeline) can be exercised without the real data, which cannot
be downloaded here. Each class has a fixed prototype: a mean colour plus a brightness pattern (horizontal stripes,
vertical stripes or concentric rings at a class-specific frequency); MNIST uses a grey blob at a class-specific
position. Every sample draws its own phase, amplitude, colour jitter and pixel noise, and is blended with a random
other class's sample by a weight ``t ~ U(0, 0.4)``. The blend keeps the label unambiguous (``t < 0.5``) while
giving samples a spread of margins, so certified radii are not all at the maximum.

The prototypes do not depend on the seed and are shared by CIFAR-10 and TinyImages (the first 10 classes of the
ImageNet stand-ins use them too), so pseudo-labelled "TinyImages" are informative for "CIFAR-10" as the real ones
are. Each writer derives its random stream from ``(seed, data-set tag)``: CIFAR-10 and TinyImages with the same
seed are different images. Files are written through :func:`rsmooth.io.atomic_open`.

These stand-ins are for testing the pipeline; numbers obtained on them mean nothing for the papers' results.
"""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rsmooth.data._pickles import dump_py2_pickle
from rsmooth.data.cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_META_FILE,
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
    cifar10_dir,
)
from rsmooth.data.imagenet import imagenet_dir
from rsmooth.data.imagenet32 import IMAGENET32_NUM_CLASSES, imagenet32_dir, imagenet32_files
from rsmooth.data.mnist import mnist_raw_dir
from rsmooth.data.tinyimages import tinyimages_path
from rsmooth.io import atomic_open

# Ten well-separated mean colours (RGB in [0, 1]) for the first ten classes of every RGB stand-in.
_PALETTE = np.array(
    [
        [0.75, 0.30, 0.30],
        [0.30, 0.70, 0.30],
        [0.30, 0.35, 0.75],
        [0.75, 0.70, 0.30],
        [0.70, 0.30, 0.70],
        [0.30, 0.70, 0.70],
        [0.50, 0.50, 0.50],
        [0.80, 0.55, 0.35],
        [0.45, 0.30, 0.55],
        [0.60, 0.75, 0.55],
    ],
    dtype=np.float32,
)
_PROTOTYPE_SEED = 2019  # fixed, so the prototypes never depend on a writer's seed
_MAX_MIX = 0.4  # largest weight of the other class in a sample (< 0.5 keeps the label unambiguous)
_COLOUR_JITTER = 0.04
_PIXEL_NOISE = 0.03
_CHUNK = 2048  # images rendered at once, bounding float memory for large stand-ins

# MNIST stand-in: blob centre (row, col) per class on the 28x28 canvas.
_MNIST_CENTRES = np.array(
    [[6, 5], [6, 11], [6, 17], [6, 23], [14, 5], [14, 11], [14, 17], [14, 23], [22, 8], [22, 20]],
    dtype=np.float32,
)

# Tags that separate the random streams of the writers.
_TAGS = {"cifar10": 1, "mnist": 2, "imagenet32": 3, "tinyimages": 4, "imagenet": 5}


@dataclass(frozen=True)
class ClassPrototypes:
    """Per-class parameters of the RGB stand-ins."""

    colours: np.ndarray  # [C, 3] mean colour in [0, 1]
    kinds: np.ndarray  # [C] 0 horizontal stripes, 1 vertical stripes, 2 concentric rings
    freqs: np.ndarray  # [C] cycles per image side


def class_prototypes(num_classes: int) -> ClassPrototypes:
    """The fixed prototypes of ``num_classes`` classes; classes 0..9 are the same for every ``num_classes``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    rng = np.random.default_rng(_PROTOTYPE_SEED)
    size = max(num_classes, 10)
    colours = rng.uniform(0.25, 0.75, (size, 3)).astype(np.float32)
    kinds = rng.integers(0, 3, size)
    freqs = rng.integers(1, 7, size).astype(np.float32)
    # Hand-picked first ten: distinct colours, and pattern kind/frequency that differ where colours are close.
    idx = np.arange(10)
    colours[:10] = _PALETTE
    kinds[:10] = idx % 3
    freqs[:10] = 2 + idx // 3
    return ClassPrototypes(colours[:num_classes], kinds[:num_classes], freqs[:num_classes])


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _TAGS[name]])


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels, as equal per class as possible, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _render_class(
    labels: np.ndarray, protos: ClassPrototypes, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(labels)
    colour = protos.colours[labels] + rng.normal(0.0, _COLOUR_JITTER, (n, 3)).astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi, n).astype(np.float32)
    centre = (0.5 + rng.uniform(-0.1, 0.1, (n, 2))).astype(np.float32)
    amp = rng.uniform(0.18, 0.28, n).astype(np.float32)
    yy = ((np.arange(height, dtype=np.float32) + 0.5) / height)[None, :, None]
    xx = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, None, :]
    radius = np.sqrt((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2)
    kinds = protos.kinds[labels][:, None, None]
    coord = np.where(kinds == 0, yy, np.where(kinds == 1, xx, radius))
    pattern = np.sin(2 * np.pi * protos.freqs[labels][:, None, None] * coord + phase[:, None, None])
    return colour[:, None, None, :] + (amp[:, None, None] * pattern)[..., None]


def render_rgb(
    labels: np.ndarray, height: int, width: int, rng: np.random.Generator, num_classes: int
) -> np.ndarray:
    """uint8 ``[N, height, width, 3]`` images of the given classes (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    protos = class_prototypes(num_classes)
    out = np.empty((len(labels), height, width, 3), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        lab = labels[start : start + _CHUNK]
        img = _render_class(lab, protos, height, width, rng)
        if num_classes > 1:
            other = (lab + rng.integers(1, num_classes, len(lab))) % num_classes
            t = rng.uniform(0.0, _MAX_MIX, len(lab)).astype(np.float32)[:, None, None, None]
            img = (1 - t) * img + t * _render_class(other, protos, height, width, rng)
        img += rng.normal(0.0, _PIXEL_NOISE, img.shape).astype(np.float32)
        out[start : start + len(lab)] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def _render_blob(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    centre = _MNIST_CENTRES[labels] + rng.uniform(-1.0, 1.0, (n, 2)).astype(np.float32)
    width = rng.uniform(2.0, 2.8, n).astype(np.float32)
    amp = rng.uniform(0.85, 1.0, n).astype(np.float32)
    yy = np.arange(28, dtype=np.float32)[None, :, None]
    xx = np.arange(28, dtype=np.float32)[None, None, :]
    dist2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    return amp[:, None, None] * np.exp(-dist2 / (2 * width[:, None, None] ** 2))


def render_mnist(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``[N, 28, 28]`` white-on-black images: a blob at a class-specific position."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.empty((len(labels), 28, 28), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        lab = labels[start : start + _CHUNK]
        other = (lab + rng.integers(1, 10, len(lab))) % 10
        t = rng.uniform(0.0, _MAX_MIX, len(lab)).astype(np.float32)[:, None, None]
        img = (1 - t) * _render_blob(lab, rng) + t * _render_blob(other, rng)
        img += rng.normal(0.0, _PIXEL_NOISE, img.shape).astype(np.float32)
        out[start : start + len(lab)] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def _chw_rows(images: np.ndarray) -> np.ndarray:
    """[N, 32, 32, 3] -> [N, 3072] rows, channel-major (the CIFAR / downsampled-ImageNet row layout)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _check_count(**counts: int) -> None:
    for key, value in counts.items():
        if value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")


def write_synthetic_cifar10(
    root: str | os.PathLike, n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write ``<root>/cifar-10-batches-py`` (5 train batches, ``test_batch``, ``batches.meta``) as Python 2
    pickles like the official ones; returns that folder. Train images are split evenly over the 5 batches."""
    _check_count(n_train=n_train, n_test=n_test)
    rng = _rng(seed, "cifar10")
    folder = cifar10_dir(root)
    train_y = _balanced_labels(n_train, 10, rng)
    train_x = _chw_rows(render_rgb(train_y, 32, 32, rng, 10))
    test_y = _balanced_labels(n_test, 10, rng)
    test_x = _chw_rows(render_rgb(test_y, 32, 32, rng, 10))

    def write_batch(name: str, batch_label: str, x: np.ndarray, y: np.ndarray, offset: int) -> None:
        entry = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in y],
            b"data": x,
            b"filenames": [f"synthetic_{offset + i:06d}.png".encode() for i in range(len(y))],
        }
        with atomic_open(folder / name, "wb") as handle:
            dump_py2_pickle(entry, handle)

    bounds = np.linspace(0, n_train, len(CIFAR10_TRAIN_FILES) + 1).astype(int)
    for i, name in enumerate(CIFAR10_TRAIN_FILES):
        lo, hi = bounds[i], bounds[i + 1]
        write_batch(name, f"training batch {i + 1} of 5", train_x[lo:hi], train_y[lo:hi], lo)
    write_batch(CIFAR10_TEST_FILES[0], "testing batch 1 of 1", test_x, test_y, n_train)
    meta = {
        b"num_cases_per_batch": int(max(np.diff(bounds).max(), 0)),
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    with atomic_open(folder / CIFAR10_META_FILE, "wb") as handle:
        dump_py2_pickle(meta, handle)
    return folder


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx ("SN3 Pascal Vincent") format: magic 0x08<ndim>, big-endian dims, bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with atomic_open(path, "wb") as handle:
        handle.write(header)
        handle.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_synthetic_mnist(
    root: str | os.PathLike, n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write the four uncompressed idx files into ``<root>/MNIST/raw`` (torchvision's layout); returns that
    folder."""
    _check_count(n_train=n_train, n_test=n_test)
    rng = _rng(seed, "mnist")
    folder = mnist_raw_dir(root)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = _balanced_labels(n, 10, rng)
        images = render_mnist(labels, rng)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
    return folder


def write_synthetic_imagenet32(
    root: str | os.PathLike,
    n_per_batch: int = 100,
    n_val: int = 100,
    num_classes: int = IMAGENET32_NUM_CLASSES,
    seed: int = 0,
) -> Path:
    """Write ``<root>/imagenet32/Imagenet32_train/train_data_batch_{1..10}`` and
    ``<root>/imagenet32/Imagenet32_val/val_data`` (Python 3 pickles, 1-based labels, ``'mean'`` in the train
    files); returns ``<root>/imagenet32``."""
    _check_count(n_per_batch=n_per_batch, n_val=n_val)
    if not 1 <= num_classes <= IMAGENET32_NUM_CLASSES:
        raise ValueError(f"num_classes must be in 1..{IMAGENET32_NUM_CLASSES}, got {num_classes}")
    rng = _rng(seed, "imagenet32")
    train_files = imagenet32_files(root, "train")
    labels = _balanced_labels(n_per_batch * len(train_files), num_classes, rng)
    rows = _chw_rows(render_rgb(labels, 32, 32, rng, num_classes))
    mean = rows.mean(axis=0) if len(rows) else np.zeros(3072)  # the mean training image, as float
    for i, path in enumerate(train_files):
        sl = slice(i * n_per_batch, (i + 1) * n_per_batch)
        entry = {"data": rows[sl], "labels": [int(v) + 1 for v in labels[sl]], "mean": mean}
        with atomic_open(path, "wb") as handle:
            pickle.dump(entry, handle, protocol=4)
    val_labels = _balanced_labels(n_val, num_classes, rng)
    val_rows = _chw_rows(render_rgb(val_labels, 32, 32, rng, num_classes))
    entry = {"data": val_rows, "labels": [int(v) + 1 for v in val_labels]}
    with atomic_open(imagenet32_files(root, "test")[0], "wb") as handle:
        pickle.dump(entry, handle, protocol=4)
    return imagenet32_dir(root)


def write_synthetic_tinyimages(
    root: str | os.PathLike,
    n: int = 1000,
    seed: int = 0,
    num_classes: int = 10,
    label_noise: float = 0.0,
) -> Path:
    """Write ``<root>/tinyimages/ti_500K_pseudo_labeled.pickle`` with the CIFAR-10 stand-in's class prototypes.

    ``label_noise`` is the fraction of pseudo-labels replaced by a wrong class (real pseudo-labels are imperfect).
    Returns the file path.
    """
    _check_count(n=n)
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    if not 1 <= num_classes <= 10:
        raise ValueError(f"num_classes must be in 1..10 (CIFAR-10 pseudo-labels), got {num_classes}")
    rng = _rng(seed, "tinyimages")
    truth = _balanced_labels(n, num_classes, rng)
    images = render_rgb(truth, 32, 32, rng, num_classes)
    targets = truth.copy()
    if num_classes > 1:
        flip = rng.random(n) < label_noise
        targets[flip] = (truth[flip] + rng.integers(1, num_classes, int(flip.sum()))) % num_classes
    entry = {
        "data": images,
        "extrapolated_targets": targets,
        "ti_index": np.arange(n, dtype=np.int64),  # position in the (here imaginary) 80M TinyImages file
        "prediction_model": "synthetic",
        "prediction_model_epoch": 0,
    }
    path = tinyimages_path(root)
    with atomic_open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=4)
    return path


def write_synthetic_imagenet(
    root: str | os.PathLike,
    num_classes: int = 10,
    n_per_class: int = 4,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    n_val: int | None = None,
) -> Path:
    """Write JPEG class folders ``<root>/imagenet/{train,val}/<wnid>/*.JPEG`` (wnids ``n00000000``, ``n00000001``,
    ... so the sorted order is the class index); returns ``<root>/imagenet``. ``size`` is ``H`` or ``(H, W)``.
    The val split holds ``n_val`` images (default ``n_per_class`` per class), classes as even as that allows."""
    n_val = n_per_class * num_classes if n_val is None else n_val
    _check_count(n_per_class=n_per_class, n_val=n_val)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    height, width = (size, size) if isinstance(size, int) else size
    rng = _rng(seed, "imagenet")
    val_index = 0
    for split, labels in (
        ("train", np.repeat(np.arange(num_classes), n_per_class)),
        ("test", np.sort(np.arange(n_val) % num_classes)),
    ):
        images = render_rgb(labels, height, width, rng, num_classes)
        counters = np.zeros(num_classes, dtype=np.int64)
        for image, label in zip(images, labels, strict=True):
            wnid = f"n{label:08d}"
            if split == "train":
                name = f"{wnid}_{counters[label]}.JPEG"
            else:
                val_index += 1
                name = f"ILSVRC2012_val_{val_index:08d}.JPEG"
            counters[label] += 1
            with atomic_open(imagenet_dir(root, split) / wnid / name, "wb") as handle:
                Image.fromarray(image).save(handle, format="JPEG", quality=95)
    return imagenet_dir(root, "train").parent
