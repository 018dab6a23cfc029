"""Fault tests without a cluster: a real SIGKILL of training, a corrupted or truncated download served over
loopback HTTP, and a pipeline killed at several points that must leave no half-written file behind."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rsmooth.data import DatasetIntegrityError
from rsmooth.data import cifar10 as cifar10_module
from rsmooth.data.synthetic import write_synthetic_cifar10
from rsmooth.models import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, n_train=256, n_test=16, seed=0)
    return root


def train_command(output: Path, data_root: Path) -> list[str]:
    return [
        *TRAIN, str(output), "--data-root", str(data_root), "--arch", "cifar_resnet8", "--method", "smoothadv",
        "--steps", "2", "--eps", "0.5", "--epochs", "4", "--batch-size", "32", "--lr", "0.05",
        "--lr-step-size", "2", "--warmup", "2", "--workers", "0", "--test-subset", "16", "--no-progress",
    ]  # fmt: skip


def resume_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=False)["epoch"])
    except Exception:  # absent, or being replaced right now
        return 0


def test_sigkill_mid_epoch_then_rerun_ends_with_the_uninterrupted_weights(tmp_path, data_root):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference.pt"
    subprocess.run(train_command(reference, data_root), check=True, env=env, capture_output=True)

    output = tmp_path / "killed.pt"
    resume = output.with_name(output.name + ".resume")
    process = subprocess.Popen(train_command(output, data_root), env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while resume_epoch(resume) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = resume_epoch(resume)
    assert 1 <= done < 4 and not output.exists()

    rerun = subprocess.run(train_command(output, data_root), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} of 4 epochs done" in rerun.stderr  # it resumed rather than restarted
    expected = load_checkpoint(reference)[0].state_dict()
    for key, value in load_checkpoint(output)[0].state_dict().items():
        assert torch.equal(value, expected[key]), key
    print(
        f"\nSIGKILL in epoch {done + 1} of 4: resumed after epoch {done}; weights equal the uninterrupted run"
    )


# -- downloads ---------------------------------------------------------------------------------------------


def cifar_archive(tmp_path: Path) -> tuple[bytes, dict[str, str]]:
    """A tar.gz laid out as the official CIFAR-10 archive (generated stand-in files) and its files' md5s."""
    source = tmp_path / "source"
    write_synthetic_cifar10(source, n_train=20, n_test=10, seed=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    folder = source / "cifar-10-batches-py"
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return buffer.getvalue(), md5s


@pytest.fixture()
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 only."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_download_is_rejected_by_its_checksum_and_never_installed(
    tmp_path, http_server, monkeypatch, damage
):
    www, url = http_server
    archive, md5s = cifar_archive(tmp_path)
    served = archive[: len(archive) // 2] if damage == "truncated" else archive[:100] + bytes([archive[100] ^ 1]) + archive[101:]  # fmt: skip
    (www / "cifar-10-python.tar.gz").write_bytes(served)
    monkeypatch.setattr(cifar10_module, "CIFAR10_URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(cifar10_module, "CIFAR10_ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    monkeypatch.setattr(cifar10_module, "CIFAR10_FILE_MD5", md5s)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="corrupted"):
        cifar10_module.download_cifar10(root)
    installed = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert installed == [], "nothing from a damaged download may appear under the data root"

    # The intact archive from the same server installs, verified file by file.
    (www / "cifar-10-python.tar.gz").write_bytes(archive)
    folder = cifar10_module.download_cifar10(root)
    assert {p.name for p in folder.iterdir()} >= set(md5s)


def test_a_corrupted_file_in_place_is_never_used(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_synthetic_cifar10(root, n_train=20, n_test=10, seed=1)
    folder = root / "cifar-10-batches-py"
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(cifar10_module, "CIFAR10_FILE_MD5", md5s)
    cifar10_module.verify_cifar10(root)  # intact: passes
    with open(folder / "test_batch", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(DatasetIntegrityError, match="test_batch"):
        cifar10_module.verify_cifar10(root)


def test_prepare_data_refuses_a_corrupted_cifar10_and_writes_no_stamp(tmp_path):
    root = tmp_path / "data"
    write_synthetic_cifar10(root, n_train=20, n_test=10, seed=1)  # not the official files: md5s differ
    stamp = root / ".ready" / "cifar10.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/prepare_data.py"), "cifar10", str(stamp), "--root", str(root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "does not match the official CIFAR-10 md5" in result.stderr
    assert not stamp.exists()  # without the stamp no training job can start


# -- an interrupted pipeline ---------------------------------------------------------------------------------


def check_complete(path: Path, results: Path) -> None:
    """Every file under a final name is complete: it parses, and logs have whole rows."""
    if path.suffix == ".pt":
        load_checkpoint(path)
    elif path.suffix == ".tsv":
        table = pd.read_csv(path, sep="\t")
        if path.relative_to(results).parts[0] == "certify":  # a shard or merged certification log
            assert list(table.columns) == ["idx", "label", "predict", "radius", "correct", "time"], path
            assert table.notna().all().all() and table["idx"].is_unique, path
        else:  # an epoch log or a benchmark: its last row is whole
            assert len(table) == 0 or table.iloc[-1, :2].notna().all(), path
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".npz":
        np.load(path, allow_pickle=False)["target"]
    elif path.suffix == ".html":
        assert path.read_text().rstrip().endswith("</html>"), path


def test_a_pipeline_killed_at_any_point_leaves_no_half_written_file(tmp_path):
    """Kill the whole local run (SIGKILL to Snakemake and its jobs) three times at different moments; after
    every kill, each file under a final name is complete; a last rerun then finishes the run."""
    # The demo without pre-training, with three cells: every kind of output, in about half the time.
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config.pop("pretraining")
    config.pop("empirical")  # its envelope groups name experiments dropped here
    config["experiments"] = {k: config["experiments"][k] for k in ("cohen", "smoothadv_pgd", "self_training")}
    config["experiments"]["cohen"]["grid"]["sigma"] = [0.25]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow/Snakefile"), "--cores", "2",
        "--configfile", str(tmp_path / "config.yaml"), "--directory", str(tmp_path), "--rerun-incomplete",
    ]  # fmt: skip
    checked = 0
    for delay in (8, 20, 35):
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for path in (tmp_path / "results").rglob("*"):
            if (
                path.is_file()
                and not path.name.startswith(".")
                and not path.name.endswith((".partial", ".resume"))
            ):
                check_complete(path, tmp_path / "results")
                checked += 1
        subprocess.run([*command[:-1], "--unlock"], capture_output=True)
    assert checked > 10
    final = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    assert (tmp_path / "results/analysis/scorecard.html").exists()
