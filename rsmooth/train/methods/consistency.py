"""``consistency`` (Jeong & Shin 2020; the SmoothMix repository's ``train_consistency.py`` and
``third_party/consistency.py``).

The loader batch is split into m chunks of B/m images, one optimizer step per chunk, model in train mode:

1. m noise draws per image (m tensors of the chunk's shape, as the reference's list), shared by the attack
   and the loss;
2. with ``adv_training`` (Consistency on SmoothAdv, the official ``--adv-training``): the chunk is replaced by
   its attack (``rsmooth.attacks.consistency_pgd``, model in eval mode) against the smoothed soft classifier
   with those draws, at ``min(eps, (epoch + 1) * eps / warmup)``;
3. one forward pass of the m * B/m noisy copies (noise-major: all images with draw 1, then draw 2, ...);
4. ``loss = CE(all copies) + mean_b [lambda * (1/m) sum_i KL(pbar || p_i) + eta * H(pbar)]``, with ``p_i`` the
   softmax of copy i and ``pbar`` their mean, not detached (the KL's target is trained too).

Decision: m defaults to 2 for this method. The official default ``--num-noise-vec 1`` makes the KL term
identically 0 (only eta * entropy remains); every released command passes m >= 2. As for SmoothMix, a chunk
split that m does not divide uses near-equal chunks where the reference drops the remainder (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rsmooth.train.methods.base import (
    Benchmark,
    Method,
    Option,
    PaperRow,
    StepStats,
    TrainingCost,
    add_stats,
    batch_stats,
    noise_count,
    one_model_per_sigma,
)

_PROB_FLOOR = 1e-20  # consistency.py clamps pbar before the log of the entropy


def consistency_loss(logits: list[Any], lbd: float, eta: float) -> Any:
    """``mean_b [lbd * (1/m) sum_i KL(pbar || softmax(logits_i)) + eta * H(pbar)]`` for a list of m ``[B, K]``."""
    import torch
    import torch.nn.functional as F

    softmax = [F.softmax(logit, dim=1) for logit in logits]
    mean = sum(softmax) / len(softmax)
    kl = sum(F.kl_div(F.log_softmax(logit, dim=1), mean, reduction="none").sum(1) for logit in logits)
    entropy = -(mean * torch.log(mean.clamp(min=_PROB_FLOOR))).sum(1)
    return (lbd * kl / len(logits) + eta * entropy).mean()


class Consistency(Method):
    name = "consistency"
    display = "Consistency"
    group = "consistency"
    summary = "consistency regularization (Jeong & Shin 2020), optionally on SmoothAdv (--adv-training)"
    options = (
        Option("consistency_lambda", float, 10.0, "weight of the KL term", minimum=0, short="lambda", exclusive=True),
        Option("consistency_eta", float, 0.5, "weight of the entropy term", minimum=0, short="eta", exclusive=True),
        Option("adv_training", bool, False, "Consistency on SmoothAdv (official --adv-training)", short="adv", exclusive=True),
    )  # fmt: skip
    # m >= 2 (see the module docstring); eps 512/256 and 4 steps: the official --adv-training defaults.
    defaults: ClassVar[dict[str, Any]] = {"num_noise_vec": 2, "eps": 2.0, "steps": 4, "warmup": 10}
    identity = ("sigma", "num_noise_vec", "consistency_lambda", "consistency_eta")
    noise_draws = True
    chunked = True
    lr_decay_offset = 1  # scheduler.step(epoch) after the epoch, as every SmoothMix-repository script
    benchmarks: ClassVar[dict[str, Benchmark]] = {
        "consistency": Benchmark("consistency-m2", 1.8, {"num_noise_vec": 2})
    }

    @classmethod
    def training_cost(cls, values: Mapping[str, Any]) -> TrainingCost:
        # m noisy copies. The attack of adv_training is not counted (the planner never has counted it).
        return TrainingCost(cls.name, copies=noise_count(values))

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        # SmoothMix's tables hold Consistency without the attack only.
        return [] if train["adv_training"] else [one_model_per_sigma(cls.name, dataset)]

    @classmethod
    def is_attacking(cls, config: Any) -> bool:
        return bool(config.adv_training)

    @classmethod
    def id_fields(cls, values: dict[str, Any]) -> tuple[str, ...]:
        adv = ("adv_training", "eps", "steps") if values.get("adv_training") else ()
        return (*cls.identity, *adv)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        cfg = self.config
        self.eps = min(cfg.eps, (epoch + 1) * cfg.eps / cfg.warmup)  # as the reference writes it

    def attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        from rsmooth import attacks

        if self.eps == 0:
            return x
        return attacks.consistency_pgd(model, x, y, eps=self.eps, steps=self.config.steps, noise=noise)

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        m = cfg.num_noise_vec
        total = (0.0, 0, 0)
        for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
            noises = [torch.randn_like(xc) * cfg.sigma for _ in range(m)]
            if cfg.adv_training:
                xc = self.attack(self.base, xc, yc, torch.stack(noises, dim=1))
            logits = self.logits(torch.cat([xc + noise for noise in noises]))
            targets = yc.repeat(m)
            loss = F.cross_entropy(logits, targets) + consistency_loss(
                list(logits.chunk(m)), cfg.consistency_lambda, cfg.consistency_eta
            )
            loss = loss * weight
            self.update(loss)
            total = add_stats(total, batch_stats(loss, logits.argmax(1) == targets, len(targets)))
        return total

    def evaluation_attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        return self.attack(model, x, y, noise[:, None]) if self.config.adv_training else None
