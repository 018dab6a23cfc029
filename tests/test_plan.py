"""The cost planner (rsmooth.plan, scripts/plan.py) and the workflow's `plan` rule."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rsmooth.html_page import STYLESHEET
from rsmooth.pipeline import complete_config, load_config
from rsmooth.plan import DEFAULT_THROUGHPUT, load_throughput, method_factor, plan_config, write_throughput

ROOT = Path(__file__).resolve().parents[1]


def small_config() -> dict:
    return {
        "data": {"root": "resources/data", "source": "download"},
        "training": {"dataset": "cifar10", "arch": "cifar_resnet110", "epochs": 2, "sigma": 0.25},
        "experiments": {
            "cohen": {"grid": {"method": ["gaussian"], "sigma": [0.25]}},
            "adv": {
                "grid": {
                    "method": ["smoothadv"],
                    "attack": ["pgd"],
                    "sigma": [0.25],
                    "eps": [0.5],
                    "steps": [4],
                }
            },
        },
        "certify": {"n0": 100, "n": 1000, "alpha": 0.001, "skip": 100, "shards": 2},
    }


@pytest.fixture
def figures(tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "gpu": "test GPU",
                "train_images_per_second": {"cifar_resnet110": 100.0},
                "certify_samples_per_second": {"cifar_resnet110": 1000.0},
            }
        )
    )
    return load_throughput(path)


def test_the_plan_of_a_small_config_is_the_cost_computed_by_hand(figures):
    plan = plan_config(complete_config(small_config()), figures)
    # Training: 2 epochs x 50,000 images / 100 per s; SmoothAdv T = 4, m = 1 on a ResNet costs
    # 1 + 4 x (2.1 - 1) / 2 = 3.2 Gaussian images (the ResNet-110 benchmark row has T = 2).
    gaussian, adv = 2 * 50_000 / 100, 2 * 50_000 * 3.2 / 100
    # Certification: every 100th of the 10,000 test images, 100 + 1,000 samples at 1,000 per s, per model.
    cohen = 2 * 100 * 1_100 / 1_000
    sequential = 2 * 100 * (1_000 / 10.6) / 1_000
    rows = {r["stage"].split(" (")[0]: r for r in plan.stages}
    assert rows["training: gaussian"]["gpu_hours"] == pytest.approx(gaussian / 3600)
    assert rows["training: smoothadv"]["gpu_hours"] == pytest.approx(adv / 3600)
    assert rows["certification: CERTIFY"]["gpu_hours"] == pytest.approx(cohen / 3600)
    assert rows["certification: sequential"]["gpu_hours"] == pytest.approx(sequential / 3600)
    assert rows["certification: CERTIFY"]["cumulative_cohen"] == pytest.approx(
        (gaussian + adv + cohen) / 3600
    )
    assert rows["certification: sequential"]["cumulative_sequential"] == pytest.approx(
        (gaussian + adv + sequential) / 3600
    )
    assert plan.total_gpu_hours == pytest.approx((gaussian + adv + cohen) / 3600)
    assert plan.gpu_jobs == 2 + 2 * 2  # two models, two shards each
    by_experiment = {r["experiment"]: r["gpu_hours"] for r in plan.experiments}
    assert by_experiment == pytest.approx(
        {"cohen": (gaussian + cohen / 2) / 3600, "adv": (adv + cohen / 2) / 3600}
    )
    # Disk: 12 bytes per parameter per model (model.pt and its resume file), 60 bytes per log row.
    assert plan.disk_gb == pytest.approx((2 * 12 * 1.73e6 + 2 * 100 * 60) / 1e9)
    assert "test GPU" in plan.text() and "test GPU" in plan.html()
    assert f"<style>{STYLESHEET}</style>" in plan.html() and "<h2>Plan of " in plan.html()


def test_method_factors_scale_attack_steps_and_noise_draws():
    lenet = {
        "arch": "lenet",
        "method": "smoothadv",
        "attack": "pgd",
        "steps": 2,
        "num_noise_vec": 4,
        "multi_noise": True,
    }
    assert method_factor(lenet) == pytest.approx(12.9)  # the benchmarked setting gets its measured factor
    # m = 8, T = 10: 8 trained copies + 8 x 10 passes at (12.9 - 4) / (4 x 2) each.
    assert method_factor({**lenet, "steps": 10, "num_noise_vec": 8}) == pytest.approx(8 + 80 * 8.9 / 8)
    assert method_factor({"arch": "lenet", "method": "macer", "num_noise_vec": 8}) == pytest.approx(20.3 / 2)
    assert method_factor({"arch": "cifar_resnet110", "method": "gaussian"}) == 1.0


def test_a_sequential_config_counts_the_sequential_procedure_in_its_total():
    config = small_config()
    config["certify"]["procedure"] = "sequential"
    plan = plan_config(complete_config(config))
    sequential = next(r for r in plan.stages if r["stage"].startswith("certification: sequential"))
    assert sequential["configured"] and plan.procedure == "sequential"
    assert plan.total_gpu_hours == pytest.approx(sequential["cumulative_sequential"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"certify_rate": 3}, "unknown key 'certify_rate'"),
        ({"backward_cost": -1}, "backward_cost must be a positive number, got -1"),
        (
            {"certify_samples_per_second": {"lenet": "fast"}},
            "certify_samples_per_second.lenet must be a positive",
        ),
        ({"method_factors": {"macer": math.inf}}, "method_factors.macer must be a positive number"),
        ({"method_factors": [1, 2]}, "'method_factors' must map names to numbers"),
        ({"gpu": 5}, "'gpu' must name the GPU"),
        ([1, 2], "a throughput file is a mapping"),
    ],
)
def test_a_bad_throughput_file_is_rejected_naming_the_file_and_the_bad_entry(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"bad\.json") as err:
        load_throughput(path)
    assert message in str(err.value)


def test_written_throughput_files_load_back_and_bad_figures_write_nothing(tmp_path):
    path = write_throughput(
        tmp_path / "t.yaml", {"gpu": "A100", "certify_samples_per_second": {"resnet50": 2500.0}}
    )
    loaded = load_throughput(path)
    assert loaded.gpu == "A100" and loaded.certify_rate("resnet50") == 2500.0
    assert loaded.certify_rate("lenet") == DEFAULT_THROUGHPUT.certify_rate("lenet")  # the rest stays default
    with pytest.raises(ValueError, match=r"certify_samples_per_second\.resnet50 must be a positive number"):
        write_throughput(tmp_path / "bad.yaml", {"certify_samples_per_second": {"resnet50": -1}})
    assert not (tmp_path / "bad.yaml").exists()
    # A second benchmark adds its figures to the same file; another GPU's figures are refused.
    write_throughput(path, {"gpu": "A100", "certify_samples_per_second": {"lenet": 9e5}}, update=True)
    assert (
        load_throughput(path).certify_rate("resnet50") == 2500.0
        and load_throughput(path).certify_rate("lenet") == 9e5
    )
    with pytest.raises(ValueError, match="for 'A100', these for 'H100'"):
        write_throughput(path, {"gpu": "H100"}, update=True)


def test_the_certification_benchmark_writes_a_throughput_file_the_planner_reads(tmp_path):
    out = tmp_path / "gpu.yaml"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/certify_throughput.py"), "--depth", "20", "--images", "1",
         "--n0", "10", "--n", "40", "--batch", "40", "--repeats", "1", "--variants", "fp32", "--throughput-out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = load_throughput(out)
    assert loaded.gpu.startswith("CPU") and loaded.certify_rate("cifar_resnet20") > 0


def test_the_script_rejects_a_bad_throughput_file_before_any_work(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plan as script
    finally:
        sys.path.pop(0)
    bad = tmp_path / "gpu.yaml"
    bad.write_text("backward_cost: zero\n")
    with pytest.raises(ValueError, match=r"gpu\.yaml: backward_cost"):
        # The config does not exist: the throughput file is checked first.
        script.main([str(tmp_path / "missing.yaml"), "--throughput", str(bad)])


def test_the_script_writes_the_csv_and_html_and_prints_the_tables(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plan as script
    finally:
        sys.path.pop(0)
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(small_config()))
    script.main([str(config), "--out", str(tmp_path / "out")])
    assert "certification: CERTIFY" in capsys.readouterr().out
    assert (tmp_path / "out" / "plan.csv").read_text().startswith("table,")
    assert DEFAULT_THROUGHPUT.gpu in (tmp_path / "out" / "plan.html").read_text()


def test_the_plan_rule_plans_in_a_dry_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(ROOT / "config/demo.yaml"),
         "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(tmp_path), "runtimes"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    stats = result.stdout
    assert any(line.split()[:2] == ["plan", "1"] for line in stats.splitlines()), stats[-2000:]


def small_attack_config() -> dict:
    """small_config with an empirical study: the Gaussian model attacked at two eps with two settings."""
    config = small_config()
    config["empirical"] = {
        "cells": ["gaussian_sigma-0.25"],
        "eps": [0.25, 0.5],
        "steps": 5,
        "attacks": {"plugin": {"num_noise": [2], "n": [100]}, "vanilla": {"base_attack": True, "n": [100]}},
    }
    return config


def test_the_attacks_of_a_small_config_cost_what_the_schema_defaults_give(figures):
    plan = plan_config(complete_config(small_attack_config()), figures)
    # The schema's empirical.skip 20: 500 of the 10,000 test images, in one job (images_per_job of CIFAR-10).
    # Per image: T = 5 steps x m draws x 3 (forward + backward) passes, then PREDICT's n = 100 samples, at
    # 1,000 samples per s; m = 2 (plugin) and 1 (vanilla, on the base classifier); two eps.
    seconds = 2 * 500 * ((5 * 2 * 3 + 100) + (5 * 1 * 3 + 100)) / 1_000
    attacks = next(r for r in plan.stages if r["stage"] == "attacks (empirical)")
    assert attacks["jobs"] == 2 * 2  # two eps x two settings, one job each
    assert attacks["gpu_hours"] == pytest.approx(seconds / 3600)
    rules = {r["rule"]: r["jobs"] for r in plan.rules}
    assert rules["attack"] == 4


def test_the_plan_without_empirical_skip_is_the_plan_with_the_schema_default(figures):
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    default_skip = schema["properties"]["empirical"]["properties"]["skip"]["default"]
    explicit = small_attack_config()
    explicit["empirical"]["skip"] = default_skip
    assert "skip" not in small_attack_config()["empirical"]
    assert plan_config(complete_config(small_attack_config()), figures) == plan_config(
        complete_config(explicit), figures
    )


def test_the_plan_of_a_partial_override_is_the_paper_plan_with_the_override(tmp_path):
    override = tmp_path / "jobs.yaml"
    override.write_text("certify: {images_per_job: 250}\n")
    paper = plan_config(load_config(ROOT / "config/config.yaml"))
    jobs = plan_config(load_config(override))
    rules = {r["rule"]: r for r in paper.rules}
    changed = {r["rule"]: r for r in jobs.rules}
    # The paper grid: 900 cells of every 20th image (500 images: one job at 250 or 1,000 per job, then two) and
    # 15 of the whole 10,000-image test set (10 jobs of 1,000, now 40 of 250).
    assert rules["certify"]["jobs"] == 900 + 15 * 10
    assert changed["certify"]["jobs"] == 900 * 2 + 15 * 40
    assert changed["certify"]["gpu_hours"] == pytest.approx(rules["certify"]["gpu_hours"])
    assert {r: changed[r] for r in changed if r != "certify"} == {
        r: rules[r] for r in rules if r != "certify"
    }
    # The paper's attacks: 874 jobs, 666 GPU-hours (not the 17,480 jobs of a skip of 1).
    assert rules["attack"]["jobs"] == 874 and rules["attack"]["gpu_hours"] == pytest.approx(666.4, abs=0.1)


def test_the_script_plans_a_partial_override_over_the_paper_config(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plan as script
    finally:
        sys.path.pop(0)
    override = tmp_path / "jobs.yaml"
    override.write_text("certify: {images_per_job: 250}\n")
    script.main([str(override)])
    assert "4,193 GPU jobs" in capsys.readouterr().out
