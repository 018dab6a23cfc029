#!/usr/bin/env python
"""Write a pool of MNIST digits (idx files, gzipped or not) as a train/test split in MNIST's four-file layout
(<root>/MNIST/raw), where the MNIST data job finds it in place: the last --test digits are the test split.

python scripts/split_mnist.py ../shared/data/mnist-8k/images-idx3-ubyte.gz \\
    ../shared/data/mnist-8k/labels-idx1-ubyte.gz resources/mnist-8k --test 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.data.errors import DatasetFormatError
from rsmooth.data.mnist import mnist_raw_dir, write_mnist_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", type=Path, help="idx3 file of N x 28 x 28 digits")
    parser.add_argument("labels", type=Path, help="idx1 file of their N labels")
    parser.add_argument("root", type=Path, help="data root (data.root of the config)")
    parser.add_argument("--test", type=int, required=True, help="digits of the test split (the last ones)")
    args = parser.parse_args(argv)
    for path in (args.images, args.labels):
        if not path.is_file():
            parser.error(f"{path}: no such file")
    try:
        train, test = write_mnist_split(args.images, args.labels, args.root, args.test)
    except (DatasetFormatError, ValueError) as error:
        parser.error(str(error))
    print(f"{mnist_raw_dir(args.root)}: {train} training and {test} test digits")


if __name__ == "__main__":
    main()
