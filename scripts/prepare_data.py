#!/usr/bin/env python
"""Put a data set in place under the data root and write a stamp file saying so.

``--source download``: CIFAR-10 and MNIST are downloaded with checksums (CIFAR-10 files already present are
verified against the official md5s, so a corrupt copy is never used); ImageNet, ImageNet32 and TinyImages
cannot be downloaded automatically, so their files are checked and a missing file stops the job with a
message saying what to put where and where to get it. ``--source synthetic`` writes small stand-ins in the
same on-disk formats (for the demo and tests).

The stamp (JSON: data set, source, files and sizes) is written last and atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsmooth.data import DATASETS, download_cifar10, download_mnist, get_dataset, synthetic, verify_cifar10
from rsmooth.data.cifar10 import cifar10_files
from rsmooth.data.imagenet import imagenet_dir
from rsmooth.data.imagenet32 import imagenet32_files
from rsmooth.data.mnist import mnist_raw_dir
from rsmooth.data.tinyimages import tinyimages_path
from rsmooth.io import atomic_open


def expected_files(dataset: str, root: Path) -> list[Path]:
    if dataset == "cifar10":
        return sorted({*cifar10_files(root, "train"), *cifar10_files(root, "test")})
    if dataset == "imagenet32":
        return [*imagenet32_files(root, "train"), *imagenet32_files(root, "test")]
    if dataset == "tinyimages":
        return [tinyimages_path(root)]
    if dataset == "imagenet":
        return [imagenet_dir(root, "train"), imagenet_dir(root, "test")]
    return sorted(mnist_raw_dir(root).glob("*-ubyte"))


def download_or_check(dataset: str, root: Path) -> None:
    if dataset == "cifar10":
        if all(p.exists() for p in expected_files(dataset, root)):
            verify_cifar10(root)
        else:
            download_cifar10(root)
    elif dataset == "mnist":
        download_mnist(root)
    elif not all(p.exists() for p in expected_files(dataset, root)):
        # The loaders raise DatasetNotFoundError saying which file goes where and where to get it.
        for split in ("train", "test") if dataset != "tinyimages" else ("train",):
            get_dataset(dataset, split, root)


def synthesize(dataset: str, root: Path, args: argparse.Namespace) -> None:
    if dataset == "cifar10":
        synthetic.write_synthetic_cifar10(root, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    elif dataset == "mnist":
        synthetic.write_synthetic_mnist(root, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    elif dataset == "imagenet32":
        # Ten classes (the CIFAR-10 stand-in's prototypes) in the 1000-class file format, so that
        # pre-training on the stand-in transfers to the CIFAR-10 stand-in.
        synthetic.write_synthetic_imagenet32(
            root,
            n_per_batch=args.imagenet32_per_batch,
            n_val=args.imagenet32_val,
            num_classes=10,
            seed=args.seed,
        )
    elif dataset == "tinyimages":
        synthetic.write_synthetic_tinyimages(root, n=args.n_tinyimages, seed=args.seed)
    else:
        synthetic.write_synthetic_imagenet(
            root, num_classes=10, n_per_class=args.n_train // 10, seed=args.seed
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("stamp", type=Path, help="JSON file written once the data set is in place")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--source", choices=("download", "synthetic"), default="download")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-tinyimages", type=int, default=1000)
    parser.add_argument("--imagenet32-per-batch", type=int, default=100)
    parser.add_argument("--imagenet32-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.source == "synthetic":
        synthesize(args.dataset, args.root, args)
    else:
        download_or_check(args.dataset, args.root)
    files = expected_files(args.dataset, args.root)
    with atomic_open(args.stamp) as handle:
        json.dump(
            {
                "dataset": args.dataset,
                "source": args.source,
                "root": str(args.root),
                "files": {str(p): p.stat().st_size if p.is_file() else "directory" for p in files},
            },
            handle,
            indent=2,
        )


if __name__ == "__main__":
    main()
