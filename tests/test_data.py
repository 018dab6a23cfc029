"""Tests of rsmooth.data: the real loaders run on small files written in the published on-disk formats."""

from __future__ import annotations

import hashlib
import json
import pickle
import runpy
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision import transforms as T

import rsmooth.data.cifar10 as cifar10_mod
from rsmooth.data import (
    DATASETS,
    REFERENCE_SUBSAMPLE_SKIP,
    DatasetFormatError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    build_transform,
    dataset_splits,
    download_cifar10,
    get_dataset,
    input_shape,
    num_classes,
    verify_cifar10,
    write_synthetic_cifar10,
    write_synthetic_imagenet,
    write_synthetic_imagenet32,
    write_synthetic_mnist,
    write_synthetic_tinyimages,
)
from rsmooth.data.cifar10 import CIFAR10_ARCHIVE_MD5, CIFAR10_CLASSES, CIFAR10_FILE_MD5, CIFAR10_URL
from rsmooth.data.mnist import MNIST_RAW_FILES
from rsmooth.data.prepare import SyntheticSizes, expected_files, prepare_dataset
from rsmooth.dataset_info import (
    DATASET_SPECS,
    INPUT_SHAPE,
    NUM_CLASSES,
    TEST_SET_SIZE,
    TransformStep,
    dataset_spec,
)
from rsmooth.dataset_info import DATASETS as DATASET_INFO_NAMES

ROOT = Path(__file__).resolve().parents[1]

