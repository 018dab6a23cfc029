"""Empirical robustness: attacking smoothed classifiers at test time (Salman et al. 2019, §4.2, App. C.4-C.6).

The reference's ``predict.py``, per example: ``m_test`` noise draws ``N(0, sigma^2)`` are made once and reused at
every attack step; the attack (SmoothAdv-PGD on the soft smoothed classifier, DDN, or the gradient-free Stein
estimator; or vanilla PGD on the base classifier with ``base_attack``) runs ``steps`` steps within the L2 ball of
radius ``eps``; then PREDICT (Cohen et al.) classifies the adversarial example with *fresh* noise, and the base
classifier classifies it without noise. The log has the reference header
``idx label predict basePredict correct time``.

Reproducibility: image ``i`` draws its attack noise from :func:`attack_seed` ``(seed, i)`` and its PREDICT noise
from ``image_seed(seed, i)`` (the certification stream), so shards, resumes and the number of images per call
give the same log. Each stream is distinct: the attack's noise is never PREDICT's.

Decisions: ``pgd_stein`` with ``base_attack`` is refused (without noise the Stein estimate is zero); the base
attack with ``ddn`` is DDN without noise; DDN uses the reference predict.py's settings, ``init_norm = 1`` (256/256)
and ``gamma = 1 - (3 / 510 / eps) ** (1 / steps)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmooth import attacks
from rsmooth.logformat import ATTACK_HEADER, format_attack_row, write_log
from rsmooth.smoothing import NOISE_SCHEME, Smooth, image_seed
from rsmooth.validation import check_non_negative, check_positive_int, check_sigma

ATTACKS = ("pgd", "ddn", "pgd_stein")
DDN_INIT_NORM = 1.0  # predict.py: --init-norm-DDN 256, divided by 256


def ddn_gamma(eps: float, steps: int) -> float:
    """predict.py's DDN norm step, chosen so that ``(1 - gamma) ** steps == 3 / 510 / eps``."""
    return 1 - (3 / 510 / eps) ** (1 / steps)


def attack_seed(seed: int, index: int) -> int:
    """The seed of image ``index``'s attack noise: a stream apart from its PREDICT noise (``image_seed``)."""
    return int(np.random.SeedSequence([seed, index, 1]).generate_state(1, dtype=np.uint64)[0] >> 1)


