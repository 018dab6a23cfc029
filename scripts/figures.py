#!/usr/bin/env python
"""Figures of a run (rsmooth.analysis.figures.write_figures): certified accuracy against radius (models,
upper envelopes overall and per sigma, one representative model per sigma: SmoothAdv Figure 1) and the
ablations over m_train, eps and training method (Figures 4-6). An ablation this run has no models for is
drawn as an empty, labelled figure, so that the report always has the same figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmooth.analysis.figures import figure_max_radius, write_figures
from rsmooth.analysis.provenance import collect_provenance
from rsmooth.analysis.results import read_grid
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
    config = load_config(args.config)
    certifications = read_grid(read_config_file(args.grid))
    max_radius = figure_max_radius(config["training"]["dataset"], config["analysis"]["radii"])
    write_figures(certifications, args.out, max_radius=max_radius, provenance=collect_provenance(config))
    print(f"figures of {len(certifications)} logs written to {args.out}")


if __name__ == "__main__":
    main()
