"""Every shipped preset runs to its report: each at toy scale (rsmooth.pipeline.toy_config) on synthetic
stand-ins, every experiment and stage kept, through aggregation, figures and ``--report``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rsmooth.pipeline import complete_config, grid_models, toy_config

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
PRESETS = ["config.yaml", "imagenet.yaml", "imagenet_smoothmix.yaml", "mnist.yaml", "quickstart.yaml"]


def load(preset: str) -> dict:
    return yaml.safe_load((ROOT / "config" / preset).read_text())


def test_every_complete_preset_is_run_here():
    shipped = {p.name for p in (ROOT / "config").glob("*.yaml")}
    assert shipped - {"demo.yaml"} == set(PRESETS)  # the demo runs end to end in tests/test_workflow.py


@pytest.mark.parametrize("preset", PRESETS)
def test_toy_config_keeps_every_experiment_and_stage_at_one_model_each(preset):
    config = load(preset)
    toy = toy_config(config)
    assert list(toy["experiments"]) == list(config["experiments"])
    assert set(toy) >= set(config) - {"throughput"}
    models = grid_models(complete_config(toy))
    # One model per experiment (two experiments may ask for the same model, which is trained once).
    asked = {name for model in models.values() for name in model.experiments}
    assert asked == set(config["experiments"]) and len(models) <= len(config["experiments"])
    assert all(m.train["epochs"] == 1 and m.train["arch"] for m in models.values())
    assert all(m.train.get("batches_per_epoch") is None for m in models.values())  # one pass of the toy set
    assert toy["data"]["source"] == "synthetic" and toy["certify"]["n"] <= 32
    if "pretraining" in config:  # the fine-tuned models find their pre-training cell
        assert all(len(v) == 1 for v in toy["pretraining"]["grid"].values())
        assert any(m.pretrain for m in models.values())


def test_toy_config_refuses_a_partial_override():
    with pytest.raises(ValueError, match="complete preset"):
        toy_config({"certify": {"images_per_job": 250}})


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory) -> dict[str, Path]:
    """One toy run of each preset with its report, all at once (their jobs are small and short, so
    running them side by side keeps both cores busy), shared by the tests below."""
    runs = {}
    for preset in PRESETS:
        workdir = tmp_path_factory.mktemp(preset.replace(".yaml", ""))
        configfile = workdir / "toy.yaml"
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "toy_config.py"), str(ROOT / "config" / preset), str(configfile)],
            check=True,
        )  # fmt: skip
        # The run, then its report, in one shell line per preset.
        command = " && ".join(
            shlex.join([sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile",
                      str(configfile), "--directory", str(workdir), *args])
            for args in (("--cores", "1"), ("--report", "report.html"))
        )  # fmt: skip
        log = open(workdir / "pytest-run.log", "w")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(command, shell=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        runs[preset] = (workdir, process, log)
    for preset, (workdir, process, log) in runs.items():
        process.wait(timeout=1800)
        log.close()
        assert process.returncode == 0, f"{preset}:\n" + (workdir / "pytest-run.log").read_text()[-6000:]
    return {preset: workdir for preset, (workdir, _, _) in runs.items()}


@pytest.fixture(params=PRESETS)
def toy_run(request, toy_runs):
    return request.param, toy_runs[request.param]


def test_preset_runs_to_its_report_with_its_data_sets_rows(toy_run):
    preset, workdir = toy_run
    dataset = load(preset)["training"]["dataset"]
    analysis = workdir / "results" / "analysis"
    grid = json.loads((analysis / "grid.json").read_text())
    models = {c["model"] for c in grid["certifications"]}
    assert models == set(grid_models(complete_config(toy_config(load(preset)))))
    # Every certification log has its row in the per-model table, and the scorecard compares this data set.
    cells = pd.read_csv(analysis / "cells.csv")
    assert len(cells) == len(grid["certifications"])
    card = pd.read_csv(analysis / "scorecard.csv")
    assert len(card) and set(card["dataset"]) == {dataset}
    assert card["run_value"].notna().any()
    for table in ("per_model", "envelope", "linf", "acr"):
        assert (analysis / "tables" / f"{table}.html").stat().st_size > 200
    report = (workdir / "report.html").read_text()
    assert len(report) > 100_000 and "Scorecard" in report
    if load(preset)["certify"].get("cohen_skip"):  # the paper-protocol check beside a sequential run
        check = pd.read_csv(analysis / "protocol_check.csv")
        assert set(check["model"]) == models and check["images"].min() >= 1
        assert (analysis / "scorecard_cohen.csv").exists() and "protocol_check.html" in report
    # docutils reports a caption that is not valid reStructuredText (and renders it wrongly) on the log only.
    errors = [line for line in (workdir / "pytest-run.log").read_text().splitlines() if "(ERROR/" in line]
    assert not errors, f"{preset}: the report's captions: {errors}"
