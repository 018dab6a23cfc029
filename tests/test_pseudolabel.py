"""Pseudo-labels, the self-training manifest and set (rsmooth.data.pseudolabel, .manifest, .selftraining;
scripts/pseudolabel.py) on generated CIFAR-10 / TinyImages."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rsmooth.data.pseudolabel as pl
from rsmooth.data import (
    LABEL_ORIGINS,
    DatasetIntegrityError,
    DatasetNotFoundError,
    ManifestError,
    get_dataset,
    load_merged_trainset,
    predict_labels,
    read_manifest,
    write_merged_trainset,
    write_synthetic_cifar10,
    write_synthetic_tinyimages,
)
from rsmooth.data.cifar10 import cifar10_files
from rsmooth.data.tinyimages import tinyimages_path
from rsmooth.models import get_architecture, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pseudolabel.py"
N_CIFAR, N_TI = 40, 50
GT, SHIPPED, MODEL = (LABEL_ORIGINS.index(o) for o in ("ground_truth", "shipped", "model"))


def write_data(root: Path, ti_seed: int = 1, n_ti: int = N_TI) -> Path:
    write_synthetic_cifar10(root, n_train=N_CIFAR, n_test=10, seed=0)
    write_synthetic_tinyimages(root, n=n_ti, seed=ti_seed, label_noise=0.3)
    return root


def raw_tinyimages(root: Path) -> dict:
    with open(tinyimages_path(root), "rb") as handle:
        return pickle.load(handle)


def as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1], what ToTensor gives, without the data module."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny; with other jobs on the few cores, a second intra-op thread only spins and waits
    (measured: 50 single-image resnet20 passes took 0.1 s with one thread, 29 s with two on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data root, and a resnet20 checkpoint whose clean predictions on the TinyImages are spread over classes.

    A freshly initialised network predicts one class for everything; its head is replaced by random directions
    through the centre of its features on these images, so that a mix-up of rows or labels would show.
    """
    base = tmp_path_factory.mktemp("pseudolabel")
    data_root = write_data(base / "data")
    torch.manual_seed(0)
    model = get_architecture("cifar_resnet20", "cifar10").eval()
    features = []
    hook = model[1].fc.register_forward_hook(lambda mod, inp, out: features.append(inp[0]))
    with torch.no_grad():
        model(as_tensor(raw_tinyimages(data_root)["data"]))
    hook.remove()
    mean, std = features[0].mean(0), features[0].std(0) + 1e-6
    with torch.no_grad():
        model[1].fc.weight.copy_(torch.randn(10, mean.numel()) / std)
        model[1].fc.bias.copy_(-(model[1].fc.weight @ mean))
    checkpoint = base / "standard.pt"
    save_checkpoint(
        checkpoint,
        model,
        arch="cifar_resnet20",
        epoch=1,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=10,
    )
    return data_root, checkpoint


def expected_model_labels(checkpoint: Path, data_root: Path) -> np.ndarray:
    """The checkpoint's argmax on the raw TinyImages, one image at a time (independent of predict_labels)."""
    model, _ = load_checkpoint(checkpoint)
    images = as_tensor(raw_tinyimages(data_root)["data"])
    with torch.no_grad():
        return np.array([int(model(x[None]).argmax()) for x in images], dtype=np.int64)


def cifar_labels(data_root: Path) -> np.ndarray:
    return np.asarray(get_dataset("cifar10", "train", data_root, augment=False).targets)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- writing


