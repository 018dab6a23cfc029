"""``gaussian`` (Cohen et al. 2019): cross-entropy on ``x + N(0, sigma^2)``, one draw per image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rsmooth.train.methods.base import Benchmark, Method, PaperRow, StepStats, one_model_per_sigma


class Gaussian(Method):
    name = "gaussian"
    display = "Gaussian"
    group = "gaussian"
    summary = "Gaussian augmentation (Cohen et al. 2019)"
    benchmarks: ClassVar[dict[str, Benchmark]] = {"gaussian": Benchmark("gaussian", 1.0)}
    paper_envelopes: ClassVar[dict[str, tuple[str, str]]] = {"gaussian": ("gaussian", "envelope")}

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        return [one_model_per_sigma(cls.name, dataset)]

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch

        return self.fit(x + torch.randn_like(x) * self.config.sigma, y, weight)
