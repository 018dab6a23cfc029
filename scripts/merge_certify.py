#!/usr/bin/env python
"""Concatenate the shard logs of one certification or attack run into one log (rows in index order).

Every shard must have the same header, one of the certification (CERTIFY, sequential) or attack logs', and
read as a complete log of its kind; an index present in two shards is an error (the shards overlap), and the
merged file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.analysis.logs import read_attack_log, read_certify_log
from rsmooth.certification import ATTACK_HEADER, CERTIFY_HEADER, SEQUENTIAL_HEADER
from rsmooth.errors import LogFormatError
from rsmooth.io import atomic_open


def merge(shards: list[Path]) -> list[str]:
    rows: dict[int, str] = {}
    readers = {
        "\t".join(CERTIFY_HEADER): read_certify_log,
        "\t".join(SEQUENTIAL_HEADER): read_certify_log,
        "\t".join(ATTACK_HEADER): read_attack_log,
    }
    header = None
    for shard in shards:
        first = shard.read_bytes().decode("utf-8", "replace").split("\n", 1)[0]
        if first not in readers or header not in (None, first):
            expected = [header] if header else list(readers)
            raise LogFormatError(f"{shard}: expected a header among {expected}, got {first[:80]!r}", shard)
        header = first
        readers[header](shard)  # every row whole and well-formed, or a LogFormatError naming the shard
        lines = shard.read_text().splitlines()
        for line in lines[1:]:
            idx = int(line.split("\t", 1)[0])
            if idx in rows:
                raise LogFormatError(
                    f"{shard}: index {idx} is also in another shard; the shards overlap", shard
                )
            rows[idx] = line
    return [header, *(rows[i] for i in sorted(rows))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("shards", type=Path, nargs="+")
    args = parser.parse_args(argv)
    lines = merge(args.shards)
    with atomic_open(args.output) as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"{args.output}: {len(lines) - 1} rows from {len(args.shards)} shards")


if __name__ == "__main__":
    main()
