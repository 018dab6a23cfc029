#!/usr/bin/env python
"""Aggregate the certification logs of a run into the papers' tables, a per-(model, sigma) table, the
scorecard against the papers' numbers, and the configuration page of the report (rsmooth.analysis.results).

Reads ``grid.json`` (models, their hyper-parameters and experiments, and the certification logs; written by
the workflow) and ``config.json``. Writes under ``--out``: ``tables/<name>.{csv,md,tex,html}``,
``scorecard.{csv,html}``, ``cells.{csv,html}`` and ``configuration.html``; every file carries the run's
provenance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.analysis.results import write_results
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
    card, certifications = write_results(read_config_file(args.grid), load_config(args.config), args.out)
    ran = (card["status"] != "not run").sum()
    print(f"{len(certifications)} logs; scorecard: {ran} of {len(card)} paper cells run")


if __name__ == "__main__":
    main()
