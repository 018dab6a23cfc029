"""scripts/certify.py end to end on generated CIFAR-10 files: log format, SIGKILL and resume, errors."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsmooth.data import get_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "certify.py"


@pytest.fixture(scope="module")
def setup(cifar10_checkpoint, tmp_path_factory):
    """(output folder of this module, data root, checkpoint, the checkpoint in the references' format)."""
    files = cifar10_checkpoint
    return tmp_path_factory.mktemp("certify"), files.data_root, files.checkpoint, files.released


def certify(setup, out: Path, *extra: str, **popen) -> subprocess.Popen:
    _, data_root, checkpoint, _ = setup
    command = [
        sys.executable, str(SCRIPT), str(out), "--checkpoint", str(checkpoint), "--dataset", "cifar10",
        "--data-root", str(data_root), "--sigma", "0.25", "--N0", "16", "--alpha", "0.001", "--seed", "7",
        "--device", "cpu", *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen) -> str:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return err


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_log_format(setup):
    base, data_root, _, _ = setup
    out = base / "format.tsv"
    finish(certify(setup, out, "--N", "64", "--batch", "64", "--skip", "10"))
    table = rows(out)
    assert table[0] == ["idx", "label", "predict", "radius", "correct", "time"]
    labels = get_dataset("cifar10", "test", data_root).targets
    assert [int(r[0]) for r in table[1:]] == [0, 10, 20, 30]
    for idx, label, predict, radius, correct, seconds in table[1:]:
        assert int(label) == labels[int(idx)]
        assert int(predict) in range(-1, 10)
        assert int(correct) == int(int(predict) == int(label))
        assert float(radius) >= 0 and float(seconds) > 0
        assert (float(radius) == 0) == (int(predict) == -1)


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(setup):
    base = setup[0]
    args = ("--N", "384", "--batch", "128", "--start", "0", "--stop", "12")
    uninterrupted = base / "uninterrupted.tsv"
    finish(certify(setup, uninterrupted, *args))

    out = base / "killed.tsv"
    partial = base / "killed.tsv.partial"
    process = certify(setup, out, *args, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if partial.exists() and len(partial.read_text().splitlines()) >= 2 + 3:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists(), "a killed run must not leave a file under the final name"
    done_before = len(partial.read_text().splitlines()) - 2
    assert 3 <= done_before < 12, "the kill should land mid-way; make N larger if this machine is faster"

    finish(certify(setup, out, *args))
    assert not partial.exists()
    strip_time = lambda table: [r[:5] for r in table]  # noqa: E731
    assert strip_time(rows(out)) == strip_time(rows(uninterrupted))
    # Rows finished before the kill kept their original timings: they were not recomputed.
    assert len(rows(out)) == 13


def test_existing_final_log_is_left_alone(setup):
    base = setup[0]
    out = base / "done.tsv"
    out.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n")
    err = finish(certify(setup, out, "--N", "32"))
    assert "nothing to do" in err
    assert out.read_text() == "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


def test_released_checkpoint_needs_a_normalization(setup):
    base, data_root, _, released = setup
    command = [
        sys.executable, str(SCRIPT), str(base / "released.tsv"), "--checkpoint", str(released),
        "--dataset", "cifar10", "--data-root", str(data_root), "--sigma", "0.25", "--N", "32", "--max", "2",
        "--device", "cpu",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "normalization" in result.stderr and "cifar10_center" in result.stderr
    result = subprocess.run([*command, "--normalization", "cifar10"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(rows(base / "released.tsv")) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--sigma", "-0.5"), "--sigma must be a positive number, got -0.5"),
        (("--N", "0"), "--N must be a positive integer, got 0"),
        (("--alpha", "0.7"), "--alpha must lie in (0, 0.5), got 0.7"),
        (("--dataset", "svhn"), "invalid choice: 'svhn'"),
        (("--precision", "tf32"), "--precision tf32 needs a CUDA GPU of compute capability 8.0 or later"),
    ],
)
def test_bad_arguments_fail_before_any_work(setup, extra, message):
    base = setup[0]
    process = certify(setup, base / "bad.tsv", *extra)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in err
    assert not (base / "bad.tsv.partial").exists()


def test_an_index_range_outside_the_data_set_is_an_error_not_an_empty_log(setup):
    base = setup[0]  # the generated test split holds 40 images
    process = certify(setup, base / "outside.tsv", "--N", "32", "--start", "40", "--stop", "80")
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "[40, 80) holds no image of a data set of 40 images" in err
    assert not (base / "outside.tsv").exists() and not (base / "outside.tsv.partial").exists()


# -- --procedure sequential ------------------------------------------------------------------------------

SEQUENTIAL = ("--procedure", "sequential", "--radii", "0", "0.25", "0.5", "--images-per-call", "1")


def load_script():
    spec = importlib.util.spec_from_file_location("certify_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sequential_sigkill_then_rerun_matches_an_uninterrupted_run_and_logs_samples(setup):
    from rsmooth.analysis import read_certify_log

    base, data_root, _, _ = setup
    args = (*SEQUENTIAL, "--select-class", "--N", "150", "--batch", "100", "--start", "0", "--stop", "6")
    uninterrupted = base / "seq-uninterrupted.tsv"
    finish(certify(setup, uninterrupted, *args))
    table = rows(uninterrupted)
    assert table[0] == ["idx", "label", "predict", "radius", "correct", "time", "samples"]
    labels = get_dataset("cifar10", "test", data_root).targets
    for idx, label, predict, radius, correct, seconds, samples in table[1:]:
        assert int(label) == labels[int(idx)]
        assert int(correct) == int(int(predict) == int(label))
        assert float(radius) in (0.0, 0.25, 0.5)
        assert 16 < int(samples) <= 16 + 150 and float(seconds) > 0  # N0 selection draws, then <= N
    assert list(read_certify_log(uninterrupted)["samples"].astype(int)) == [int(r[6]) for r in table[1:]]

    out = base / "seq-killed.tsv"
    partial = base / "seq-killed.tsv.partial"
    process = certify(setup, out, *args, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if partial.exists() and len(partial.read_text().splitlines()) >= 2 + 2:
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    done_before = len(partial.read_text().splitlines()) - 2
    assert 2 <= done_before < 6, "the kill should land mid-way; make N larger if this machine is faster"
    finish(certify(setup, out, *args))
    assert not partial.exists()
    keep = lambda table: [r[:5] + r[6:] for r in table]  # noqa: E731
    assert keep(rows(out)) == keep(table)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--procedure", "sequential", "--radii", "0.5", "0.25"),
            "--radii: radii must be strictly increasing",
        ),
        (("--procedure", "sequential", "--radii", "-0.25", "0.5"), "--radii: radii must be finite and >= 0"),
        (("--procedure", "sequential", "--alpha", "0.5"), "--alpha must lie in (0, 0.5), got 0.5"),
        (("--radii", "0.25", "0.5"), "--radii and --select-class apply only to --procedure sequential"),
        (("--procedure", "bayes"), "invalid choice: 'bayes'"),
        (("--procedure", "sequential", "--test", "bayes"), "invalid choice: 'bayes'"),
    ],
)
def test_sequential_bad_arguments_are_refused_by_the_parser(setup, capsys, extra, message):
    base, _, checkpoint, _ = setup
    argv = [
        str(base / "bad-seq.tsv"),
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        "cifar10",
        "--sigma",
        "0.25",
    ]
    with pytest.raises(SystemExit) as exit_info:
        load_script().parse_args([*argv, *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_sequential_radii_default_to_the_analysis_radii(setup):
    base, _, checkpoint, _ = setup
    argv = [str(base / "x.tsv"), "--checkpoint", str(checkpoint), "--dataset", "cifar10", "--sigma", "0.25"]
    args = load_script().parse_args([*argv, "--procedure", "sequential"])
    assert args.radii == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    assert load_script().parse_args(argv).procedure == "cohen"


def test_log_at_batch_auto_equals_the_log_at_a_fixed_batch_bit_for_bit(setup):
    # The noise is a function of (seed, image, draw): the batch changes the speed, never the log.
    base = setup[0]
    logs = {}
    for batch in ("400", "48", "auto"):
        out = base / f"batch-{batch}.tsv"
        finish(certify(setup, out, "--N", "500", "--batch", batch, "--skip", "20", "--no-progress"))
        logs[batch] = [row[:5] for row in rows(out)]  # every column but the time
    assert logs["400"] == logs["48"] == logs["auto"]
    done = (base / "batch-auto.tsv.done").read_text().splitlines()[0]
    assert '"batch": "auto"' in done and '"batch_size": 400' in done and '"noise": "blocks-200"' in done


def test_the_finished_log_has_its_run_record_beside_it_without_absolute_paths(setup):
    import hashlib
    import json
    import re

    base, _, checkpoint, _ = setup
    out = base / "recorded.tsv"
    finish(certify(setup, out, "--N", "64", "--batch", "64", "--skip", "20", cwd=base))
    text = out.with_name(out.name + ".provenance.json").read_text()
    record = json.loads(text)
    assert record["checkpoint"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert record["command"].startswith("python scripts/certify.py recorded.tsv --checkpoint ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["date_utc"])
    assert record["host"]["device"] == "cpu" and record["host"]["torch"]
    assert str(base) not in text and str(ROOT) not in text and str(checkpoint.parent) not in text
    assert rows(out)[0] == ["idx", "label", "predict", "radius", "correct", "time"]  # the log is as before
