"""``gaussian`` (Cohen et al. 2019): cross-entropy on ``x + N(0, sigma^2)``, one draw per image."""

from __future__ import annotations

from typing import Any

from rsmooth.train.methods.base import Method, StepStats


class Gaussian(Method):
    name = "gaussian"
    display = "Gaussian"
    group = "gaussian"
    summary = "Gaussian augmentation (Cohen et al. 2019)"

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch

        return self.fit(x + torch.randn_like(x) * self.config.sigma, y, weight)
