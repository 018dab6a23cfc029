"""The fast path (rsmooth.fastpath): reduced precision keeps float32 noise and agrees with fp32, fixed batches
stay reproducible, bf16 training learns, old resume files still resume, and every option that cannot work is
refused with a message that says why."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.proportion import proportion_confint
from torch import nn

from rsmooth import fastpath
from rsmooth import smoothing as smoothing_module
from rsmooth.data.synthetic import write_synthetic_cifar10
from rsmooth.models import load_checkpoint
from rsmooth.smoothing import Smooth, certify_from_counts
from rsmooth.train import loop
from rsmooth.train.loop import train
from rsmooth.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 4


class Recorder(nn.Module):
    """A small conv net that keeps every input batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, CLASSES),
        )
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.net(x)


def images(k: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((k, 3, 8, 8), generator=torch.Generator().manual_seed(seed))


# -- noise in float32 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_certification_adds_float32_noise(monkeypatch, precision):
    # fp16 may be refused on this CPU (see the rejection tests); the noise path is the same, so test it anyway.
    monkeypatch.setattr(smoothing_module, "check_fast_path", lambda *a, **k: None)
    model = Recorder()
    smooth = Smooth(model, CLASSES, 0.25, precision=precision)
    xs = images(2)
    smooth.sample_counts(xs, 50, 32, [torch.Generator().manual_seed(s) for s in (3, 4)])
    received = torch.cat(model.inputs)
    assert received.dtype == torch.float32  # the model receives the float32 sum; autocast casts it inside
    expected = []
    for x, s in zip(xs, (3, 4), strict=True):
        generator = torch.Generator().manual_seed(s)
        for size in (32, 18):
            noise = torch.randn((size, *x.shape), generator=generator, dtype=torch.float32)
            expected.append(x + noise * 0.25)
    # Bit-exact: noise drawn (or added) in half precision would round it to 8 or 11 mantissa bits.
    assert torch.equal(received, torch.cat(expected))
    half = torch.randn((50, 3, 8, 8), generator=torch.Generator().manual_seed(3)).to(
        fastpath.dtype(precision)
    )
    assert not torch.equal(received[:50], xs[0] + half.float() * 0.25)


def test_the_logits_are_computed_in_the_precision_asked_for():
    seen = []
    model = Recorder()
    model.net[-1].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    Smooth(model, CLASSES, 0.25, precision="bf16").sample_counts(images(1), 10, 10)
    Smooth(model, CLASSES, 0.25).sample_counts(images(1), 10, 10)
    assert seen == [torch.bfloat16, torch.float32]


# -- bf16 against fp32 on a trained model ------------------------------------------------------------------


def _trained_model() -> nn.Module:
    """A small conv net trained under Gaussian noise (sigma 0.25) to tell four colour-and-stripe classes."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES),
    )  # fmt: skip
    xs, ys = _data(512, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(150):
        batch = torch.randint(0, len(xs), (64,))
        loss = nn.functional.cross_entropy(model(xs[batch] + 0.25 * torch.randn_like(xs[batch])), ys[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, CLASSES, (n,), generator=generator)
    colours = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.7, 0.7, 0.2]])
    strength = torch.rand((n, 1, 1, 1), generator=generator) * 0.6 + 0.1  # margins from small to large
    grey = torch.full((n, 3, 8, 8), 0.5)
    xs = grey + strength * (colours[ys][:, :, None, None] - 0.5)
    return (xs + 0.05 * torch.randn(xs.shape, generator=generator)).clamp(0, 1), ys


def test_bf16_certificates_agree_with_fp32_within_the_clopper_pearson_spread():
    """Criterion. With the same seeds both precisions see the same noise; they can only differ where bf16
    rounding flips the base classifier's vote on a noisy sample. We require (1) the same CERTIFY output class
    (abstentions included) for at least 99% of the images, and (2) for each image where both certify a
    class, a bf16 radius inside the range of radii that fp32 CERTIFY gives for the counts of the two-sided
    99.9% Clopper-Pearson interval of the fp32 estimate nA / n: a difference a rerun with fresh noise could
    produce, i.e. explained by the estimation spread rather than by the network changing."""
    model = _trained_model()
    xs, _ = _data(200, seed=2)
    n0, n, alpha, sigma = 50, 400, 0.001, 0.25
    seeds = list(range(len(xs)))
    results, counts = {}, {}
    for precision in ("fp32", "bf16"):
        smooth = Smooth(model, CLASSES, sigma, precision=precision)
        generators = smooth._generators(xs, seeds)
        selection = smooth.sample_counts(xs, n0, 400, generators)
        estimation = smooth.sample_counts(xs, n, 400, generators)
        tops = selection.argmax(axis=1)
        counts[precision] = (tops, estimation)
        results[precision] = [
            certify_from_counts(t, int(c[t]), n, alpha, sigma) for t, c in zip(tops, estimation, strict=True)
        ]
        assert results[precision] == smooth.certify_batch(xs, n0, n, alpha, 400, seeds=seeds)
    fp32, bf16 = results["fp32"], results["bf16"]
    same_class = np.mean([a[0] == b[0] for a, b in zip(fp32, bf16, strict=True)])
    assert same_class >= 0.99
    certified = [(i, a, b) for i, (a, b) in enumerate(zip(fp32, bf16, strict=True)) if a[0] == b[0] != -1]
    assert len(certified) > 100  # the model certifies most images: the radius check is not vacuous
    tops, estimation = counts["fp32"]
    for i, (_, r32), (_, r16) in certified:
        n_a = int(estimation[i, tops[i]])
        low, high = proportion_confint(n_a, n, alpha=0.001, method="beta")
        lo_count, hi_count = math.floor(low * n), min(n, math.ceil(high * n))
        r_low = certify_from_counts(tops[i], lo_count, n, alpha, sigma)[1]
        r_high = certify_from_counts(tops[i], hi_count, n, alpha, sigma)[1]
        assert r_low - 1e-9 <= r16 <= r_high + 1e-9, (i, r32, r16, r_low, r_high)


# -- reproducibility of fixed batches ----------------------------------------------------------------------


def test_fp32_results_with_a_seed_are_identical_across_batch_sizes():
    model = _trained_model()
    xs, _ = _data(6, seed=3)
    seeds = [11, 12, 13, 14, 15, 16]
    outcomes = []
    for batch in (37, 100, 256, 1000, 4096):
        smooth = Smooth(model, CLASSES, 0.25)
        generators = smooth._generators(xs, seeds)
        outcomes.append(
            (
                smooth.sample_counts(xs, 500, batch, generators).tolist(),
                smooth.certify_batch(xs, 50, 500, 0.001, batch, seeds=seeds),
            )
        )
    assert all(o == outcomes[0] for o in outcomes)


def test_fp32_certification_on_cuda_turns_tf32_off(monkeypatch):
    """fp32 is float32 on CUDA too: cuDNN's default TF32 convolutions would certify a 10-bit-mantissa network."""
    before = fastpath.float32_matmul_settings()
    try:  # torch's public setters only, restored the same way
        fastpath.set_float32_matmul("tf32", "tf32")
        assert fastpath.float32_matmul_settings() == {"conv": "tf32", "matmul": "tf32"}
        fastpath.float32_arithmetic("fp32", "cpu")
        assert fastpath.float32_matmul_settings() == {
            "conv": "tf32",
            "matmul": "tf32",
        }  # nothing to do off CUDA
        fastpath.float32_arithmetic("fp32", "cuda")
        assert fastpath.float32_matmul_settings() == {"conv": "ieee", "matmul": "ieee"}
        fastpath.float32_arithmetic("bf16", "cuda")  # autocast precisions leave it as it is
        assert fastpath.float32_matmul_settings() == {"conv": "ieee", "matmul": "ieee"}
        fastpath.float32_arithmetic("tf32", "cuda")  # the named TF32 precision turns it on, for both
        assert fastpath.float32_matmul_settings() == {"conv": "tf32", "matmul": "tf32"}
    finally:
        fastpath.set_float32_matmul(**before)
    assert fastpath.float32_matmul_settings() == before
    calls = []
    monkeypatch.setattr(fastpath, "float32_arithmetic", lambda *args: calls.append(args))
    Smooth(torch.nn.Linear(4, 3), 3, 0.25)
    Smooth(torch.nn.Linear(4, 3), 3, 0.25, precision="bf16")
    Smooth(torch.nn.Linear(4, 3), 3, 0.25, amp=True)  # the older spelling of fp16 autocast
    assert calls == [("fp32", "cpu"), ("bf16", "cpu")]  # with the classifier's device
    # The settings are the process's: each forward pass and each attack model sets its own again, so that a
    # second Smooth in another precision cannot leave the first one running in its arithmetic.
    smooth = Smooth(torch.nn.Flatten(), 3, 0.25)
    calls.clear()
    smooth.sample_counts(torch.rand(1, 1, 1, 3), 4, 2)
    smooth.attack_model()
    assert calls == [("fp32", "cpu")] * 3


def test_tf32_is_a_named_precision_of_cuda_gpus_with_tf32_only(monkeypatch):
    """tf32 certifies a 10-bit-mantissa network: allowed where TF32 exists, named like bf16, refused elsewhere."""
    with pytest.raises(
        ValueError, match=r"precision tf32 needs a CUDA GPU of compute capability 8\.0 .*not a CPU"
    ):
        Smooth(Recorder(), CLASSES, 0.25, precision="tf32")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # a V100
    with pytest.raises(ValueError, match=r"not cuda:0 \(compute capability 7\.0\): use fp32 or bf16"):
        fastpath.check_fast_path("cuda:0", precision="tf32")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # an H100
    fastpath.check_fast_path("cuda:0", precision="tf32")
    assert fastpath.dtype("tf32") is None and isinstance(
        fastpath.autocast("tf32", "cuda"), contextlib.nullcontext
    )
    assert "TF32" in fastpath.precision_note("tf32") and "tf32 network" in fastpath.precision_note("tf32")
    with pytest.raises(ValueError, match="unknown precision 'tf32'"):  # training's fp32 is PyTorch's default
        tiny(precision="tf32").validate()


def test_auto_batch_picks_a_measured_size_within_the_limit():
    smooth = Smooth(_trained_model(), CLASSES, 0.25)
    chosen, measured = smooth.auto_batch_size((3, 8, 8), limit=512)
    assert chosen in measured and max(measured) <= 512 and min(measured) == fastpath.AUTO_BATCH_START
    assert measured[chosen] >= (1 - fastpath.AUTO_BATCH_TIE) * max(measured.values())


def test_auto_batch_stops_at_the_first_size_that_does_not_fit():
    def forward(size):
        if size > 256:
            raise torch.OutOfMemoryError("out of memory")

    chosen, measured = fastpath.auto_batch_size(forward, "cpu", limit=4096)
    assert sorted(measured) == [64, 128, 256] and chosen <= 256


def test_channels_last_and_bf16_attack_model_returns_float32_logits():
    model = Recorder()
    smooth = Smooth(model, CLASSES, 0.25, precision="bf16", channels_last=True)
    x = images(2).requires_grad_(True)
    logits = smooth.attack_model()(x)
    assert logits.dtype == torch.float32
    assert model.inputs[-1].is_contiguous(memory_format=torch.channels_last)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0
    assert Smooth(Recorder(), CLASSES, 0.25).attack_model().__class__ is Recorder  # fp32: the model itself


# -- training ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, n_train=96, n_test=32, seed=0)
    return root


def tiny(**overrides) -> TrainConfig:
    values = dict(
        arch="cifar_resnet8", epochs=4, batch_size=32, lr=0.05, lr_step_size=0, workers=0, test_subset=16,
        warmup=1, steps=2, eps=0.25, sigma=0.25,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "gaussian"},
        {"method": "smoothadv", "attack": "pgd", "num_noise_vec": 2},
        {"method": "smoothmix", "num_noise_vec": 2, "mix_step": 1},
    ],
    ids=lambda o: o["method"],
)
def test_training_in_bf16_lowers_the_loss_like_fp32(tmp_path, data_root, overrides):
    losses = {}
    for precision in ("fp32", "bf16"):
        config = tiny(precision=precision, channels_last=precision == "bf16", **overrides)
        train(config, tmp_path / f"{precision}.pt", data_root=data_root, progress=False)
        losses[precision] = pd.read_csv(tmp_path / f"{precision}.pt.log.tsv", sep="\t").train_loss.to_numpy()
    assert losses["bf16"][-1] < losses["bf16"][0]
    # Same seeds, same data order: the curves differ only by rounding, which compounds over the epochs.
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.25)