N_CIFAR_TRAIN, N_CIFAR_TEST = 103, 50  # 103: the five train batches get unequal sizes (20/21)
N_MNIST_TRAIN, N_MNIST_TEST = 60, 30
N_I32_PER_BATCH, N_I32_VAL = 20, 30
N_TI = 80
N_IMNET_CLASSES, N_IMNET_PER_CLASS = 3, 2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root holding every synthetic data set (read-only for the tests that use it)."""
    base = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(base, n_train=N_CIFAR_TRAIN, n_test=N_CIFAR_TEST, seed=0)
    write_synthetic_mnist(base, n_train=N_MNIST_TRAIN, n_test=N_MNIST_TEST, seed=0)
    write_synthetic_imagenet32(base, n_per_batch=N_I32_PER_BATCH, n_val=N_I32_VAL, seed=0)
    write_synthetic_tinyimages(base, n=N_TI, seed=0)
    write_synthetic_imagenet(
        base, num_classes=N_IMNET_CLASSES, n_per_class=N_IMNET_PER_CLASS, size=(40, 48), seed=0
    )
    return base


def _stack(ds, indices=None) -> tuple[torch.Tensor, torch.Tensor]:
    indices = range(len(ds)) if indices is None else indices
    items = [ds[i] for i in indices]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def _read_idx(path: Path) -> np.ndarray:
    """Independent reader of the idx format, to check what the MNIST writer produced."""
    raw = path.read_bytes()
    magic = struct.unpack(">I", raw[:4])[0]
    assert magic >> 8 == 0x08, "idx type must be unsigned byte"
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


# --------------------------------------------------------------------------------------------- registry


def test_registry_constants() -> None:
    assert DATASETS == ("cifar10", "mnist", "imagenet", "imagenet32", "tinyimages")
    assert [num_classes(n) for n in DATASETS] == [10, 10, 1000, 1000, 10]
    assert input_shape("cifar10") == (3, 32, 32)
    assert input_shape("mnist") == (1, 28, 28)
    assert input_shape("imagenet") == (3, 224, 224)
    assert REFERENCE_SUBSAMPLE_SKIP == {"cifar10": 20, "imagenet": 100}
    # The reference subsamples give 500 images of the 10,000 CIFAR-10 test and 50,000 ImageNet val images.
    assert 10_000 // REFERENCE_SUBSAMPLE_SKIP["cifar10"] == 500
    assert 50_000 // REFERENCE_SUBSAMPLE_SKIP["imagenet"] == 500


@pytest.mark.parametrize("call", [num_classes, input_shape, lambda n: get_dataset(n, "test", "/nonexistent")])
def test_unknown_dataset_names_allowed_values(call) -> None:
    with pytest.raises(ValueError) as info:
        call("svhn")
    message = str(info.value)
    assert "'svhn'" in message
    assert all(name in message for name in DATASETS)


@pytest.mark.parametrize(
    ("name", "split", "allowed"),
    [
        ("cifar10", "val", ("train", "test")),
        ("imagenet", "validation", ("train", "test")),
        ("tinyimages", "test", ("train",)),
    ],
)
def test_unknown_split_names_allowed_values(tmp_path: Path, name: str, split: str, allowed: tuple) -> None:
    with pytest.raises(ValueError) as info:
        get_dataset(name, split, tmp_path)
    message = str(info.value)
    assert repr(split) in message and all(a in message for a in allowed)
    assert dataset_splits(name) == allowed


# --------------------------------------------------------------------------------------------- loaders


@pytest.mark.parametrize(
    ("name", "split", "count"),
    [
        ("cifar10", "train", N_CIFAR_TRAIN),
        ("cifar10", "test", N_CIFAR_TEST),
        ("mnist", "train", N_MNIST_TRAIN),
        ("mnist", "test", N_MNIST_TEST),
        ("imagenet32", "train", 10 * N_I32_PER_BATCH),
        ("imagenet32", "test", N_I32_VAL),
        ("tinyimages", "train", N_TI),
        ("imagenet", "train", N_IMNET_CLASSES * N_IMNET_PER_CLASS),
        ("imagenet", "test", N_IMNET_CLASSES * N_IMNET_PER_CLASS),
    ],
)
def test_loader_shapes_dtypes_range_labels(root: Path, name: str, split: str, count: int) -> None:
    ds = get_dataset(name, split, root)
    assert len(ds) == count
    targets = [int(t) for t in ds.targets]
    assert len(targets) == count
    x, y = _stack(ds, range(min(count, 12)))
    assert x.dtype == torch.float32
    assert tuple(x.shape[1:]) == input_shape(name)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x.std() > 0.02  # real image content, not a constant
    assert y.tolist() == targets[: len(y)]
    assert all(isinstance(ds[i][1], int) for i in range(3))
    assert min(targets) >= 0 and max(targets) < num_classes(name)


def test_cifar10_roundtrip_and_labels(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        rows, labels = [], []
        for name in files:
            with open(folder / name, "rb") as handle:
                entry = pickle.load(handle, encoding="bytes")
            rows.append(entry[b"data"])
            labels.extend(entry[b"labels"])
        expected = np.concatenate(rows).reshape(-1, 3, 32, 32)
        ds = get_dataset("cifar10", split, root, augment=False)
        x, y = _stack(ds)
        assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(expected))
        assert y.tolist() == labels == ds.targets
        # balanced classes, as the generator promises
        assert np.bincount(labels, minlength=10).max() - np.bincount(labels, minlength=10).min() <= 1
    assert ds.classes == list(CIFAR10_CLASSES)


def test_cifar10_batches_are_python2_pickles_like_the_official_ones(root: Path) -> None:
    path = root / "cifar-10-batches-py" / "data_batch_1"
    with open(path, "rb") as handle:
        as_bytes = pickle.load(handle, encoding="bytes")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape[1] == 3072
    with open(path, "rb") as handle:
        as_latin1 = pickle.load(handle, encoding="latin1")
    assert "data" in as_latin1 and np.array_equal(as_latin1["data"], as_bytes[b"data"])
    # Python 2 str payloads: Python 3's default ASCII decoding fails, exactly as with the official files.
    with open(path, "rb") as handle, pytest.raises(UnicodeDecodeError):
        pickle.load(handle)
    sizes = [
        len(
            pickle.loads((root / "cifar-10-batches-py" / f"data_batch_{i}").read_bytes(), encoding="bytes")[
                b"labels"
            ]
        )
        for i in range(1, 6)
    ]
    assert sum(sizes) == N_CIFAR_TRAIN and max(sizes) - min(sizes) <= 1


def test_mnist_roundtrip_and_idx_format(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(raw / f"{prefix}-images-idx3-ubyte")
        labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte")
        assert images.shape[1:] == (28, 28) and labels.shape == (len(images),)
        ds = get_dataset("mnist", split, root)
        x, y = _stack(ds)
        assert x.shape == (len(images), 1, 28, 28)
        assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(images.copy()))
        assert y.tolist() == labels.tolist() == ds.targets.tolist()


def test_mnist_has_no_augmentation(root: Path) -> None:
    # SmoothMix feeds MNIST through ToTensor only, for both splits.
    plain = get_dataset("mnist", "train", root, augment=False)
    default = get_dataset("mnist", "train", root)
    torch.manual_seed(0)
    assert all(torch.equal(plain[i][0], default[i][0]) for i in range(5))


def test_imagenet32_labels_are_zero_based_and_pixels_roundtrip(root: Path) -> None:
    base = root / "imagenet32"
    raw_train = []
    for i in range(1, 11):
        with open(base / "Imagenet32_train" / f"train_data_batch_{i}", "rb") as handle:
            entry = pickle.load(handle)
        assert set(entry) == {"data", "labels", "mean"}
        assert entry["data"].dtype == np.uint8 and entry["data"].shape == (N_I32_PER_BATCH, 3072)
        raw_train.extend(entry["labels"])
    assert min(raw_train) == 1  # files are 1-based ...
    train = get_dataset("imagenet32", "train", root)
    assert train.targets == [v - 1 for v in raw_train]  # ... loaded labels 0-based
    assert min(train.targets) == 0

    with open(base / "Imagenet32_val" / "val_data", "rb") as handle:
        val_entry = pickle.load(handle)
    assert set(val_entry) == {"data", "labels"}
    val = get_dataset("imagenet32", "test", root)
    x, y = _stack(val)
    expected = val_entry["data"].reshape(-1, 3, 32, 32)
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(expected))
    assert y.tolist() == [v - 1 for v in val_entry["labels"]]


@pytest.mark.parametrize("bad_label", [0, 1001])
def test_imagenet32_out_of_range_label_is_a_clear_error(root: Path, tmp_path: Path, bad_label: int) -> None:
    with open(root / "imagenet32" / "Imagenet32_val" / "val_data", "rb") as handle:
        entry = pickle.load(handle)
    entry["labels"][3] = bad_label
    path = tmp_path / "imagenet32" / "Imagenet32_val" / "val_data"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DatasetFormatError) as info:
        get_dataset("imagenet32", "test", tmp_path)
    message = str(info.value)
    assert str(path) in message and "1..1000" in message and str(bad_label) in message
    assert isinstance(info.value, ValueError)


def test_tinyimages_targets_and_roundtrip(root: Path) -> None:
    with open(root / "tinyimages" / "ti_500K_pseudo_labeled.pickle", "rb") as handle:
        entry = pickle.load(handle)
    assert {"data", "extrapolated_targets"} <= set(entry)
    assert entry["data"].dtype == np.uint8 and entry["data"].shape == (N_TI, 32, 32, 3)
    ds = get_dataset("tinyimages", "train", root, augment=False)
    assert ds.targets == entry["extrapolated_targets"].tolist()
    x, _ = _stack(ds)
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(entry["data"]).permute(0, 3, 1, 2))


def test_tinyimages_label_noise_flips_the_requested_fraction(tmp_path: Path) -> None:
    clean = write_synthetic_tinyimages(tmp_path / "a", n=1000, seed=3)
    noisy = write_synthetic_tinyimages(tmp_path / "b", n=1000, seed=3, label_noise=0.3)
    a, b = (pickle.loads(p.read_bytes()) for p in (clean, noisy))
    assert np.array_equal(a["data"], b["data"])  # same images, only pseudo-labels differ
    wrong = np.mean(a["extrapolated_targets"] != b["extrapolated_targets"])
    assert 0.25 < wrong < 0.35


def test_tinyimages_bad_pseudo_label_is_a_clear_error(tmp_path: Path) -> None:
    path = write_synthetic_tinyimages(tmp_path, n=20, seed=0)
    entry = pickle.loads(path.read_bytes())
    entry["extrapolated_targets"][5] = 10
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DatasetFormatError, match=r"0\.\.9"):
        get_dataset("tinyimages", "train", tmp_path)


def test_imagenet_folder_layout_and_transforms(root: Path) -> None:
    folder = root / "imagenet"
    for split in ("train", "val"):
        wnids = sorted(p.name for p in (folder / split).iterdir())
        assert wnids == [f"n{k:08d}" for k in range(N_IMNET_CLASSES)]
        assert all(len(list((folder / split / w).glob("*.JPEG"))) == N_IMNET_PER_CLASS for w in wnids)
    test = get_dataset("imagenet", "test", root)
    assert sorted(set(test.targets)) == list(range(N_IMNET_CLASSES))
    assert torch.equal(test[0][0], test[0][0])  # Resize(256) + CenterCrop(224) is deterministic
    train = get_dataset("imagenet", "train", root)
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(3)]
    assert all(d.shape == (3, 224, 224) for d in draws)
    assert not torch.equal(draws[0], draws[1]) or not torch.equal(draws[1], draws[2])


@pytest.mark.parametrize("name", ["cifar10", "imagenet32", "tinyimages"])
def test_train_augmentation_changes_images_and_test_transform_does_not(root: Path, name: str) -> None:
    plain = get_dataset(name, "train", root, augment=False)
    augmented = get_dataset(name, "train", root)  # default for train: augmented
    reference = plain[1][0]
    assert torch.equal(plain[1][0], reference)  # deterministic without augmentation
    torch.manual_seed(0)
    draws = [augmented[1][0] for _ in range(6)]
    assert all(d.shape == reference.shape for d in draws)
    assert sum(not torch.equal(d, reference) for d in draws) >= 4
    assert len({d.numpy().tobytes() for d in draws}) >= 3  # random, not a fixed change
    if name != "tinyimages":
        test = get_dataset(name, "test", root)  # default for test: not augmented
        assert torch.equal(test[0][0], test[0][0])
        forced = get_dataset(name, "test", root, augment=True)
        torch.manual_seed(1)
        assert any(not torch.equal(forced[0][0], test[0][0]) for _ in range(4))


# --------------------------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(
    ("name", "split", "expected_path", "source_words"),
    [
        ("cifar10", "train", "cifar-10-batches-py/data_batch_1", ["cifar-10-python.tar.gz", "download=True"]),
        ("cifar10", "test", "cifar-10-batches-py/test_batch", [CIFAR10_URL]),
        ("mnist", "test", "MNIST/raw/t10k-images-idx3-ubyte", ["download=True", "ossci-datasets"]),
        ("imagenet", "train", "imagenet/train", ["image-net.org", "ILSVRC2012", "valprep.sh"]),
        ("imagenet", "test", "imagenet/val", ["image-net.org", "ILSVRC2012", "valprep.sh"]),
        (
            "imagenet32",
            "train",
            "imagenet32/Imagenet32_train/train_data_batch_10",
            ["image-net.org", "Imagenet32_train.zip", "Imagenet32_val.zip"],
        ),
        ("imagenet32", "test", "imagenet32/Imagenet32_val/val_data", ["Imagenet32_val.zip"]),
        (
            "tinyimages",
            "train",
            "tinyimages/ti_500K_pseudo_labeled.pickle",
            ["Carmon", "Unlabeled data improves adversarial robustness", "yaircarmon/semisup-adv"],
        ),
    ],
)
def test_missing_files_name_the_expected_path_and_the_source(
    tmp_path: Path, name: str, split: str, expected_path: str, source_words: list[str]
) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataset(name, split, tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path / expected_path) in message
    for word in source_words:
        assert word in message
    assert tmp_path / expected_path in info.value.missing


def test_imagenet_folder_without_class_folders_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "imagenet" / "val").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="valprep"):
        get_dataset("imagenet", "test", tmp_path)


@pytest.mark.parametrize("name", ["imagenet", "imagenet32", "tinyimages"])
def test_download_is_impossible_for_licensed_data(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetNotFoundError):
        get_dataset(name, "train", tmp_path, download=True)


def test_partial_cifar10_names_only_the_missing_file(tmp_path: Path) -> None:
    write_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert len(get_dataset("cifar10", "test", tmp_path)) == 5  # the test split is complete
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataset("cifar10", "train", tmp_path)
    assert info.value.missing == (tmp_path / "cifar-10-batches-py" / "data_batch_3",)
    assert "data_batch_2" not in str(info.value)


def test_absent_data_with_download_false_never_touches_the_network(tmp_path: Path, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(cifar10_mod, "download_and_extract_archive", no_network)
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    for name in ("cifar10", "mnist"):
        with pytest.raises(DatasetNotFoundError):
            get_dataset(name, "train", tmp_path, download=False)
    assert list(tmp_path.iterdir()) == []  # nothing created either


# --------------------------------------------------------------------------------------------- download / verify


def test_reference_constants_match_torchvision() -> None:
    tv = torchvision.datasets.CIFAR10
    assert (tv.url, tv.tgz_md5) == (CIFAR10_URL, CIFAR10_ARCHIVE_MD5)
    official = dict(tv.train_list + tv.test_list)
    official[tv.meta["filename"]] = tv.meta["md5"]
    assert official == CIFAR10_FILE_MD5


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_verify_cifar10_rejects_generated_files_and_names_the_file(tmp_path: Path, monkeypatch) -> None:
    folder = write_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    with pytest.raises(DatasetIntegrityError) as info:
        verify_cifar10(tmp_path)
    assert str(folder / "data_batch_1") in str(info.value)
    assert CIFAR10_FILE_MD5["data_batch_1"] in str(info.value)

    # With the generated files' own md5s as the table, verification passes ...
    table = {name: _md5(folder / name) for name in CIFAR10_FILE_MD5}
    monkeypatch.setattr(cifar10_mod, "CIFAR10_FILE_MD5", table)
    verify_cifar10(tmp_path)
    # ... and one flipped byte in one file is caught and named.
    path = folder / "test_batch"
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetIntegrityError, match="test_batch"):
        verify_cifar10(tmp_path)
    (folder / "batches.meta").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"batches\.meta"):
        verify_cifar10(tmp_path)


def _fake_cifar_download(calls: list):
    """Stand-in for torchvision's download_and_extract_archive: 'extracts' generated files."""

    def fake(url, download_root, extract_root=None, filename=None, md5=None, remove_finished=False):
        calls.append({"url": url, "filename": filename, "md5": md5, "download_root": download_root})
        write_synthetic_cifar10(extract_root or download_root, n_train=10, n_test=5, seed=1)
        return None

    return fake


