#!/usr/bin/env python
"""Put a data set in place under the data root and write a stamp file saying so.

``--source download``: CIFAR-10 and MNIST are downloaded with checksums (CIFAR-10 files already present are
verified against the official md5s, so a corrupt copy is never used); ImageNet, ImageNet32 and TinyImages
cannot be downloaded automatically, so their files are checked and a missing file stops the job with a
message saying what to put where and where to get it. ``--source synthetic`` writes small stand-ins in the
same on-disk formats (for the demo and tests). The files and their sources are each data set's spec
(``rsmooth.dataset_info``); the work is ``rsmooth.data.prepare``.

The stamp (JSON: data set, source, files and sizes) is written last and atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from rsmooth.data.prepare import SOURCES, SyntheticSizes, prepare_dataset
from rsmooth.dataset_info import DATASETS
from rsmooth.io import atomic_open


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("stamp", type=Path, help="JSON file written once the data set is in place")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--source", choices=SOURCES, default="download")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-tinyimages", type=int, default=1000)
    parser.add_argument("--imagenet32-per-batch", type=int, default=100)
    parser.add_argument("--imagenet32-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sizes = SyntheticSizes(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSizes)})
    record = prepare_dataset(args.dataset, args.root, args.source, sizes)
    print(record["found"], file=sys.stderr)  # the data job's log says what it found
    with atomic_open(args.stamp) as handle:
        json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
