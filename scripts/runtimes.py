#!/usr/bin/env python
"""Collect Snakemake's benchmark files into one run-time table (HTML for the report, CSV beside it); with
``--plan``, the GPU time measured per rule beside the cost plan's estimate (``rsmooth.plan``), to 3
significant figures, also as ``<output>.plan.csv`` and, with ``--plan-figure``, as a bar chart. The efficiency
per rule (GPU-hours, images and samples per second, jobs retried; ``rsmooth.analysis.efficiency``) follows,
from the work logs under ``--results`` and the SLURM logs under ``--slurm-logs``, and is also written to
``<output>.efficiency.csv``; ``--config`` (the workflow's config.json) gives CERTIFY's N0 + N and the training
images per epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rsmooth.analysis.efficiency import (
    certify_samples_per_image,
    efficiency_html,
    plan_vs_measured,
    plan_vs_measured_html,
    plot_plan_vs_measured,
    read_benchmark,
    rule_efficiency,
    train_images_per_epoch,
)
from rsmooth.html_page import display_frame, interactive_table, static_table, write_page
from rsmooth.io import atomic_open
from rsmooth.pipeline import load_config


def collect(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        bench = read_benchmark(path)
        relative = path.relative_to(root).with_suffix("")
        rows.append(
            {
                "rule": relative.parts[0],
                "job": "/".join(relative.parts[1:]),
                "seconds": bench.seconds,
                "max_rss_mb": bench.max_rss_mb,
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])


def collect_none() -> pd.DataFrame:
    return pd.DataFrame(columns=["rule", "job", "seconds", "max_rss_mb"]).astype({"seconds": float})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmarks", type=Path, help="folder of benchmark TSVs, one sub-folder per rule")
    parser.add_argument("output", type=Path, help="HTML file")
    parser.add_argument("--plan", type=Path, help="plan.csv of scripts/plan.py: estimates shown beside")
    parser.add_argument("--plan-figure", type=Path, help="PNG: planned and measured GPU time per rule")
    parser.add_argument("--results", type=Path, help="the run's results folder: work done and rates")
    parser.add_argument("--slurm-logs", type=Path, help="the SLURM executor's log folder: jobs retried")
    parser.add_argument("--config", type=Path, help="the workflow's config.json: N0 + N, images per epoch")
    args = parser.parse_args(argv)
    jobs = collect(args.benchmarks) if args.benchmarks.is_dir() else collect_none()
    totals = jobs.groupby("rule")["seconds"].agg(["count", "sum", "mean", "max"]).reset_index()
    totals.columns = ["rule", "jobs", "total seconds", "mean seconds", "max seconds"]
    planned = plan_vs_measured(jobs, pd.read_csv(args.plan)) if args.plan else None
    config = load_config(args.config) if args.config else {}
    efficiency = rule_efficiency(
        args.benchmarks,
        args.results,
        args.slurm_logs,
        samples_per_image=certify_samples_per_image(config),
        train_images=train_images_per_epoch(config) if config else {},
    )
    with atomic_open(args.output.with_suffix(".csv")) as handle:
        jobs.to_csv(handle, index=False)
    with atomic_open(args.output.with_suffix(".efficiency.csv")) as handle:
        efficiency.to_csv(handle, index=False)
    plan_section = []
    if planned is not None:
        with atomic_open(args.output.with_suffix(".plan.csv")) as handle:
            planned.to_csv(handle, index=False)
        if args.plan_figure:
            plot_plan_vs_measured(planned, args.plan_figure)
        plan_section = [
            "<h2>Planned and measured GPU time per rule</h2>",
            "<p>The cost plan's estimate (<code>rsmooth.plan</code>, from its throughput figures) beside the wall "
            "time Snakemake's benchmarks measured for the GPU rules' jobs; GPU-seconds and GPU-hours to 3 "
            "significant figures.</p>",
            plan_vs_measured_html(planned),
        ]
    body = "\n".join(
        [
            *plan_section,
            "<h2>Run times per rule</h2>",
            static_table(
                display_frame(totals, digits={c: 1 for c in totals.columns if c.endswith("seconds")})
            ),
            "<h2>Efficiency per rule</h2>",
            efficiency_html(efficiency),
            "<h2>Run time of every job</h2>",
            interactive_table(
                display_frame(
                    jobs,
                    names={"seconds": "Wall time (s)", "max_rss_mb": "Peak memory (MB)"},
                    digits={"seconds": 1, "max_rss_mb": 0},
                ),
                f"Wall time and peak resident memory of each of the {len(jobs)} jobs of this run, from "
                "Snakemake's benchmark files (the last attempt of a retried job).",
                table_id="jobs",
            ),
        ]
    )
    write_page(args.output, "Run times", body)  # a whole page, as every other page of the report
    print(f"{args.output}: {len(jobs)} jobs")


if __name__ == "__main__":
    main()