def test_download_true_fetches_the_official_archive_and_rejects_non_official_files(
    tmp_path: Path, monkeypatch
) -> None:
    calls: list = []
    monkeypatch.setattr(cifar10_mod, "download_and_extract_archive", _fake_cifar_download(calls))
    with pytest.raises(DatasetIntegrityError, match="data_batch_1"):
        get_dataset("cifar10", "train", tmp_path, download=True)
    assert calls == [
        {
            "url": CIFAR10_URL,
            "filename": "cifar-10-python.tar.gz",
            "md5": CIFAR10_ARCHIVE_MD5,
            "download_root": calls[0]["download_root"],
        }
    ]
    # Downloaded into a temporary folder under root, which is gone; nothing half-installed under the final name.
    assert Path(calls[0]["download_root"]).parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_download_true_installs_verified_files(tmp_path: Path, monkeypatch) -> None:
    calls: list = []
    monkeypatch.setattr(cifar10_mod, "download_and_extract_archive", _fake_cifar_download(calls))
    reference = write_synthetic_cifar10(tmp_path / "ref", n_train=10, n_test=5, seed=1)
    monkeypatch.setattr(cifar10_mod, "CIFAR10_FILE_MD5", {n: _md5(reference / n) for n in CIFAR10_FILE_MD5})
    ds = get_dataset("cifar10", "test", tmp_path / "data", download=True)
    assert len(ds) == 5 and len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py"]
    get_dataset("cifar10", "train", tmp_path / "data", download=True)
    assert len(calls) == 1  # present files are not downloaded again
    assert download_cifar10 is cifar10_mod.download_cifar10


