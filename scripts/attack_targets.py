#!/usr/bin/env python
"""Choose the models to attack: for each envelope group and each eps, the (cell, sigma) whose certification
log has the best certified accuracy at radius eps (ties: higher clean accuracy, then listing order), as
Salman et al. attacked "the best model for that radius".

Reads ``--groups`` (JSON: group -> list of [cell, sigma, certification log]) and writes ``--out`` (JSON:
group -> eps -> {cell, sigma}).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsmooth.analysis.metrics import best_per_radius
from rsmooth.io import atomic_open, read_config_file
from rsmooth.logformat import read_certify_log
from rsmooth.pipeline import format_value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=Path, required=True)
    parser.add_argument("--eps", type=float, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    targets = {}
    for group, members in read_config_file(args.groups).items():
        logs = {f"{cell}@{sigma}": read_certify_log(log) for cell, sigma, log in members}
        where = {f"{cell}@{sigma}": (cell, sigma) for cell, sigma, _ in members}
        best = best_per_radius(logs, args.eps)
        targets[group] = {
            format_value(eps): dict(zip(("cell", "sigma"), where[model], strict=True))
            for eps, model in zip(best["radius"], best["model"], strict=True)
        }
    with atomic_open(args.out) as handle:
        json.dump(targets, handle, indent=1, sort_keys=True)
    print(f"{args.out}: targets of {len(targets)} groups at {len(args.eps)} eps")


if __name__ == "__main__":
    main()
