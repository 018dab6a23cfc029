"""One spec per supported data set: the single home of every fact about it, importable without torch.

A :class:`DatasetSpec` holds what the rest of rsmooth needs to know about a data set: its tensor shape and number
of classes, the normalization its models start with, its splits and the size of its evaluation split, the files
under the data root and where to get them, and the image transforms with and without augmentation. The loaders
(``rsmooth.data``), the normalization table (``rsmooth.models.normalization``), the architectures' default heads,
``scripts/prepare_data.py`` and the Snakemake DAG (which must not import torch) all read these specs; the dicts
below (``NUM_CLASSES``, ``INPUT_SHAPE``, ``TEST_SET_SIZE``, ...) are views derived from them.

Adding a data set means one spec here plus its loader module (registered in ``rsmooth.data.registry``).

Layouts are relative to the data root: ``folder`` is the data set's own folder, and each :class:`DataFile`
path is relative to that folder. Transforms are described as :class:`TransformStep` values and built with
torchvision in ``rsmooth.data.transforms`` (a final ``ToTensor`` is always appended, and nothing normalizes:
normalization is the model's first layer, since the smoothing noise is added in [0, 1] pixel space).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "INPUT_SHAPE",
    "NUM_CLASSES",
    "TEST_SET_SIZE",
    "TRAIN_SET_SIZE",
    "TRANSFORM_OPS",
    "ChannelStats",
    "DataFile",
    "DatasetSpec",
    "TransformStep",
    "dataset_spec",
]

# The operations a TransformStep may name (rsmooth.data.transforms maps each to its torchvision class).
TRANSFORM_OPS: tuple[str, ...] = (
    "resize",
    "center_crop",
    "random_crop",
    "random_resized_crop",
    "horizontal_flip",
)


@dataclass(frozen=True)
class TransformStep:
    """One image transform: ``op`` (one of :data:`TRANSFORM_OPS`), its output ``size`` and crop ``padding``.

    ``size`` is an int (the shorter side for ``resize``, a square for the crops) or ``(H, W)``; the flip has none.
    """

    op: str
    size: int | tuple[int, int] | None = None
    padding: int | None = None

    def __post_init__(self) -> None:
        if self.op not in TRANSFORM_OPS:
            raise ValueError(f"unknown transform {self.op!r}; expected one of: {', '.join(TRANSFORM_OPS)}")


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel normalization constants: ``(x - mean) / std``, or ``x - mean`` when ``std`` is None.

    An empty ``mean`` is the identity (no normalization at all).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DataFile:
    """A file (or, with ``folder=True``, a folder) under the data set's folder, the splits that read it and,
    where the publisher gives one, its md5."""

    path: str
    splits: tuple[str, ...]
    md5: str | None = None
    folder: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """Every fact about one data set that more than its own loader needs."""

    name: str  # the name used everywhere: configs, --dataset, stamp files
    title: str  # the name as written in messages ("CIFAR-10")
    input_shape: tuple[int, int, int]  # (C, H, W) of a tensor after the test transform
    num_classes: int
    splits: tuple[str, ...]  # the splits get_dataset accepts; "test" is the evaluation split
    test_set_size: int | None  # images in the real evaluation split (None: there is none)
    # Layer 0 of a model trained on this data set (NORMALIZATIONS[name]); None: no model is trained on it.
    normalization: ChannelStats | None
    # Mean of the mean-subtraction-only variant (NORMALIZATIONS[f"{name}_center"]); None: no such variant.
    center_mean: tuple[float, ...] | None
    folder: str  # the data set's folder under the data root
    files: tuple[DataFile, ...]  # in the order the loaders read them
    url: str | None  # where to get the files (None: torchvision's own mirrors)
    downloadable: bool  # whether rsmooth can fetch the files itself (download=True)
    augmentation: tuple[TransformStep, ...]  # before ToTensor, for augment=True
    preprocessing: tuple[TransformStep, ...]  # before ToTensor, for augment=False
    trainable: bool = True  # False: supplies pseudo-labelled images only, never a training set of its own
    # Images in the real training split (for TinyImages: the pseudo-labelled images); None: not recorded.
    train_set_size: int | None = None
    # Every how-many-th test image the references certify (None: they certify no subsample of this set).
    reference_subsample_skip: int | None = None
    archive: str | None = None  # the published archive the files come in, and its md5
    archive_md5: str | None = None
    class_names: tuple[str, ...] | None = None  # fallback names when the files carry none
    links: Mapping[str, str] = field(default_factory=dict)  # further addresses quoted in messages
    # -- the analysis and the pipeline (None: the papers give none for this data set) --
    # The papers' table radii as (first, last, step): Salman et al. / SmoothMix, and Cohen et al.'s tables.
    table_radii: tuple[float, float, float] | None = None
    cohen_table_radii: tuple[float, float, float] | None = None
    plot_max_radius: float | None = None  # certified-accuracy curves are drawn up to this l2 radius
    linf_radius: float | None = None  # the l-inf radius of Salman et al.'s l-inf tables
    paper_linf_l2_radius: float | None = None  # the (rounded) l2 radius at which the paper evaluated it
    # Certified (or attacked) images per GPU job by default: about four GPU-hours at N0 + N = 100,100 on a
    # GTX 1080 Ti (rsmooth.plan's throughput); None: a job certifies the whole split.
    images_per_job: int | None = None

    @property
    def input_dim(self) -> int:
        """d of the l2 -> l-inf conversion r / sqrt(d): the test tensor's size (ImageNet: the 224x224 crop)."""
        c, h, w = self.input_shape
        return c * h * w

    def fact(self, name: str):
        """The value of fact ``name``; a ValueError naming the data set and the fact when it has none."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(
                f"data set {self.name!r} ({self.title}) has no {_FACTS.get(name, name)} (DatasetSpec.{name})"
            )
        return value

    def split_files(self, split: str) -> tuple[DataFile, ...]:
        """The files ``split`` reads, in reading order."""
        return tuple(f for f in self.files if split in f.splits)

    @property
    def file_md5s(self) -> dict[str, str]:
        """``{path: md5}`` of the files that have a published md5, in file order."""
        return {f.path: f.md5 for f in self.files if f.md5 is not None}


# What each optional fact is, for the error of DatasetSpec.fact.
_FACTS = {
    "table_radii": "table radii in the papers",
    "cohen_table_radii": "table radii in Cohen et al.",
    "plot_max_radius": "plot range",
    "linf_radius": "l-inf radius in the papers (they publish no l-inf table for it)",
    "paper_linf_l2_radius": "l2 radius of a published l-inf table",
    "images_per_job": "default certification job size",
    "test_set_size": "evaluation split",
    "train_set_size": "recorded training-set size",
}

_CIFAR10_STATS = ChannelStats(mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
_IMAGENET_STATS = ChannelStats(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_IMAGENET_DOWNLOAD = "https://image-net.org/download-images"  # after registration (licence)

# The references' 32x32 train augmentation (Cohen et al., Salman et al.).
_CROP_FLIP_32 = (TransformStep("random_crop", 32, padding=4), TransformStep("horizontal_flip"))

CIFAR10 = DatasetSpec(
    name="cifar10",
    train_set_size=50_000,
    title="CIFAR-10",
    input_shape=(3, 32, 32),
    num_classes=10,
    splits=("train", "test"),
    test_set_size=10_000,
    normalization=_CIFAR10_STATS,
    center_mean=_CIFAR10_STATS.mean,
    folder="cifar-10-batches-py",
    # md5s of the official "python version" files (the same values as torchvision.datasets.CIFAR10).
    files=(
        DataFile("data_batch_1", ("train",), "c99cafc152244af753f735de768cd75f"),
        DataFile("data_batch_2", ("train",), "d4bba439e000b95fd0a9bffe97cbabec"),
        DataFile("data_batch_3", ("train",), "54ebc095f3ab1f0389bbae665268c751"),
        DataFile("data_batch_4", ("train",), "634d18415352ddfa80567beed471001a"),
        DataFile("data_batch_5", ("train",), "482c414d41f54cd18b22e5b47cb7c3cb"),
        DataFile("test_batch", ("test",), "40351d587109b95175f43aff81a1287e"),
        DataFile("batches.meta", ("train", "test"), "5ff9c542aee3614f3951f8cda6e48888"),
    ),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    downloadable=True,
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    augmentation=_CROP_FLIP_32,
    preprocessing=(),
    reference_subsample_skip=20,  # 500 of the 10,000 test images
    table_radii=(0.25, 2.25, 0.25),
    cohen_table_radii=(0.25, 1.5, 0.25),
    plot_max_radius=2.25,
    # Salman et al. Table 3 at 2/255; evaluated at l2 0.435 (exact 0.4347).
    linf_radius=2 / 255,
    paper_linf_l2_radius=0.435,
    images_per_job=1000,
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)

MNIST = DatasetSpec(
    name="mnist",
    train_set_size=60_000,
    title="MNIST",
    input_shape=(1, 28, 28),
    num_classes=10,
    splits=("train", "test"),
    test_set_size=10_000,
    # SmoothMix (code/datasets.py `get_normalize_layer`) gives its MNIST LeNet raw [0, 1] pixels: the identity.
    # The centring variant has no reference counterpart; it uses the usual MNIST training-set mean (PyTorch's
    # MNIST example) and exists only for symmetry with the other data sets.
    normalization=ChannelStats(mean=()),
    center_mean=(0.1307,),
    folder="MNIST/raw",  # torchvision's layout: the folder is named after its MNIST class
    # torchvision's MNIST needs all four files whichever split is asked for. It checks the md5s of the
    # downloaded archives itself, so none are repeated here.
    files=tuple(
        DataFile(name, ("train", "test"))
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ),
    url=None,
    downloadable=True,
    augmentation=(),  # SmoothMix's `_mnist` does no augmentation
    preprocessing=(),
    table_radii=(0.25, 2.5, 0.25),  # SmoothMix Tables 4 and 8-11
    plot_max_radius=2.5,
    images_per_job=10_000,  # LeNet, taken as 50x ResNet-110's rate: under an hour
)

IMAGENET = DatasetSpec(
    name="imagenet",
    train_set_size=1_281_167,
    title="ImageNet",
    input_shape=(3, 224, 224),
    num_classes=1000,
    splits=("train", "test"),
    test_set_size=50_000,
    normalization=_IMAGENET_STATS,
    center_mean=_IMAGENET_STATS.mean,
    folder="imagenet",  # class folders <wnid>/*.JPEG; the test split is the val set
    files=(DataFile("train", ("train",), folder=True), DataFile("val", ("test",), folder=True)),
    url=_IMAGENET_DOWNLOAD,  # ILSVRC2012
    downloadable=False,
    archive=None,
    # RandomSizedCrop in the references is the deprecated alias of RandomResizedCrop (scale (0.08, 1)).
    augmentation=(TransformStep("random_resized_crop", 224), TransformStep("horizontal_flip")),
    preprocessing=(TransformStep("resize", 256), TransformStep("center_crop", 224)),
    reference_subsample_skip=100,  # 500 of the 50,000 val images
    table_radii=(0.5, 3.5, 0.5),
    cohen_table_radii=(0.5, 3.0, 0.5),
    plot_max_radius=4.0,
    # Salman et al. Table 5 at 1/255; evaluated at l2 1.5 (exact 1.5215: 1.5 is not a sound certificate).
    linf_radius=1 / 255,
    paper_linf_l2_radius=1.5,
    images_per_job=100,
    links={"valprep": "https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh"},
)

IMAGENET32 = DatasetSpec(
    name="imagenet32",
    train_set_size=1_281_167,
    title="ImageNet32",
    input_shape=(3, 32, 32),
    num_classes=1000,
    splits=("train", "test"),
    test_set_size=50_000,
    # Salman et al. reuse the CIFAR-10 statistics for ImageNet32 (SmoothAdv code/datasets.py).
    normalization=_CIFAR10_STATS,
    center_mean=_CIFAR10_STATS.mean,
    folder="imagenet32",  # the official zips unpacked into folders named after them; no published md5s
    files=(
        *(DataFile(f"Imagenet32_train/train_data_batch_{i}", ("train",)) for i in range(1, 11)),
        DataFile("Imagenet32_val/val_data", ("test",)),
    ),
    url=_IMAGENET_DOWNLOAD,  # "Downsampled ImageNet 32x32", pickle version
    downloadable=False,
    augmentation=_CROP_FLIP_32,
    preprocessing=(),
)

TINYIMAGES = DatasetSpec(
    name="tinyimages",
    train_set_size=500_000,
    title="TinyImages",
    input_shape=(3, 32, 32),
    num_classes=10,  # CIFAR-10 pseudo-labels
    splits=("train",),  # unlabelled auxiliary data: there is nothing to test on
    test_set_size=None,
    normalization=None,
    center_mean=None,
    folder="tinyimages",
    files=(DataFile("ti_500K_pseudo_labeled.pickle", ("train",)),),  # Carmon et al. 2019
    url="https://drive.google.com/open?id=1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi",
    downloadable=False,
    # As cifar10, after a resize to 32x32 (SmoothAdv `TiTop50KDataset`).
    augmentation=(TransformStep("resize", (32, 32)), *_CROP_FLIP_32),
    preprocessing=(TransformStep("resize", (32, 32)),),
    trainable=False,
    links={"repository": "https://github.com/yaircarmon/semisup-adv"},
)

DATASET_SPECS: dict[str, DatasetSpec] = {
    s.name: s for s in (CIFAR10, MNIST, IMAGENET, IMAGENET32, TINYIMAGES)
}

# Views derived from the specs, for the code that only needs one fact.
DATASETS: tuple[str, ...] = tuple(DATASET_SPECS)
NUM_CLASSES: dict[str, int] = {n: s.num_classes for n, s in DATASET_SPECS.items()}
INPUT_SHAPE: dict[str, tuple[int, int, int]] = {n: s.input_shape for n, s in DATASET_SPECS.items()}
# Size of each data set's evaluation split (CIFAR-10/MNIST test sets, the ImageNet/ImageNet32 val sets).
TEST_SET_SIZE: dict[str, int] = {
    n: s.test_set_size for n, s in DATASET_SPECS.items() if s.test_set_size is not None
}
# Size of each data set's training split (TinyImages: the 500,000 pseudo-labelled images of Carmon et al.).
TRAIN_SET_SIZE: dict[str, int] = {
    n: s.train_set_size for n, s in DATASET_SPECS.items() if s.train_set_size is not None
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of data set ``name``; a ValueError naming the allowed names for any other."""
    if name not in DATASETS:  # a tuple: any value can be tested, hashable or not
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    return DATASET_SPECS[name]


def evaluation_split_size_on_disk(name: str, root: str | os.PathLike) -> int | None:
    """Images in the evaluation split of ``name`` under ``root``, read from the files where that is cheap
    (without torch, for the Snakemake DAG): the idx header of MNIST's test labels, the image files of the
    ImageNet val folder. None when the files are absent, or for a data set whose published files carry md5s
    that ``scripts/prepare_data.py`` verifies (CIFAR-10: its test_batch is 10,000 images)."""
    spec = dataset_spec(name)
    if name == "mnist":
        labels = os.path.join(root, spec.folder, "t10k-labels-idx1-ubyte")
        if not os.path.isfile(labels):
            return None
        with open(labels, "rb") as handle:
            header = handle.read(8)
        if len(header) < 8 or header[:4] != b"\x00\x00\x08\x01":
            raise ValueError(f"{labels}: not an idx1 label file (header {header.hex()})")
        return struct.unpack(">I", header[4:])[0]
    if name == "imagenet":
        val = os.path.join(root, spec.folder, "val")
        if not os.path.isdir(val):
            return None
        return sum(
            1
            for wnid in os.scandir(val)
            if wnid.is_dir()
            for image in os.scandir(wnid.path)
            if image.is_file() and not image.name.startswith(".")
        )
    return None
