"""``smoothmix`` (Jeong et al. 2021, Algorithm 1 as the official ``train.py``).

Per chunk of B/m images: the SmoothMix adversary (``rsmooth.attacks.smoothmix_pgd``, eval mode) from m noise
draws, cross-entropy on the m noisy copies of ``x_init``, and the masked mixup KL term weighted by
``eta * min(1, (epoch + 1) / warmup)``; one SGD step per chunk. The mixup labels keep the gradient of the
smoothed clean prediction (not detached, as the official code).

The learning rate decays one epoch late, as the official ``train.py`` steps its scheduler after the epoch
(``lr_decay_offset`` 1; rsmooth decayed on time before). ``smoothmix_maxnorm_s`` is the official
``--maxnorm_s``: the L2 bound of ``x_init`` instead of ``alpha * mix_step``, scaled by the same warm-up factor.

Deviations (README): the chunks are near-equal ``tensor_split`` pieces where the official
``_chunk_minibatch`` drops the last ``len(batch) % m`` images (only a last batch or a DDP slice that m does
not divide); the m noise tensors are drawn as one ``[B, m, ...]`` tensor (the same stream as the reference's m
``[B, ...]`` draws, assigned to other copies).
"""

from __future__ import annotations

from typing import Any

from rsmooth.train.methods.base import Method, Option, StepStats, add_stats


def smoothmix_mixup(x_init: Any, x_adv: Any, soft_clean: Any, lam: Any = None) -> tuple[Any, Any, Any]:
    """SmoothMix's mixed inputs and labels.

    ``x_mix = (1 - lam) x_init + lam x_adv`` and ``y_mix = (1 - lam) F(x_init) + lam u`` with ``u`` the
    uniform distribution and ``lam ~ U[0, 1/2]`` per example; ``soft_clean`` is the smoothed soft prediction
    ``F(x_init)`` (mean softmax over the noise draws), not detached, as in the official code.
    """
    import torch

    batch, num_classes = soft_clean.shape
    if lam is None:
        lam = torch.rand(batch, device=x_init.device) / 2
    lam_x = lam.view(-1, *([1] * (x_init.dim() - 1)))
    x_mix = (1 - lam_x) * x_init + lam_x * x_adv
    y_mix = (1 - lam[:, None]) * soft_clean + lam[:, None] / num_classes
    return x_mix, y_mix, lam


def smoothmix_mix_loss(mix_logits: Any, y_mix: Any, mask: Any, m: int) -> Any:
    """Masked KL(y_mix || softmax(f(x_mix + n_i))), per noisy copy, averaged over all B*m copies.

    ``mix_logits`` is ``[B*m, K]`` (copies of one image consecutive), ``y_mix`` ``[B, K]``, ``mask`` ``[B]``
    (1 where the smoothed clean prediction is right). Masked examples count as zeros in the mean.
    """
    import torch.nn.functional as F

    targets = y_mix.repeat_interleave(m, dim=0)
    kl = F.kl_div(F.log_softmax(mix_logits, dim=1), targets, reduction="none").sum(dim=1)
    return (kl * mask.repeat_interleave(m).to(kl.dtype)).mean()


class SmoothMix(Method):
    name = "smoothmix"
    display = "SmoothMix"
    group = "smoothmix"
    summary = "SmoothMix (Jeong et al. 2021): adversarial mixup along the attack path"
    options = (
        Option("smoothmix_alpha", float, 1.0, "step size of the adversary (L2, [0, 1] pixels)", above=0, short="alpha"),
        Option("smoothmix_eta", float, 5.0, "weight of the mixup term", minimum=0, short="eta"),
        Option("mix_step", int, 0, "the iterate kept as x_init (0: x itself)", minimum=0, short="mixstep"),
        Option("smoothmix_maxnorm", float, None, "L2 bound of the adversary (None: only the box)", minimum=0, nullable=True),
        Option(
            "smoothmix_maxnorm_s", float, None,
            "L2 bound of x_init before the warm-up factor (official --maxnorm_s; None: alpha * mix_step)",
            minimum=0, nullable=True, exclusive=True,
        ),
    )  # fmt: skip
    identity = ("sigma", "steps", "num_noise_vec", "smoothmix_alpha", "smoothmix_eta", "mix_step")
    noise_draws = True
    chunked = True
    attacking = True
    lr_decay_offset = 1  # the official train.py steps the scheduler after the epoch (facts, section 0)

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        import torch.nn.functional as F

        from rsmooth import attacks

        cfg = self.config
        m = cfg.num_noise_vec
        total = (0.0, 0, 0)
        # The official --maxnorm_s replaces the default alpha * mix_step; either is scaled by the warm-up.
        if cfg.smoothmix_maxnorm_s is None:
            maxnorm_s = cfg.smoothmix_alpha * cfg.mix_step * self.mix_weight
        else:
            maxnorm_s = cfg.smoothmix_maxnorm_s * self.mix_weight
        for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
            noise = self.noise(xc, m)  # one set of draws for the adversary, the clean term and the mixup
            x_init, x_adv = attacks.smoothmix_pgd(
                self.base,
                xc,
                yc,
                alpha=cfg.smoothmix_alpha,
                steps=cfg.steps,
                noise=noise,
                mix_step=cfg.mix_step,
                maxnorm_s=maxnorm_s,
                maxnorm=cfg.smoothmix_maxnorm,
            )
            targets = yc.repeat_interleave(m)
            logits = self.logits((x_init[:, None] + noise).flatten(0, 1))
            loss_ce = F.cross_entropy(logits, targets)
            soft_clean = F.softmax(logits, dim=1).view(len(yc), m, -1).mean(dim=1)
            x_mix, y_mix, _ = smoothmix_mixup(x_init, x_adv, soft_clean)
            mix_logits = self.logits((x_mix[:, None] + noise).flatten(0, 1))
            mask = soft_clean.argmax(dim=1) == yc
            loss_mix = smoothmix_mix_loss(mix_logits, y_mix, mask, m)
            loss = (loss_ce + cfg.smoothmix_eta * self.mix_weight * loss_mix) * weight
            self.update(loss)
            correct = int((logits.argmax(1) == targets).sum())
            total = add_stats(total, (float(loss.detach()) * len(targets), correct, len(targets)))
        return total

    def evaluation_attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        from rsmooth import attacks

        cfg = self.config
        return attacks.smoothmix_pgd(
            model, x, y, alpha=cfg.smoothmix_alpha, steps=cfg.steps, noise=noise[:, None],
            maxnorm=cfg.smoothmix_maxnorm,
        )[1]  # fmt: skip
