"""The GPU tier: each script's CUDA path at toy size (``pytest -m gpu``; skipped cleanly without CUDA).

Training (one batch of every method), the SmoothAdv attack with PREDICT (scripts/attack.py), CERTIFY with both
procedures (scripts/certify.py), PREDICT and certification at two batch sizes through ``Smooth``,
pseudo-labelling (scripts/pseudolabel.py), a training step without host synchronisation, and CERTIFY in tf32
(GPUs of compute capability 8.0 or later). ``RSMOOTH_GPU_TEST_DEVICE=cpu`` runs the same commands on the CPU,
to check the tier itself on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsmooth import fastpath
from rsmooth.data.synthetic import write_synthetic_cifar10, write_synthetic_tinyimages
from rsmooth.logformat import read_attack_log, read_certify_log
from rsmooth.models import get_architecture
from rsmooth.smoothing import Smooth
from rsmooth.train.methods import REGISTRY

DEVICE = os.environ.get("RSMOOTH_GPU_TEST_DEVICE", "cuda")
ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def run(script: str, *args: object) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args), "--device", DEVICE],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpu-data")
    write_synthetic_cifar10(root, n_train=8, n_test=8, seed=0)
    write_synthetic_tinyimages(root, n=8, seed=1, label_noise=0.3)
    return root


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_one_batch_of_training_for_every_method(method, data_root, tmp_path):
    out = tmp_path / f"{method}.pt"
    run(
        "train.py", out, "--data-root", data_root, "--arch", "cifar_resnet8", "--method", method,
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--test-subset", "4", "--no-progress",
    )  # fmt: skip
    assert out.is_file()


@pytest.mark.parametrize("procedure", ["cohen", "sequential"])
def test_certify_script_both_procedures(procedure, cifar10_checkpoint, tmp_path):
    out = tmp_path / f"{procedure}.tsv"
    run(
        "certify.py", out, "--checkpoint", cifar10_checkpoint.checkpoint, "--dataset", "cifar10",
        "--data-root", cifar10_checkpoint.data_root, "--sigma", "0.25", "--N0", "16", "--N", "64",
        "--alpha", "0.001", "--seed", "7", "--skip", "10", "--batch", "32", "--procedure", procedure,
        "--no-progress",
    )  # fmt: skip
    assert len(read_certify_log(out)) == 4


def test_certify_at_auto_batch_equals_a_fixed_batch(cifar10_checkpoint, tmp_path):
    logs = []
    for batch in ("400", "auto"):
        out = tmp_path / f"batch-{batch}.tsv"
        run(
            "certify.py", out, "--checkpoint", cifar10_checkpoint.checkpoint, "--dataset", "cifar10",
            "--data-root", cifar10_checkpoint.data_root, "--sigma", "0.25", "--N0", "100", "--N", "1000",
            "--alpha", "0.001", "--seed", "7", "--skip", "20", "--batch", batch, "--no-progress",
        )  # fmt: skip
        logs.append(read_certify_log(out)[["idx", "label", "predict", "radius", "correct"]])
    assert logs[0].equals(logs[1])


def test_smoothadv_attack_and_predict_script(cifar10_checkpoint, tmp_path):
    out = tmp_path / "attack.tsv"
    run(
        "attack.py", out, "--checkpoint", cifar10_checkpoint.checkpoint, "--dataset", "cifar10",
        "--data-root", cifar10_checkpoint.data_root, "--sigma", "0.25", "--eps", "0.5", "--steps", "2",
        "--num-noise-vec", "2", "--seed", "7", "--N", "64", "--batch", "32", "--stop", "2", "--no-progress",
    )  # fmt: skip
    assert len(read_attack_log(out)) == 2


def test_predict_and_certify_through_smooth_on_the_device():
    torch.manual_seed(0)
    model = get_architecture("cifar_resnet8", "cifar10").to(DEVICE)
    smooth = Smooth(model, 10, 0.25)
    xs = torch.rand(3, 3, 32, 32, device=DEVICE)
    predictions = smooth.predict_batch(xs, 64, 0.001, 32, seeds=[1, 2, 3])
    assert all(-1 <= p < 10 for p in predictions)
    results = [smooth.certify_batch(xs, 16, 600, 0.001, batch, seeds=[1, 2, 3]) for batch in (200, 1000)]
    assert results[0] == results[1]


def test_pseudolabel_script_with_a_model(cifar10_checkpoint, data_root, tmp_path):
    out = tmp_path / "selftrain.npz"
    run(
        "pseudolabel.py", out, "--data-root", data_root, "--labels", "model", "--checkpoint",
        cifar10_checkpoint.checkpoint, "--batch", "16",
    )  # fmt: skip
    assert out.is_file()


@pytest.mark.skipif(DEVICE != "cuda", reason="host synchronisations are detected on CUDA only")
def test_a_training_step_never_waits_for_the_gpu():
    # The epoch's loss and accuracy stay on the device (rsmooth.train.methods.base.StepStats): a step that
    # read them would stall the GPU once a batch, which is what made training slower than a plain loop.
    from rsmooth.train.methods import MethodStep
    from rsmooth.train_config import TrainConfig

    config = TrainConfig(arch="cifar_resnet8", dataset="cifar10", method="gaussian", sigma=0.25, batch_size=8)
    model = get_architecture("cifar_resnet8", "cifar10").to(DEVICE).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step = MethodStep(config.validate(), model, optimizer, scaler, autocast=contextlib.nullcontext)
    x, y = torch.rand(8, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (8,), device=DEVICE)
    step(x, y)  # the first step may synchronise (cuDNN's algorithm choice, lazy initialisation)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, correct, count = step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert loss.device.type == "cuda" and count == 8 and 0 <= int(correct) <= 8


@pytest.mark.skipif(
    DEVICE != "cuda"
    or not torch.cuda.is_available()
    or torch.cuda.get_device_capability() < fastpath.TF32_CAPABILITY,
    reason="tf32 needs a CUDA GPU of compute capability 8.0 or later",
)
def test_certify_in_tf32_names_its_precision(cifar10_checkpoint, tmp_path):
    out = tmp_path / "tf32.tsv"
    run(
        "certify.py", out, "--checkpoint", cifar10_checkpoint.checkpoint, "--dataset", "cifar10",
        "--data-root", cifar10_checkpoint.data_root, "--sigma", "0.25", "--N0", "16", "--N", "64",
        "--alpha", "0.001", "--seed", "7", "--skip", "20", "--batch", "32", "--precision", "tf32",
        "--no-progress",
    )  # fmt: skip
    assert len(read_certify_log(out)) == 2
    assert '"precision": "tf32"' in (tmp_path / "tf32.tsv.done").read_text().splitlines()[0]