def test_mnist_download_true_installs_torchvision_files(tmp_path: Path, monkeypatch) -> None:
    def fake_download(self) -> None:  # torchvision's MNIST.download, minus the network
        write_synthetic_mnist(self.root, n_train=12, n_test=7, seed=2)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    ds = get_dataset("mnist", "test", tmp_path, download=True)
    assert len(ds) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST"]
    assert len(get_dataset("mnist", "train", tmp_path)) == 12


# --------------------------------------------------------------------------------------------- generators


def test_generators_are_deterministic_and_seeded(tmp_path: Path) -> None:
    def digest(path: Path) -> dict[str, str]:
        return {str(p.relative_to(path)): _md5(p) for p in sorted(path.rglob("*")) if p.is_file()}

    for seed, sub in ((0, "a"), (0, "b"), (1, "c")):
        write_synthetic_cifar10(tmp_path / sub, n_train=20, n_test=10, seed=seed)
        write_synthetic_imagenet32(tmp_path / sub, n_per_batch=2, n_val=3, seed=seed)
        write_synthetic_tinyimages(tmp_path / sub, n=10, seed=seed)
        write_synthetic_mnist(tmp_path / sub, n_train=10, n_test=5, seed=seed)
        write_synthetic_imagenet(tmp_path / sub, num_classes=2, n_per_class=1, size=16, seed=seed)
    a, b, c = (digest(tmp_path / s) for s in "abc")
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a if "meta" not in k)
    assert not any(Path(k).name.startswith(".") for k in a)  # no temporary files left behind


