#!/usr/bin/env python
"""Concatenate the certification logs of a model's shards into one log (rows in index order).

Every shard must have the same header, the reference one (CERTIFY) or it with ``samples`` (sequential);
an index present in two shards is an error (the shards overlap), and the merged file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.certification import CERTIFY_HEADER, SEQUENTIAL_HEADER
from rsmooth.io import atomic_open


def merge(shards: list[Path]) -> list[str]:
    rows: dict[int, str] = {}
    header = "\t".join(CERTIFY_HEADER)
    for number, shard in enumerate(shards):
        lines = shard.read_text().splitlines()
        if number == 0 and lines and lines[0] == "\t".join(SEQUENTIAL_HEADER):
            header = lines[0]
        if not lines or lines[0] != header:
            raise ValueError(f"{shard}: expected the header {header!r}, got {lines[:1]}")
        for line in lines[1:]:
            idx = int(line.split("\t", 1)[0])
            if idx in rows:
                raise ValueError(f"{shard}: index {idx} is also in another shard; the shards overlap")
            rows[idx] = line
    return [header, *(rows[i] for i in sorted(rows))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("shards", type=Path, nargs="+")
    args = parser.parse_args()
    lines = merge(args.shards)
    with atomic_open(args.output) as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"{args.output}: {len(lines) - 1} rows from {len(args.shards)} shards")


if __name__ == "__main__":
    main()
