#!/usr/bin/env python
"""The MNIST quickstart on real digits at the paper's length: SmoothMix's Table 4 models (Gaussian at sigma 0.25
and 0.5, SmoothMix at sigma 0.5) trained for the paper's 21,150 SGD steps (90 epochs of 235 batches of 256)
and certified with CERTIFY at N0 100, N 100,000, alpha 0.001, through the workflow, timed stage by stage.

The laptop run (config/quickstart.yaml as shipped: 600 steps, the sequential procedure) is docs/quickstart.md;
this is its GPU counterpart. It splits a pool of real digits in MNIST's idx format (the first digits train, the
last ``--test`` test), writes a complete config derived from config/quickstart.yaml, runs Snakemake in
``--workdir`` (resuming there if run again) and prints each job's wall time from the workflow's benchmark
files and the certified accuracy per model. ``--smoke``: the same on the CPU at toy length (checks the plumbing).

    python benchmarks/quickstart_real.py ../shared/data/mnist-8k --workdir /tmp/quickstart-gpu
    python benchmarks/quickstart_real.py ../shared/data/mnist-8k --workdir /tmp/qs --smoke
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from rsmooth.data.mnist import write_mnist_split
from rsmooth.io import atomic_open

ROOT = Path(__file__).resolve().parents[1]
# The paper's length: 90 epochs of ceil(60,000 / 256) = 235 steps, lr decay at 30 and 60, warm-up 10 epochs.
PAPER_LENGTH = {"epochs": 90, "batches_per_epoch": 235, "lr_step_size": 30, "warmup": 10}
SMOKE_LENGTH = {"epochs": 1, "batches_per_epoch": 2, "batch_size": 32, "lr_step_size": 1, "warmup": 1}


def benchmark_config(*, smoke: bool, skip: int, workers: int) -> dict:
    """config/quickstart.yaml at the paper's length (toy length with ``smoke``), certified with CERTIFY on
    every ``skip``-th test digit of the split written under ``resources/mnist-real``."""
    config = yaml.safe_load((ROOT / "config" / "quickstart.yaml").read_text())
    config["data"] = {"root": "resources/mnist-real", "source": "download"}  # the split is used in place
    config["training"].update(SMOKE_LENGTH if smoke else PAPER_LENGTH, workers=workers)
    certify = {"procedure": "cohen", "n0": 100, "n": 100_000, "alpha": 0.001, "skip": skip, "shards": 1}
    if smoke:
        certify.update(n0=10, n=100, batch=100)
    config["certify"] = {**certify, "seed": 0}
    return config


def stage_times(workdir: Path) -> pd.DataFrame:
    """One row per GPU job from the workflow's benchmark files: stage (train or certify), job, wall seconds."""
    rows = []
    for path in sorted((workdir / "results" / "benchmarks").glob("*/**/*.tsv")):
        stage = path.relative_to(workdir / "results" / "benchmarks").parts[0]
        job = str(path.relative_to(workdir / "results" / "benchmarks" / stage).with_suffix(""))
        rows.append({"stage": stage, "job": job, "seconds": float(pd.read_csv(path, sep="\t")["s"].iloc[0])})
    return pd.DataFrame(rows, columns=["stage", "job", "seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "digits", type=Path, help="a folder with images-idx3-ubyte.gz and labels-idx1-ubyte.gz"
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--test", type=int, default=1000, help="the last this many digits are the test split")
    parser.add_argument("--skip", type=int, default=1, help="certify every skip-th test digit")
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="data loader workers of each training job")
    parser.add_argument("--smoke", action="store_true", help="toy length on the CPU")
    args = parser.parse_args(argv)
    for name in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
        if not (args.digits / name).is_file():
            parser.error(f"{args.digits / name}: no such file (the digits folder holds MNIST idx files)")

    workdir = args.workdir.resolve()
    root = workdir / "resources" / "mnist-real"
    if not (root / ".ready" / "mnist.json").exists():
        train, test = write_mnist_split(
            args.digits / "images-idx3-ubyte.gz", args.digits / "labels-idx1-ubyte.gz", root, args.test
        )
        print(f"split: {train} training and {test} test digits")
    configfile = workdir / "quickstart-real.yaml"
    with atomic_open(configfile) as handle:
        yaml.safe_dump(benchmark_config(smoke=args.smoke, skip=args.skip, workers=args.workers), handle)
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "--cores",
               str(args.cores), "--configfile", str(configfile), "--directory", str(workdir)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    (workdir / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"the workflow failed (exit {done.returncode}); its output: {workdir / 'snakemake.log'}")

    times = stage_times(workdir)
    print(times.to_string(index=False, float_format=lambda s: f"{s:.1f}"))
    print(f"total wall: {wall:.1f} s (the workflow, this call; a resumed run counts only what it ran)")
    cells = pd.read_csv(workdir / "results" / "analysis" / "cells.csv")
    shown = [
        "model",
        "certify sigma",
        "images",
        "clean accuracy",
        *(c for c in cells if c.startswith("r = ")),
        "ACR",
    ]
    print(cells[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
