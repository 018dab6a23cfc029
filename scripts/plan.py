#!/usr/bin/env python
"""Estimate what a pipeline config costs: GPU-hours per stage and experiment, SLURM jobs, disk (rsmooth.plan).

python scripts/plan.py config/config.yaml                       # text tables on stdout
python scripts/plan.py config/mnist.yaml --out results/plan     # also plan.csv and plan.html there
python scripts/plan.py config/imagenet.yaml --throughput my_gpu.yaml
python scripts/plan.py jobs.yaml                                # a partial override, over config/config.yaml

The config is loaded as the workflow loads it (rsmooth.pipeline.load_config): merged over the paper config
when it has no `experiments`, with every schema default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.io import atomic_open
from rsmooth.pipeline import load_config
from rsmooth.plan import DEFAULT_THROUGHPUT, load_throughput, plan_config, write_csv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "config", type=Path, nargs="+", help="pipeline config file(s) (YAML, or the workflow's config.json)"
    )
    parser.add_argument("--throughput", type=Path, help="YAML/JSON figures replacing the defaults")
    parser.add_argument("--out", type=Path, help="folder for plan.csv and plan.html")
    parser.add_argument("--name", help="the config's name in the tables (default: the file name)")
    args = parser.parse_args(argv)
    # The throughput file is checked first, so that a bad one stops before any work.
    throughput = load_throughput(args.throughput) if args.throughput else DEFAULT_THROUGHPUT
    config = load_config(*args.config)
    plan = plan_config(config, throughput, name=args.name or " + ".join(str(f) for f in args.config))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(plan, args.out / "plan.csv")
        with atomic_open(args.out / "plan.html") as handle:
            handle.write(plan.html())
    print(plan.text(), end="")


if __name__ == "__main__":
    main()