def check_attack(attack: str, *, eps: float, steps: int, num_noise: int, base_attack: bool) -> None:
    """Raise ValueError naming the bad value; the edge check of the CLI, the config and the library."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; expected one of: {', '.join(ATTACKS)}")
    check_non_negative(eps, "eps")
    check_positive_int(steps, "steps")
    check_positive_int(num_noise, "num_noise (m_test)")
    if attack == "pgd_stein" and base_attack:
        raise ValueError(
            "attack 'pgd_stein' cannot be a base attack: without noise its gradient estimate is zero"
        )
    if attack == "pgd_stein" and num_noise < 2:
        raise ValueError(f"attack 'pgd_stein' needs num_noise (m_test) >= 2, got {num_noise}")


def attack_smoothed(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma: float,
    eps: float,
    steps: int,
    num_noise: int,
    attack: str = "pgd",
    base_attack: bool = False,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    max_batch: int = 4096,
) -> torch.Tensor:
    """Adversarial examples ``[B, C, H, W]`` in [0, 1] within ``eps`` (L2) of ``x``, for the smoothed classifier.

    ``num_noise`` draws ``N(0, sigma^2 I)`` per image are made once (from ``generator``, or one generator per
    image when a sequence is given) and reused at every step. Images are attacked in chunks of at most
    ``max_batch // num_noise`` images, so that one forward pass holds at most ``max_batch`` noisy copies (one
    image per pass when ``num_noise > max_batch``); each image's result does not depend on the chunking.
    DDN may exceed ``eps`` by half a grey level per pixel, as in the reference (``rsmooth.attacks``).
    """
    check_attack(attack, eps=eps, steps=steps, num_noise=num_noise, base_attack=base_attack)
    check_sigma(sigma)
    if x.dim() != 4:
        raise ValueError(f"x must be a batch [B, C, H, W], got shape {tuple(x.shape)}")
    generators = list(generator) if isinstance(generator, Sequence) else None
    if generators is not None and len(generators) != x.shape[0]:
        raise ValueError(f"got {len(generators)} generators for {x.shape[0]} images")
    if base_attack:
        noise = torch.zeros((x.shape[0], 1, *x.shape[1:]), device=x.device, dtype=x.dtype)
    elif generators is not None:
        noise = torch.stack([_draw(x[b], num_noise, sigma, g) for b, g in enumerate(generators)])
    else:
        noise = _draw(x, num_noise, sigma, generator, batched=True)
    per_chunk = max(1, max_batch // noise.shape[1])
    return torch.cat(
        [
            _attack_chunk(model, x[i : i + per_chunk], y[i : i + per_chunk], noise[i : i + per_chunk], attack,
                          eps, steps, base_attack)
            for i in range(0, x.shape[0], per_chunk)
        ]
    )  # fmt: skip


def _draw(
    x: torch.Tensor, m: int, sigma: float, generator: torch.Generator | None, batched: bool = False
) -> torch.Tensor:
    shape = (x.shape[0], m, *x.shape[1:]) if batched else (m, *x.shape)
    return torch.randn(shape, device=x.device, dtype=x.dtype, generator=generator) * sigma


def _attack_chunk(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    noise: torch.Tensor,
    attack: str,
    eps: float,
    steps: int,
    base_attack: bool,
) -> torch.Tensor:
    if attack == "ddn":
        if eps == 0:
            return x.detach().clone()
        return attacks.smoothadv_ddn(
            model,
            x,
            y,
            eps=eps,
            steps=steps,
            noise=noise,
            gamma=ddn_gamma(eps, steps),
            init_norm=DDN_INIT_NORM,
        )
    if base_attack:
        return attacks.pgd_base(model, x, y, eps=eps, steps=steps)
    if attack == "pgd_stein":
        return attacks.smoothadv_pgd_stein(model, x, y, eps=eps, steps=steps, noise=noise)
    return attacks.smoothadv_pgd(model, x, y, eps=eps, steps=steps, noise=noise)


def attack_dataset(
    smooth: Smooth,
    dataset: torch.utils.data.Dataset,
    indices: Sequence[int],
    outfile: str | os.PathLike,
    *,
    attack: str,
    eps: float,
    steps: int,
    num_noise: int,
    base_attack: bool,
    n: int,
    alpha: float,
    batch_size: int,
    seed: int,
    images_per_call: int = 1,
    partial_path: str | os.PathLike | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> Path:
    """Attack and PREDICT ``dataset[i]`` for every ``i`` in ``indices``; write the log to ``outfile``.

    The same guarantees as :func:`rsmooth.certification.certify_dataset`: rows go to ``<outfile>.partial``
    (fsynced per call), a rerun with the same settings skips them and one with other settings is refused, and
    ``outfile`` appears, atomically, only when complete. ``batch_size`` bounds both PREDICT's forward passes
    and the attack's (``images_per_call * num_noise`` copies at most per pass where possible).
    """
    check_attack(attack, eps=eps, steps=steps, num_noise=num_noise, base_attack=base_attack)
    settings = {
        "procedure": "attack",
        "attack": attack,
        "base_attack": base_attack,
        "eps": eps,
        "steps": steps,
        "num_noise": num_noise,
        "n": n,
        "alpha": alpha,
        "batch_size": batch_size,
        "seed": seed,
        "sigma": smooth.sigma,
        "noise": NOISE_SCHEME,  # the noise stream (a resume never mixes two)
    }
    model, device = smooth.attack_model(), smooth.device

    def rows(chunk: list[int]) -> list[tuple[int, str]]:
        images, labels = zip(*(dataset[i] for i in chunk), strict=True)
        xs = torch.stack(images).to(device)
        ys = torch.as_tensor([int(label) for label in labels], device=device)
        began = time.perf_counter()
        generators = [torch.Generator(device=device).manual_seed(attack_seed(seed, i)) for i in chunk]
        x_adv = attack_smoothed(
            model, xs, ys, sigma=smooth.sigma, eps=eps, steps=steps, num_noise=num_noise, attack=attack,
            base_attack=base_attack, generator=generators, max_batch=batch_size,
        )  # fmt: skip
        with torch.inference_mode():
            model.eval()
            base = model(x_adv).argmax(dim=1).tolist()
        predictions = smooth.predict_batch(
            x_adv, n, alpha, batch_size, seeds=[image_seed(seed, i) for i in chunk]
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - began) / len(chunk)
        return [
            (i, format_attack_row(i, int(label), prediction, base_prediction, seconds))
            for i, label, prediction, base_prediction in zip(chunk, labels, predictions, base, strict=True)
        ]

    return write_log(
        outfile, indices, rows, settings={**(meta or {}), **settings}, header=ATTACK_HEADER,
        images_per_call=images_per_call, partial_path=partial_path, progress=progress,
    )  # fmt: skip
