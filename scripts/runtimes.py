#!/usr/bin/env python
"""Collect Snakemake's benchmark files into one run-time table (HTML for the report, CSV beside it); with
``--plan``, the GPU-hours measured per rule beside the cost plan's estimate (``rsmooth.plan``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rsmooth.io import atomic_open


def collect(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        bench = pd.read_csv(path, sep="\t")
        relative = path.relative_to(root).with_suffix("")
        rows.append(
            {
                "rule": relative.parts[0],
                "job": "/".join(relative.parts[1:]),
                "seconds": float(bench["s"].iloc[-1]),
                "max_rss_mb": float(pd.to_numeric(bench["max_rss"], errors="coerce").iloc[-1]),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])


def collect_none() -> pd.DataFrame:
    return pd.DataFrame(columns=["rule", "job", "seconds", "max_rss_mb"]).astype({"seconds": float})


def beside_plan(totals: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Per rule (benchmark folder): measured jobs and hours beside the plan's; rules of either side kept."""
    planned = plan[plan["table"] == "rule"][["rule", "jobs", "gpu_hours"]]
    planned = planned.rename(columns={"jobs": "planned jobs", "gpu_hours": "planned GPU-hours"})
    merged = totals.merge(planned, on="rule", how="outer")
    merged["measured hours"] = merged["total seconds"] / 3600
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmarks", type=Path, help="folder of benchmark TSVs, one sub-folder per rule")
    parser.add_argument("output", type=Path, help="HTML file")
    parser.add_argument("--plan", type=Path, help="plan.csv of scripts/plan.py: estimates shown beside")
    args = parser.parse_args(argv)
    jobs = collect(args.benchmarks) if args.benchmarks.is_dir() else collect_none()
    totals = jobs.groupby("rule")["seconds"].agg(["count", "sum", "mean", "max"]).reset_index()
    totals.columns = ["rule", "jobs", "total seconds", "mean seconds", "max seconds"]
    if args.plan:
        totals = beside_plan(totals, pd.read_csv(args.plan))
    with atomic_open(args.output.with_suffix(".csv")) as handle:
        jobs.to_csv(handle, index=False)
    with atomic_open(args.output) as handle:
        handle.write("<h2>Run times per rule</h2>\n")
        handle.write(totals.to_html(index=False, float_format="{:.1f}".format))
        handle.write("\n<h2>Run time of every job</h2>\n")
        handle.write(jobs.to_html(index=False, float_format="{:.1f}".format))
    print(f"{args.output}: {len(jobs)} jobs")


if __name__ == "__main__":
    main()
