"""One training step per method, as the reference code does it.

- ``standard``: cross-entropy on clean inputs (the non-robust classifier that pseudo-labels TinyImages).
- ``gaussian`` (Cohen et al.): cross-entropy on ``x + N(0, sigma^2)``.
- ``smoothadv`` (Salman et al., ``train_pgd.py``): the batch is split into m chunks; each chunk gets m noise
  draws per image, is attacked (model in eval mode) against the smoothed soft classifier with those draws, and
  the update uses the *same* draws: with ``multi_noise`` all m noisy copies and one SGD step per chunk,
  otherwise the first copy only and one SGD step for the whole batch.
- ``pgd_vanilla`` / ``pgd_noise`` (SmoothAdv appendix C.1): PGD on the base classifier without noise, then
  training on ``x_adv`` (vanilla) or ``x_adv + noise`` (noise).
- ``smoothmix`` (Jeong et al. 2021, Algorithm 1 as the official ``train.py``): per chunk, the SmoothMix
  adversary, cross-entropy on the m noisy copies of ``x_init``, and the masked mixup KL term weighted by
  ``eta * min(1, (epoch + 1) / warmup)``.

Every step returns ``(summed loss, correct predictions, examples)`` for the epoch log; the loss is the one
optimised (scaled by the self-training weight for pseudo-labelled batches).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rsmooth import attacks
from rsmooth.train_config import TrainConfig

StepStats = tuple[float, int, int]


def warmup_factor(epoch: int, warmup: int) -> float:
    """``min(1, (epoch + 1) / warmup)``: the reference's linear warm-up (epoch counted from 0)."""
    return min(1.0, (epoch + 1) / warmup)


