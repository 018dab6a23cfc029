"""The training methods: one module per method, one registry line per method.

``REGISTRY`` maps each ``--method`` name to its class (:class:`~rsmooth.train.methods.base.Method`); the
``TrainConfig`` fields, the command line of ``scripts/train.py``, the config schema's training section, the
cell ids and the aggregation's method groups are derived from it. Adding a method is its module, its tests,
its line below and the presets that use it.

Importing this package does not import torch (the Snakemake DAG reads the registry); the steps import it
on first use.
"""

from __future__ import annotations

from rsmooth.train.methods.base import Method, Option, StepStats, warmup_factor
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


__all__ = [
    "REGISTRY",
    "Method",
    "MethodStep",
    "Option",
    "StepStats",
    "get_method",
    "smoothmix_mix_loss",
    "smoothmix_mixup",
    "warmup_factor",
]
