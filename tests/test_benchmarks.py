"""The GPU benchmark script cannot rot: its smoke mode runs every step on the CPU at toy size."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
