#!/usr/bin/env python
"""Estimate what a pipeline config costs: GPU-hours per stage and experiment, SLURM jobs, disk (rsmooth.plan).

python scripts/plan.py config/config.yaml                       # text tables on stdout
python scripts/plan.py config/mnist.yaml --out results/plan     # also plan.csv and plan.html there
python scripts/plan.py config/imagenet.yaml --throughput my_gpu.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from rsmooth.io import atomic_open
from rsmooth.plan import DEFAULT_THROUGHPUT, load_throughput, plan_config, write_csv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="pipeline config (YAML, or the workflow's config.json)")
    parser.add_argument("--throughput", type=Path, help="YAML/JSON figures replacing the defaults")
    parser.add_argument("--out", type=Path, help="folder for plan.csv and plan.html")
    parser.add_argument("--name", help="the config's name in the tables (default: the file name)")
    args = parser.parse_args(argv)
    # The throughput file is checked first, so that a bad one stops before any work.
    throughput = load_throughput(args.throughput) if args.throughput else DEFAULT_THROUGHPUT
    text = args.config.read_text()
    config = json.loads(text) if args.config.suffix == ".json" else yaml.safe_load(text)
    plan = plan_config(config, throughput, name=args.name or str(args.config))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(plan, args.out / "plan.csv")
        with atomic_open(args.out / "plan.html") as handle:
            handle.write(plan.html())
    print(plan.text(), end="")


if __name__ == "__main__":
    main()
