"""The Snakemake pipeline: job counts of the paper grid, the SLURM profile, the demo end to end with its
report, and a partial rerun."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
# The README's demo commands; the demo fixture runs exactly these (tests/test_readme.py holds the README to
# them), each in the fixture's own directory.
DEMO_COMMANDS = (
    "snakemake --cores 2 --configfile config/demo.yaml",
    "snakemake --configfile config/demo.yaml --report report.html",
)


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 900) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table Snakemake prints: rule -> number of jobs."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def expected_paper_counts(config: dict) -> dict[str, int]:
    """Job counts computed from the grid by hand (independently of rsmooth.pipeline)."""
    experiments = config["experiments"]
    size = {name: math.prod(len(v) for v in e["grid"].values()) if "grid" in e else len(e["cells"]) for name, e in experiments.items()}  # fmt: skip
    pgd = experiments["smoothadv_pgd"]["grid"]
    multi = experiments["smoothadv_pgd_multinoise"]["grid"]
    # PGD with m = 1 in the multi-noise sweep is the same model as in the T sweep (one noise draw: both
    # update rules coincide), so those cells are trained once.
    shared = (
        len(multi["sigma"])
        * len(multi["eps"])
        * len(set(multi["steps"]) & set(pgd["steps"]))
        * (1 in multi["num_noise_vec"])
    )
    models = sum(size.values()) - shared
    vanilla = experiments["vanilla_pgd"]
    logs = models + size["vanilla_pgd"] * (len(vanilla["certify_sigmas"]) - 1)
    # The SmoothAdv experiments certify every 20th test image (500: one job of at most images_per_job), the
    # SmoothMix ones all 10,000 (ten jobs and a merge per model and sigma).
    per_job = config["certify"]["images_per_job"]
    full = sum(size[name] for name, e in experiments.items() if "certify_skip" not in e)
    assert {e.get("certify_skip") for e in experiments.values()} == {20, None}
    assert math.ceil(10_000 / 20 / per_job) == 1
    shards = math.ceil(10_000 / per_job)
    pretrain = math.prod(len(v) for v in config["pretraining"]["grid"].values())
    # The empirical study: the attacks themselves are planned only once the envelope choice (a checkpoint)
    # has run, so a dry run shows its four fixed jobs.
    empirical = dict.fromkeys(
        ("describe_attack_groups", "choose_attack_targets", "describe_attacks", "empirical"), 1
    )
    return {
        "prepare_data": 3, "pretrain": pretrain, "merge_pseudo_labels": 1, "train": models,
        "certify": logs - full, "certify_shard": full * shards, "merge_certify": full, "describe_grid": 1,
        "aggregate": 1, "figures": 1, "runtimes": 1, "plan": 1, "all": 1, **(empirical if "empirical" in config else {}),
    }  # fmt: skip


def test_paper_config_plans_every_job_of_the_grid():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    counts = job_counts(snakemake("-n", "--quiet", "rules"))
    assert counts == {**expected_paper_counts(config), "total": sum(expected_paper_counts(config).values())}
    # The paper's grid, spelled out: SmoothAdv's 891 models, SmoothMix's 3 complementary cells and the
    # 9 baseline models of SmoothMix's Table 6.
    assert counts["train"] == 903 and counts["certify"] == 900 and counts["certify_shard"] == 150


def test_slurm_profile_dry_run_submits_gpu_rules_and_keeps_light_rules_local():
    output = snakemake("-n", "--profile", "slurm", "--configfile", "config/demo.yaml")
    counts = job_counts(output)
    assert counts["train"] == 11 and counts["certify_shard"] == 24
    profile = yaml.safe_load((ROOT / "slurm" / "profile.yaml").read_text())
    assert profile["executor"] == "slurm"
    for rule in ("train", "pretrain", "certify", "certify_shard", "attack", "attack_shard"):
        assert profile["set-resources"][rule]["gpu"] == 1
        assert "tasks" not in profile["set-resources"][rule]  # would become --ntasks-per-gpu
        assert "runtime" not in profile["set-resources"][rule]  # the rules grow it with each attempt
    assert profile["retries"] >= 1


def test_local_runs_do_not_pick_up_slurm_settings():
    assert not (ROOT / "profiles" / "default").exists(), "profiles/default is used by every local run"
    output = snakemake("-n", "--configfile", "config/demo.yaml")
    assert "slurm" not in output.lower()


def decoded_report(report: Path) -> str:
    """The report's text plus every embedded result (base64 data URIs) decoded."""
    text = report.read_text()
    parts = [text]
    for match in re.finditer(r"data:[\w/+.-]+(?:;[\w-]+=[^;,\"]+)*;base64,([A-Za-z0-9+/=]+)", text):
        try:
            parts.append(base64.b64decode(match.group(1)).decode("utf-8", "ignore"))
        except ValueError:
            continue
    return "\n".join(parts)