def test_shipped_manifest_records_ground_truth_and_shipped_labels(setup, tmp_path):
    data_root, _ = setup
    out = write_merged_trainset(tmp_path / "shipped.npz", data_root=data_root, labels="shipped")
    assert out == tmp_path / "shipped.npz"
    arrays, meta = read_manifest(out)
    shipped = np.asarray(raw_tinyimages(data_root)["extrapolated_targets"])

    assert {k: a.dtype for k, a in arrays.items()} == {
        "source": np.uint8, "index": np.int64, "target": np.int64, "origin": np.uint8,
    }  # fmt: skip
    np.testing.assert_array_equal(arrays["source"], [0] * N_CIFAR + [1] * N_TI)
    np.testing.assert_array_equal(arrays["index"], np.r_[np.arange(N_CIFAR), np.arange(N_TI)])
    np.testing.assert_array_equal(arrays["target"], np.r_[cifar_labels(data_root), shipped])
    np.testing.assert_array_equal(arrays["origin"], [GT] * N_CIFAR + [SHIPPED] * N_TI)

    assert meta["labels"] == "shipped"
    assert meta["counts"] == {"cifar10": N_CIFAR, "tinyimages": N_TI}
    assert meta["tinyimages"]["sha256"] == sha256(tinyimages_path(data_root))
    assert meta["tinyimages"]["size"] == tinyimages_path(data_root).stat().st_size
    assert meta["checkpoint"] is None and meta["agreement_with_shipped"] is None
    assert meta["pseudo_label_histogram"] == np.bincount(shipped, minlength=10).tolist()
    assert meta["label_origins"] == list(LABEL_ORIGINS)


def test_model_manifest_records_model_argmax_and_agreement(setup, tmp_path):
    data_root, checkpoint = setup
    out = write_merged_trainset(
        tmp_path / "model.npz", data_root=data_root, labels="model", checkpoint=checkpoint, batch_size=7
    )
    arrays, meta = read_manifest(out)
    expected = expected_model_labels(checkpoint, data_root)
    shipped = np.asarray(raw_tinyimages(data_root)["extrapolated_targets"])
    # Preconditions that make the comparisons below telling.
    assert len(np.unique(expected)) >= 3 and not np.array_equal(expected, shipped)

    np.testing.assert_array_equal(arrays["target"], np.r_[cifar_labels(data_root), expected])
    np.testing.assert_array_equal(arrays["origin"], [GT] * N_CIFAR + [MODEL] * N_TI)
    assert meta["labels"] == "model"
    assert meta["agreement_with_shipped"] == pytest.approx(np.mean(expected == shipped))
    assert meta["pseudo_label_histogram"] == np.bincount(expected, minlength=10).tolist()
    assert meta["checkpoint"] == {"path": str(checkpoint.resolve()), "sha256": sha256(checkpoint)}
    assert meta["tinyimages"]["sha256"] == sha256(tinyimages_path(data_root))


