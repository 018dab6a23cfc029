"""Tests of rsmooth.attacks: SmoothAdv PGD / DDN / Stein, base PGD and the SmoothMix adversary."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from torch import nn

from rsmooth.attacks import (
    _ddn_learning_rates,
    mean_softmax,
    pgd_base,
    smoothadv_ddn,
    smoothadv_pgd,
    smoothadv_pgd_stein,
    smoothed_soft_nll,
    smoothmix_pgd,
)

SHAPE = (3, 4, 4)
D = math.prod(SHAPE)


# -- models ------------------------------------------------------------------------------------------------------


class TwoClassLinear(nn.Module):
    """Logits ``(s, -s)`` with ``s = <w, x> + b``: class 0 wins iff s > 0, and the loss of class 0 rises as s falls."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1) + self.b
        return torch.stack([s, -s], dim=1)


class Recorder(nn.Module):
    """Wraps a model and records every batch it sees, with its train flag and whether autograd was on."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), self.training, torch.is_grad_enabled()))
        return self.inner(x)


def small_conv(seed: int, classes: int = 5, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(6 * D // 3, classes)]
    return nn.Sequential(*layers)


def linear_setup(margin: float = 1.0, seed: int = 0) -> tuple[TwoClassLinear, torch.Tensor, torch.Tensor]:
    """Unit-norm w, x = 128/255 everywhere (on the 8-bit grid, well inside the box), s(x) = margin, label 0."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE, generator=gen)
    w /= w.norm()
    x = torch.full((2, *SHAPE), 128 / 255)
    b = margin - float((x[0] * w).sum())
    return TwoClassLinear(w, b), x, torch.zeros(2, dtype=torch.long)


def norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def cosine(delta: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Per-example cosine between delta [B, ...] and one direction [...] or one direction per example [B, ...]."""
    direction = direction.expand_as(delta)
    return torch.nn.functional.cosine_similarity(delta.flatten(1), direction.flatten(1))


def edge_inputs(batch: int, seed: int) -> torch.Tensor:
    """On the 8-bit grid, mostly within 6 levels of 0 or 1, with some exact 0s and 1s."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 6, (batch, *SHAPE), generator=gen)
    high = 255 - torch.randint(0, 6, (batch, *SHAPE), generator=gen)
    mid = torch.randint(0, 256, (batch, *SHAPE), generator=gen)
    pick = torch.randint(0, 5, (batch, *SHAPE), generator=gen)
    levels = torch.where(pick < 2, low, torch.where(pick < 4, high, mid))
    return levels.float() / 255


def basis_noise(batch: int, sigma: float) -> torch.Tensor:
    """Antithetic noise along every coordinate: copy 2j is +sigma e_j, copy 2j+1 is -sigma e_j."""
    eye = torch.eye(D).view(D, *SHAPE) * sigma
    noise = torch.stack([eye, -eye], dim=1).reshape(2 * D, *SHAPE)
    return noise.unsqueeze(0).expand(batch, -1, -1, -1, -1).clone()


# -- direction on a model with a known gradient ------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("steps", [1, 3])
def test_pgd_moves_along_the_loss_increasing_direction(m: int, steps: int) -> None:
    model, x, y = linear_setup()
    noise = 0.1 * torch.randn(2, m, *SHAPE)
    eps = 0.3
    delta = smoothadv_pgd(model, x, y, eps=eps, steps=steps, noise=noise) - x
    # The smoothed probability of class 0 only depends on <w, x + delta>, so its gradient is parallel to -w.
    assert torch.allclose(norms(delta), torch.full((2,), eps), rtol=1e-5)
    assert (cosine(delta, -model.w.detach()) > 1 - 1e-5).all()


def test_base_pgd_moves_along_minus_w_with_norm_eps() -> None:
    model, x, y = linear_setup()
    delta = pgd_base(model, x, y, eps=0.4, steps=2) - x
    assert torch.allclose(norms(delta), torch.full((2,), 0.4), rtol=1e-5)
    assert (cosine(delta, -model.w.detach()) > 1 - 1e-5).all()


def test_stein_estimate_moves_along_the_loss_increasing_direction() -> None:
    model, x, y = linear_setup()
    # With antithetic noise along each axis, coordinate j of the estimate is proportional to
    # p(x - sigma e_j) - p(x + sigma e_j), which has the sign of -w_j.
    delta = smoothadv_pgd_stein(model, x, y, eps=0.3, steps=2, noise=basis_noise(2, 0.05)) - x
    assert torch.allclose(norms(delta), torch.full((2,), 0.3), rtol=1e-5)
    assert (cosine(delta, -model.w.detach()) > 0.99).all()


def test_ddn_finds_a_small_adversarial_along_minus_w() -> None:
    model, x, y = linear_setup(margin=0.1)
    noise = torch.zeros(2, 1, *SHAPE)
    x_adv = smoothadv_ddn(model, x, y, eps=1.0, steps=5, noise=noise, init_norm=0.3)
    delta = x_adv - x
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()  # adversarial (zero noise)
    assert (cosine(delta, -model.w.detach()) > 0.98).all()
    # The norm shrinks while adversarial: below the start 0.3 * 1.05, above the needed margin 0.1.
    assert ((norms(delta) < 0.3) & (norms(delta) > 0.1)).all()
    assert torch.allclose((x_adv * 255).round() / 255, x_adv, atol=1e-6)  # on the 8-bit grid


# -- constraints: L2 ball and box --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("m", [1, 4])
def test_every_attack_stays_in_the_ball_and_the_box(seed: int, m: int) -> None:
    model = small_conv(seed)
    x = edge_inputs(6, seed)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # attack the clean prediction, so the attacks have work to do
    noise = 0.5 * torch.randn(6, m, *SHAPE)
    tol = 1e-5
    for eps in (0.1, 1.0):
        outputs = {
            "pgd": smoothadv_pgd(model, x, y, eps=eps, steps=4, noise=noise),
            "base": pgd_base(model, x, y, eps=eps, steps=4),
        }
        if m > 1:
            outputs["stein"] = smoothadv_pgd_stein(model, x, y, eps=eps, steps=4, noise=noise)
        for name, x_adv in outputs.items():
            assert x_adv.shape == x.shape, name
            assert (norms(x_adv - x) <= eps + tol).all(), name
            assert x_adv.min() >= 0 and x_adv.max() <= 1, name

        # DDN: init_norm above eps so that the final renorm is exercised. The reference renorms best_delta to
        # eps and then rounds delta to the grid, so the norm can exceed eps by half a level per changed pixel.
        x_adv = smoothadv_ddn(model, x, y, eps=eps, steps=6, noise=noise, init_norm=2 * eps)
        delta = x_adv - x
        nonzero = (delta.flatten(1).abs() > 1e-6).sum(1).float()
        assert (norms(delta) <= eps + 0.5 / 255 * nonzero.sqrt() + tol).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert torch.allclose(
            (x_adv * 255).round() / 255, x_adv, atol=1e-6
        )  # x on the grid -> x_adv on the grid

    x_init, x_adv = smoothmix_pgd(model, x, y, alpha=0.3, steps=4, noise=noise, mix_step=1)
    for point, bound in ((x_init, 0.3), (x_adv, 1.2)):
        assert (norms(point - x) <= bound + tol).all()
        assert point.min() >= 0 and point.max() <= 1
    x_init, x_adv = smoothmix_pgd(model, x, y, alpha=0.3, steps=4, noise=noise, mix_step=1, maxnorm=0.2)
    assert (norms(x_adv - x) <= 0.2 + tol).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_ddn_off_grid_inputs_stay_in_the_box_within_half_a_level_per_pixel() -> None:
    model = small_conv(3)
    torch.manual_seed(3)
    x = torch.rand(6, *SHAPE) ** 3  # off the grid, many values near 0
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    noise = 0.25 * torch.randn(6, 2, *SHAPE)
    x_adv = smoothadv_ddn(model, x, y, eps=0.5, steps=8, noise=noise, init_norm=1.0)
    delta = x_adv - x
    nonzero = (delta.flatten(1).abs() > 0).sum(1).float()
    assert (norms(delta) <= 0.5 + 0.5 / 255 * nonzero.sqrt() + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    # The reference quantizes delta itself at the end (not x + delta): off the box edges, delta is on the grid.
    inside = (x_adv > 0) & (x_adv < 1)
    assert (nonzero > 0).sum() >= 3  # most examples needed a search (not adversarial at delta = 0)
    assert torch.allclose(delta[inside] * 255, (delta[inside] * 255).round(), atol=1e-4)


def test_ddn_final_quantization_can_exceed_eps_by_half_a_level_like_the_reference() -> None:
    # One pixel at 128/255; class 0 iff the pixel exceeds 0.499. Step 0 (delta = 0) is not adversarial; the
    # update moves the pixel to 127/255, which is. The final renorm to eps = 0.6/255 gives -0.6/255, which the
    # reference's quantization of delta rounds back to -1/255: a norm of 1/255 > eps.
    model = TwoClassLinear(torch.full((1, 1, 1), 100.0), -49.9)
    x = torch.full((1, 1, 1, 1), 128 / 255)
    y = torch.zeros(1, dtype=torch.long)
    x_adv = smoothadv_ddn(
        model, x, y, eps=0.6 / 255, steps=2, noise=torch.zeros(1, 1, 1, 1, 1), init_norm=1 / 255
    )
    assert torch.allclose(x_adv - x, torch.full_like(x, -1 / 255), atol=1e-7)


# -- the noise is the caller's, delta is shared by the m copies --------------------------------------------------


def implied_points(calls: list, noise: torch.Tensor) -> list[torch.Tensor]:
    """From each recorded batch [B*m, ...], the points x + delta per copy ([B, m, ...]) after removing the noise."""
    batch, m = noise.shape[:2]
    return [inp.view(batch, m, *SHAPE) - noise for inp, _, _ in calls]


@pytest.mark.parametrize("attack", ["pgd", "stein", "ddn", "smoothmix"])
def test_model_sees_x_plus_delta_plus_the_given_noise_at_every_step(attack: str) -> None:
    batch, m, steps, eps = 3, 3, 4, 0.5
    model = Recorder(small_conv(4))
    torch.manual_seed(4)
    x = torch.rand(batch, *SHAPE)
    y = torch.tensor([0, 1, 2])
    noise = 0.25 * torch.randn(batch, m, *SHAPE)
    if attack == "pgd":
        smoothadv_pgd(model, x, y, eps=eps, steps=steps, noise=noise)
    elif attack == "stein":
        smoothadv_pgd_stein(model, x, y, eps=eps, steps=steps, noise=noise)
    elif attack == "ddn":
        smoothadv_ddn(model, x, y, eps=eps, steps=steps, noise=noise)
    else:
        smoothmix_pgd(model, x, y, alpha=0.2, steps=steps, noise=noise)

    assert len(model.calls) == steps  # one forward pass per step, all B*m copies in one batch
    assert all(inp.shape == (batch * m, *SHAPE) for inp, _, _ in model.calls)
    # Step 0 evaluates the clean input plus exactly the given noise (interleaved: row b*m+i is copy i of image b).
    assert torch.equal(model.calls[0][0], (x.unsqueeze(1) + noise).reshape(batch * m, *SHAPE))
    moved = False
    for points in implied_points(model.calls, noise):
        # The same point for every copy: delta is shared and no fresh noise was drawn.
        assert torch.allclose(points, points[:, :1].expand_as(points), atol=1e-6)
        point = points[:, 0]
        assert point.min() >= -1e-6 and point.max() <= 1 + 1e-6
        if attack in ("pgd", "stein"):
            assert (norms(point - x) <= eps + 1e-5).all()
        # (DDN searches with its own norm, init_norm * (1 +- gamma)^t, and only the returned point is renormed to
        # eps; SmoothMix has no eps.)
        moved |= bool((norms(point - x) > 1e-3).any())
    assert moved
    # Stein never builds an autograd graph; the gradient attacks do. All run in eval mode.
    assert all(grad_on == (attack != "stein") for _, _, grad_on in model.calls)
    assert not any(training for _, training, _ in model.calls)


def test_base_pgd_sees_no_noise() -> None:
    model = Recorder(small_conv(5))
    x = torch.rand(2, *SHAPE)
    x_adv = pgd_base(model, x, torch.tensor([0, 1]), eps=0.5, steps=3)
    assert len(model.calls) == 3
    assert torch.equal(model.calls[0][0], x)
    # Step t+1 evaluates the iterate after step t, and the returned point is the last iterate (never evaluated).
    assert all((norms(inp - x) <= 0.5 + 1e-5).all() for inp, _, _ in model.calls)
    assert not torch.allclose(model.calls[-1][0], x_adv)


def test_one_pgd_step_matches_an_independent_per_example_gradient() -> None:
    batch, m, eps = 3, 4, 0.5
    model = small_conv(6).eval()
    torch.manual_seed(6)
    x = torch.rand(batch, *SHAPE)
    y = torch.tensor([1, 3, 4])
    noise = 0.3 * torch.randn(batch, m, *SHAPE)
    got = smoothadv_pgd(model, x, y, eps=eps, steps=1, noise=noise)
    expected = []
    for b in range(batch):  # a loop over examples and noise draws, written independently of the module
        point = x[b].clone().requires_grad_(True)
        probs = [torch.softmax(model((point + noise[b, i]).unsqueeze(0)), dim=1)[0, y[b]] for i in range(m)]
        (grad,) = torch.autograd.grad(-torch.log(sum(probs) / m), point)
        moved = (x[b] + 2 * eps * grad / grad.norm()).clamp(0, 1) - x[b]
        expected.append(x[b] + moved * min(1.0, eps / float(moved.norm())))
    assert torch.allclose(got, torch.stack(expected), atol=1e-5)


def test_pgd_with_one_zero_noise_draw_is_base_pgd() -> None:
    model = small_conv(7)
    x = torch.rand(4, *SHAPE)
    y = torch.tensor([0, 1, 2, 3])
    a = smoothadv_pgd(model, x, y, eps=0.5, steps=3, noise=torch.zeros(4, 1, *SHAPE))
    b = pgd_base(model, x, y, eps=0.5, steps=3)
    assert torch.allclose(a, b, atol=1e-6)


class ConstantLogits(nn.Module):
    """Ignores its input: the gradient with respect to the input is zero (not even in the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([3.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1)


def test_zero_gradient_gives_a_random_unit_direction() -> None:
    # The reference substitutes an unnormalized randn draw (a jump of ~sqrt(D) step lengths); we normalize it,
    # so the first step still has length exactly 2 * eps / steps.
    model = Recorder(ConstantLogits())
    x = torch.full((3, *SHAPE), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    torch.manual_seed(11)
    smoothadv_pgd(model, x, y, eps=1.0, steps=8, noise=torch.zeros(3, 1, *SHAPE))
    first = model.calls[1][0] - x
    assert torch.allclose(norms(first), torch.full((3,), 0.25), rtol=1e-5)
    assert (
        first.flatten(1).abs().sum(1) > 0.25 + 1e-3
    ).all()  # a direction spread over many pixels, not an axis
    assert not torch.allclose(first[0], first[1])  # drawn per example
    x_adv = pgd_base(model.inner, x, y, eps=0.3, steps=2)
    assert torch.allclose(norms(x_adv - x), torch.full((3,), 0.3), rtol=1e-5)
    # SmoothMix divides by ||g|| + 1e-8 as the official code does: a zero gradient is a zero step.
    x_init, x_adv = smoothmix_pgd(model.inner, x, y, alpha=0.5, steps=2, noise=torch.zeros(3, 2, *SHAPE))
    assert torch.equal(x_adv, x) and torch.equal(x_init, x)


# -- model state is left alone -----------------------------------------------------------------------------------


ATTACKS = {
    "pgd": lambda model, x, y, noise: smoothadv_pgd(model, x, y, eps=0.5, steps=2, noise=noise),
    "base": lambda model, x, y, noise: pgd_base(model, x, y, eps=0.5, steps=2),
    "stein": lambda model, x, y, noise: smoothadv_pgd_stein(model, x, y, eps=0.5, steps=2, noise=noise),
    "ddn": lambda model, x, y, noise: smoothadv_ddn(model, x, y, eps=0.5, steps=2, noise=noise),
    "smoothmix": lambda model, x, y, noise: smoothmix_pgd(model, x, y, alpha=0.3, steps=2, noise=noise)[1],
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_model_modes_parameters_grads_and_buffers_are_untouched(name: str) -> None:
    model = small_conv(8, batchnorm=True)
    model.train()
    model[3].eval()  # the dropout: a submodule in a different mode than its parent must keep it
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    model[1].register_forward_pre_hook(lambda module, args: seen.append(module.training))
    model[0].weight.grad = torch.full_like(model[0].weight, 0.5)
    model[5].bias.requires_grad_(False)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    flags = {k: v.requires_grad for k, v in model.named_parameters()}
    modes = [module.training for module in model.modules()]

    x = torch.rand(3, *SHAPE)
    y = torch.tensor([0, 1, 2])
    noise = 0.25 * torch.randn(3, 2, *SHAPE)
    out = ATTACKS[name](model, x, y, noise)

    assert seen and not any(seen)  # eval mode (BN running statistics) during the attack
    assert [module.training for module in model.modules()] == modes
    for key, value in model.named_parameters():
        assert torch.equal(value, params[key]), key
        assert value.requires_grad == flags[key], key
        if key == "0.weight":
            assert torch.equal(value.grad, torch.full_like(value, 0.5))
        else:
            assert value.grad is None, key
    for key, value in model.named_buffers():
        assert torch.equal(value, buffers[key]), key
    assert not out.requires_grad and out.grad_fn is None


def test_eval_mode_is_kept_and_attacks_work_under_no_grad_and_inference_mode() -> None:
    model = small_conv(9).eval()
    x = torch.rand(3, *SHAPE)
    y = torch.tensor([0, 1, 2])
    noise = 0.25 * torch.randn(3, 2, *SHAPE)
    reference = smoothadv_pgd(model, x, y, eps=0.5, steps=3, noise=noise)
    init_ref, adv_ref = smoothmix_pgd(model, x, y, alpha=0.3, steps=3, noise=noise, mix_step=1)
    with torch.no_grad():
        assert torch.equal(smoothadv_pgd(model, x, y, eps=0.5, steps=3, noise=noise), reference)
        init, adv = smoothmix_pgd(model, x, y, alpha=0.3, steps=3, noise=noise, mix_step=1)
        assert torch.equal(init, init_ref) and torch.equal(adv, adv_ref)
    with torch.inference_mode():
        x_inf, noise_inf = x.clone(), noise.clone()
        assert torch.allclose(smoothadv_pgd(model, x_inf, y, eps=0.5, steps=3, noise=noise_inf), reference)
    assert not model.training


# -- DDN specifics -----------------------------------------------------------------------------------------------


def test_ddn_returns_the_clean_input_when_nothing_adversarial_is_found() -> None:
    model, x, y = linear_setup(margin=20.0)  # always predicts the label within eps
    noise = 0.25 * torch.randn(2, 4, *SHAPE)
    x_adv = smoothadv_ddn(model, x, y, eps=1.0, steps=5, noise=noise)
    assert torch.equal(x_adv, x)


def test_ddn_uses_the_majority_vote_of_the_noisy_copies() -> None:
    # One pixel at 153/255 (0.6); class 0 iff the noisy pixel exceeds 0.5, label 0.
    model = TwoClassLinear(torch.full((1, 1, 1), 10.0), -5.0)
    x = torch.full((2, 1, 1, 1), 153 / 255)
    y = torch.zeros(2, dtype=torch.long)
    noise = torch.tensor(
        [
            [0.0, 0.0, -0.3],  # 1 of 3 copies wrong at delta = 0: not adversarial by majority (but by "any")
            [
                0.4,
                -0.12,
                -0.12,
            ],  # 2 of 3 copies wrong: adversarial by majority, though the mean softmax is right
        ]
    ).view(2, 3, 1, 1, 1)
    with torch.no_grad():
        mean_p0 = mean_softmax(model((x.unsqueeze(1) + noise).view(6, 1, 1, 1)), 3)[:, 0]
    assert mean_p0[0] > 0.5 and mean_p0[1] > 0.5  # the soft smoothed classifier is right on both at delta = 0

    x_adv = smoothadv_ddn(model, x, y, eps=1.0, steps=5, noise=noise, init_norm=0.2)
    # Example 1 is adversarial already at delta = 0, the smallest possible norm: the clean input comes back.
    assert torch.equal(x_adv[1], x[1])
    # Example 0 needed a search; it returns a point where the majority of its noisy copies is wrong.
    assert x_adv[0].item() < 0.5
    assert ((x_adv[0] + noise[0]).flatten() < 0.5).sum() >= 2


def test_ddn_learning_rates_follow_cosine_annealing_stepped_before_each_update() -> None:
    # The reference calls scheduler.step() at the start of each iteration; this is what PyTorch >= 1.1 gives.
    for steps in (1, 2, 5, 10):
        param = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([param], lr=1.0)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=0.01)
        expected = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
            for _ in range(steps):
                scheduler.step()
                expected.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
        assert _ddn_learning_rates(steps) == pytest.approx(expected, abs=1e-12)
        assert _ddn_learning_rates(steps)[-1] == pytest.approx(0.01)


# -- SmoothMix adversary -----------------------------------------------------------------------------------------


def test_smoothmix_steps_have_length_alpha_and_no_eps_constraint_by_default() -> None:
    inner, x, y = linear_setup()
    model = Recorder(inner)
    noise = 0.1 * torch.randn(2, 2, *SHAPE)
    alpha, steps = 0.1, 3
    x_init, x_adv = smoothmix_pgd(model, x, y, alpha=alpha, steps=steps, noise=noise)
    assert torch.equal(x_init, x)  # mix_step 0
    iterates = [points[:, 0] for points in implied_points(model.calls, noise)] + [x_adv]
    for before, after in itertools.pairwise(iterates):
        assert torch.allclose(norms(after - before), torch.full((2,), alpha), rtol=1e-4)
    # All steps go along -w, so the total displacement is alpha * steps: no eps ball by default.
    assert torch.allclose(norms(x_adv - x), torch.full((2,), alpha * steps), rtol=1e-4)
    assert (cosine(x_adv - x, -inner.w.detach()) > 1 - 1e-5).all()

    _, x_adv = smoothmix_pgd(inner, x, y, alpha=alpha, steps=steps, noise=noise, maxnorm=0.15)
    assert torch.allclose(norms(x_adv - x), torch.full((2,), 0.15), rtol=1e-4)


def test_smoothmix_one_step_adversary_is_the_first_iterate_projected_to_maxnorm_s() -> None:
    inner, x, y = linear_setup()
    model = Recorder(inner)
    noise = 0.1 * torch.randn(2, 2, *SHAPE)
    x_init, _ = smoothmix_pgd(model, x, y, alpha=0.1, steps=3, noise=noise, mix_step=1)
    first = implied_points(model.calls, noise)[1][:, 0]  # x^1, evaluated at step 1
    assert torch.allclose(x_init, first, atol=1e-6)  # default maxnorm_s = alpha * mix_step leaves it as is
    assert torch.allclose(norms(x_init - x), torch.full((2,), 0.1), rtol=1e-4)

    x_init, _ = smoothmix_pgd(inner, x, y, alpha=0.1, steps=3, noise=noise, mix_step=1, maxnorm_s=0.04)
    assert (norms(x_init - x) <= 0.04 + 1e-6).all()
    assert torch.allclose(norms(x_init - x), torch.full((2,), 0.04), rtol=1e-4)
    assert (cosine(x_init - x, first - x) > 1 - 1e-5).all()

    x_init, _ = smoothmix_pgd(model, x, y, alpha=0.1, steps=4, noise=noise, mix_step=2, maxnorm_s=1.0)
    assert torch.allclose(x_init, implied_points(model.calls, noise)[-2][:, 0], atol=1e-6)  # x^2
    # As in the official loop, mix_step >= steps never replaces x_init.
    x_init, _ = smoothmix_pgd(inner, x, y, alpha=0.1, steps=1, noise=noise, mix_step=1)
    assert torch.equal(x_init, x)


def test_smoothed_soft_nll_is_minus_log_of_the_mean_softmax() -> None:
    logits = torch.randn(6, 4)
    y = torch.tensor([2, 0])
    probs = torch.softmax(logits, dim=1).view(2, 3, 4).mean(1)
    assert torch.allclose(mean_softmax(logits, 3), probs)
    expected = -torch.log(probs[torch.arange(2), y]).sum()
    assert torch.allclose(smoothed_soft_nll(logits, y, 3), expected)
    assert torch.allclose(smoothed_soft_nll(logits, y, 3, reduction="mean"), expected / 2)


# -- eps = 0 and invalid arguments -------------------------------------------------------------------------------


def test_eps_zero_returns_x_unchanged_without_running_the_model() -> None:
    model = Recorder(small_conv(10))
    x = torch.rand(2, *SHAPE)
    y = torch.tensor([0, 1])
    noise = torch.randn(2, 2, *SHAPE)
    for out in (
        smoothadv_pgd(model, x, y, eps=0.0, steps=3, noise=noise),
        smoothadv_pgd_stein(model, x, y, eps=0, steps=3, noise=noise),
        smoothadv_ddn(model, x, y, eps=0.0, steps=3, noise=noise),
        pgd_base(model, x, y, eps=0.0, steps=3),
    ):
        assert torch.equal(out, x)
    assert model.calls == []


@pytest.mark.parametrize("name", ["pgd", "stein", "ddn", "base"])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -0.1}, r"eps.*-0\.1"),
        ({"eps": float("nan")}, r"eps.*nan"),
        ({"steps": 0}, r"steps.*0"),
        ({"steps": 2.5}, r"steps.*2\.5"),
    ],
)
def test_invalid_eps_and_steps_raise(name: str, kwargs: dict, match: str) -> None:
    fn = {"pgd": smoothadv_pgd, "stein": smoothadv_pgd_stein, "ddn": smoothadv_ddn, "base": pgd_base}[name]
    args = {"eps": 0.5, "steps": 2, **kwargs}
    if name != "base":
        args["noise"] = torch.zeros(2, 2, *SHAPE)
    with pytest.raises(ValueError, match=match):
        fn(small_conv(0), torch.rand(2, *SHAPE), torch.tensor([0, 1]), **args)


@pytest.mark.parametrize("name", ["pgd", "stein", "ddn", "smoothmix"])
@pytest.mark.parametrize(
    "bad_noise",
    [
        torch.zeros(3, 2, *SHAPE),
        torch.zeros(2, 2, 1, 4, 4),
        torch.zeros(2, *SHAPE),
        torch.zeros(2, 0, *SHAPE),
    ],
)
def test_noise_shape_not_matching_x_raises(name: str, bad_noise: torch.Tensor) -> None:
    model, x, y = small_conv(0), torch.rand(2, *SHAPE), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"noise.*got \(" + ", ".join(map(str, bad_noise.shape))):
        if name == "smoothmix":
            smoothmix_pgd(model, x, y, alpha=0.5, steps=2, noise=bad_noise)
        else:
            fn = {"pgd": smoothadv_pgd, "stein": smoothadv_pgd_stein, "ddn": smoothadv_ddn}[name]
            fn(model, x, y, eps=0.5, steps=2, noise=bad_noise)


def test_other_invalid_arguments_raise() -> None:
    model, x, y = small_conv(0), torch.rand(2, *SHAPE), torch.tensor([0, 1])
    noise = torch.zeros(2, 2, *SHAPE)
    with pytest.raises(ValueError, match=r"m >= 2.*m = 1"):
        smoothadv_pgd_stein(model, x, y, eps=0.5, steps=2, noise=torch.zeros(2, 1, *SHAPE))
    with pytest.raises(ValueError, match=r"gamma.*1\.5"):
        smoothadv_ddn(model, x, y, eps=0.5, steps=2, noise=noise, gamma=1.5)
    with pytest.raises(ValueError, match=r"levels.*1"):
        smoothadv_ddn(model, x, y, eps=0.5, steps=2, noise=noise, levels=1)
    with pytest.raises(ValueError, match=r"init_norm.*-1"):
        smoothadv_ddn(model, x, y, eps=0.5, steps=2, noise=noise, init_norm=-1.0)
    with pytest.raises(ValueError, match=r"alpha.*-1"):
        smoothmix_pgd(model, x, y, alpha=-1.0, steps=2, noise=noise)
    with pytest.raises(ValueError, match=r"steps.*0"):
        smoothmix_pgd(model, x, y, alpha=1.0, steps=0, noise=noise)
    with pytest.raises(ValueError, match=r"mix_step.*-1"):
        smoothmix_pgd(model, x, y, alpha=1.0, steps=2, noise=noise, mix_step=-1)
    with pytest.raises(ValueError, match=r"maxnorm.*-0\.5"):
        smoothmix_pgd(model, x, y, alpha=1.0, steps=2, noise=noise, maxnorm=-0.5)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        smoothadv_pgd(model, x + 1, y, eps=0.5, steps=2, noise=noise)
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \[2\]"):
        smoothadv_pgd(model, x, torch.tensor([0, 1, 2]), eps=0.5, steps=2, noise=noise)


def test_ddn_norm_update_is_evaluated_in_float32_as_the_reference() -> None:
    from rsmooth.attacks import _ddn_norm_factor

    adv = torch.tensor([True, False])
    for gamma in (0.05, 0.058, 1 - (3 / 510 / 0.5) ** (1 / 20)):
        reference = 1 - (2 * adv.float() - 1) * gamma
        assert torch.equal(_ddn_norm_factor(adv, gamma, torch.float32), reference)
    # The old evaluation (1 -/+ gamma rounded once from float64) differs at gamma = 0.058: the test can fail.
    assert not torch.equal(torch.where(adv, 1 - 0.058, 1 + 0.058), 1 - (2 * adv.float() - 1) * 0.058)