def test_a_resume_file_written_before_the_precision_option_still_resumes(tmp_path, data_root, monkeypatch):
    config = tiny(method="gaussian", epochs=2)
    reference = train(config, tmp_path / "full.pt", data_root=data_root, progress=False)
    calls = {"n": 0}
    real_step = loop.MethodStep.__call__

    class Killed(Exception):
        pass

    def dying_step(self, x, y, weight=1.0):
        calls["n"] += 1
        if calls["n"] == 4:  # the first batch of epoch 2
            raise Killed
        return real_step(self, x, y, weight)

    monkeypatch.setattr(loop.MethodStep, "__call__", dying_step)
    out = tmp_path / "resumed.pt"
    with pytest.raises(Killed):
        train(config, out, data_root=data_root, progress=False)
    resume = tmp_path / "resumed.pt.resume"
    state = torch.load(resume, weights_only=False)
    del state["config"]["precision"]  # as an older rsmooth wrote it
    torch.save(state, resume)
    monkeypatch.setattr(loop.MethodStep, "__call__", real_step)
    train(config, out, data_root=data_root, progress=False)
    expected = load_checkpoint(reference)[0].state_dict()
    resumed = load_checkpoint(out)[0].state_dict()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_default_precision_is_not_in_the_cell_id_nor_on_the_train_command():
    from rsmooth.pipeline import model_id, train_arguments

    values = TrainConfig(method="gaussian").to_dict()
    assert "precision" not in model_id(values, {}) and "--precision" not in train_arguments(values)
    bf16 = {**values, "precision": "bf16"}
    assert model_id(bf16, {}).endswith("precision-bf16") and "--precision bf16" in train_arguments(bf16)


