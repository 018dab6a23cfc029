"""``pgd_vanilla`` / ``pgd_noise`` (SmoothAdv appendix C.1): PGD on the base classifier without noise, then
training on ``x_adv`` (vanilla) or ``x_adv + noise`` (noise)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rsmooth.train.methods.base import Benchmark, Method, StepStats, TrainingCost, attack_steps


class PGDVanilla(Method):
    name = "pgd_vanilla"
    display = "vanilla PGD"
    group = "vanilla PGD"
    summary = "PGD adversarial training of the base classifier, no noise (SmoothAdv appendix C.1)"
    identity = ("eps", "steps")
    noise_free = True
    attacking = True
    with_noise = False
    benchmarks: ClassVar[dict[str, Benchmark]] = {
        "pgd_vanilla": Benchmark(
            "pgd_noise", 2.8, {"steps": 2}, measured=False, note="PGD on the base classifier as pgd_noise"
        ),
    }

    @classmethod
    def training_cost(cls, values: Mapping[str, Any]) -> TrainingCost:
        # PGD on the base classifier: T passes, no noise draws; one copy trained.
        return TrainingCost(cls.name, copies=1, attack_passes=attack_steps(values))

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch

        x_adv = self.evaluation_attack(self.base, x, y, None)
        if self.with_noise:
            x_adv = x_adv + torch.randn_like(x_adv) * self.config.sigma
        return self.fit(x_adv, y, weight)

    def evaluation_attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        from rsmooth import attacks

        if self.eps == 0:
            return x
        return attacks.pgd_base(model, x, y, eps=self.eps, steps=self.config.steps)


class PGDNoise(PGDVanilla):
    name = "pgd_noise"
    display = "vanilla PGD + noise"
    group = "vanilla PGD + noise"
    summary = "PGD on the base classifier, then training under noise (SmoothAdv appendix C.1)"
    identity = ("sigma", "eps", "steps")
    noise_free = False
    with_noise = True
    benchmarks: ClassVar[dict[str, Benchmark]] = {"pgd_noise": Benchmark("pgd_noise", 2.8, {"steps": 2})}
