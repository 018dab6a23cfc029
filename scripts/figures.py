#!/usr/bin/env python
"""Figures of a run (rsmooth.analysis.figures.write_figures) beside the papers: certified accuracy against
radius (the models, the envelope per method and the models per method and sigma as small multiples with the
papers' published points, the runs' Clopper-Pearson bands and CERTIFY's largest certifiable radius), one
representative SmoothAdv model per sigma (SmoothAdv Figure 1), the ablations over m_train, eps and training
method (Figures 4-6), and a paper-vs-run scatter per paper table. A figure with nothing to show is not
written: --out is the figures' directory, emptied of earlier PNGs first, and the report lists what is there.
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
    radii = config["analysis"]["radii"]
    dataset = config["training"]["dataset"]
    # A figure this run cannot draw must not survive from an earlier run in the same directory.
    for stale in args.out.glob("*.png") if args.out.is_dir() else ():
        stale.unlink()
    written = write_figures(
        certifications,
        args.out,
        max_radius=figure_max_radius(dataset, radii),
        provenance=collect_provenance(config),
        dataset=dataset,
        certify=config["certify"],
    )
    print(f"{len(written)} figures of {len(certifications)} logs written to {args.out}:")
    print("\n".join(f"  {p.name}" for p in written))


if __name__ == "__main__":
    main()