# -- options that cannot work ------------------------------------------------------------------------------


@pytest.mark.skipif(fastpath._cpu_fp16_supported(), reason="this CPU has fp16 kernels")
def test_fp16_on_a_cpu_without_half_kernels_is_refused():
    with pytest.raises(ValueError, match=r"precision fp16 is not supported on this CPU.*use precision bf16"):
        Smooth(Recorder(), CLASSES, 0.25, precision="fp16")
    with pytest.raises(ValueError, match="precision fp16 is not supported on this CPU"):
        train(tiny(precision="fp16"), "unused.pt", data_root="unused", device="cpu", progress=False)


def test_unknown_precision_and_amp_with_precision_are_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16, fp16, got 'int8'"):
        Smooth(Recorder(), CLASSES, 0.25, precision="int8")
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        tiny(precision="half").validate()
    with pytest.raises(ValueError, match="amp is precision fp16 with a gradient scaler: set one of amp"):
        tiny(amp=True, precision="bf16").validate()


def test_compile_without_a_compiler_is_refused(monkeypatch):
    monkeypatch.setattr(fastpath.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"compile is unavailable here .no C\+\+ compiler on PATH"):
        Smooth(Recorder(), CLASSES, 0.25, compile=True)


def test_a_failing_compilation_falls_back_to_the_eager_model_with_a_warning(monkeypatch):
    def broken(module, **kwargs):
        def call(batch):
            raise RuntimeError("backend exploded")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    smooth = Smooth(Recorder(), CLASSES, 0.25, compile=True)
    with pytest.warns(
        RuntimeWarning, match="torch.compile failed .RuntimeError: backend exploded.; running the eager"
    ):
        counts = smooth.sample_counts(images(1), 20, 20)
    assert counts.sum() == 20


