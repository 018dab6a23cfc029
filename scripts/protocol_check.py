#!/usr/bin/env python
"""The paper-protocol check of a sequential run (certify.cohen_skip; rsmooth.analysis.protocol_check): the
CERTIFY logs of a subset beside the sequential logs of the same images, and their scorecard against the papers.

Reads ``grid.json`` (written by the workflow with a ``cohen_log`` beside each certification log) and
``config.json``. Writes under ``--out``: ``protocol_check.{csv,html}`` and ``scorecard_cohen.csv``, with the
run's provenance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.analysis.protocol_check import write_protocol_check
from rsmooth.io import read_config_file
from rsmooth.pipeline import load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    table, card = write_protocol_check(read_config_file(args.grid), load_config(args.config), args.out)
    discordant = int((table["CERTIFY only"] + table["sequential only"]).sum())
    ran = (card["status"] != "not run").sum()
    print(
        f"{len(table)} (model, sigma, radius) rows, {discordant} discordant; {ran} paper cells under CERTIFY"
    )


if __name__ == "__main__":
    main()
