"""The training methods: one module per method, one registry line per method.

``REGISTRY`` maps each ``--method`` name to its class (:class:`~rsmooth.train.methods.base.Method`); the
``TrainConfig`` fields, the command line of ``scripts/train.py``, the config schema's training section, the
cell ids, the planner's cost of a model (:func:`benchmark_rows`, ``rsmooth.plan.method_factor``), the
aggregation's method groups and the papers' table rows a model fills (``rsmooth.analysis``) are derived from it.
Adding a method is its module, its line below, its tests and the presets that use it
(``tests/test_method_registry.py`` trains, plans and maps a model of every registered method).

Importing this package does not import torch (the Snakemake DAG reads the registry); the steps import it
on first use.
"""

from __future__ import annotations

from rsmooth.train.methods.base import (
    EACH_MODEL,
    SEED_MEAN,
    SEED_ZERO,
    Benchmark,
    Method,
    Option,
    PaperRow,
    StepStats,
    TrainingCost,
    warmup_factor,
)
from rsmooth.train.methods.consistency import Consistency
from rsmooth.train.methods.gaussian import Gaussian
from rsmooth.train.methods.macer import Macer
from rsmooth.train.methods.pgd import PGDNoise, PGDVanilla
from rsmooth.train.methods.smoothadv import SmoothAdv
from rsmooth.train.methods.smoothmix import SmoothMix, smoothmix_mix_loss, smoothmix_mixup
from rsmooth.train.methods.stability import Stability
from rsmooth.train.methods.standard import Standard

REGISTRY: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (Standard, Gaussian, SmoothAdv, PGDVanilla, PGDNoise, SmoothMix, Stability, Macer, Consistency)
}

# The step of ``config.method``: ``MethodStep(config, model, optimizer, scaler, autocast=...)``.
MethodStep = Method


def get_method(name: str) -> type[Method]:
    """The class of method ``name``; ``ValueError`` naming the allowed ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(REGISTRY)}") from None


def benchmark_rows() -> dict[str, tuple[type[Method], Benchmark]]:
    """Every measured row of the planner's ``method_factors``, with the method it belongs to (registry order)."""
    rows: dict[str, tuple[type[Method], Benchmark]] = {}
    for cls in REGISTRY.values():
        for row, benchmark in cls.benchmarks.items():
            if row in rows:
                raise RuntimeError(f"benchmark row {row!r} declared by {rows[row][0].name} and {cls.name}")
            rows[row] = (cls, benchmark)
    return rows


def benchmark_cost(row: str) -> TrainingCost:
    """The :class:`TrainingCost` of the setting that benchmark row ``row`` measured."""
    rows = benchmark_rows()
    if row not in rows:
        raise ValueError(f"no benchmark row {row!r}; the methods declare {', '.join(rows)}")
    cls, benchmark = rows[row]
    cost = cls.training_cost({"method": cls.name, **benchmark.settings})
    if cost.row != row:  # a benchmark must measure the row its own settings are charged to
        raise RuntimeError(f"benchmark row {row!r} of {cls.name}: its settings cost as row {cost.row!r}")
    return cost


def default_method_factors() -> dict[str, float]:
    """The planner's default ``method_factors``: each benchmark row's LeNet factor, then ``resnet:<row>`` where
    a ResNet was measured."""
    rows = benchmark_rows()
    lenet = {row: b.factor for row, (_, b) in rows.items()}
    resnet = {f"resnet:{row}": b.resnet_factor for row, (_, b) in rows.items() if b.resnet_factor is not None}
    return {**lenet, **resnet}


__all__ = [
    "EACH_MODEL",
    "REGISTRY",
    "SEED_MEAN",
    "SEED_ZERO",
    "Benchmark",
    "Method",
    "MethodStep",
    "Option",
    "PaperRow",
    "StepStats",
    "TrainingCost",
    "benchmark_cost",
    "benchmark_rows",
    "default_method_factors",
    "get_method",
    "smoothmix_mix_loss",
    "smoothmix_mixup",
    "warmup_factor",
]
