"""Stability training (Li et al. 2019) as ``train_stab.py``: the loss against a hand loop of the formula, the
undetached soft target, the two forward passes, the official defaults."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch

from rsmooth.train.methods import MethodStep
from rsmooth.train.methods.stability import stability_loss
from rsmooth.train_config import TrainConfig


def hand_stability(clean, noisy, y, lbd):
    """mean_b [-log softmax(clean_b)_y] + lbd * mean_b sum_k -softmax(clean_b)_k log softmax(noisy_b)_k."""
    total_ce, total_stab = 0.0, 0.0
    for b in range(len(y)):
        zc = [math.exp(v) for v in clean[b].tolist()]
        zn = [math.exp(v) for v in noisy[b].tolist()]
        p = [v / sum(zc) for v in zc]
        log_q = [math.log(v / sum(zn)) for v in zn]
        total_ce += -math.log(p[int(y[b])])
        total_stab += -sum(pk * lq for pk, lq in zip(p, log_q, strict=True))
    return total_ce / len(y) + lbd * total_stab / len(y)


def test_loss_matches_a_hand_loop_of_the_formula():
    torch.manual_seed(0)
    clean, noisy, y = torch.randn(5, 4), torch.randn(5, 4), torch.randint(0, 4, (5,))
    assert float(stability_loss(clean, noisy, y, 2.0)) == pytest.approx(
        hand_stability(clean, noisy, y, 2.0), rel=1e-5
    )


def test_soft_target_is_not_detached():
    # gradcheck compares autograd with finite differences: detaching softmax(clean) would fail it.
    torch.manual_seed(1)
    clean = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    noisy = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    y = torch.tensor([0, 2, 1])
    assert torch.autograd.gradcheck(lambda c, n: stability_loss(c, n, y, 2.0), (clean, noisy))
    # The stability term alone moves the clean logits (it would not with a detached target).
    (grad,) = torch.autograd.grad(
        stability_loss(clean, noisy, y, 1.0) - stability_loss(clean, noisy, y, 0.0), clean
    )
    assert grad.abs().max() > 1e-3


class Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.net(x)


def test_step_forwards_the_clean_then_the_noisy_batch_and_optimises_the_hand_loss():
    torch.manual_seed(0)
    model = Recorder()
    before = copy.deepcopy(model.net)
    config = TrainConfig(method="stability", sigma=0.5, batch_size=6).validate()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = MethodStep(
        config, model, optimizer, torch.amp.GradScaler("cuda", enabled=False), autocast=contextlib.nullcontext
    )
    x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
    torch.manual_seed(3)
    loss_sum, _, count = step(x, y)
    torch.manual_seed(3)
    noise = torch.randn_like(x) * 0.5  # one draw per image, before either forward pass
    assert len(model.inputs) == 2
    torch.testing.assert_close(model.inputs[0], x)
    torch.testing.assert_close(model.inputs[1], x + noise)
    expected = hand_stability(before(x).detach(), before(x + noise).detach(), y, 2.0)
    assert count == 6 and float(loss_sum) / count == pytest.approx(expected, rel=1e-5)


def test_defaults_and_checks():
    config = TrainConfig(method="stability").validate()
    assert config.stability_lambda == 2.0 and config.decay_offset == 1 and not config.attacking
    with pytest.raises(ValueError, match="stability_lambda must be a non-negative number, got -1"):
        TrainConfig(method="stability", stability_lambda=-1.0).validate()
    with pytest.raises(ValueError, match="num_noise_vec"):
        TrainConfig(method="stability", num_noise_vec=2).validate()
