"""``standard``: cross-entropy on clean inputs (the non-robust classifier that pseudo-labels TinyImages)."""

from __future__ import annotations

from typing import Any

from rsmooth.train.methods.base import Method, StepStats


class Standard(Method):
    name = "standard"
    display = "Standard"
    group = "standard"
    summary = "cross-entropy on clean inputs"
    identity = ()
    noise_free = True

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        return self.fit(x, y, weight)