def test_cifar10_and_tinyimages_share_prototypes_but_not_images(tmp_path: Path) -> None:
    write_synthetic_cifar10(tmp_path, n_train=50, n_test=10, seed=0)
    write_synthetic_tinyimages(tmp_path, n=50, seed=0)
    cifar = get_dataset("cifar10", "train", tmp_path, augment=False).data
    tiny = get_dataset("tinyimages", "train", tmp_path, augment=False).data
    assert not any(np.array_equal(t, c) for t in tiny[:10] for c in cifar)


def _nearest_mean_accuracy(train_x, train_y, test_x, test_y, sigma: float, classes: int) -> float:
    torch.manual_seed(0)
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(classes)]).flatten(1)
    noisy = (test_x + sigma * torch.randn_like(test_x)).flatten(1)
    return (torch.cdist(noisy, means).argmin(1) == test_y).float().mean().item()


def test_synthetic_classes_are_learnable_under_gaussian_noise(tmp_path: Path) -> None:
    write_synthetic_cifar10(tmp_path, n_train=600, n_test=300, seed=0)
    write_synthetic_tinyimages(tmp_path, n=600, seed=0)
    write_synthetic_mnist(tmp_path, n_train=600, n_test=300, seed=0)
    cx, cy = _stack(get_dataset("cifar10", "train", tmp_path, augment=False))
    tx, ty = _stack(get_dataset("cifar10", "test", tmp_path))
    ix, iy = _stack(get_dataset("tinyimages", "train", tmp_path, augment=False))
    mx, my = _stack(get_dataset("mnist", "train", tmp_path))
    mtx, mty = _stack(get_dataset("mnist", "test", tmp_path))
    for sigma in (0.25, 0.5):
        # chance is 0.1; a nearest-class-mean rule already does far better under smoothing noise
        assert _nearest_mean_accuracy(cx, cy, tx, ty, sigma, 10) > 0.6
        # pseudo-labelled "TinyImages" carry the same class structure as "CIFAR-10"
        assert _nearest_mean_accuracy(ix, iy, tx, ty, sigma, 10) > 0.6
        assert _nearest_mean_accuracy(mx, my, mtx, mty, sigma, 10) > 0.6
    # ... but not trivially: the colour means alone do not separate every test image
    assert _nearest_mean_accuracy(cx, cy, tx, ty, 0.0, 10) < 0.99


