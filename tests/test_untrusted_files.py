"""Every reader of an external or intermediate file, fed damaged and hostile files.

For each reader a valid file is written in its real format, then replaced by: the file cut at several offsets,
an empty file, random bytes, a valid pickle of a foreign object, and a pickle whose unpickling would run code
(it would create a marker file: the marker must never appear). Each case must raise the reader's typed error
(a :class:`rsmooth.errors.FileFormatError`) naming the file, and leave no new file behind.
"""

from __future__ import annotations

import datetime
import fractions
import importlib
import pickle
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from rsmooth.analysis.paper import (
    PAPER_NUMBERS_COLUMNS,
    PAPER_TABLES_COLUMNS,
    load_paper_numbers,
    load_paper_tables,
)
from rsmooth.data import synthetic
from rsmooth.data.cifar10 import cifar10_files, load_cifar10
from rsmooth.data.errors import DatasetFormatError
from rsmooth.data.imagenet import load_image
from rsmooth.data.imagenet32 import imagenet32_files, load_imagenet32
from rsmooth.data.manifest import read_manifest
from rsmooth.data.mnist import MNIST_RAW_FILES, load_mnist, mnist_raw_dir
from rsmooth.data.pseudolabel import write_merged_trainset
from rsmooth.data.tinyimages import load_tinyimages, tinyimages_path
from rsmooth.errors import (
    CheckpointError,
    ConfigFileError,
    FileFormatError,
    LogFormatError,
    PaperDataError,
    ResumeFileError,
    UntrustedCheckpointError,
)
from rsmooth.io import read_config_file
from rsmooth.logformat import CERTIFY_HEADER, PartialLog, format_row, read_certify_log
from rsmooth.models import get_architecture, load_checkpoint, save_checkpoint
from rsmooth.train import loop

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


