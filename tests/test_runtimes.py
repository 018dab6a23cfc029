"""The efficiency table of the report (rsmooth.analysis.efficiency, scripts/runtimes.py): GPU-hours, rates and
retries from benchmark files, work logs and SLURM logs laid out as the workflow writes them."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from snakemake.benchmark import BenchmarkRecord, write_benchmark_records

from rsmooth.analysis.efficiency import (
    GPU_RULE_FOLDERS,
    certify_samples_per_image,
    read_benchmark,
    rule_efficiency,
    slurm_retries,
    train_images_per_epoch,
)
from rsmooth.errors import LogFormatError
from rsmooth.html_page import STYLESHEET
from rsmooth.logformat import (
    ATTACK_HEADER,
    CERTIFY_HEADER,
    SEQUENTIAL_HEADER,
    format_attack_row,
    format_row,
    format_sequential_row,
    write_log,
)
from rsmooth.pipeline import load_config

ROOT = Path(__file__).resolve().parents[1]
SHARD = "m/sigma-0.25/shard-{}"
ATTACK_JOB = "m/sigma-0.25/pgd_n-8/eps-0.5/shard-0"
TIME_LIMIT = "slurmstepd: error: *** JOB {} ON node1 CANCELLED AT 2026-01-02T03:04:05 DUE TO TIME LIMIT ***\n"
PREEMPTION = "slurmstepd: error: *** JOB {} ON node1 CANCELLED AT 2026-01-02T03:04:05 DUE TO PREEMPTION ***\n"


def benchmark(results: Path, folder: str, job: str, seconds: float) -> Path:
    path = results / "benchmarks" / folder / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_benchmark_records([BenchmarkRecord(running_time=seconds)], str(path), False)  # Snakemake's writer
    return path


def log(path: Path, rows: dict[int, str], header=CERTIFY_HEADER) -> None:
    """A finished work log, written by rsmooth's own writer (rsmooth.logformat.write_log)."""
    write_log(path, sorted(rows), lambda chunk: [(i, rows[i]) for i in chunk], settings={}, header=header)


def epoch_log(path: Path, seconds: list[float]) -> None:
    # The columns of rsmooth.train.loop.LOG_COLUMNS, as its _write_log writes them.
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch\ttime\tlr\ttrain_loss\ttrain_acc\ttest_loss\ttest_acc\ttest_acc_adv"]
    lines += [f"{e + 1}\t{s:.6g}\t0.1\t2.3\t0.1\t2.3\t0.1\t0" for e, s in enumerate(seconds)]
    path.write_text("\n".join(lines) + "\n")


