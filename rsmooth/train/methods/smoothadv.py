"""``smoothadv`` (Salman et al. 2019, ``train_pgd.py``): adversarial training of the smoothed classifier.

The batch is split into m chunks; each chunk gets m noise draws per image, is attacked (model in eval mode)
against the smoothed soft classifier with those draws, and the update uses the *same* draws: with
``multi_noise`` all m noisy copies and one SGD step per chunk, otherwise the first copy only and one SGD step
for the whole batch. The attack is ``attack``: PGD, DDN or the gradient-free Stein PGD (``rsmooth.attacks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rsmooth.train.methods.base import (
    EACH_MODEL,
    Benchmark,
    Method,
    PaperRow,
    StepStats,
    TrainingCost,
    add_stats,
    attack_steps,
    noise_count,
    one_model_per_sigma,
)

# The SmoothAdv model that SmoothMix's tables compare with (appendix C.2: T = 10, eps = 1.0, m = 4 on MNIST
# and 8 on CIFAR-10; on ImageNet the T = 1 PGD models of config/imagenet_smoothmix.yaml).
_SMOOTHMIX_SMOOTHADV = {
    "mnist": lambda t: (t["steps"], t["eps"], t["num_noise_vec"]) == (10, 1.0, 4),
    "cifar10": lambda t: (t["steps"], t["eps"], t["num_noise_vec"], t["multi_noise"]) == (10, 1.0, 8, True),
    "imagenet": lambda t: (t["steps"], t["num_noise_vec"], t["eps"]) == (1, 1, 2 * t["sigma"]),
}


class SmoothAdv(Method):
    name = "smoothadv"
    display = "SmoothAdv"
    group = "smoothadv"
    summary = "SmoothAdv adversarial training (Salman et al. 2019): attack, then train on the noisy copies"
    identity = ("sigma", "eps", "steps", "num_noise_vec")
    noise_draws = True
    attacking = True
    benchmarks: ClassVar[dict[str, Benchmark]] = {
        "smoothadv_pgd": Benchmark("smoothadv-pgd-m1", 2.8, {"attack": "pgd", "steps": 2}, resnet_factor=2.1),
        "smoothadv_pgd_multi": Benchmark(
            "smoothadv-pgd-m4-multi",
            12.9,
            {"attack": "pgd", "steps": 2, "num_noise_vec": 4, "multi_noise": True},
        ),
        "smoothadv_ddn": Benchmark("smoothadv-ddn-m1", 2.8, {"attack": "ddn", "steps": 2}),
    }
    paper_envelopes: ClassVar[dict[str, tuple[str, str]]] = {
        "smoothadv": ("smoothadv", "envelope"),
        "smoothadv+pretraining": ("smoothadv", "envelope+pretraining"),
        "smoothadv+self-training": ("smoothadv", "envelope+self-training"),
        "smoothadv+pretraining+self-training": ("smoothadv", "envelope+pretraining+self-training"),
    }

    @classmethod
    def training_cost(cls, values: Mapping[str, Any]) -> TrainingCost:
        """m draws x T attack passes; the step trains on all m copies with ``multi_noise``, else on one. DDN is
        measured apart; the gradient-free ``pgd_stein`` is charged as PGD."""
        m, multi = noise_count(values), bool(values.get("multi_noise"))
        if values.get("attack") == "ddn":
            row = "smoothadv_ddn"
        else:
            row = "smoothadv_pgd" + ("_multi" if multi else "")
        return TrainingCost(row, copies=m if multi else 1, attack_passes=m * attack_steps(values))

    @classmethod
    def envelope_group(cls, pretrained: bool, self_trained: bool) -> str:
        extras = [name for name, on in (("pretraining", pretrained), ("self-training", self_trained)) if on]
        return "+".join([cls.group, *extras])

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        """Every model is a row of SmoothAdv's per-model tables (method ``smoothadv_<attack>``, setting
        ``T=.. m=.. eps=..``); the one SmoothMix compares with (``_SMOOTHMIX_SMOOTHADV``) a row of its tables."""
        from rsmooth.analysis.paper import model_setting

        setting = model_setting(train["steps"], train["num_noise_vec"], train["eps"])
        rows = [PaperRow(f"smoothadv_{train['attack']}", setting, EACH_MODEL)]
        chosen = _SMOOTHMIX_SMOOTHADV.get(dataset)
        if train["attack"] == "pgd" and chosen is not None and chosen(train):
            rows.append(one_model_per_sigma(cls.name, dataset))
        return rows

    @classmethod
    def check(cls, config: Any) -> None:
        if config.attack == "pgd_stein" and config.num_noise_vec < 2:
            raise ValueError(
                "attack 'pgd_stein' estimates the gradient from noise draws: needs num_noise_vec >= 2"
            )

    @classmethod
    def is_chunked(cls, config: Any) -> bool:
        return config.num_noise_vec > 1  # m chunks of B/m images, each with m draws (see step)

    @classmethod
    def id_head(cls, values: dict[str, Any]) -> str:
        return f"smoothadv-{values['attack']}"

    def attack(self, model: Any, x: Any, y: Any, noise: Any, attack: str | None = None) -> Any:
        from rsmooth import attacks

        if self.eps == 0:
            return x
        cfg = self.config
        attack = attack or cfg.attack
        if attack == "pgd":
            return attacks.smoothadv_pgd(model, x, y, eps=self.eps, steps=cfg.steps, noise=noise)
        if attack == "pgd_stein":
            return attacks.smoothadv_pgd_stein(model, x, y, eps=self.eps, steps=cfg.steps, noise=noise)
        return attacks.smoothadv_ddn(
            model,
            x,
            y,
            eps=self.eps,
            steps=cfg.steps,
            noise=noise,
            gamma=cfg.ddn_gamma,
            init_norm=self.eps,
        )

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch

        m = self.config.num_noise_vec
        kept_inputs, kept_targets, total = [], [], (0.0, 0, 0)
        # The reference splits every batch into m chunks of B/m images, each expanded to m noisy copies.
        for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
            noise = self.noise(xc, m)
            x_adv = self.attack(self.base, xc, yc, noise)
            if self.config.multi_noise:
                noisy = (x_adv[:, None] + noise).flatten(0, 1)
                total = add_stats(total, self.fit(noisy, yc.repeat_interleave(m), weight))
            else:
                kept_inputs.append(x_adv + noise[:, 0])  # the first draw, which the attack also used
                kept_targets.append(yc)
        if self.config.multi_noise:
            return total
        return self.fit(torch.cat(kept_inputs), torch.cat(kept_targets), weight)

    def evaluation_attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        # The reference's test() attacks with the training attacker (PGD or DDN) at the epoch's eps, with
        # the single noise draw of the evaluation; with one draw its gradient-free attack is plain PGD.
        attack = "pgd" if self.config.attack == "pgd_stein" else self.config.attack
        return self.attack(model, x, y, noise[:, None], attack)
