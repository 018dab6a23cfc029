"""Training: configuration checks, batch plans, self-training weights, every method learns, exact resume,
fine-tuning, DDP on CPU and the training script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.data import ConcatDataset, TensorDataset

from rsmooth.data.synthetic import write_synthetic_cifar10, write_synthetic_imagenet32, write_synthetic_mnist
from rsmooth.models import get_architecture, load_checkpoint, save_checkpoint
from rsmooth.train import loop
from rsmooth.train.batches import plan_epoch, rank_slice
from rsmooth.train.loop import LOG_COLUMNS, Distributed, train
from rsmooth.train.methods import REGISTRY
from rsmooth.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
NOISE_DRAWS = [name for name, cls in REGISTRY.items() if cls.noise_draws]  # methods with m > 1


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, n_train=96, n_test=32, seed=0)
    return root


def tiny(**overrides) -> TrainConfig:
    """A configuration small enough for a CPU test: ResNet-8, a few epochs, constant learning rate."""
    values = dict(
        arch="cifar_resnet8", epochs=3, batch_size=32, lr=0.05, lr_step_size=0, workers=0, test_subset=16,
        warmup=1, steps=2, eps=0.25, sigma=0.25,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


# -- configuration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sigma": -0.1}, "sigma must be a non-negative number, got -0.1"),
        ({"eps": -1.0}, "eps must be a non-negative number, got -1.0"),
        ({"method": "cutmix"}, "unknown method 'cutmix'; allowed: standard, gaussian, smoothadv"),
        ({"attack": "fgsm"}, "unknown attack 'fgsm'; allowed: pgd, ddn, pgd_stein"),
        (
            {"method": "smoothadv", "num_noise_vec": 3, "batch_size": 256},
            "num_noise_vec (m) must divide batch_size",
        ),
        ({"method": "gaussian", "num_noise_vec": 2}, f"applies to methods {', '.join(NOISE_DRAWS)} only"),
        ({"method": "smoothadv", "attack": "pgd_stein"}, "needs num_noise_vec >= 2"),
        ({"method": "gaussian", "sigma": 0.0}, "sigma must be > 0"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"dataset": "svhn"}, "unknown dataset 'svhn'"),
    ],
)
def test_invalid_configurations_name_the_bad_value(overrides, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**overrides).validate()
    assert message in str(err.value)


def test_paper_defaults():
    config = TrainConfig().validate()
    assert (config.epochs, config.batch_size, config.lr, config.lr_step_size, config.lr_gamma) == (
        150,
        256,
        0.1,
        50,
        0.1,
    )
    assert (config.momentum, config.weight_decay) == (0.9, 1e-4)


# -- batch plans and self-training -----------------------------------------------------------------------


def test_plan_is_a_shuffled_pass_fixed_by_seed_and_epoch():
    plan = plan_epoch(100, 32, seed=1, epoch=0)
    assert [len(b) for b, _ in plan] == [32, 32, 32, 4]
    assert sorted(i for b, _ in plan for i in b) == list(range(100))
    assert plan == plan_epoch(100, 32, seed=1, epoch=0)
    assert plan != plan_epoch(100, 32, seed=1, epoch=1)
    assert plan != plan_epoch(100, 32, seed=2, epoch=0)


def test_an_epoch_of_a_fixed_number_of_batches_cuts_fresh_permutations_into_full_batches():
    # 7 batches of 32 from 100 images: 224 indices, two whole permutations and the start of a third.
    plan = plan_epoch(100, 32, seed=1, epoch=0, num_batches=7)
    assert [len(b) for b, _ in plan] == [32] * 7 and not any(p for _, p in plan)
    flat = [i for b, _ in plan for i in b]
    assert sorted(flat[:100]) == sorted(flat[100:200]) == list(range(100))
    assert len(set(flat[200:])) == 24 and flat[:100] != flat[100:200]
    assert plan == plan_epoch(100, 32, seed=1, epoch=0, num_batches=7)
    assert plan != plan_epoch(100, 32, seed=1, epoch=1, num_batches=7)
    # Fewer batches than a pass: a prefix of the epoch's one permutation.
    assert plan_epoch(100, 32, seed=1, epoch=0, num_batches=2) == plan[:2]
    with pytest.raises(ValueError, match="pseudo-labelled"):
        plan_epoch(100, 32, seed=1, epoch=0, num_pseudo=50, num_batches=2)


def test_batches_per_epoch_is_checked_and_refused_with_pseudo_labels():
    assert TrainConfig(batches_per_epoch=5).validate().batches_per_epoch == 5
    with pytest.raises(ValueError, match="batches_per_epoch"):
        TrainConfig(batches_per_epoch=0).validate()
    with pytest.raises(ValueError, match="batches_per_epoch does not combine with pseudo_labels"):
        TrainConfig(batches_per_epoch=5, pseudo_labels="merged.json").validate()


def test_self_training_batches_are_all_or_nothing_in_equal_numbers_and_random_order():
    plans = [plan_epoch(100, 10, seed=0, epoch=e, num_pseudo=1000) for e in range(4)]
    for plan in plans:
        assert sum(pseudo for _, pseudo in plan) == sum(not pseudo for _, pseudo in plan) == 10
        for indices, pseudo in plan:
            assert all((i >= 100) == pseudo for i in indices)  # pseudo indices come after the labelled ones
        assert sorted(i for b, p in plan if not p for i in b) == list(range(100))
    orders = {tuple(p for _, p in plan) for plan in plans}
    assert len(orders) > 1 and all(order[:10] != (False,) * 10 for order in orders)
    # Each epoch draws a fresh subset of the pseudo-labelled set.
    subsets = [frozenset(i for b, p in plan if p for i in b) for plan in plans]
    assert len(set(subsets)) == 4


def test_rank_slices_partition_each_batch():
    batch = list(range(10, 43))
    parts = [rank_slice(batch, r, 3) for r in range(3)]
    assert [i for part in parts for i in part] == batch
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_self_training_weight_applies_to_pseudo_labelled_batches_only():
    labelled = TensorDataset(torch.zeros(40, 1, 2, 2), torch.zeros(40, dtype=torch.long))
    pseudo = TensorDataset(torch.ones(60, 1, 2, 2), torch.ones(60, dtype=torch.long))
    calls = []

    def record(x, y, weight):
        calls.append((x.unique().tolist(), weight))
        return 0.0, 0, len(y)

    config = TrainConfig(batch_size=8, workers=0, self_training_weight=0.1)
    loop._train_epoch(
        record,
        torch.nn.Identity(),
        ConcatDataset([labelled, pseudo]),
        40,
        config,
        0,
        Distributed(),
        torch.device("cpu"),
        False,
    )
    assert len(calls) == 10
    assert all(values in ([0.0], [1.0]) for values, _ in calls)  # never a mixed batch
    assert all(weight == (0.1 if values == [1.0] else 1.0) for values, weight in calls)


# -- every method trains -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "standard", "sigma": 0.0},
        {"method": "gaussian"},
        {"method": "smoothadv", "attack": "pgd"},
        {"method": "smoothadv", "attack": "pgd", "num_noise_vec": 2, "multi_noise": True},
        {"method": "smoothadv", "attack": "ddn"},
        {"method": "smoothadv", "attack": "pgd_stein", "num_noise_vec": 2},
        {"method": "pgd_vanilla", "sigma": 0.0},
        {"method": "pgd_noise"},
        {
            "method": "smoothmix",
            "num_noise_vec": 2,
            "smoothmix_alpha": 0.5,
            "mix_step": 1,
            "smoothmix_eta": 1.0,
        },
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_each_method_lowers_the_training_loss(tmp_path, data_root, overrides):
    out = train(tiny(epochs=4, **overrides), tmp_path / "model.pt", data_root=data_root, progress=False)
    log = pd.read_csv(tmp_path / "model.pt.log.tsv", sep="\t")
    assert list(log.columns) == list(LOG_COLUMNS)
    assert list(log.epoch) == [1, 2, 3, 4]
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0]
    assert log.test_acc_adv.isna().all() == (overrides["method"] in ("standard", "gaussian"))
    _, checkpoint = load_checkpoint(out)
    assert checkpoint["config"]["method"] == overrides["method"]
    assert checkpoint["epoch"] == 4 and checkpoint["sigma"] == tiny(**overrides).sigma
    assert not (tmp_path / "model.pt.resume").exists()


@pytest.mark.parametrize(
    ("overrides", "lrs"),
    [
        # Cohen's and Salman's scripts: scheduler.step(epoch) before the epoch, decays at epochs 2, 4.
        ({"method": "gaussian"}, [0.1, 0.1, 0.01, 0.01, 0.001]),
        # The SmoothMix repository's scripts step it after the epoch: every decay one epoch late.
        ({"method": "gaussian", "lr_decay_offset": 1}, [0.1, 0.1, 0.1, 0.01, 0.01]),
        ({"method": "stability"}, [0.1, 0.1, 0.1, 0.01, 0.01]),
    ],
    ids=["on-time", "late", "stability-default"],
)
def test_step_decay_schedule(tmp_path, data_root, overrides, lrs):
    train(
        tiny(epochs=5, lr=0.1, lr_step_size=2, **overrides),
        tmp_path / "m.pt",
        data_root=data_root,
        progress=False,
    )
    log = pd.read_csv(tmp_path / "m.pt.log.tsv", sep="\t")
    assert np.allclose(log.lr, lrs)


# -- exact resumption --------------------------------------------------------------------------------------


class Killed(Exception):
    pass


def test_resume_after_a_kill_mid_epoch_reproduces_the_uninterrupted_weights(tmp_path, data_root, monkeypatch):
    config = tiny(method="smoothadv", epochs=3, num_noise_vec=2, multi_noise=True, warmup=2)
    reference = train(config, tmp_path / "full.pt", data_root=data_root, progress=False)

    real_step = loop.MethodStep.__call__
    calls = {"n": 0}

    def dying_step(self, x, y, weight=1.0):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2 (3 batches per epoch), mid-way: as a SIGKILL would
            raise Killed
        return real_step(self, x, y, weight)

    monkeypatch.setattr(loop.MethodStep, "__call__", dying_step)
    out = tmp_path / "resumed.pt"
    with pytest.raises(Killed):
        train(config, out, data_root=data_root, progress=False)
    assert not out.exists()
    state = torch.load(tmp_path / "resumed.pt.resume", weights_only=False)
    assert state["epoch"] == 1
    monkeypatch.setattr(loop.MethodStep, "__call__", real_step)
    train(config, out, data_root=data_root, progress=False)

    expected = load_checkpoint(reference)[0].state_dict()
    resumed = load_checkpoint(out)[0].state_dict()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    assert pd.read_csv(tmp_path / "resumed.pt.log.tsv", sep="\t").epoch.tolist() == [1, 2, 3]


def test_resume_with_changed_settings_is_refused(tmp_path, data_root, monkeypatch):
    def killed(*args, **kwargs):
        raise Killed

    config = tiny(method="gaussian", epochs=2)
    monkeypatch.setattr(loop, "save_checkpoint", killed)  # dies after the last epoch's state was saved
    with pytest.raises(Killed):
        train(config, tmp_path / "m.pt", data_root=data_root, progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="other settings"):
        train(
            tiny(method="gaussian", epochs=2, lr=0.01), tmp_path / "m.pt", data_root=data_root, progress=False
        )


# -- pre-training and fine-tuning ----------------------------------------------------------------------------


def test_fine_tuning_replaces_the_head_and_starts_from_the_pretrained_weights(tmp_path, data_root):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    write_synthetic_imagenet32(root, n_per_batch=8, n_val=16, num_classes=1000, seed=0)
    pretrained = train(
        tiny(dataset="imagenet32", method="smoothadv", epochs=1),
        tmp_path / "imagenet32.pt", data_root=root, progress=False,
    )  # fmt: skip
    pre_model, pre_ckpt = load_checkpoint(pretrained)
    assert pre_model[1].fc.out_features == 1000
    # lr 0 and no weight decay: the body must stay exactly the pre-trained one.
    tuned = train(
        tiny(method="smoothadv", epochs=1, lr=0.0, weight_decay=0.0, pretrained=str(pretrained)),
        tmp_path / "tuned.pt", data_root=root, progress=False,
    )  # fmt: skip
    model, checkpoint = load_checkpoint(tuned)
    assert model[1].fc.out_features == 10
    assert checkpoint["normalization"] == pre_ckpt["normalization"]
    for name, value in model[1].state_dict().items():
        if name.startswith("fc.") or "running" in name or "num_batches" in name:
            continue
        assert torch.equal(value, pre_model[1].state_dict()[name]), name


def test_pretrained_model_of_another_architecture_is_a_clear_error(tmp_path, data_root):
    other = tmp_path / "other.pt"
    save_checkpoint(
        other,
        get_architecture("cifar_resnet20", "cifar10"),
        arch="cifar_resnet20",
        epoch=1,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=10,
    )
    with pytest.raises(ValueError, match="does not fit arch 'cifar_resnet8'"):
        train(tiny(pretrained=str(other), epochs=1), tmp_path / "m.pt", data_root=data_root, progress=False)


# -- the script and DDP ---------------------------------------------------------------------------------------


def test_script_rejects_bad_hyper_parameters_before_any_work(tmp_path, data_root):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), str(tmp_path / "m.pt"), "--sigma", "-1", "--data-root", str(data_root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "sigma must be a non-negative number, got -1.0" in result.stderr
    assert not list(tmp_path.iterdir())


def test_script_writes_the_run_record_beside_the_checkpoint(tmp_path):
    import hashlib
    import json

    root = tmp_path / "data"
    write_synthetic_mnist(root, n_train=32, n_test=8, seed=0)
    settings = dict(dataset="mnist", arch="lenet", method="standard", sigma=0.0, epochs=1, batch_size=16, lr=0.05, lr_step_size=0, workers=0, test_subset=8)  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "m.pt", "--config", "config.yaml", "--data-root", "data",
         "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "m.pt.provenance.json").read_text()
    record = json.loads(text)
    assert record["checkpoint"] == {
        "path": "m.pt",
        "sha256": hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest(),
    }
    assert (
        record["command"]
        == "python scripts/train.py m.pt --config config.yaml --data-root data --device cpu --no-progress"
    )
    assert record["host"]["device"] == "cpu" and record["date_utc"]
    assert str(tmp_path) not in text and str(ROOT) not in text


def test_distributed_data_parallel_on_cpu_matches_one_process(tmp_path):
    """Two gloo processes, each on half of every batch, average their gradients: with a model without batch
    norm (LeNet) and no randomness in the step (standard training on MNIST), the weights must equal those of
    one process on the whole batches."""
    root = tmp_path / "data"
    write_synthetic_mnist(root, n_train=96, n_test=16, seed=0)
    settings = dict(dataset="mnist", arch="lenet", method="standard", sigma=0.0, epochs=2, batch_size=32, lr=0.05, lr_step_size=0, workers=0, test_subset=16)  # fmt: skip
    single = train(TrainConfig(**settings), tmp_path / "single.pt", data_root=root, progress=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(ROOT / "scripts/train.py"), str(tmp_path / "ddp.pt"),
         "--config", str(config), "--data-root", str(root), "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ddp_model, checkpoint = load_checkpoint(tmp_path / "ddp.pt")
    assert checkpoint["epoch"] == 2
    assert pd.read_csv(tmp_path / "ddp.pt.log.tsv", sep="\t").epoch.tolist() == [1, 2]
    assert not (tmp_path / "ddp.pt.resume").exists()
    single_state = load_checkpoint(single)[0].state_dict()
    for key, value in ddp_model.state_dict().items():
        torch.testing.assert_close(value, single_state[key], rtol=1e-4, atol=1e-5)
