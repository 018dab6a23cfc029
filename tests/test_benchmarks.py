"""The GPU benchmark script cannot rot: its smoke mode runs every step on the CPU at toy size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_smoke_run_finishes_every_step_and_prints_every_table(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--smoke"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    text = (tmp_path / "gpu-benchmarks.txt").read_text()
    assert "stopped at" not in text and "failed" not in text
    assert text.count("== ") == 8
    assert text.count("vs reference") == 3  # the three CERTIFY tables of rsmooth, each against the reference
    assert "bf16 matmul" in text and "of bf16 mm" in text
    assert "rsmooth bf16+cl (auto)" in text and "m_test    4 bf16+cl" in text
    assert "smoothmix-m2" in text


DIGITS = ROOT.parent / "shared" / "data" / "mnist-8k"


@pytest.mark.slow
@pytest.mark.skipif(not DIGITS.is_dir(), reason=f"the real MNIST digits are not at {DIGITS}")
def test_quickstart_benchmark_smoke_run_trains_and_certifies_the_three_models_on_real_digits(tmp_path):
    """The GPU quickstart run (benchmarks/quickstart_real.py, gpu.sh --quickstart) at toy length on the CPU."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quickstart_real.py"), str(DIGITS), "--workdir", str(tmp_path),
         "--smoke", "--skip", "200", "--cores", "2", "--workers", "0"],
        capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "split: 7000 training and 1000 test digits" in done.stdout
    assert done.stdout.count("\n  train ") == 3 and done.stdout.count("\ncertify ") == 3
    config = (tmp_path / "quickstart-real.yaml").read_text()
    assert "procedure: cohen" in config and "batches_per_epoch: 2" in config
    cells = pd.read_csv(tmp_path / "results" / "analysis" / "cells.csv")
    assert len(cells) == 3 and (cells["images"] == 5).all()  # every 200th of the 1,000 test digits
    assert (cells["ACR"] >= 0).all()  # CERTIFY: an ACR, not the sequential procedure's placeholder
