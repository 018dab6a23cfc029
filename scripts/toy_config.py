#!/usr/bin/env python
"""Check a preset before the cluster: write its toy-scale config (rsmooth.pipeline.toy_config), which keeps every
experiment and stage of the preset, one model per experiment, one epoch, on synthetic stand-ins, with tiny
CERTIFY and attack settings, and runs through aggregation, figures and the report in minutes on a CPU.

python scripts/toy_config.py config/mnist.yaml results/toy/mnist.yaml
snakemake --cores 2 --configfile results/toy/mnist.yaml --directory results/toy/mnist
snakemake --configfile results/toy/mnist.yaml --directory results/toy/mnist --report report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from rsmooth.errors import ConfigFileError
from rsmooth.io import atomic_open, read_config_file
from rsmooth.pipeline import toy_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("preset", type=Path, help="a complete preset (config/*.yaml)")
    parser.add_argument("out", type=Path, help="where to write the toy config (YAML)")
    args = parser.parse_args(argv)
    try:
        toy = toy_config(read_config_file(args.preset))
    except (ConfigFileError, ValueError) as error:
        parser.error(f"{args.preset}: {error}")
    with atomic_open(args.out) as handle:
        yaml.safe_dump(toy, handle, sort_keys=False)


if __name__ == "__main__":
    main()