def test_channels_last_on_inputs_that_are_not_images_is_refused():
    with pytest.raises(
        ValueError, match=r"channels_last needs image batches \[B, C, H, W\], got shape \(4, 10\)"
    ):
        fastpath.to_memory_format(torch.zeros(4, 10), True)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(10, CLASSES))
    from rsmooth.train.methods import MethodStep

    step = MethodStep(tiny(), flat, None, None, autocast=lambda: torch.autocast("cpu", enabled=False),
                      memory_format=torch.channels_last)  # fmt: skip
    with pytest.raises(ValueError, match="channels_last needs image batches"):
        step.logits(torch.zeros(4, 10))


def _certify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "certify.py"), *args],
        capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--batch", "many"], "--batch: expected a positive integer or auto, got 'many'"),
        (["--batch", "0"], "--batch must be a positive integer, got 0"),
        (["--precision", "bf16", "--amp"], "give one of --amp and --precision bf16"),
        (["--precision", "int8"], "argument --precision: invalid choice: 'int8'"),
        *(
            [(["--precision", "fp16"], "--precision fp16 is not supported on this CPU")]
            if not fastpath._cpu_fp16_supported()
            else []
        ),
    ],
)
def test_certify_script_refuses_options_that_cannot_work(tmp_path, options, message):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    done = _certify(str(tmp_path / "out.tsv"), "--checkpoint", str(checkpoint), "--dataset", "cifar10",
                    "--sigma", "0.25", "--device", "cpu", *options)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
