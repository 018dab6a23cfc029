"""``smoothadv`` (Salman et al. 2019, ``train_pgd.py``): adversarial training of the smoothed classifier.

The batch is split into m chunks; each chunk gets m noise draws per image, is attacked (model in eval mode)
against the smoothed soft classifier with those draws, and the update uses the *same* draws: with
``multi_noise`` all m noisy copies and one SGD step per chunk, otherwise the first copy only and one SGD step
for the whole batch. The attack is ``attack``: PGD, DDN or the gradient-free Stein PGD (``rsmooth.attacks``).
"""

from __future__ import annotations

from typing import Any

from rsmooth.train.methods.base import Method, StepStats, add_stats


class SmoothAdv(Method):
    name = "smoothadv"
    display = "SmoothAdv"
    group = "smoothadv"
    summary = "SmoothAdv adversarial training (Salman et al. 2019): attack, then train on the noisy copies"
    identity = ("sigma", "eps", "steps", "num_noise_vec")
    noise_draws = True
    attacking = True

    @classmethod
    def check(cls, config: Any) -> None:
        if config.attack == "pgd_stein" and config.num_noise_vec < 2:
            raise ValueError(
                "attack 'pgd_stein' estimates the gradient from noise draws: needs num_noise_vec >= 2"
            )

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
