"""``stability`` (Li et al. 2019; the SmoothMix repository's ``train_stab.py``).

One optimizer step per loader batch, no chunking, model in train mode: one noise draw per image, then two
separate forward passes, of the *clean* batch and of the noisy batch (BatchNorm statistics see both, in that
order). ``loss = CE(f(x), y) + lambda * mean_b H(softmax(f(x)), softmax(f(x + n)))``: the cross-entropy of
the noisy prediction against the clean one (not a KL), whose soft target is not detached, so the stability
term also trains the clean branch.
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
    batch_stats,
    one_model_per_sigma,
)


def stability_loss(clean_logits: Any, noisy_logits: Any, y: Any, lbd: float) -> Any:
    """``CE(clean, y) + lbd * mean_b sum_k -softmax(clean)_k log_softmax(noisy)_k``."""
    import torch.nn.functional as F

    stab = -(F.softmax(clean_logits, dim=1) * F.log_softmax(noisy_logits, dim=1)).sum(dim=1).mean()
    return F.cross_entropy(clean_logits, y) + lbd * stab


class Stability(Method):
    name = "stability"
    display = "Stability"
    group = "stability"
    summary = "stability training (Li et al. 2019): clean cross-entropy + lambda * H(clean, noisy)"
    options = (
        Option("stability_lambda", float, 2.0, "weight of the stability term", minimum=0, short="lambda", exclusive=True),
    )  # fmt: skip
    identity = ("sigma", "stability_lambda")
    lr_decay_offset = 1  # scheduler.step(epoch) after the epoch, as every SmoothMix-repository script
    benchmarks: ClassVar[dict[str, Benchmark]] = {"stability": Benchmark("stability", 1.7)}

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        return [one_model_per_sigma(cls.name, dataset)]

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch

        noise = torch.randn_like(x) * self.config.sigma
        clean = self.logits(x)
        noisy = self.logits(x + noise)
        loss = stability_loss(clean, noisy, y, self.config.stability_lambda) * weight
        self.update(loss)
        # As the reference's meter: the accuracy under noise.
        return batch_stats(loss, noisy.argmax(1) == y, len(y))
