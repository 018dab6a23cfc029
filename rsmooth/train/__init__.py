"""Training: the methods of ``rsmooth.train.methods`` (Gaussian augmentation, SmoothAdv, the vanilla-PGD
baselines, SmoothMix, ...), ImageNet32 pre-training with fine-tuning, and self-training on pseudo-labelled
data. ``TrainConfig`` and the method registry import without torch; the loop's names import it on use."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ATTACKS", "LOG_COLUMNS", "METHODS", "TrainConfig", "evaluate", "train"]

_HOMES = {
    "ATTACKS": "rsmooth.train_config",
    "METHODS": "rsmooth.train_config",
    "TrainConfig": "rsmooth.train_config",
    "LOG_COLUMNS": "rsmooth.train.loop",
    "evaluate": "rsmooth.train.loop",
    "train": "rsmooth.train.loop",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that rsmooth.train_config can import rsmooth.train.methods without a cycle or torch.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'rsmooth.train' has no attribute {name!r}")