class PixelArgmax(nn.Module):
    """Logits = red channel of the first ten pixels of the top row; records its mode on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        return x[:, 0, 0, :10] * self.scale


def test_predict_labels_is_the_clean_argmax_in_order(setup):
    data_root, _ = setup
    dataset = get_dataset("tinyimages", "train", data_root, augment=False)
    model = PixelArgmax().train()
    labels = predict_labels(model, dataset, batch_size=7)  # 50 = 7 * 7 + 1: a short last batch

    raw = raw_tinyimages(data_root)["data"]
    assert labels.dtype == np.int64 and labels.shape == (N_TI,)
    np.testing.assert_array_equal(labels, np.argmax(raw[:, 0, :10, 0], axis=1))
    assert len(model.calls) == 8 and set(model.calls) == {(False, True)}  # eval mode, inference mode
    assert model.training  # the caller's mode is restored


def test_predict_labels_refuses_augmented_images(setup):
    data_root, _ = setup
    with pytest.raises(ValueError, match="augment"):
        predict_labels(PixelArgmax(), get_dataset("tinyimages", "train", data_root, augment=True))
    with pytest.raises(ValueError, match="batch_size"):
        predict_labels(
            PixelArgmax(), get_dataset("tinyimages", "train", data_root, augment=False), batch_size=0
        )


def test_bad_inputs_fail_before_any_loading_or_hashing(setup, tmp_path, monkeypatch):
    data_root, checkpoint = setup

    def expensive(*args, **kwargs):
        raise AssertionError("expensive work started before the inputs were checked")

    monkeypatch.setattr(pl, "file_sha256", expensive)
    monkeypatch.setattr(pl, "load_cifar10", expensive)
    monkeypatch.setattr(pl, "predict_labels", expensive)
    out = tmp_path / "m.npz"

    with pytest.raises(ValueError, match=r"'bogus'.*shipped, model"):
        write_merged_trainset(out, data_root=data_root, labels="bogus")
    with pytest.raises(ValueError, match="needs checkpoint"):
        write_merged_trainset(out, data_root=data_root, labels="model")
    with pytest.raises(ValueError, match="only used with labels='model'"):
        write_merged_trainset(out, data_root=data_root, labels="shipped", checkpoint=checkpoint)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        write_merged_trainset(out, data_root=data_root, labels="model", checkpoint=tmp_path / "none.pt")
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10") as err:
        write_merged_trainset(out, data_root=tmp_path / "empty", labels="shipped")
    assert cifar10_files(tmp_path / "empty", "train")[0] in err.value.missing

    cifar_only = tmp_path / "cifar_only"
    write_synthetic_cifar10(cifar_only, n_train=10, n_test=1)
    with pytest.raises(DatasetNotFoundError, match="ti_500K_pseudo_labeled") as err:
        write_merged_trainset(out, data_root=cifar_only, labels="shipped")
    assert err.value.missing == (tinyimages_path(cifar_only),)

    five_way = tmp_path / "five.pt"
    save_checkpoint(
        five_way,
        get_architecture("cifar_resnet20", "cifar10", num_classes=5),
        arch="cifar_resnet20",
        epoch=1,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=5,
    )
    with pytest.raises(ValueError, match="need 10"):
        write_merged_trainset(out, data_root=data_root, labels="model", checkpoint=five_way)
    assert not out.exists()


def test_failure_mid_way_leaves_no_manifest(setup, tmp_path, monkeypatch):
    data_root, checkpoint = setup
    out = tmp_path / "m.npz"

    def truncated_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", truncated_savez)
        with pytest.raises(OSError, match="disk full"):
            write_merged_trainset(out, data_root=data_root, labels="shipped")
    assert list(tmp_path.iterdir()) == []  # neither the manifest nor a temporary file

    write_merged_trainset(out, data_root=data_root, labels="shipped")
    before = out.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("killed while pseudo-labelling")

    monkeypatch.setattr(pl, "predict_labels", crash)
    with pytest.raises(RuntimeError, match="killed"):
        write_merged_trainset(out, data_root=data_root, labels="model", checkpoint=checkpoint)
    assert out.read_bytes() == before  # the previous complete manifest survives
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# ---------------------------------------------------------------------------------------------- reading


def test_load_merged_trainset_returns_both_halves(setup, tmp_path):
    data_root, checkpoint = setup
    manifest = write_merged_trainset(
        tmp_path / "model.npz", data_root=data_root, labels="model", checkpoint=checkpoint
    )
    arrays, _ = read_manifest(manifest)
    labelled, pseudo = load_merged_trainset(manifest, data_root, augment=False)

    assert (len(labelled), len(pseudo)) == (N_CIFAR, N_TI)
    assert labelled.targets == cifar_labels(data_root).tolist()
    assert pseudo.targets == arrays["target"][N_CIFAR:].tolist()
    assert pseudo.targets == expected_model_labels(checkpoint, data_root).tolist()
    assert labelled.origins == ["ground_truth"] * N_CIFAR and pseudo.origins == ["model"] * N_TI

    cifar_plain = get_dataset("cifar10", "train", data_root, augment=False)
    tiny_raw = as_tensor(raw_tinyimages(data_root)["data"])
    for i in (0, 17, N_CIFAR - 1):
        image, label = labelled[i]
        assert isinstance(label, int) and label == labelled.targets[i]
        torch.testing.assert_close(image, cifar_plain[i][0], rtol=0, atol=0)
    for i in (0, 23, N_TI - 1):
        image, label = pseudo[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert isinstance(label, int) and label == pseudo.targets[i]
        torch.testing.assert_close(image, tiny_raw[i], rtol=0, atol=1e-6)

    labelled, pseudo = load_merged_trainset(manifest, data_root)  # training: random crop + flip
    names = {ds: [type(t).__name__ for t in ds.transform.transforms] for ds in (labelled, pseudo)}
    assert names[labelled] == ["RandomCrop", "RandomHorizontalFlip", "ToTensor"]
    assert names[pseudo] == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor"]
    torch.manual_seed(0)
    draws = torch.stack([pseudo[3][0] for _ in range(8)])
    assert draws.min() >= 0 and draws.max() <= 1
    assert not all(torch.equal(draws[0], d) for d in draws[1:])  # augmentation is live


def test_load_detects_data_that_differ_from_the_manifest(tmp_path):
    data_root = write_data(tmp_path / "data")
    manifest = write_merged_trainset(tmp_path / "m.npz", data_root=data_root, labels="shipped")
    load_merged_trainset(manifest, data_root)  # matching files load

    # Same size on disk (same shapes), different content: the fingerprint, not the size, catches it.
    size = tinyimages_path(data_root).stat().st_size
    write_synthetic_tinyimages(data_root, n=N_TI, seed=99, label_noise=0.3)
    assert tinyimages_path(data_root).stat().st_size == size
    with pytest.raises(DatasetIntegrityError, match="different tinyimages files"):
        load_merged_trainset(manifest, data_root)
    # Same labels, one image changed: invisible to the label comparison, seen by the fingerprint.
    write_data(data_root)
    entry = raw_tinyimages(data_root)
    entry["data"][0] = 255 - entry["data"][0]
    with open(tinyimages_path(data_root), "wb") as handle:
        pickle.dump(entry, handle, protocol=4)
    with pytest.raises(DatasetIntegrityError, match="different tinyimages files"):
        load_merged_trainset(manifest, data_root)

    write_synthetic_tinyimages(data_root, n=N_TI + 5, seed=1, label_noise=0.3)
    with pytest.raises(DatasetIntegrityError, match="bytes"):
        load_merged_trainset(manifest, data_root)

    # Byte-different file with the same size and content (a metadata string changed): only the sha256 sees it.
    write_data(data_root)
    entry = raw_tinyimages(data_root)
    entry["prediction_model"] = "synthetiX"
    with open(tinyimages_path(data_root), "wb") as handle:
        pickle.dump(entry, handle, protocol=4)
    assert tinyimages_path(data_root).stat().st_size == size
    load_merged_trainset(manifest, data_root)
    with pytest.raises(DatasetIntegrityError, match="sha256"):
        load_merged_trainset(manifest, data_root, verify_sha256=True)

    write_synthetic_cifar10(data_root, n_train=N_CIFAR + 1, n_test=10, seed=0)
    with pytest.raises(DatasetIntegrityError, match=f"made from {N_CIFAR} cifar10 images, the data root has"):
        load_merged_trainset(manifest, data_root)
    write_synthetic_cifar10(data_root, n_train=N_CIFAR, n_test=10, seed=5)
    with pytest.raises(DatasetIntegrityError, match="different cifar10 files"):
        load_merged_trainset(manifest, data_root)

    shutil.rmtree(data_root / "tinyimages")
    with pytest.raises(DatasetNotFoundError):
        load_merged_trainset(manifest, data_root)


def rewrite(src: Path, dst: Path, **changes) -> Path:
    """Copy manifest ``src`` to ``dst`` with arrays replaced (``None`` drops one); ``meta`` may be a dict."""
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = np.array(json.dumps(value)) if isinstance(value, dict) else value
    with open(dst, "wb") as handle:
        np.savez(handle, **arrays)
    return dst


def test_missing_or_corrupt_manifest_gives_clear_errors(setup, tmp_path):
    data_root, _ = setup
    good = write_merged_trainset(tmp_path / "good.npz", data_root=data_root, labels="shipped")
    arrays, meta = read_manifest(good)

    with pytest.raises(FileNotFoundError, match=r"manifest not found.*scripts/pseudolabel.py"):
        load_merged_trainset(tmp_path / "absent.npz", data_root)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ManifestError, match="not a readable manifest"):
        load_merged_trainset(truncated, data_root)
    with pytest.raises(ManifestError, match="missing array"):
        read_manifest(rewrite(good, tmp_path / "a.npz", origin=None))
    with pytest.raises(ManifestError, match="JSON"):
        read_manifest(rewrite(good, tmp_path / "b.npz", meta=np.array("{not json")))
    with pytest.raises(ManifestError, match="version"):
        read_manifest(rewrite(good, tmp_path / "c.npz", meta={**meta, "version": 99}))
    with pytest.raises(ManifestError, match="format"):
        read_manifest(rewrite(good, tmp_path / "d.npz", meta={"some": "thing"}))
    wrong_origin = arrays["origin"].copy()
    wrong_origin[-1] = MODEL
    with pytest.raises(ManifestError, match="origins"):
        read_manifest(rewrite(good, tmp_path / "e.npz", origin=wrong_origin))
    with pytest.raises(ManifestError, match="int64"):
        read_manifest(rewrite(good, tmp_path / "f.npz", target=arrays["target"].astype(np.int32)))
    out_of_range = arrays["index"].copy()
    out_of_range[-1] = N_TI
    with pytest.raises(ManifestError, match="indices"):
        read_manifest(rewrite(good, tmp_path / "g.npz", index=out_of_range))
    flipped = arrays["target"].copy()
    flipped[3] = (flipped[3] + 1) % 10  # a CIFAR-10 ground-truth label that is not the file's
    with pytest.raises(DatasetIntegrityError, match="cifar10 label"):
        load_merged_trainset(rewrite(good, tmp_path / "h.npz", target=flipped), data_root)


# ---------------------------------------------------------------------------------------------- script


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # see one_thread
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


def test_script_end_to_end(setup, tmp_path):
    data_root, checkpoint = setup
    out = tmp_path / "selftrain.npz"
    result = run_script(
        out, "--data-root", data_root, "--labels", "model", "--checkpoint", checkpoint, "--device", "cpu",
        "--batch", "16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    arrays, meta = read_manifest(out)
    np.testing.assert_array_equal(arrays["target"][N_CIFAR:], expected_model_labels(checkpoint, data_root))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert f"{N_CIFAR} CIFAR-10" in lines[0] and f"{N_TI} TinyImages" in lines[0]
    assert f"agreement with shipped labels {meta['agreement_with_shipped']:.2%}" in lines[0]


def load_script():
    spec = importlib.util.spec_from_file_location("pseudolabel_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_bad_argument_exits_2_before_any_work(setup, tmp_path):
    data_root, _ = setup
    out = tmp_path / "m.npz"
    result = run_script(out, "--data-root", data_root, "--labels", "model")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--labels model needs --checkpoint" in result.stderr and "usage:" in result.stderr
    assert result.stdout == "" and not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "pseudo"], "invalid choice: 'pseudo'"),
        (["--labels", "shipped", "--batch", "0"], "--batch must be a positive integer"),
        (["--labels", "shipped", "--checkpoint", "{ckpt}"], "--checkpoint is only used with --labels model"),
        (["--labels", "model", "--checkpoint", "{tmp}/none.pt"], "checkpoint not found"),
        (["--labels", "shipped", "--data-root", "{tmp}/nowhere"], "CIFAR-10 files not found"),
        (["--labels", "shipped", "--device", "gpu0"], "--device 'gpu0'"),
    ],
)
def test_script_rejects_bad_arguments(setup, tmp_path, monkeypatch, capsys, args, message):
    data_root, checkpoint = setup
    script = load_script()
    monkeypatch.setattr(script, "write_merged_trainset", None)  # any work at all would raise TypeError
    out = tmp_path / "m.npz"
    args = [a.replace("{tmp}", str(tmp_path)).replace("{ckpt}", str(checkpoint)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(out), "--data-root", str(data_root), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