def demo_arguments(command: str, workdir: Path) -> list[str]:
    """A README demo command's arguments for a run in workdir (its config file by absolute path)."""
    arguments = shlex.split(command)[1:]
    at = arguments.index("--configfile") + 1
    arguments[at] = str(ROOT / arguments[at])
    return [*arguments, "--directory", str(workdir)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    output = snakemake(*demo_arguments(DEMO_COMMANDS[0], workdir))
    return workdir, output


def test_demo_runs_every_stage_and_builds_the_report(demo_run):
    workdir, output = demo_run
    counts = job_counts(output)
    for rule in ("prepare_data", "pretrain", "train_standard_model", "merge_pseudo_labels", "train", "certify_shard", "merge_certify", "aggregate", "figures"):  # fmt: skip
        assert counts.get(rule, 0) >= 1, rule
    # Certified accuracy well above chance (10 classes) for the best model.
    cells = (workdir / "results/analysis/cells.csv").read_text().splitlines()
    header = cells[0].split(",")
    clean = [float(row.split(",")[header.index("clean accuracy")]) for row in cells[1:]]
    assert max(clean) > 0.4
    snakemake(*demo_arguments(DEMO_COMMANDS[1], workdir))
    report = decoded_report(workdir / "report.html")
    for needle in ("Best model per radius", "Scorecard: this run beside the papers", "Per-cell results", "Run times per rule", "config_hash", "smoothadv"):  # fmt: skip
        assert needle in report, needle
    assert "envelopes.png" in report and "ablation_m_train.png" in report
    # Figures beside the papers, each with its own caption; one eps in the demo: no eps ablation is listed.
    assert "per_sigma.png" in report and "paper_vs_run_salman2019_table_2.png" in report
    assert "Models per method and noise level" in report and "Paper against run, one paper table" in report
    assert "ablation_eps.png" not in report and "nothing to compare" not in report
    # No absolute path of this machine (the checkout, the working directory) in what the report shows.
    raw = (workdir / "report.html").read_text()
    for path in (ROOT, workdir):
        assert not re.search(r"(?<![.\w])" + re.escape(str(path)), raw), path


@pytest.fixture(scope="module")
def demo_report(demo_run) -> Path:
    """The demo's report.html, built by the README's report command (once: the test above builds it)."""
    workdir, _ = demo_run
    report = workdir / "report.html"
    if not report.exists():
        snakemake(*demo_arguments(DEMO_COMMANDS[1], workdir))
    return report


def test_the_report_renders_in_headless_chromium(demo_report, tmp_path):
    """Every category, subcategory and result of the demo's report, clicked through in Chromium: figures
    and tables render, every page has the one stylesheet, the interactive tables sort and filter, the
    intro's category links show the category's own list, and the browser logs no error."""
    from headless_chromium import ensure_chromium
    from report_browser import check_report

    chromium, reason = ensure_chromium()
    if chromium is None:
        pytest.skip(reason)
    seen = check_report(demo_report, chromium, shots=tmp_path / "screenshots")
    layout = seen["layout"]
    assert set(layout) == {"Certified robustness", "Run and configuration", "Empirical robustness"}
    assert set(layout["Certified robustness"]) == {
        "Scorecard",
        "Paper tables",
        "Per-model results",
        "Figures",
    }
    assert len(seen["results"]) == sum(n for subs in layout.values() for n in subs.values())
    interactive = {table for _, table, _ in seen["sorted_and_filtered"]}
    assert {"cells", "cells_run", "not_run", "efficiency", "jobs", "accuracy", "audit"} <= interactive
    assert all(Path(shot).stat().st_size > 10_000 for shot in seen["screenshots"])


def test_removing_one_shard_reruns_only_that_shard_and_what_depends_on_it(demo_run):
    workdir, _ = demo_run
    config = str(ROOT / "config" / "demo.yaml")
    shard = next((workdir / "results/certify").glob("gaussian_sigma-0.25/sigma-0.25/shard-1.tsv"))
    merged = shard.parent.parent / "sigma-0.25.tsv"
    before = merged.read_text()
    shard.unlink()
    plan = job_counts(snakemake("-n", "--configfile", config, "--directory", str(workdir)))
    # The Gaussian model is in the empirical study's "cohen" group: its envelope choice is redone with it.
    attack_choice = {"choose_attack_targets": 1, "describe_attacks": 1, "empirical": 1}
    assert plan == {"certify_shard": 1, "merge_certify": 1, "aggregate": 1, "figures": 1, "runtimes": 1, "all": 1, **attack_choice, "total": 9}  # fmt: skip
    counts = job_counts(snakemake("--cores", "2", "--configfile", config, "--directory", str(workdir)))
    assert counts["certify_shard"] == 1 and "train" not in counts
    assert merged.read_text().splitlines() == before.splitlines() or _same_without_time(
        merged.read_text(), before
    )


def test_removing_one_attack_log_reruns_it_without_choosing_the_targets_again(demo_run):
    workdir, _ = demo_run
    config = str(ROOT / "config" / "demo.yaml")
    # An attack of the current plan (re-certification may have changed the envelope's choice). The demo's
    # attack runs are one job each, which writes the log itself.
    plan_file = workdir / "results/analysis/empirical/attacks.json"
    log = workdir / json.loads(plan_file.read_text())["runs"][0]["log"]
    log.unlink()
    plan = job_counts(snakemake("-n", "--configfile", config, "--directory", str(workdir)))
    # The run-time page reads every attack job's benchmark, so it is remade too (seconds, local).
    assert plan == {"attack": 1, "describe_attacks": 1, "empirical": 1, "runtimes": 1, "all": 1, "total": 5}  # fmt: skip
    counts = job_counts(snakemake("--cores", "2", "--configfile", config, "--directory", str(workdir)))
    assert counts["attack"] == 1 and "choose_attack_targets" not in counts
    assert log.exists()


def test_attacks_of_several_jobs_are_sharded_and_merged(demo_run, tmp_path):
    """With empirical.images_per_job below the attacked images, every attack run becomes shards and a merge
    (planned on the demo's recorded target choice; a dry run)."""
    workdir, _ = demo_run
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    images = math.ceil(config["data"]["synthetic"]["n_test"] / config["empirical"]["skip"])
    config["empirical"].pop("shards", None)
    config["empirical"]["images_per_job"] = math.ceil(images / 3)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = len(json.loads((workdir / "results/analysis/empirical/attacks.json").read_text())["runs"])
    # mtime triggers only: the changed config would otherwise redo describe_grid, and with it the target choice
    # (a checkpoint), before any attack job could be planned.
    trigger = ("--rerun-triggers", "mtime")
    plan = job_counts(
        snakemake("-n", "--configfile", str(path), "--directory", str(workdir), *trigger, "--quiet", "rules")
    )
    assert plan["attack_shard"] == 3 * runs and plan["merge_attack"] == runs and "attack" not in plan


def test_demo_empirical_study_and_its_audit(demo_run):
    workdir, _ = demo_run
    empirical = workdir / "results/analysis/empirical"
    accuracy = pd.read_csv(empirical / "accuracy.csv")
    # Two groups x two eps x three settings; at eps 0 no attack: empirical accuracy is PREDICT's accuracy.
    assert len(accuracy) == 12 and set(accuracy["group"]) == {"cohen", "smoothadv"}
    clean = accuracy[accuracy["eps"] == 0.0]
    assert (clean["empirical_accuracy"] > 0.3).all()
    audit = pd.read_csv(empirical / "audit.csv")
    assert (audit["pairs"] >= 0).all() and not audit["above_bound"].any(), audit
    # One n and no gradient-free estimator: only the figures with something to compare are written.
    assert sorted(p.name for p in (empirical / "figures").glob("*.png")) == ["groups.png", "m_test.png"]
    for figure in ("m_test", "groups"):
        assert (empirical / "figures" / f"{figure}.png").stat().st_size > 1000


def _same_without_time(a: str, b: str) -> bool:
    strip = lambda text: [line.rsplit("\t", 1)[0] for line in text.splitlines()]  # noqa: E731
    return strip(a) == strip(b)


def test_invalid_config_is_rejected_before_any_job(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["experiments"]["cohen"]["grid"]["method"] = ["cutmix"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "-n", "--configfile", str(path), "--directory", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cutmix" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_lint_findings_are_the_documented_ones():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", "config/demo.yaml"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    findings = set(re.findall(r"^\s{4}\* (.+?):?$", result.stdout + result.stderr, re.MULTILINE))
    assert shutil.which("snakemake")
    readme = " ".join((ROOT / "README.md").read_text().split())
    for finding in findings:
        assert finding.split(":")[0].strip() in readme, f"undocumented lint: {finding}"
