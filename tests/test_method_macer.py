"""MACER (Zhai et al. 2020) as the SmoothMix repository codes it: the loss against a hand loop written from
the formula, the samples its robustness term keeps, gradients through both top scores, deferred lambda."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
from scipy.stats import norm

from rsmooth.train.methods import MethodStep
from rsmooth.train.methods.macer import macer_loss
from rsmooth.train_config import TrainConfig


def hand_macer(logits, y, k, sigma, lbd, gamma, beta):
    """sum_b [-log(mean_j softmax_y + 1e-10)] + lbd * sum_kept (sigma/2)(gamma - (ppf(p1) - ppf(p2))), / B."""
    batch = len(y)
    classification, robustness, kept = 0.0, 0.0, 0
    for b in range(batch):
        rows = [logits[b * k + j].double() for j in range(k)]
        mean = sum(torch.softmax(r, 0) for r in rows) / k
        classification += -math.log(float(mean[y[b]]) + 1e-10)
        soft = sum(torch.softmax(beta * r, 0) for r in rows) / k
        order = sorted(range(len(soft)), key=lambda c: -float(soft[c]))
        if order[0] != int(y[b]):
            continue  # wrong top-1: no robustness term
        p1, p2 = float(soft[order[0]]), float(soft[order[1]])
        margin = norm.ppf(p1) - norm.ppf(p2)
        if not math.isfinite(margin) or margin > gamma:
            continue
        robustness += sigma / 2 * (gamma - margin)
        kept += 1
    return (classification + lbd * robustness) / batch, kept


def test_loss_matches_a_hand_loop_of_the_formula():
    torch.manual_seed(0)
    k, batch, classes = 4, 6, 5
    logits = torch.randn(batch * k, classes) * 0.3
    y = torch.randint(0, classes, (batch,))
    for lbd in (0.0, 3.0):
        loss, kept = macer_loss(logits, y, k=k, sigma=0.5, lbd=lbd, gamma=8.0, beta=2.0)
        expected, expected_kept = hand_macer(logits, y, k, 0.5, lbd, 8.0, 2.0)
        assert float(loss) == pytest.approx(expected, rel=1e-5)
        if lbd:
            assert kept == expected_kept > 0


def test_robustness_term_keeps_only_right_finite_gaps_within_gamma():
    k, beta, gamma = 1, 1.0, 1.0
    logits = torch.tensor(
        [
            [2.0, 1.5, 0.0],  # right top-1, small gap: kept
            [0.0, 3.0, 0.0],  # wrong top-1 (label 0): dropped
            [200.0, 0.0, 0.0],  # softmax saturates at 1.0 in float32: infinite gap, dropped
            [6.0, 0.0, 0.0],  # right, but the Phi^-1 gap exceeds gamma: dropped
        ]
    )
    y = torch.zeros(4, dtype=torch.long)
    _, kept = macer_loss(logits, y, k=k, sigma=1.0, lbd=1.0, gamma=gamma, beta=beta)
    assert kept == 1
    p = torch.softmax(logits[0].double(), 0)
    expected_robustness = 0.5 * (gamma - (norm.ppf(float(p[0])) - norm.ppf(float(p[1]))))
    classification = -torch.log(torch.softmax(logits, 1)[:, 0] + 1e-10).sum()
    loss, _ = macer_loss(logits, y, k=k, sigma=1.0, lbd=1.0, gamma=gamma, beta=beta)
    # Divided by the whole batch (4), not by the one kept sample.
    assert float(loss) == pytest.approx((float(classification) + expected_robustness) / 4, rel=1e-5)


def test_gradient_flows_through_both_top_scores_and_the_classification_term():
    # gradcheck compares autograd with finite differences: a detached p1, p2 or mean softmax fails it.
    torch.manual_seed(1)
    k, batch, classes = 3, 4, 4
    y = torch.arange(batch) % classes
    logits = (torch.randn(batch * k, classes) * 0.2).double()
    logits.view(batch, k, classes)[torch.arange(batch), :, y] += 0.5  # right top-1 everywhere
    logits.requires_grad_(True)

    def loss(t):
        return macer_loss(t, y, k=k, sigma=0.5, lbd=4.0, gamma=8.0, beta=3.0)[0]

    assert macer_loss(logits, y, k=k, sigma=0.5, lbd=4.0, gamma=8.0, beta=3.0)[1] == batch
    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-5)


def test_step_trains_on_k_noisy_copies_of_each_image_with_the_hand_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    before = copy.deepcopy(model)
    config = TrainConfig(
        method="macer", sigma=0.5, num_noise_vec=4, macer_lambda=2.0, macer_beta=2.0, batch_size=5
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = MethodStep(
        config, model, optimizer, torch.amp.GradScaler("cuda", enabled=False), autocast=contextlib.nullcontext
    )
    step.set_epoch(0)
    x, y = torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))
    torch.manual_seed(7)
    loss_sum, _, count = step(x, y)
    torch.manual_seed(7)
    # As macer.py: inputs.repeat((1, k, 1, 1)).view(B*k, ...) and one randn_like draw over all copies.
    copies = x.repeat((1, 4, 1, 1)).view(20, 1, 2, 2)
    noisy = copies + torch.randn_like(copies) * 0.5
    expected, _ = hand_macer(before(noisy).detach(), y, 4, 0.5, 2.0, 8.0, 2.0)
    assert count == 5 and float(loss_sum) / count == pytest.approx(expected, rel=1e-5)
    assert not torch.equal(model[1].weight, before[1].weight)


def test_defaults_are_the_official_ones_and_bad_values_are_refused():
    config = TrainConfig(method="macer").validate()
    assert (config.num_noise_vec, config.macer_lambda, config.macer_gamma, config.macer_beta) == (
        16,
        16.0,
        8.0,
        16.0,
    )
    assert config.macer_deferred is False and config.decay_offset == 1
    assert TrainConfig(method="gaussian").macer_lambda is None  # other methods carry no MACER options
    with pytest.raises(ValueError, match="macer_lambda applies to method macer only, not 'gaussian'"):
        TrainConfig(method="gaussian", macer_lambda=1.0).validate()
    with pytest.raises(ValueError, match=r"macer_beta must be a positive number, got 0\.0"):
        TrainConfig(method="macer", macer_beta=0.0).validate()
    with pytest.raises(ValueError, match="macer_deferred waits for the first lr decay"):
        TrainConfig(method="macer", macer_deferred=True, lr_step_size=0).validate()


@pytest.mark.parametrize(("offset", "first_robust_epoch"), [(None, 4), (0, 3)])
def test_deferred_lambda_is_zero_until_the_first_epoch_at_the_decayed_lr(offset, first_robust_epoch):
    # lr_step_size 3: the official `lbd = 0 while epoch <= 3` (0-based), i.e. until the late decay at epoch 4.
    config = TrainConfig(
        method="macer", macer_deferred=True, lr_step_size=3, lr_decay_offset=offset
    ).validate()
    model = torch.nn.Linear(1, 1)
    step = MethodStep(config, model, None, None, autocast=contextlib.nullcontext)
    lambdas = []
    for epoch in range(6):
        step.set_epoch(epoch)
        lambdas.append(step.lbd)
    assert lambdas == [0.0] * first_robust_epoch + [16.0] * (6 - first_robust_epoch)
