#!/usr/bin/env python
"""The empirical-robustness analysis of a run: figures, per-model accuracy and the certificate audit
(rsmooth.analysis.empirical_report), from the attack plan the workflow writes."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.analysis.empirical_report import write_empirical_analysis
from rsmooth.analysis.provenance import collect_provenance
from rsmooth.io import read_config_file
from rsmooth.pipeline import load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    provenance = collect_provenance(config, {"empirical": config["empirical"]["seed"]})
    written = write_empirical_analysis(read_config_file(args.plan), args.out, provenance)
    print(f"wrote {len(written)} files under {args.out}")


if __name__ == "__main__":
    main()
