"""Every registered method, from its registry line alone: a tiny model of it trains, the planner costs it, and
the aggregation maps it to its rows of the papers' tables (or to none, for a method no paper reports)."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from rsmooth.analysis.paper import load_paper_numbers
from rsmooth.analysis.results import Certification, paper_values
from rsmooth.dataset_info import TRAIN_SET_SIZE
from rsmooth.models import get_architecture
from rsmooth.pipeline import GridModel, complete_config
from rsmooth.plan import DEFAULT_THROUGHPUT, method_factor, plan_config
from rsmooth.train.methods import REGISTRY, MethodStep, benchmark_rows
from rsmooth.train_config import TrainConfig

METHODS = list(REGISTRY)


def tiny_config(method: str) -> TrainConfig:
    """LeNet on 4 MNIST-shaped images: 2 noise draws where the method draws several, 1 attack step."""
    cls = REGISTRY[method]
    m = 2 if cls.noise_draws else 1
    return TrainConfig(
        dataset="mnist", arch="lenet", method=method, batch_size=4, steps=1, num_noise_vec=m, warmup=1
    ).validate()


@pytest.mark.parametrize("method", METHODS)
def test_a_tiny_model_of_every_method_trains(method):
    config = tiny_config(method)
    torch.manual_seed(0)
    model = get_architecture("lenet", "mnist", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step = MethodStep(config, model, optimizer, scaler, autocast=contextlib.nullcontext)
    assert type(step) is REGISTRY[method]
    step.set_epoch(0)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        loss, correct, count = step(x, y)
        # Device tensors, read by the loop once an epoch: a step never waits for the GPU.
        assert loss.shape == () and loss.dtype == torch.float64 and correct.dtype == torch.int64
        assert math.isfinite(loss) and 0 <= int(correct) <= count and count in (4, 4 * config.num_noise_vec)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert any(moved), "two training steps left every weight as it was"


@pytest.mark.parametrize("method", METHODS)
def test_the_planner_costs_a_model_of_every_method(method):
    cls = REGISTRY[method]
    assert cls.benchmarks, f"{method} declares no benchmark row: the planner has no factor for it"
    for row, benchmark in cls.benchmarks.items():
        measured = {"method": method, "arch": "lenet", **benchmark.settings}
        assert cls.training_cost(measured).row == row
        # The benchmarked setting gets its measured factor back, on LeNet and on a ResNet where measured.
        assert method_factor(measured) == pytest.approx(benchmark.factor)
        if benchmark.resnet_factor is not None:
            resnet = {**measured, "arch": "cifar_resnet110"}
            assert method_factor(resnet) == pytest.approx(benchmark.resnet_factor)
    config = {
        "data": {"root": "resources/data", "source": "download"},
        "training": {"dataset": "cifar10", "arch": "cifar_resnet110", "epochs": 2},
        "experiments": {"one": {"grid": {"method": [method]}}},
        "certify": {"n0": 100, "n": 1000, "alpha": 0.001, "skip": 100, "shards": 1},
    }
    plan = plan_config(complete_config(config))
    train = TrainConfig(method=method, dataset="cifar10", arch="cifar_resnet110", epochs=2).to_dict()
    factor = method_factor(train)
    assert (
        math.isfinite(factor) and factor >= 1.0
    )  # no method trains an image for less than Gaussian training
    seconds = 2 * TRAIN_SET_SIZE["cifar10"] * factor / DEFAULT_THROUGHPUT.train_rate("cifar_resnet110")
    (stage,) = [s for s in plan.stages if s["stage"] == f"training: {method}"]
    assert stage["gpu_hours"] == pytest.approx(seconds / 3600)


def test_benchmark_rows_are_unique_and_priced_by_their_own_settings():
    rows = benchmark_rows()  # raises on a row declared by two methods
    assert set(DEFAULT_THROUGHPUT.method_factors) == {
        *rows,
        *(f"resnet:{r}" for r, (_, b) in rows.items() if b.resnet_factor),
    }


_LOG = pd.DataFrame(
    {"idx": [0, 1, 2, 3], "label": [0, 1, 2, 3], "predict": [0, 1, -1, 3], "radius": [0.6, 0.3, 0.0, 0.2],
     "correct": [1, 1, 0, 1], "time": [1.0] * 4}
)  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
def test_a_model_of_every_method_maps_to_its_rows_of_the_papers_tables(method):
    numbers = load_paper_numbers()
    published = set(zip(numbers["dataset"], numbers["method"], numbers["setting"], strict=True))
    reported = set(numbers["method"])
    train = TrainConfig(method=method).to_dict()  # the method's defaults, trained from scratch, seed 0
    mapped = set()  # (dataset, method, setting) of this model's values that a paper publishes
    for dataset in sorted(set(numbers["dataset"])):
        model = GridModel(f"{method}-model", train, ["experiment"])
        values = paper_values([Certification(model, train["sigma"], _LOG)], dataset)
        if len(values):
            mapped |= (
                set(zip(values["dataset"], values["method"], values["setting"], strict=True)) & published
            )
    if method in reported:
        single = {key for key in mapped if not key[2].startswith("envelope")}
        assert single, f"the papers report {method}, but its default model fills none of their per-model rows"
    else:
        assert not mapped, f"no paper reports {method}, yet its model fills {mapped}"


def test_the_options_module_imports_neither_torch_nor_the_training_package():
    code = "import sys, rsmooth.options; print(sorted(m for m in sys.modules if m.startswith(('torch', 'rsmooth.train'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
