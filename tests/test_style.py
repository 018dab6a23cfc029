"""The code base stays `ruff` (lint and format) and `snakefmt` clean, as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsmooth import TORCH_FREE_MODULES

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    snakefiles = [p for p in (ROOT / "workflow").rglob("*") if p.name == "Snakefile" or p.suffix == ".smk"]
    if not snakefiles:
        pytest.skip("no Snakemake files yet")
    snakefmt = shutil.which("snakefmt")
    assert snakefmt, "snakefmt is not installed (pip install -e '.[dev]')"
    result = run(snakefmt, "--check", *map(str, snakefiles))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_torch_free_modules_import_without_torch(module):
    # Each in a fresh interpreter: the rule is about what importing the module itself pulls in.
    code = f"import sys, {module}; print(sorted({{'torch', 'torchvision'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"{module} imports {result.stdout.strip()}"