def test_input_shape_matches_loaded_tensors(root: Path) -> None:
    for name in DATASETS:
        split = dataset_splits(name)[-1]
        x, _ = get_dataset(name, split, root)[0]
        assert tuple(x.shape) == input_shape(name)


# --------------------------------------------------------------------------------------------- one spec per data set


def test_the_per_fact_tables_are_views_of_the_specs() -> None:
    assert DATASETS == tuple(DATASET_SPECS) == DATASET_INFO_NAMES
    for name, spec in DATASET_SPECS.items():
        assert spec.name == name and dataset_spec(name) is spec
        assert num_classes(name) == NUM_CLASSES[name] == spec.num_classes
        assert input_shape(name) == INPUT_SHAPE[name] == spec.input_shape
        assert dataset_splits(name) == spec.splits
        assert TEST_SET_SIZE.get(name) == spec.test_set_size
        assert REFERENCE_SUBSAMPLE_SKIP.get(name) == spec.reference_subsample_skip
        assert all(set(f.splits) <= set(spec.splits) for f in spec.files)
        assert all(spec.split_files(split) for split in spec.splits)  # every split reads something
    assert TEST_SET_SIZE == {"cifar10": 10_000, "mnist": 10_000, "imagenet": 50_000, "imagenet32": 50_000}


def test_a_spec_with_a_transform_the_builder_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'rotate'.*random_crop"):
        TransformStep("rotate", 10)


@pytest.mark.parametrize(("name", "split"), [(n, s) for n in DATASET_SPECS for s in DATASET_SPECS[n].splits])
def test_each_loader_yields_the_shape_and_classes_of_its_spec(root: Path, name: str, split: str) -> None:
    spec = DATASET_SPECS[name]
    ds = get_dataset(name, split, root)
    x, y = _stack(ds, range(min(len(ds), 8)))
    assert tuple(x.shape[1:]) == spec.input_shape
    assert int(y.min()) >= 0 and int(y.max()) < spec.num_classes
    # The split reads exactly the spec's files: each one, when absent, is named as missing.
    for entry in spec.split_files(split):
        path = root / spec.folder / entry.path
        assert path.exists()
        moved = path.with_name(path.name + ".away")
        path.rename(moved)
        try:
            with pytest.raises(DatasetNotFoundError) as info:
                get_dataset(name, split, root)
            assert path in info.value.missing or str(path) in str(info.value)
        finally:
            moved.rename(path)


@pytest.mark.parametrize("name", list(DATASET_SPECS))
def test_each_data_sets_transforms_are_the_references(name: str) -> None:
    # Written out by hand from the reference code (see rsmooth.data.transforms), not from the specs.
    crop_flip = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    expected = {
        "cifar10": (crop_flip, []),
        "imagenet32": (crop_flip, []),
        "tinyimages": ([T.Resize((32, 32)), *crop_flip], [T.Resize((32, 32))]),
        "imagenet": (
            [T.RandomResizedCrop(224), T.RandomHorizontalFlip()],
            [T.Resize(256), T.CenterCrop(224)],
        ),
        "mnist": ([], []),
    }[name]
    for augment, steps in zip((True, False), expected, strict=True):
        reference = T.Compose([*steps, T.ToTensor()]) if steps else T.ToTensor()
        assert repr(build_transform(name, augment)) == repr(reference)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_light_to_tensor_is_torchvisions_bit_for_bit(mode: str) -> None:
    # Used without augmentation so that certification jobs need not import torchvision (about 2 s each).
    from PIL import Image

    from rsmooth.data.transforms import ToTensor

    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3 if mode == "RGB" else 1), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode=mode)
    ours, theirs = ToTensor()(image), T.ToTensor()(image)
    assert ours.shape == theirs.shape == (pixels.shape[2], 7, 5) and ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs)


