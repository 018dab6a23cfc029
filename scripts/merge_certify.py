#!/usr/bin/env python
"""Concatenate the shard logs of one certification or attack run into one log (rows in index order).

Every shard must have the same header, one of the certification (CERTIFY, sequential) or attack logs', and
rows as rsmooth writes them (rsmooth.logformat); an index present in two shards is an error (the shards
overlap), and the merged file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.io import atomic_open
from rsmooth.logformat import merge_logs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("shards", type=Path, nargs="+")
    args = parser.parse_args(argv)
    lines = merge_logs(args.shards)
    with atomic_open(args.output) as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"{args.output}: {len(lines) - 1} rows from {len(args.shards)} shards")


if __name__ == "__main__":
    main()