def smoothmix_mixup(
    x_init: torch.Tensor, x_adv: torch.Tensor, soft_clean: torch.Tensor, lam: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SmoothMix's mixed inputs and labels.

    ``x_mix = (1 - lam) x_init + lam x_adv`` and ``y_mix = (1 - lam) F(x_init) + lam u`` with ``u`` the
    uniform distribution and ``lam ~ U[0, 1/2]`` per example; ``soft_clean`` is the smoothed soft prediction
    ``F(x_init)`` (mean softmax over the noise draws), not detached, as in the official code.
    """
    batch, num_classes = soft_clean.shape
    if lam is None:
        lam = torch.rand(batch, device=x_init.device) / 2
    lam_x = lam.view(-1, *([1] * (x_init.dim() - 1)))
    x_mix = (1 - lam_x) * x_init + lam_x * x_adv
    y_mix = (1 - lam[:, None]) * soft_clean + lam[:, None] / num_classes
    return x_mix, y_mix, lam


def smoothmix_mix_loss(
    mix_logits: torch.Tensor, y_mix: torch.Tensor, mask: torch.Tensor, m: int
) -> torch.Tensor:
    """Masked KL(y_mix || softmax(f(x_mix + n_i))), per noisy copy, averaged over all B*m copies.

    ``mix_logits`` is ``[B*m, K]`` (copies of one image consecutive), ``y_mix`` ``[B, K]``, ``mask`` ``[B]``
    (1 where the smoothed clean prediction is right). Masked examples count as zeros in the mean.
    """
    targets = y_mix.repeat_interleave(m, dim=0)
    kl = F.kl_div(F.log_softmax(mix_logits, dim=1), targets, reduction="none").sum(dim=1)
    return (kl * mask.repeat_interleave(m).to(kl.dtype)).mean()


class MethodStep:
    """Runs one loader batch of a method: attacks, forward passes, loss and optimiser step(s)."""

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        *,
        autocast: Callable[[], contextlib.AbstractContextManager],
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.config = config
        self.model = model  # possibly DistributedDataParallel: used for the training forward passes
        self.base = model.module if hasattr(model, "module") else model  # attacks run on the bare model
        self.optimizer = optimizer
        self.scaler = scaler
        self.autocast = autocast
        self.memory_format = memory_format
        self.eps = config.eps
        self.mix_weight = 1.0
        self.step = {
            "standard": self._standard,
            "gaussian": self._gaussian,
            "smoothadv": self._smoothadv,
            "pgd_vanilla": self._pgd_baseline,
            "pgd_noise": self._pgd_baseline,
            "smoothmix": self._smoothmix,
        }[config.method]

    def set_epoch(self, epoch: int) -> None:
        """Warm-ups: eps (SmoothAdv, vanilla PGD) and the mixup weight (SmoothMix) grow over ``warmup`` epochs."""
        factor = warmup_factor(epoch, self.config.warmup)
        self.eps = self.config.eps * factor
        self.mix_weight = factor

    def __call__(self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0) -> StepStats:
        return self.step(x, y, weight)

    # -- helpers -----------------------------------------------------------------------------------------

    def _noise(self, x: torch.Tensor, m: int) -> torch.Tensor:
        return torch.randn((x.shape[0], m, *x.shape[1:]), device=x.device) * self.config.sigma

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model(inputs.contiguous(memory_format=self.memory_format)).float()

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _fit(self, inputs: torch.Tensor, targets: torch.Tensor, weight: float) -> StepStats:
        """Cross-entropy step on ready inputs."""
        logits = self._logits(inputs)
        loss = F.cross_entropy(logits, targets) * weight
        self._update(loss)
        correct = int((logits.argmax(1) == targets).sum())
        return float(loss.detach()) * len(targets), correct, len(targets)

    def _smoothadv_attack(self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.eps == 0:
            return x
        cfg = self.config
        if cfg.attack == "pgd":
            return attacks.smoothadv_pgd(self.base, x, y, eps=self.eps, steps=cfg.steps, noise=noise)
        if cfg.attack == "pgd_stein":
            return attacks.smoothadv_pgd_stein(self.base, x, y, eps=self.eps, steps=cfg.steps, noise=noise)
        return attacks.smoothadv_ddn(
            self.base,
            x,
            y,
            eps=self.eps,
            steps=cfg.steps,
            noise=noise,
            gamma=cfg.ddn_gamma,
            init_norm=self.eps,
        )

    # -- methods -----------------------------------------------------------------------------------------

    def _standard(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> StepStats:
        return self._fit(x, y, weight)

    def _gaussian(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> StepStats:
        return self._fit(x + torch.randn_like(x) * self.config.sigma, y, weight)

    def _smoothadv(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> StepStats:
        m = self.config.num_noise_vec
        kept_inputs, kept_targets, total = [], [], (0.0, 0, 0)
        # The reference splits every batch into m chunks of B/m images, each expanded to m noisy copies.
        for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
            noise = self._noise(xc, m)
            x_adv = self._smoothadv_attack(xc, yc, noise)
            if self.config.multi_noise:
                noisy = (x_adv[:, None] + noise).flatten(0, 1)
                total = _add(total, self._fit(noisy, yc.repeat_interleave(m), weight))
            else:
                kept_inputs.append(x_adv + noise[:, 0])  # the first draw, which the attack also used
                kept_targets.append(yc)
        if self.config.multi_noise:
            return total
        return self._fit(torch.cat(kept_inputs), torch.cat(kept_targets), weight)

    def _pgd_baseline(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> StepStats:
        x_adv = (
            attacks.pgd_base(self.base, x, y, eps=self.eps, steps=self.config.steps) if self.eps > 0 else x
        )
        if self.config.method == "pgd_noise":
            x_adv = x_adv + torch.randn_like(x_adv) * self.config.sigma
        return self._fit(x_adv, y, weight)

    def _smoothmix(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> StepStats:
        cfg = self.config
        m = cfg.num_noise_vec
        total = (0.0, 0, 0)
        for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
            noise = self._noise(xc, m)  # one set of draws for the adversary, the clean term and the mixup
            x_init, x_adv = attacks.smoothmix_pgd(
                self.base,
                xc,
                yc,
                alpha=cfg.smoothmix_alpha,
                steps=cfg.steps,
                noise=noise,
                mix_step=cfg.mix_step,
                maxnorm_s=cfg.smoothmix_alpha * cfg.mix_step * self.mix_weight,
                maxnorm=cfg.smoothmix_maxnorm,
            )
            targets = yc.repeat_interleave(m)
            logits = self._logits((x_init[:, None] + noise).flatten(0, 1))
            loss_ce = F.cross_entropy(logits, targets)
            soft_clean = F.softmax(logits, dim=1).view(len(yc), m, -1).mean(dim=1)
            x_mix, y_mix, _ = smoothmix_mixup(x_init, x_adv, soft_clean)
            mix_logits = self._logits((x_mix[:, None] + noise).flatten(0, 1))
            mask = soft_clean.argmax(dim=1) == yc
            loss_mix = smoothmix_mix_loss(mix_logits, y_mix, mask, m)
            loss = (loss_ce + cfg.smoothmix_eta * self.mix_weight * loss_mix) * weight
            self._update(loss)
            correct = int((logits.argmax(1) == targets).sum())
            total = _add(total, (float(loss.detach()) * len(targets), correct, len(targets)))
        return total


def _add(a: StepStats, b: StepStats) -> StepStats:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]
