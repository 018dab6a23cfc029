"""``macer`` (Zhai et al. 2020; the SmoothMix repository's ``train_macer.py`` and ``third_party/macer.py``).

One optimizer step per loader batch of B images, no chunking, model in train mode throughout:

1. k noisy copies of every image (copies of one image consecutive), one forward pass of the B*k copies;
2. classification loss ``sum_b -log(mean_j softmax(f(x_b + n_bj))_y + 1e-10)`` (an additive 1e-10, not the
   1e-20 clamp of SmoothAdv / SmoothMix);
3. robustness loss, only for samples whose top-1 class of ``mean_j softmax(beta * f(x_b + n_bj))`` is the
   label: with p1, p2 its two largest scores, ``(sigma / 2) * (gamma - (Phi^-1(p1) - Phi^-1(p2)))`` summed
   over the samples with a finite gap of at most gamma (a saturated p1 = 1.0 gives an infinite gap and drops
   the sample); nothing is detached;
4. ``loss = (classification + lambda * robustness) / B``, divided by the whole batch, not by the kept samples.

With ``macer_deferred`` lambda is 0 (classification loss only) until the first epoch trained at the decayed
learning rate: epochs ``< lr_step_size + lr decay offset``. With the SmoothMix repository's late decay
(offset 1, MACER's default) that is the official ``epoch <= lr_step_size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from rsmooth.train.methods.base import (
    Benchmark,
    Method,
    Option,
    PaperRow,
    StepStats,
    TrainingCost,
    batch_stats,
    noise_count,
    one_model_per_sigma,
)

_LOG_EPSILON = 1e-10  # macer.py adds it to the mean softmax before the log


def _normal_icdf(p: Any) -> Any:
    # torch.distributions.Normal(0, 1).icdf, as macer.py: sqrt(2) * erfinv(2p - 1), inf at p = 1.
    import torch

    return torch.erfinv(2 * p - 1) * math.sqrt(2)


def macer_loss(
    logits: Any, y: Any, *, k: int, sigma: float, lbd: float, gamma: float, beta: float
) -> tuple[Any, Any]:
    """(classification + lbd * robustness) / B and the number of samples kept by the robustness term.

    ``logits`` is ``[B * k, K]`` (row ``b * k + j`` = copy j of image b), ``y`` ``[B]``.
    """
    import torch
    import torch.nn.functional as F

    batch = len(y)
    outputs = logits.view(batch, k, -1)
    mean_softmax = F.softmax(outputs, dim=2).mean(1)
    classification = F.nll_loss(torch.log(mean_softmax + _LOG_EPSILON), y, reduction="sum")
    if lbd == 0:
        return classification / batch, 0
    beta_softmax = F.softmax(beta * outputs, dim=2).mean(1)
    top2_score, top2_index = torch.topk(beta_softmax, 2)
    correct = top2_index[:, 0] == y
    out0, out1 = top2_score[correct, 0], top2_score[correct, 1]
    gap = _normal_icdf(out1) - _normal_icdf(out0)
    keep = ~torch.isnan(gap) & ~torch.isinf(gap) & (gap.abs() <= gamma)
    out0, out1 = out0[keep], out1[keep]
    robustness = (_normal_icdf(out1) - _normal_icdf(out0) + gamma).sum() * sigma / 2
    return (classification + lbd * robustness) / batch, int(keep.sum())


class Macer(Method):
    name = "macer"
    display = "MACER"
    group = "macer"
    summary = "MACER (Zhai et al. 2020): maximize the certified radius through a hinge on the soft margin"
    options = (
        Option("macer_lambda", float, 16.0, "weight of the robustness term", minimum=0, short="lambda", exclusive=True),
        Option("macer_gamma", float, 8.0, "hinge on the Phi^-1 gap", above=0, short="gamma", exclusive=True),
        Option("macer_beta", float, 16.0, "inverse temperature of the soft margin", above=0, short="beta", exclusive=True),
        Option("macer_deferred", bool, False, "lambda = 0 until the first lr decay (official --deferred)", short="deferred", exclusive=True),
    )  # fmt: skip
    defaults: ClassVar[dict[str, Any]] = {"num_noise_vec": 16}  # k, the official --num-noise-vec default
    identity = ("sigma", "num_noise_vec", "macer_lambda", "macer_gamma", "macer_beta", "macer_deferred")
    noise_draws = True
    lr_decay_offset = 1  # scheduler.step(epoch) after the epoch, as every SmoothMix-repository script
    benchmarks: ClassVar[dict[str, Benchmark]] = {
        "macer": Benchmark("macer-k16", 20.3, {"num_noise_vec": 16})
    }

    @classmethod
    def training_cost(cls, values: Mapping[str, Any]) -> TrainingCost:
        return TrainingCost(cls.name, copies=noise_count(values))  # k noisy copies, one forward pass

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        return [one_model_per_sigma(cls.name, dataset)]

    @classmethod
    def check(cls, config: Any) -> None:
        if config.macer_deferred and config.lr_step_size == 0:
            raise ValueError(
                "macer_deferred waits for the first lr decay, but lr_step_size is 0 (constant lr): "
                "set lr_step_size > 0 or macer_deferred false"
            )

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        cfg = self.config
        deferred = cfg.macer_deferred and epoch < cfg.lr_step_size + cfg.decay_offset
        self.lbd = 0.0 if deferred else cfg.macer_lambda

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch.nn.functional as F

        cfg = self.config
        k = cfg.num_noise_vec
        lbd = getattr(self, "lbd", cfg.macer_lambda)
        logits = self.logits((x[:, None] + self.noise(x, k)).flatten(0, 1))
        loss, _ = macer_loss(
            logits, y, k=k, sigma=cfg.sigma, lbd=lbd, gamma=cfg.macer_gamma, beta=cfg.macer_beta
        )
        loss = loss * weight
        self.update(loss)
        smoothed = F.softmax(logits.view(len(y), k, -1), dim=2).mean(1)
        return batch_stats(loss, smoothed.argmax(1) == y, len(y))
