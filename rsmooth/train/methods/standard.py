"""``standard``: cross-entropy on clean inputs (the non-robust classifier that pseudo-labels TinyImages)."""

from __future__ import annotations

from typing import Any, ClassVar

from rsmooth.train.methods.base import Benchmark, Method, StepStats


class Standard(Method):
    name = "standard"
    display = "Standard"
    group = "standard"
    summary = "cross-entropy on clean inputs"
    identity = ()
    noise_free = True
    benchmarks: ClassVar[dict[str, Benchmark]] = {
        "standard": Benchmark("gaussian", 1.0, measured=False, note="a clean step costs a noisy one")
    }

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        return self.fit(x, y, weight)