def test_cifar10_module_constants_are_the_specs() -> None:
    spec = DATASET_SPECS["cifar10"]
    assert {f.path: f.md5 for f in spec.files} == CIFAR10_FILE_MD5
    assert (
        spec.url,
        spec.archive_md5,
        spec.class_names,
    ) == (CIFAR10_URL, CIFAR10_ARCHIVE_MD5, CIFAR10_CLASSES)


@pytest.mark.parametrize("name", list(DATASET_SPECS))
def test_prepare_writes_and_lists_the_files_of_the_spec(tmp_path: Path, name: str) -> None:
    spec = DATASET_SPECS[name]
    sizes = SyntheticSizes(
        n_train=20, n_test=10, n_tinyimages=10, imagenet32_per_batch=3, imagenet32_val=4, seed=0
    )
    record = prepare_dataset(name, tmp_path, "synthetic", sizes)
    listed = {Path(p) for p in record["files"]}
    assert (
        listed == {tmp_path / spec.folder / f.path for f in spec.files} == set(expected_files(name, tmp_path))
    )
    assert all(p.exists() for p in listed)
    assert (record["dataset"], record["source"], record["root"]) == (name, "synthetic", str(tmp_path))
    for entry in spec.files:
        path = tmp_path / spec.folder / entry.path
        assert record["files"][str(path)] == ("directory" if entry.folder else path.stat().st_size)
    if name in ("cifar10", "mnist", "imagenet"):  # the evaluation split holds n_test images, as planned
        assert len(get_dataset(name, "test", tmp_path)) == sizes.n_test
    # ... and checking them in place ("download" of data that cannot be downloaded) accepts them as they are.
    if not spec.downloadable:
        checked = prepare_dataset(name, tmp_path, "download")
        assert checked == {**record, "source": "download", "found": checked["found"]}
        assert "every expected file is present" in checked["found"]


def test_mnist_in_place_is_used_without_a_download(tmp_path: Path, monkeypatch) -> None:
    """An offline compute node with MNIST in place: data.source download must not fetch it again."""
    from rsmooth.data import mnist

    write_synthetic_mnist(tmp_path, n_train=20, n_test=12, seed=0)

    def no_network(root):
        raise AssertionError("downloaded although the files are in place")

    monkeypatch.setattr(mnist, "download_mnist", no_network)
    record = prepare_dataset("mnist", tmp_path, "download")
    assert "present" in record["found"] and "nothing downloaded" in record["found"]
    # ... and a damaged file is an error naming it, not a silent re-download.
    labels = tmp_path / DATASET_SPECS["mnist"].folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    with pytest.raises(DatasetFormatError, match="t10k-labels-idx1-ubyte"):
        prepare_dataset("mnist", tmp_path, "download")


def test_the_evaluation_split_size_is_read_from_the_files_on_disk(tmp_path: Path) -> None:
    from rsmooth.dataset_info import evaluation_split_size_on_disk
    from rsmooth.pipeline import certification_set_size, job_ranges

    assert evaluation_split_size_on_disk("mnist", tmp_path) is None
    write_synthetic_mnist(tmp_path, n_train=20, n_test=2000, seed=0)
    write_synthetic_imagenet(tmp_path, num_classes=3, n_per_class=1, size=8, seed=0, n_val=7)
    assert evaluation_split_size_on_disk("mnist", tmp_path) == 2000
    assert (
        evaluation_split_size_on_disk("imagenet", tmp_path)
        == len(get_dataset("imagenet", "test", tmp_path))
        == 7
    )
    assert evaluation_split_size_on_disk("cifar10", tmp_path) is None  # md5-verified: always 10,000
    config = {"data": {"root": str(tmp_path), "source": "download"}, "training": {"dataset": "mnist"}}
    assert certification_set_size(config) == 2000
    # The case: skip 4, 500 images a job on a 2,000-image split is 1 job (was 5, 4 of them empty).
    assert job_ranges(certification_set_size(config), 4, 500) == [(0, 2000)]
    config["data"]["root"] = str(tmp_path / "absent")
    assert certification_set_size(config) == 10_000  # to be downloaded: the published split