def slurm_log(slurm: Path, rule: str, wildcards: str, job_id: int, text: str = "") -> None:
    path = slurm / f"rule_{rule}" / wildcards / f"{job_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"Building DAG of jobs...\n{text}")


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run's results folder: two CERTIFY shards (3 images of 2 s, 2 of 1.5 s), one attack shard
    (4 images of 0.5 s), one trained model (epochs of 10, 20, 30 s)."""
    results = tmp_path / "results"
    benchmark(results, "certify", SHARD.format(0), 100.0)
    benchmark(results, "certify", SHARD.format(1), 80.0)
    benchmark(results, "attack", ATTACK_JOB, 36.0)
    benchmark(results, "train", "m", 3600.0)
    log(results / "certify" / f"{SHARD.format(0)}.tsv", {i: format_row(i, 1, 1, 0.5, 2.0) for i in range(3)})
    log(results / "certify" / f"{SHARD.format(1)}.tsv", {i: format_row(i, 1, -1, 0.0, 1.5) for i in (3, 4)})
    log(results / "attack" / f"{ATTACK_JOB}.tsv", {i: format_attack_row(i, 1, 1, 1, 0.5) for i in range(4)}, ATTACK_HEADER)  # fmt: skip
    epoch_log(results / "models" / "m" / "epochs.tsv", [10.0, 20.0, 30.0])
    return results


def slurm_logs(results: Path) -> Path:
    """Job ids 9, 12, 20 are one certification shard's attempts (the first two killed by the time limit); the
    other shard failed once for another reason; training was preempted once; the attack ran once."""
    slurm = results / "logs" / "slurm"
    slurm_log(slurm, "certify_shard", "m_0.25_0", 9, TIME_LIMIT.format(9))
    slurm_log(slurm, "certify_shard", "m_0.25_0", 12, TIME_LIMIT.format(12))
    slurm_log(slurm, "certify_shard", "m_0.25_0", 20)
    slurm_log(slurm, "certify_shard", "m_0.25_1", 40, "RuntimeError: CUDA error: an illegal memory access\n")
    slurm_log(slurm, "certify_shard", "m_0.25_1", 41)
    slurm_log(slurm, "train", "m", 30, PREEMPTION.format(30))
    slurm_log(slurm, "train", "m", 31)
    slurm_log(slurm, "attack_shard", "m_0.25_pgd_n-8_0.5_0", 50)
    slurm_log(slurm, "merge_pseudo_labels", "", 60)  # a CPU rule without wildcards
    return slurm


def table(results: Path, slurm: Path | None, **kwargs):
    efficiency = rule_efficiency(results / "benchmarks", results, slurm, **kwargs)
    return efficiency.set_index("rule")


def test_gpu_hours_and_rates_per_rule(run):
    rows = table(run, None, samples_per_image=100 + 1000, train_images={("train", "m"): 50})
    certify, attack, train = rows.loc["certify"], rows.loc["attack"], rows.loc["train"]
    assert certify["jobs"] == 2 and certify["GPU-hours"] == pytest.approx(180 / 3600)
    assert certify["images"] == 5 and certify["work seconds"] == pytest.approx(3 * 2.0 + 2 * 1.5)
    assert certify["samples"] == 5 * 1100
    assert certify["images/s"] == pytest.approx(5 / 9) and certify["samples/s"] == pytest.approx(5500 / 9)
    assert attack["GPU-hours"] == pytest.approx(0.01) and attack["images"] == 4
    assert attack["images/s"] == pytest.approx(4 / 2.0) and math.isnan(attack["samples/s"])
    assert train["GPU-hours"] == pytest.approx(1.0) and train["epochs"] == 3
    assert train["images"] == 3 * 50 and train["images/s"] == pytest.approx(150 / 60)


def test_unknown_samples_and_images_are_blank_not_guessed(run):
    rows = table(run, None)  # neither N0 + N nor the training images per epoch given
    assert rows.loc["certify", "images"] == 5
    assert pd.isna(rows.loc["certify", "samples"]) and math.isnan(rows.loc["certify", "samples/s"])
    assert rows.loc["train", "epochs"] == 3 and pd.isna(rows.loc["train", "images"])
    assert math.isnan(rows.loc["train", "images/s"])


def test_sequential_logs_count_their_own_samples(tmp_path):
    results = tmp_path / "results"
    benchmark(results, "certify", SHARD.format(0), 10.0)
    rows = {
        0: format_sequential_row(0, 1, 1, 0.5, 1.0, 300),
        1: format_sequential_row(1, 2, -1, 0.0, 3.0, 700),
    }
    log(results / "certify" / f"{SHARD.format(0)}.tsv", rows, SEQUENTIAL_HEADER)
    certify = table(results, None, samples_per_image=None).loc["certify"]
    assert certify["samples"] == 1000 and certify["samples/s"] == pytest.approx(1000 / 4.0)
    assert certify["images/s"] == pytest.approx(2 / 4.0)


def test_retries_by_cause_from_the_slurm_logs(run):
    rows = table(run, slurm_logs(run))
    certify, train = rows.loc["certify"], rows.loc["train"]
    # Attempts ordered by job id (9 < 12 < 20, not as text): the two killed ones were retried.
    assert (certify["attempts"], certify["retries"]) == (5, 3)
    assert (certify["retries: time limit"], certify["retries: preemption"], certify["retries: other"]) == (
        2,
        0,
        1,
    )
    assert (train["attempts"], train["retries"], train["retries: preemption"]) == (2, 1, 1)
    assert rows.loc["attack", "retries"] == 0
    cpu = rows.loc["merge_pseudo_labels"]
    assert not cpu["gpu"] and cpu["GPU-hours"] == 0 and cpu["jobs"] == 0 and cpu["attempts"] == 1
    assert math.isnan(cpu["images/s"])


def test_a_local_run_has_no_retries(run):
    rows = table(run, run / "logs" / "slurm")  # no such folder: no SLURM
    assert set(rows.index) == {"certify", "attack", "train"}
    assert (rows[["attempts", "retries", "retries: time limit", "retries: preemption"]] == 0).all().all()
    assert slurm_retries(run / "missing") == {}
    empty = rule_efficiency(run / "no-benchmarks", run / "nothing", None)
    assert empty.empty and "GPU-hours" in empty.columns


@pytest.mark.parametrize("cut", ["last-line", "header-only", "foreign"])
def test_a_corrupted_benchmark_names_the_file(run, cut):
    path = run / "benchmarks" / "certify" / f"{SHARD.format(1)}.tsv"
    text = path.read_text()
    path.write_text(
        {"last-line": text[:-12], "header-only": text.split("\n")[0] + "\n", "foreign": "<html>\n"}[cut]
    )
    with pytest.raises(LogFormatError, match=re.escape(str(path))) as error:
        rule_efficiency(run / "benchmarks", run, None)
    assert error.value.path == path


def test_read_benchmark_keeps_seconds_and_memory(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.50\t0:00:12\t345.67\t900\n")
    assert (read_benchmark(path).seconds, read_benchmark(path).max_rss_mb) == (12.5, 345.67)


def test_the_gpu_rules_and_their_benchmark_folders_are_the_workflows():
    found = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        # Rules inside `if` blocks are indented; `use rule A as B with:` derives B from A (its resources too).
        blocks = re.split(r"\n(?=\s*(?:rule|checkpoint|use rule) \w+)", smk.read_text())
        for block in blocks:
            name = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            derived = re.match(r"\s*use rule (\w+) as (\w+) with:", block)
            folder = re.search(r'benchmark:\s+"results/benchmarks/([^/"]+)/', block)
            if name and re.search(r"^\s+gpu=1,", block, re.M):
                found[name.group(1)] = folder.group(1) if folder else None
            elif derived and derived.group(1) in found:
                found[derived.group(2)] = folder.group(1) if folder else found[derived.group(1)]
    assert found == GPU_RULE_FOLDERS


def test_config_gives_samples_per_image_and_images_per_epoch():
    config = load_config(ROOT / "config" / "demo.yaml")
    assert certify_samples_per_image(config) == config["certify"]["n0"] + config["certify"]["n"]
    assert certify_samples_per_image({"certify": {**config["certify"], "procedure": "sequential"}}) is None
    images = train_images_per_epoch(config)
    n_train = config["data"]["synthetic"]["n_train"]
    assert images["train_standard_model", "standard_model"] == n_train
    assert {v for (rule, job), v in images.items() if rule == "train" and job.startswith("selftrain")} == {
        2 * n_train
    }


def test_the_script_writes_the_efficiency_section_and_csv(run):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import runtimes as script
    finally:
        sys.path.pop(0)
    output = run / "analysis" / "runtimes.html"
    output.parent.mkdir()
    script.main(
        [str(run / "benchmarks"), str(output), "--results", str(run), "--slurm-logs", str(slurm_logs(run))]
    )
    html = output.read_text()
    assert "Efficiency per rule" in html and "Retries: time limit" in html
    # Unknown work reads blank (counts) or a dash (rates), not pandas' <NA> or NaN.
    assert "<NA>" not in html and '[\\"NaN\\"' not in html and '[\\"\u2013\\"' in html
    assert html.startswith("<!DOCTYPE html>") and f"<style>{STYLESHEET}</style>" in html
    efficiency = (run / "analysis" / "runtimes.efficiency.csv").read_text().splitlines()
    assert efficiency[0].startswith("rule,gpu,jobs,GPU-hours") and len(efficiency) == 1 + 4
    # The earlier command line (benchmarks and output only) still works: GPU-hours, no work, no retries.
    script.main([str(run / "benchmarks"), str(output)])
    assert "Efficiency per rule" in output.read_text()


def test_plan_vs_measured_sets_each_rules_planned_and_measured_gpu_time_side_by_side(run, tmp_path):
    """The hand-made run above (certify: 100 + 80 s; attack 36 s; train 3600 s) beside a hand-made plan."""
    from rsmooth.analysis.efficiency import plan_vs_measured, plan_vs_measured_html, significant

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import runtimes as script
    finally:
        sys.path.pop(0)
    plan = pd.DataFrame(
        {
            "table": ["stage", "rule", "rule", "rule"],
            "rule": ["", "certify", "train", "pretrain"],
            "jobs": [9, 2, 1, 1],
            "gpu_hours": [1.0, 0.1 / 3600, 0.5, 2.0],  # certify planned at 0.1 GPU-seconds
        }
    )
    table = plan_vs_measured(script.collect(run / "benchmarks"), plan).set_index("rule")
    assert table.loc["certify", ["planned jobs", "measured jobs"]].tolist() == [2, 2]
    assert table.loc["certify", "planned GPU-seconds"] == pytest.approx(0.1)
    assert table.loc["certify", "measured GPU-seconds"] == pytest.approx(180.0)
    assert table.loc["certify", "measured / planned"] == pytest.approx(1800.0)
    assert table.loc["train", "measured GPU-hours"] == pytest.approx(1.0)
    assert table.loc["train", "planned GPU-hours"] == pytest.approx(0.5)
    assert pd.isna(table.loc["pretrain", "measured GPU-seconds"])  # planned, not run
    assert pd.isna(table.loc["attack", "planned GPU-seconds"])  # run, not planned
    # Three significant figures (the whole part kept), never a 0.0 for a small number.
    assert [significant(v) for v in (0.1 / 3600, 180.0, 1234.5, 0.0)] == ["0.0000278", "180", "1,234", "0"]
    html = plan_vs_measured_html(table.reset_index())
    assert "0.0000278" in html and "0.0500" in html and "n/a" in html

    plan.to_csv(tmp_path / "plan.csv", index=False)
    output = run / "analysis" / "runtimes.html"
    output.parent.mkdir()
    figure = run / "analysis" / "runtimes_plan.png"
    script.main([str(run / "benchmarks"), str(output), "--plan", str(tmp_path / "plan.csv"), "--plan-figure", str(figure)])  # fmt: skip
    page = output.read_text()
    assert "Planned and measured GPU time per rule" in page and "0.0000278" in page
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 5000
    assert (run / "analysis" / "runtimes.plan.csv").read_text().startswith("rule,planned jobs,measured jobs")
