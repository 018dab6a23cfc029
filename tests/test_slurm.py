"""The pipeline on a real SLURM: a single-node cluster on loopback (scripts/local_slurm.sh), a cut demo
through `snakemake --profile slurm`, and the faults a cluster brings: scancel, time limits.

Needs root and Debian's packages (the script installs munge and slurm-wlm); skipped otherwise.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from rsmooth.data.synthetic import write_synthetic_cifar10
from rsmooth.models import get_architecture, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_slurm.sh"
# The test cluster has no accounting database: job states come from squeue (docs/pipeline.md, "SLURM on one
# machine"). Fast polling only shortens the test.
SNAKEMAKE_SLURM = [
    "timeout", "-k", "10", "1500", sys.executable, "-m", "snakemake", "--profile", "slurm",
    "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
    "--seconds-between-status-checks", "3",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("apt-get") is None, reason="needs root and apt-get to install SLURM"
)


@pytest.fixture(scope="module")
def cluster():
    result = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    yield
    subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=120)


def run_snakemake(*args: str, workdir: Path) -> tuple[str, float]:
    began = time.monotonic()
    result = subprocess.run([*SNAKEMAKE_SLURM, "--directory", str(workdir), *args], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output, time.monotonic() - began


def sbatch(command: list[str], log: Path, minutes: int = 10) -> str:
    wrapped = " ".join(command)
    result = subprocess.run(
        ["sbatch", "--parsable", "-p", "gpu", "--gpus=1", "-t", str(minutes), "--mem", "2000", "-o", str(log), "--wrap", wrapped],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def wait_for_job(job: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(
        ["squeue", "-h", "-j", job, "-t", "PD,R,CG"], capture_output=True, text=True
    ).stdout.strip():
        assert time.monotonic() < deadline, f"job {job} did not finish"
        time.sleep(0.5)


def job_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    match = re.search(r"JobState=(\w+)", out)
    return match.group(1) if match else "UNKNOWN"


def slurm_demo_config(tmp_path: Path) -> Path:
    """The demo cut to what the cluster run has to show: two models (one of them attacked in training),
    certified in two shards each, and the empirical study's checkpoint choosing which of them to attack. The
    full demo runs once in test_workflow; through SLURM it would only repeat the same jobs more slowly."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config.pop("pretraining")
    config["experiments"] = {k: config["experiments"][k] for k in ("cohen", "smoothadv_pgd")}
    config["experiments"]["cohen"]["grid"]["sigma"] = [0.25]
    config["empirical"].update(
        envelope={"cohen": ["cohen"], "smoothadv": ["smoothadv_pgd"]},
        eps=[0.5],
        attacks={"plugin": {"attack": "pgd", "num_noise": [1], "n": [64]}},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_demo_runs_through_the_slurm_profile(cluster, tmp_path):
    config = str(slurm_demo_config(tmp_path))
    output, seconds = run_snakemake("--configfile", config, workdir=tmp_path)
    submitted = re.findall(
        r"submitted with SLURM jobid \d+ \(log: [^)]*/(rule_\w+?|group_gpu_bundle)[_/]", output
    )
    counts = {rule: submitted.count(rule) for rule in set(submitted)}
    members = re.findall(r"^    rule (\w+):", output, re.MULTILINE)  # the jobs inside the bundles
    # Training is not bundled; the 6 certification and attack jobs go in bundles of up to 4, one per group of
    # jobs ready together (each model's 2 shards, the 2 attacks once their targets are chosen).
    assert counts["rule_train"] == 2 and 2 <= counts["group_gpu_bundle"] <= 4, counts
    assert {r: members.count(r) for r in set(members)} == {"certify_shard": 4, "attack": 2}, members
    for light in ("aggregate", "figures", "merge_certify", "prepare_data", "describe_grid", "choose_attack_targets", "empirical"):  # fmt: skip
        assert re.search(rf"^local(rule|checkpoint) {light}:", output, re.MULTILINE), (
            light
        )  # ran on this host
    assert (tmp_path / "results/analysis/scorecard.html").exists()
    assert (tmp_path / "results/analysis/empirical/audit.html").exists()
    report = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", config, "--directory", str(tmp_path), "--report", str(tmp_path / "report.html")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Scorecard" in (tmp_path / "report.html").read_text()
    print(f"\nSLURM demo: {len(submitted)} sbatch submissions ({counts}), wall time {seconds:.0f} s")


def bundle_config(tmp_path: Path, shards: int) -> Path:
    """One quickly trained model, certified in `shards` jobs slow enough to be killed mid-way."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["experiments"] = {"cohen": {"grid": {"method": ["gaussian"], "sigma": [0.25]}}}
    config.pop("pretraining")
    config.pop("empirical")
    config["training"]["epochs"] = 1
    config["certify"].update(shards=shards, n=4096)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shards_go_in_bundles_and_a_killed_bundle_resumes_every_member(cluster, tmp_path):
    shards, bundle = 6, 4
    config = bundle_config(tmp_path, shards)
    folder = tmp_path / "results/certify/gaussian_sigma-0.25/sigma-0.25"
    target = "results/certify/gaussian_sigma-0.25/sigma-0.25.tsv"
    command = [*SNAKEMAKE_SLURM, "--directory", str(tmp_path), target, "--configfile", str(config)]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Kill every running bundle once one member has finished and another is half-way.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = sorted(folder.glob("shard-*.tsv.done"))
        partial = [p for p in folder.glob("shard-*.tsv.partial") if len(p.read_text().splitlines()) >= 4]
        if done and partial:
            break
        assert run.poll() is None, run.stdout.read()[-3000:]
        time.sleep(0.1)
    else:
        pytest.fail("no bundle got to a finished and a half-done member")
    finished = {p.name: p.read_text().splitlines()[2:] for p in done}
    kept = {p.name: p.read_text().splitlines()[2:-1] for p in partial}  # the last row may be mid-write
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-t", "R"], capture_output=True, text=True
    ).stdout.split()
    subprocess.run(["scancel", *jobs], check=True)
    output = run.communicate(timeout=900)[0]
    assert run.returncode == 0, output[-5000:]

    submissions = re.findall(
        r"submitted with SLURM jobid \d+ \(log: [^)]*/(rule_train|group_gpu_bundle)", output
    )
    first = [s for s in submissions if s == "group_gpu_bundle"][: math.ceil(shards / bundle)]
    assert submissions.count("rule_train") == 1 and len(first) == math.ceil(shards / bundle), submissions
    assert submissions.count("group_gpu_bundle") > len(first)  # the killed bundles were resubmitted
    merged = (tmp_path / target).read_text().splitlines()
    indices = [line.split("\t")[0] for line in merged[1:]]
    assert sorted(indices, key=int) == [str(i) for i in range(40)]  # none lost, none twice
    rows = set(merged[1:])
    for name, lines in {**finished, **kept}.items():  # timings equal: rewritten or resumed, not redone
        assert set(lines) <= rows, name
    print(
        f"\n{shards} shards in bundles of {bundle}: {len(first)} sbatch submissions; killed with "
        f"{len(finished)} member(s) finished and {len(kept)} half-done, all resumed"
    )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, n_train=256, n_test=40, seed=0)
    return root


def train_command(output: Path, data_root: Path, epochs: int = 4) -> list[str]:
    return [
        sys.executable, str(ROOT / "scripts/train.py"), str(output), "--data-root", str(data_root),
        "--arch", "cifar_resnet8", "--method", "smoothadv", "--steps", "2", "--eps", "0.5", "--epochs", str(epochs),
        "--batch-size", "32", "--lr", "0.05", "--lr-step-size", "2", "--warmup", "2", "--workers", "0",
        "--test-subset", "16", "--no-progress",
    ]  # fmt: skip


def test_scancel_mid_training_then_resubmit_resumes_to_the_same_weights(cluster, tmp_path, data_root):
    reference = tmp_path / "reference.pt"
    subprocess.run(train_command(reference, data_root), check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    output = tmp_path / "model.pt"
    resume = output.with_name(output.name + ".resume")
    job = sbatch(["OMP_NUM_THREADS=1", *train_command(output, data_root)], tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # into the next epoch
    subprocess.run(["scancel", job], check=True)
    wait_for_job(job)
    assert job_state(job) == "CANCELLED" and not output.exists()
    done = int(torch.load(resume, weights_only=False)["epoch"])
    second = sbatch(["OMP_NUM_THREADS=1", *train_command(output, data_root)], tmp_path / "second.log")
    wait_for_job(second)
    assert job_state(second) == "COMPLETED", (tmp_path / "second.log").read_text()[-2000:]
    assert f"{done} of 4 epochs done" in (tmp_path / "second.log").read_text()
    expected = load_checkpoint(reference)[0].state_dict()
    for key, value in load_checkpoint(output)[0].state_dict().items():
        assert torch.equal(value, expected[key]), key
    print(f"\nscancel after epoch {done} of 4: the resubmitted job redid {4 - done} epochs, weights equal")


def test_scancel_mid_certification_keeps_the_rows_written(cluster, tmp_path, data_root):
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    save_checkpoint(model, get_architecture("cifar_resnet20", "cifar10"), arch="cifar_resnet20", epoch=1, normalization="cifar10", dataset="cifar10", num_classes=10)  # fmt: skip

    def command(out: Path) -> list[str]:
        return [
            "OMP_NUM_THREADS=1", sys.executable, str(ROOT / "scripts/certify.py"), str(out), "--checkpoint", str(model),
            "--dataset", "cifar10", "--data-root", str(data_root), "--sigma", "0.25", "--N0", "16", "--N", "512",
            "--batch", "128", "--seed", "3", "--device", "cpu", "--no-progress",
        ]  # fmt: skip

    reference = tmp_path / "reference.tsv"
    subprocess.run(" ".join(command(reference)), shell=True, check=True, capture_output=True)
    out = tmp_path / "shard.tsv"
    partial = out.with_name(out.name + ".partial")
    job = sbatch(command(out), tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while (
        not partial.exists() or len(partial.read_text().splitlines()) < 2 + 5
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["scancel", job], check=True)
    wait_for_job(job)
    kept = partial.read_text().splitlines()[2:]
    kept = [line for line in kept if line.count("\t") == 5]
    assert 5 <= len(kept) < 40 and not out.exists()
    second = sbatch(command(out), tmp_path / "second.log")
    wait_for_job(second)
    final = out.read_text().splitlines()
    assert (
        len(final) == 41 and len({line.split("\t")[0] for line in final[1:]}) == 40
    )  # none lost, none twice
    assert set(kept) <= set(final)  # rows written before the cancel are kept as they were (timings too)
    strip = lambda lines: [line.rsplit("\t", 1)[0] for line in lines]  # noqa: E731
    assert strip(final) == strip(reference.read_text().splitlines())
    print(
        f"\nscancel after {len(kept)} of 40 images: {len(kept)} rows kept, {40 - len(kept)} certified on resubmission"
    )


# The training must outlast the first attempt (one minute, enforced up to 30 s late) and end well within the
# second (two minutes, of which each attempt spends 10-15 s starting up). A job killed after its training ended
# but before Snakemake saw it succeed loses its outputs and trains again from scratch on the third attempt,
# without the resume message (CI once ran 300 fixed epochs into that). An epoch takes 0.3-0.9 s here, depending
# on the machine and its load, so the test times a few epochs first and asks for TRAINING_SECONDS of work.
TRAINING_SECONDS = 120


def time_limit_config(tmp_path: Path, epochs: int) -> Path:
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["experiments"] = {"cohen": {"grid": {"method": ["gaussian"], "sigma": [0.25]}}}
    config.pop("pretraining")
    config.pop("empirical")  # its envelope groups name experiments dropped here
    config["training"]["epochs"] = epochs
    config["training"]["lr_step_size"] = 0
    config["runtime_minutes"] = {"train": 1}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def seconds_per_epoch(tmp_path: Path) -> float:
    """The median epoch time of a short run of the same training on this host, outside SLURM."""
    workdir = tmp_path / "calibration"
    config = time_limit_config(workdir, epochs=12)
    target = "results/models/gaussian_sigma-0.25/model.pt"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(workdir), target, "--configfile", str(config)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    epochs = pd.read_csv(workdir / "results/models/gaussian_sigma-0.25/epochs.tsv", sep="\t")
    return float(epochs.time.iloc[2:].median())  # the first epochs pay for warm-up


def test_a_job_hitting_its_time_limit_is_retried_with_more_time_and_resumes(cluster, tmp_path):
    per_epoch = seconds_per_epoch(tmp_path)
    epochs_total = max(150, round(TRAINING_SECONDS / per_epoch))
    path = time_limit_config(tmp_path, epochs_total)
    target = "results/models/gaussian_sigma-0.25/model.pt"
    # The target goes first: --configfile takes several values and would swallow it.
    output, seconds = run_snakemake(target, "--configfile", str(path), workdir=tmp_path)
    logs = sorted((tmp_path / "results/logs/slurm/rule_train").rglob("*.log"), key=lambda p: int(p.stem))
    assert len(logs) >= 2, output[-3000:]
    assert "DUE TO TIME LIMIT" in logs[0].read_text()
    assert "-t 2" in output or "runtime=2" in output  # the retry asked for attempt x 1 minute
    epochs = pd.read_csv(tmp_path / "results/models/gaussian_sigma-0.25/epochs.tsv", sep="\t")
    assert epochs.epoch.tolist() == list(range(1, epochs_total + 1))  # one history, no epoch trained twice
    train_log = (tmp_path / "results/logs/train/gaussian_sigma-0.25.log").read_text()
    match = re.search(rf"(\d+) of {epochs_total} epochs done", train_log)
    assert match and int(match.group(1)) >= 1, train_log[-2000:]
    print(
        f"\n{per_epoch:.2f} s an epoch, {epochs_total} epochs: time limit after {match.group(1)}; the retry resumed there; "
        f"wall time {seconds:.0f} s"
    )
