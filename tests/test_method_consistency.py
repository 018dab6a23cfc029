"""Consistency regularization (Jeong & Shin 2020) as ``train_consistency.py``: the loss against a hand loop of
the formula, the undetached mean prediction, the chunked steps on noise-major copies, the SmoothAdv attack of
``--adv-training`` (ball, then box), the defaults."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from rsmooth import attacks
from rsmooth.train.methods import MethodStep
from rsmooth.train.methods.consistency import consistency_loss
from rsmooth.train_config import TrainConfig


def hand_consistency(logits, lbd, eta):
    """mean_b [lbd * (1/m) sum_i sum_k pbar_k (log pbar_k - log p_ik) + eta * -sum_k pbar_k log pbar_k]."""
    m, batch = len(logits), logits[0].shape[0]
    total = 0.0
    for b in range(batch):
        probs = []
        for i in range(m):
            z = [math.exp(v) for v in logits[i][b].tolist()]
            probs.append([v / sum(z) for v in z])
        pbar = [sum(p[k] for p in probs) / m for k in range(len(probs[0]))]
        kl = sum(sum(pb * (math.log(pb) - math.log(p[k])) for k, pb in enumerate(pbar)) for p in probs) / m
        entropy = -sum(pb * math.log(max(pb, 1e-20)) for pb in pbar)
        total += lbd * kl + eta * entropy
    return total / batch


def test_loss_matches_a_hand_loop_of_the_formula():
    torch.manual_seed(0)
    logits = [torch.randn(4, 5) for _ in range(3)]
    assert float(consistency_loss(logits, 10.0, 0.5)) == pytest.approx(
        hand_consistency(logits, 10.0, 0.5), rel=1e-5
    )


def test_mean_prediction_is_not_detached():
    # gradcheck against finite differences: detaching pbar (the KL's target) would fail it.
    torch.manual_seed(1)
    logits = [torch.randn(3, 4, dtype=torch.double, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradcheck(lambda a, b: consistency_loss([a, b], 10.0, 0.5), tuple(logits))


class Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        self.training_inputs: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.training_inputs.append(x.detach().clone())
        return self.net(x)


def make_step(config, model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = MethodStep(
        config, model, optimizer, torch.amp.GradScaler("cuda", enabled=False), autocast=contextlib.nullcontext
    )
    step.set_epoch(0)
    return step


def test_step_trains_each_chunk_on_noise_major_copies():
    torch.manual_seed(0)
    model = Recorder()
    config = TrainConfig(method="consistency", sigma=0.5, num_noise_vec=2, batch_size=6).validate()
    step = make_step(config, model)
    x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
    torch.manual_seed(5)
    step(x, y)
    torch.manual_seed(5)
    assert len(model.training_inputs) == 2  # one optimizer step per chunk of B/m images
    for chunk, inputs in zip(x.tensor_split(2), model.training_inputs, strict=True):
        noises = [torch.randn_like(chunk) * 0.5 for _ in range(2)]  # the reference's list of m draws
        torch.testing.assert_close(inputs, torch.cat([chunk + n for n in noises]))


def test_adv_training_attacks_with_the_chunk_noise_then_trains_on_the_attacked_copies(monkeypatch):
    seen = []
    real = attacks.consistency_pgd

    def spy(model, x, y, *, eps, steps, noise):
        out = real(model, x, y, eps=eps, steps=steps, noise=noise)
        seen.append((x, out, noise, eps, steps))
        return out

    monkeypatch.setattr(attacks, "consistency_pgd", spy)
    torch.manual_seed(0)
    model = Recorder()
    config = TrainConfig(
        method="consistency", adv_training=True, sigma=0.25, batch_size=4, warmup=4
    ).validate()
    assert (config.eps, config.steps, config.num_noise_vec) == (
        2.0,
        4,
        2,
    )  # the official --adv-training defaults
    step = make_step(config, model)
    step(torch.rand(4, 1, 2, 2), torch.randint(0, 3, (4,)))
    assert len(seen) == 2
    for (x, x_adv, noise, eps, steps), inputs in zip(seen, model.training_inputs, strict=True):
        assert eps == 0.5 and steps == 4  # min(eps, (epoch + 1) * eps / warmup) at epoch 0
        assert ((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all()
        torch.testing.assert_close(inputs, torch.cat([x_adv + noise[:, i] for i in range(2)]))


def test_consistency_pgd_projects_on_the_ball_then_clamps_to_the_box():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2)
    y = torch.randint(0, 3, (5,))
    noise = torch.randn(5, 2, 1, 2, 2) * 0.25
    adv = attacks.consistency_pgd(model, x, y, eps=0.5, steps=1, noise=noise)
    # One step by hand: alpha = 2 * eps / steps, mean-reduced loss, grad / (norm + 1e-8), renorm, clamp.
    delta = torch.zeros_like(x, requires_grad=True)
    probs = sum(F.softmax(model(x + delta + noise[:, i]), dim=1) for i in range(2)) / 2
    loss = F.nll_loss(torch.log(probs.clamp(min=1e-20)), y)
    (grad,) = torch.autograd.grad(loss, delta)
    moved = 1.0 * grad / (grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)
    expected = (x + moved.renorm(p=2, dim=0, maxnorm=0.5)).clamp(0, 1)
    torch.testing.assert_close(adv, expected)


def test_defaults_and_checks():
    config = TrainConfig(method="consistency").validate()
    assert (config.num_noise_vec, config.consistency_lambda, config.consistency_eta) == (2, 10.0, 0.5)
    assert config.decay_offset == 1 and not config.attacking and config.adv_training is False
    assert TrainConfig(method="consistency", adv_training=True).attacking
    with pytest.raises(ValueError, match="num_noise_vec \\(m\\) must divide batch_size"):
        TrainConfig(method="consistency", num_noise_vec=3, batch_size=256).validate()
    with pytest.raises(ValueError, match="adv_training applies to method consistency only, not 'smoothadv'"):
        TrainConfig(method="smoothadv", adv_training=True).validate()