class _WritesMarker:
    """Unpickling this calls ``Path.touch`` on the marker path: code running from a data file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# -- the readers, each with a writer of one valid file --------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    name: str
    error: type[FileFormatError]
    write: Callable[[Path], Path]  # writes a valid file under the folder, returns its path
    read: Callable[[Path], object]
    torch_file: bool = False  # the foreign/hostile "pickle" cases are written with torch.save
    text: bool = False  # cut only inside a line (a cut at a line end is a complete, shorter text file)


def _checkpoint(folder: Path) -> Path:
    path = folder / "model.pt"
    model = get_architecture("lenet", "mnist", 10)
    save_checkpoint(
        path, model, arch="lenet", epoch=1, normalization="mnist", dataset="mnist", num_classes=10
    )
    return path


def _cifar10(folder: Path) -> Path:
    synthetic.write_synthetic_cifar10(folder, n_train=20, n_test=10)
    return cifar10_files(folder, "test")[0]


def _imagenet32(folder: Path) -> Path:
    synthetic.write_synthetic_imagenet32(folder, n_per_batch=2, n_val=4)
    return imagenet32_files(folder, "test")[0]


def _tinyimages(folder: Path) -> Path:
    synthetic.write_synthetic_tinyimages(folder, n=20)
    return tinyimages_path(folder)


def _mnist(folder: Path) -> Path:
    synthetic.write_synthetic_mnist(folder, n_train=10, n_test=10)
    return mnist_raw_dir(folder) / MNIST_RAW_FILES[2]


def _jpeg(folder: Path) -> Path:
    from PIL import Image

    path = folder / "n00000001_1.JPEG"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(path, format="JPEG")
    return path


def _certify_log(folder: Path) -> Path:
    path = folder / "sigma-0.25.tsv"
    rows = "".join(format_row(i, i % 3, i % 3, 0.5 + i / 7, 1.25) for i in range(12))
    path.write_text("\t".join(CERTIFY_HEADER) + "\n" + rows)
    return path


PARTIAL_META = {"n0": 10, "n": 100, "alpha": 0.001, "batch_size": 50, "seed": 0, "sigma": 0.25}


def _partial_log(folder: Path) -> Path:
    path = folder / "shard.tsv.partial"
    log = PartialLog(path, PARTIAL_META)
    log.append([(i, format_row(i, 1, 1, 0.3, 0.5)) for i in range(5)])
    return path


def _manifest(folder: Path) -> Path:
    synthetic.write_synthetic_cifar10(folder, n_train=20, n_test=10)
    synthetic.write_synthetic_tinyimages(folder, n=20)
    return write_merged_trainset(folder / "merged.npz", data_root=folder, labels="shipped")


def _resume(folder: Path) -> Path:
    path = folder / "model.pt.resume"
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    torch.save(
        {
            "epoch": 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
            "history": [{"epoch": 1, "train_loss": 0.5}],
            "config": {"method": "gaussian"},
            "rng": loop._rng_states(),
        },
        path,
    )
    return path


def _yaml_config(folder: Path) -> Path:
    path = folder / "train.yaml"
    path.write_text("method: gaussian\nsigma: 0.25\nepochs: 3\nbatch_size: 8\nlr: 0.1\n")
    return path


def _read_train_config(path: Path) -> object:
    """scripts/train.py's reading of ``--config``: the YAML file, then its values checked as TrainConfig
    fields (a YAML file cut short can still parse, e.g. ``epochs: 3`` cut to ``epochs:``)."""
    train_script = _script("train")
    return train_script.config_from_args(
        train_script.build_parser().parse_args(["m.pt", "--config", str(path)])
    )


def _json_grid(folder: Path) -> Path:
    path = folder / "grid.json"
    path.write_text(
        '{"cells": {"gaussian_sigma-0.25": {"sigma": 0.25, "method": "gaussian"}}, "radii": [0.0]}\n'
    )
    return path


def _paper_numbers(folder: Path) -> Path:
    path = folder / "paper_numbers.csv"
    path.write_text(
        ",".join(PAPER_NUMBERS_COLUMNS)
        + "\n"
        + "".join(
            f"salman2019,Table 6,cifar10,smoothadv-pgd,m1,0.25,certified_accuracy,{r},0.{50 + i},0.01,,row,col,\n"
            for i, r in enumerate((0.0, 0.25, 0.5, 0.75))
        )
    )
    return path


def _paper_tables(folder: Path) -> Path:
    path = folder / "paper_tables.csv"
    path.write_text(
        ",".join(PAPER_TABLES_COLUMNS)
        + "\n"
        + "".join(
            f"salman2019,Table {i},A long title of table {i},appendix.txt Table {i},\n" for i in range(6, 12)
        )
    )
    return path


READERS = [
    Reader("checkpoint", CheckpointError, _checkpoint, load_checkpoint, torch_file=True),
    Reader("cifar10 batch", DatasetFormatError, _cifar10, lambda p: load_cifar10(p.parents[1], "test")),
    Reader(
        "imagenet32 batch", DatasetFormatError, _imagenet32, lambda p: load_imagenet32(p.parents[2], "test")
    ),
    Reader("tinyimages pickle", DatasetFormatError, _tinyimages, lambda p: load_tinyimages(p.parents[1])),
    Reader("mnist idx", DatasetFormatError, _mnist, lambda p: load_mnist(p.parents[2], "test")),
    Reader("imagenet image", DatasetFormatError, _jpeg, load_image),
    Reader("certification log", LogFormatError, _certify_log, read_certify_log, text=True),
    Reader("partial log", LogFormatError, _partial_log, lambda p: PartialLog(p, PARTIAL_META), text=True),
    Reader("pseudo-label manifest", DatasetFormatError, _manifest, read_manifest),
    Reader("resume file", ResumeFileError, _resume, loop._read_resume_state, torch_file=True),
    Reader("train config", ConfigFileError, _yaml_config, _read_train_config, text=True),
    Reader("json grid", ConfigFileError, _json_grid, read_config_file, text=True),
    Reader("paper numbers", PaperDataError, _paper_numbers, load_paper_numbers, text=True),
    Reader("paper tables", PaperDataError, _paper_tables, load_paper_tables, text=True),
]

# -- the damage ---------------------------------------------------------------------------------------------

CUTS = (0.02, 0.3, 0.6, 0.97)


def _cut_offset(data: bytes, fraction: float, text: bool) -> int:
    offset = max(1, min(len(data) - 1, int(len(data) * fraction)))
    if text:  # move off line ends: a text file cut right after a newline is a whole, shorter file
        while offset < len(data) - 1 and data[offset - 1 : offset] == b"\n":
            offset += 1
    return offset


def _foreign() -> object:
    return {"when": datetime.date(2019, 6, 1), "ratio": fractions.Fraction(1, 3)}


def _damage(path: Path, kind: str, reader: Reader, marker: Path) -> None:
    data = path.read_bytes()
    if kind.startswith("cut"):
        path.write_bytes(data[: _cut_offset(data, float(kind[4:]), reader.text)])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        obj = _foreign() if kind == "foreign" else {"state_dict": {}, "data": _WritesMarker(marker)}
        if reader.torch_file:
            torch.save(obj, path)
        else:
            path.write_bytes(pickle.dumps(obj, protocol=2))


KINDS = [*(f"cut@{c}" for c in CUTS), "empty", "random", "foreign", "hostile"]


def _listing(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.name)
def test_damaged_file_raises_typed_error_naming_it(tmp_path, reader, kind):
    folder = tmp_path / "files"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    path = reader.write(folder)
    reader.read(path)  # the intact file reads
    if reader.name == "train config" and kind == "cut@0.97":
        # This cut lands inside the last value: `lr: 0.1` becomes `lr: 0`, a valid config. YAML has no end
        # marker and hand-written files need not end with a newline, so no reader can tell (docs/trust.md).
        pytest.skip("undetectable: a YAML file cut inside its last value is a valid YAML file")
    _damage(path, kind, reader, marker)
    before = _listing(folder)
    if reader.name == "partial log" and kind.startswith("cut"):
        _check_partial_cut(path, before)
        return
    with pytest.raises(reader.error) as caught:
        reader.read(path)
    assert str(path) in str(caught.value), caught.value
    assert not marker.exists(), "unpickling ran code from the file"
    assert _listing(folder) == before, "a reader left a file behind"


def _check_partial_cut(path: Path, before: set[Path]) -> None:
    """A partial log is append-only and a kill may cut its last row: that row is dropped and redone. A cut in
    its settings line or header, where no kill can cut it (both are written atomically), is an error."""
    text = path.read_text()
    if text.count("\n") < 2:
        with pytest.raises(LogFormatError, match=str(path)):
            PartialLog(path, PARTIAL_META)
    else:
        log = PartialLog(path, PARTIAL_META)
        assert sorted(log.rows) == list(range(text.count("\n") - 2))
        assert path.read_text().endswith("\n")
    assert {p for p in path.parent.rglob("*")} == before


# -- checkpoints: the opt-in, the reference formats ----------------------------------------------------------


def _reference_checkpoint(path: Path, *, legacy: bool, extra: dict | None = None) -> dict:
    """A file laid out exactly as Cohen et al.'s and Salman et al.'s train scripts save it: epoch, arch,
    the state dict of Sequential(normalize, model) (keys ``1.*``; ``1.module.*`` for ImageNet) and the SGD
    state dict after some steps (momentum buffers). ``legacy`` uses the pre-1.6 non-zip format of 2019."""
    network = get_architecture("cifar_resnet20", "cifar10", 10)[1]
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    network(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    state = {f"1.{k}": v for k, v in network.state_dict().items()}
    checkpoint = {
        "epoch": 90,
        "arch": "cifar_resnet20",
        "state_dict": state,
        "optimizer": optimizer.state_dict(),
    }
    checkpoint.update(extra or {})
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-2019"])
def test_reference_checkpoints_load_without_trust(tmp_path, legacy):
    path = tmp_path / "checkpoint.pth.tar"
    state = _reference_checkpoint(path, legacy=legacy)
    model, raw = load_checkpoint(path, normalization="cifar10")
    assert raw["epoch"] == 90 and raw["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert torch.equal(model[1].conv1.weight, state["1.conv1.weight"])


def test_checkpoint_with_pickled_objects_needs_trust(tmp_path):
    import argparse

    path = tmp_path / "checkpoint.pth.tar"
    state = _reference_checkpoint(path, legacy=False, extra={"args": argparse.Namespace(lr=0.1)})
    with pytest.raises(UntrustedCheckpointError) as caught:
        load_checkpoint(path, normalization="cifar10")
    message = str(caught.value)
    assert str(path) in message and "argparse.Namespace" in message and "--trust-checkpoint" in message
    assert caught.value.globals == ("argparse.Namespace",)
    model, raw = load_checkpoint(path, normalization="cifar10", trust=True)
    assert raw["args"].lr == 0.1
    assert torch.equal(model[1].conv1.weight, state["1.conv1.weight"])


def test_hostile_checkpoint_runs_no_code_without_trust(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "code-ran"
    torch.save({"state_dict": {}, "payload": _WritesMarker(marker)}, path)
    with pytest.raises(UntrustedCheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_data_pickle_refusal_names_the_object(tmp_path):
    path = _tinyimages(tmp_path)
    path.write_bytes(pickle.dumps({"data": _WritesMarker(tmp_path / "code-ran")}, protocol=4))
    with pytest.raises(DatasetFormatError, match=r"refused to unpickle pathlib.*\.touch"):
        load_tinyimages(tmp_path)
    assert not (tmp_path / "code-ran").exists()


def test_python2_cifar_batches_still_load_through_the_restricted_unpickler(tmp_path):
    synthetic.write_synthetic_cifar10(tmp_path, n_train=20, n_test=10)
    data = load_cifar10(tmp_path, "test")
    assert len(data) == 10


def test_resume_state_loads_with_weights_only(tmp_path):
    path = _resume(tmp_path)
    state = torch.load(path, weights_only=True)
    assert state["rng"]["numpy"]["bit_generator"] == "MT19937"
    assert loop._read_resume_state(path)["epoch"] == 1


# -- scripts: nothing under a final name when an input is bad ------------------------------------------------


def _script(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))


def _run_script(name: str, argv: list[str]) -> None:
    _script(name).main(argv)


@pytest.mark.parametrize("kind", ["cut@0.5", "random", "hostile"])
def test_certify_script_refuses_bad_checkpoint_and_writes_nothing(tmp_path, kind, capsys):
    reader = READERS[0]
    path = reader.write(tmp_path)
    marker = tmp_path / "code-ran"
    _damage(path, kind, reader, marker)
    out = tmp_path / "out" / "log.tsv"
    with pytest.raises(SystemExit) as caught:
        _run_script("certify", [str(out), "--checkpoint", str(path), "--dataset", "mnist", "--sigma", "0.25"])
    assert str(path) in str(caught.value.code)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_merge_refuses_a_cut_shard_and_writes_nothing(tmp_path):
    good, bad = _certify_log(tmp_path), tmp_path / "shard-1.tsv"
    data = good.read_bytes()
    bad.write_bytes(data[: _cut_offset(data, 0.5, text=True)].replace(b"\n0\t", b"\n100\t"))
    out = tmp_path / "merged.tsv"
    with pytest.raises(LogFormatError, match=str(bad)):
        _run_script("merge_certify", [str(out), str(good), str(bad)])
    assert not out.exists()


def test_train_config_file_errors_name_the_file(tmp_path):
    train_script = _script("train")
    config = tmp_path / "bad.yaml"
    config.write_text("method: gaussian\nsigma: [unclosed\n")
    args = train_script.build_parser().parse_args([str(tmp_path / "m.pt"), "--config", str(config)])
    with pytest.raises(ConfigFileError, match=str(config)):
        train_script.config_from_args(args)
    config.write_text("method: gaussian\nsigmaa: 0.25\n")
    with pytest.raises(ConfigFileError, match=rf"{config}.*sigmaa"):
        train_script.config_from_args(args)


def test_all_readers_are_covered():
    # The module docstring's promise: one row per reader; a new reader belongs here.
    assert len({r.name for r in READERS}) == len(READERS) == 14
    assert len(READERS) * len(KINDS) == 112


# -- mismatches between the checkpoint and the command line, caught before any data is read -----------------


@pytest.fixture
def certify_script(monkeypatch):
    """scripts/certify.py with its data loader (read through rsmooth.cli) replaced by one that records every
    call."""
    import rsmooth.cli

    module = _script("certify")
    touched: list[tuple] = []

    def get_dataset(*args, **kwargs):
        touched.append(args)
        raise AssertionError("data was read")

    monkeypatch.setattr(rsmooth.cli, "get_dataset", get_dataset)
    module.touched = touched
    return module


def _mnist_checkpoint(tmp_path: Path, *, sigma: float | None = 0.25, dataset: str = "mnist") -> Path:
    path = tmp_path / "lenet.pt"
    model = get_architecture("lenet", "mnist", 10)
    save_checkpoint(
        path,
        model,
        arch="lenet",
        epoch=1,
        normalization="mnist",
        dataset=dataset,
        num_classes=10,
        sigma=sigma,
    )
    return path


def _certify_argv(tmp_path: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [str(tmp_path / "log.tsv"), "--checkpoint", str(checkpoint), "--data-root", str(tmp_path), *extra]


def test_checkpoint_of_another_dataset_is_refused_before_data(tmp_path, certify_script):
    checkpoint = _mnist_checkpoint(tmp_path)
    with pytest.raises(SystemExit, match=r"trained on 'mnist', not on the --dataset 'cifar10'"):
        certify_script.main(_certify_argv(tmp_path, checkpoint, "--dataset", "cifar10", "--sigma", "0.25"))
    assert certify_script.touched == []


def test_checkpoint_with_other_class_count_is_refused_before_data(tmp_path, certify_script):
    path = tmp_path / "head.pt"  # a released-style file: no dataset stored, a 1000-way head
    model = get_architecture("lenet", "mnist", 1000)
    torch.save({"arch": "lenet", "state_dict": {f"1.{k}": v for k, v in model[1].state_dict().items()}}, path)
    argv = _certify_argv(tmp_path, path, "--dataset", "mnist", "--sigma", "0.25", "--normalization", "mnist")
    with pytest.raises(SystemExit, match=r"1000 output classes but --dataset 'mnist' has 10"):
        certify_script.main(argv)
    assert certify_script.touched == []


def test_other_sigma_than_trained_warns_with_both(tmp_path, certify_script):
    checkpoint = _mnist_checkpoint(tmp_path, sigma=0.5)
    # A warning only: certification goes on to read the data.
    with (
        pytest.warns(UserWarning, match=r"trained at sigma 0.5; smoothing at --sigma 0.25"),
        pytest.raises(AssertionError, match="data was read"),
    ):
        certify_script.main(_certify_argv(tmp_path, checkpoint, "--dataset", "mnist", "--sigma", "0.25"))
    assert len(certify_script.touched) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arch", "resnet51"], "--arch: .*resnet51"),
        (["--N0", "0"], "--N0 must be a positive integer, got 0"),
        (["--N", "-5"], "--N must be a positive integer, got -5"),
        (["--batch", "0"], "--batch must be a positive integer, got 0"),
        (["--alpha", "0.5"], r"--alpha must lie in \(0, 0.5\), got 0.5"),
        (["--alpha", "0"], r"--alpha must lie in \(0, 0.5\), got 0.0"),
        (["--start", "5", "--stop", "5"], "--stop must be greater than --start"),
    ],
)
def test_bad_arguments_fail_before_the_checkpoint_or_data(tmp_path, certify_script, capsys, extra, message):
    missing = tmp_path / "never-read.pt"
    missing.write_bytes(b"")  # an empty file: reading it would fail differently
    with pytest.raises(SystemExit) as caught:
        certify_script.main(_certify_argv(tmp_path, missing, "--dataset", "mnist", "--sigma", "0.25", *extra))
    assert caught.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert certify_script.touched == []


def test_pseudolabel_script_refuses_a_hostile_checkpoint_and_writes_no_manifest(tmp_path):
    synthetic.write_synthetic_cifar10(tmp_path, n_train=20, n_test=10)
    synthetic.write_synthetic_tinyimages(tmp_path, n=20)
    checkpoint, marker = tmp_path / "labeller.pt", tmp_path / "code-ran"
    torch.save({"state_dict": {}, "payload": _WritesMarker(marker)}, checkpoint)
    out = tmp_path / "merged.npz"
    argv = [str(out), "--data-root", str(tmp_path), "--labels", "model", "--checkpoint", str(checkpoint)]
    with pytest.raises(UntrustedCheckpointError, match=str(checkpoint)):
        _run_script("pseudolabel", argv)
    assert not marker.exists() and not out.exists()
    assert not list(tmp_path.glob(".merged.npz*"))  # no temporary file left either
