"""Names and shapes of the supported data sets, importable without torch (the Snakemake DAG uses them)."""

from __future__ import annotations

DATASETS: tuple[str, ...] = ("cifar10", "mnist", "imagenet", "imagenet32", "tinyimages")

NUM_CLASSES: dict[str, int] = {
    "cifar10": 10,
    "mnist": 10,
    "imagenet": 1000,
    "imagenet32": 1000,
    "tinyimages": 10,
}

INPUT_SHAPE: dict[str, tuple[int, int, int]] = {
    "cifar10": (3, 32, 32),
    "mnist": (1, 28, 28),
    "imagenet": (3, 224, 224),
    "imagenet32": (3, 32, 32),
    "tinyimages": (3, 32, 32),
}

# Size of each data set's evaluation split (CIFAR-10/MNIST test sets, the ImageNet/ImageNet32 val sets).
TEST_SET_SIZE: dict[str, int] = {"cifar10": 10_000, "mnist": 10_000, "imagenet": 50_000, "imagenet32": 50_000}