def test_prepare_lists_numbered_files_in_their_numeric_order(tmp_path: Path) -> None:
    names = [p.name for p in expected_files("imagenet32", tmp_path)]
    assert names == [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]


@pytest.mark.parametrize("name", [n for n, s in DATASET_SPECS.items() if not s.downloadable])
def test_prepare_of_absent_licensed_data_says_what_to_put_where(tmp_path: Path, name: str) -> None:
    spec = DATASET_SPECS[name]
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset(name, tmp_path, "download")
    assert str(tmp_path / spec.folder / spec.split_files(spec.splits[0])[0].path) in str(info.value)
    assert spec.url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_prepare_data_script_writes_the_stamp_of_the_spec(tmp_path: Path) -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "prepare_data.py"))
    stamp = tmp_path / "data" / ".ready" / "mnist.json"
    script["main"](
        ["mnist", str(stamp), "--root", str(tmp_path / "data"), "--source", "synthetic", "--n-train", "20"]
    )
    record = json.loads(stamp.read_text())
    spec = DATASET_SPECS["mnist"]
    assert list(record["files"]) == [
        str(tmp_path / "data" / spec.folder / n) for n in sorted(MNIST_RAW_FILES)
    ]
    # Every file's sha256, computed once here for the results' provenance.
    for name in record["files"]:
        assert record["sha256"][name] == hashlib.sha256(Path(name).read_bytes()).hexdigest()
    assert len(get_dataset("mnist", "train", tmp_path / "data")) == 20
    with pytest.raises(ValueError, match="unknown source 'torrent'"):
        prepare_dataset("mnist", tmp_path, "torrent")


def test_a_missing_fact_names_the_data_set_and_the_fact() -> None:
    from rsmooth.analysis.grids import has_linf_table, linf_radius, table_radii

    assert list(table_radii("mnist")) == [0.25 * i for i in range(1, 11)]
    assert not has_linf_table("mnist") and has_linf_table("cifar10") and linf_radius("imagenet") == 1 / 255
    with pytest.raises(ValueError, match=r"'mnist' \(MNIST\) has no l-inf radius .*DatasetSpec.linf_radius"):
        linf_radius("mnist")
    with pytest.raises(ValueError, match=r"'tinyimages' \(TinyImages\) has no table radii"):
        table_radii("tinyimages")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        table_radii("svhn")


def test_a_pool_of_digits_is_split_into_mnists_four_files(tmp_path: Path) -> None:
    """scripts/split_mnist.py: a gzipped idx pool (the format of shared/data/mnist-8k) becomes a train/test split
    that the MNIST loader and the data job read in place; bad pools are refused naming the file."""
    import gzip

    from rsmooth.data.mnist import write_mnist_split

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 30, dtype=np.uint8)
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "images.gz").write_bytes(
        gzip.compress(struct.pack(">4B3I", 0, 0, 8, 3, 30, 28, 28) + images.tobytes())
    )
    (pool / "labels").write_bytes(struct.pack(">4BI", 0, 0, 8, 1, 30) + labels.tobytes())
    root = tmp_path / "data"
    script = Path(__file__).resolve().parents[1] / "scripts" / "split_mnist.py"
    runpy.run_path(str(script), run_name="not_main")["main"](
        [str(pool / "images.gz"), str(pool / "labels"), str(root), "--test", "8"]
    )
    for split, expected in (("train", slice(0, 22)), ("test", slice(22, 30))):
        x, y = _stack(get_dataset("mnist", split, root))
        assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(images[expected]))
        assert y.tolist() == labels[expected].tolist()
    assert "nothing downloaded" in prepare_dataset("mnist", root, "download")["found"]
    with pytest.raises(ValueError, match=r"num_test must be between 1 and 29 .* got 30"):
        write_mnist_split(pool / "images.gz", pool / "labels", root, 30)
    (pool / "short").write_bytes(struct.pack(">4BI", 0, 0, 8, 1, 29) + labels[:29].tobytes())
    with pytest.raises(DatasetFormatError, match="short: 29 labels for 30 images"):
        write_mnist_split(pool / "images.gz", pool / "short", root, 8)
    (pool / "cut").write_bytes(struct.pack(">4BI", 0, 0, 8, 1, 30) + labels[:20].tobytes())
    with pytest.raises(DatasetFormatError, match="cut: 20 data bytes, but its idx header"):
        write_mnist_split(pool / "images.gz", pool / "cut", root, 8)
