"""CERTIFY / PREDICT statistics against the reference values and against an exactly solvable classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import beta, binom, norm

from rsmooth.smoothing import (
    ABSTAIN,
    Smooth,
    certified_radius,
    certify_from_counts,
    lower_confidence_bound,
    predict_from_counts,
)

# (N, nA, pA lower bound, radius / sigma) at alpha = 0.001: the reference notes' table, section 1.3.
REFERENCE_TABLE = [
    (100_000, 100_000, 0.99993092, 3.811457),
    (100_000, 99_000, 0.98898934, 2.290000),
    (100_000, 90_000, 0.89703650, 1.264845),
    (100_000, 60_000, 0.59520105, 0.240945),
    (100_000, 51_000, 0.50510935, 0.012808),
    (10_000, 10_000, 0.99930946, 3.198578),
]


@pytest.mark.parametrize(("n", "n_a", "p_lower", "radius_over_sigma"), REFERENCE_TABLE)
def test_clopper_pearson_and_radius_match_reference_table(n, n_a, p_lower, radius_over_sigma):
    bound = lower_confidence_bound(n_a, n, 0.001)
    assert bound == pytest.approx(p_lower, abs=5e-9)
    assert bound == pytest.approx(beta.ppf(0.001, n_a, n - n_a + 1), rel=1e-9)
    for sigma in (0.12, 0.25, 0.5, 1.0):
        cls, radius = certify_from_counts(7, n_a, n, 0.001, sigma)
        assert cls == 7
        assert radius == pytest.approx(sigma * radius_over_sigma, abs=2e-6 * sigma)


def test_half_votes_abstain():
    assert lower_confidence_bound(50_000, 100_000, 0.001) == pytest.approx(0.49510904, abs=5e-9)
    assert certify_from_counts(3, 50_000, 100_000, 0.001, 0.25) == (ABSTAIN, 0.0)


def test_edge_counts_give_no_nan():
    assert lower_confidence_bound(0, 100, 0.001) == 0.0
    assert certify_from_counts(0, 0, 100, 0.001, 0.5) == (ABSTAIN, 0.0)
    top = lower_confidence_bound(100, 100, 0.001)
    assert top == pytest.approx(0.001 ** (1 / 100))
    cls, radius = certify_from_counts(4, 100, 100, 0.001, 0.5)
    assert cls == 4 and math.isfinite(radius) and radius == pytest.approx(0.5 * norm.ppf(top))
    assert certified_radius(0.5, 1.0) == 0.0


def test_predict_needs_eleven_unanimous_votes_at_alpha_0001():
    assert predict_from_counts([10, 0, 0], 0.001) == ABSTAIN
    assert predict_from_counts([0, 11, 0], 0.001) == 1
    # Two-sided test on the top two counts only: 60 vs 40 is not significant, 80 vs 20 is.
    assert predict_from_counts([0, 40, 60], 0.001) == ABSTAIN
    assert predict_from_counts([20, 80, 0], 0.001) == 1
    assert predict_from_counts([5, 5, 5], 0.001) == ABSTAIN


@pytest.mark.parametrize(
    ("n_a", "n", "alpha"), [(-1, 10, 0.001), (11, 10, 0.001), (5, 10, 0.0), (5, 10, 0.7)]
)
def test_invalid_statistics_arguments_are_rejected(n_a, n, alpha):
    with pytest.raises(ValueError):
        lower_confidence_bound(n_a, n, alpha)


class HalfSpace(torch.nn.Module):
    """Two-class linear classifier: class 1 iff w.x + b > 0. Its smoothed version has
    P(class 1) = Phi((w.x + b) / (sigma ||w||)) and certified radius |w.x + b| / ||w|| (the distance to the
    hyperplane), so every CERTIFY output can be checked against the truth."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([-margin, margin], dim=1)


def test_certificates_on_half_space_are_sound_and_tight():
    torch.manual_seed(0)
    sigma, alpha, n0, n = 0.5, 0.05, 50, 2000
    w = torch.randn(1, 4, 4)
    model = HalfSpace(w, b=-float(w.sum()) * 0.5)  # hyperplane through the centre of the unit cube
    smooth = Smooth(model, num_classes=2, sigma=sigma)
    points = torch.rand(300, 1, 4, 4)
    w_norm = float(w.norm())
    margins = (points.flatten(1) @ w.flatten() + model.b).double().numpy()
    true_class = (margins > 0).astype(int)
    true_radius = np.abs(margins) / w_norm
    p_a = norm.cdf(true_radius / sigma)

    results = smooth.certify_batch(points, n0, n, alpha, batch_size=4096, seeds=list(range(len(points))))
    classes = np.array([c for c, _ in results])
    radii = np.array([r for _, r in results])
    certified = classes != ABSTAIN

    # Soundness: a certificate that names the wrong class or exceeds the true radius happens with
    # probability <= alpha per point; allow the binomial tail at one in a million.
    failures = int(np.sum(certified & ((classes != true_class) | (radii > true_radius + 1e-9))))
    assert failures <= binom.ppf(1 - 1e-6, len(points), alpha)

    # Tightness: nA ~ Binomial(n, pA), so each radius lies between the radii of nA's extreme quantiles.
    lo_count = binom.ppf(1e-5, n, p_a).astype(int)
    hi_count = binom.ppf(1 - 1e-5, n, p_a).astype(int)
    for i in np.flatnonzero(certified & (classes == true_class)):
        low = certify_from_counts(1, int(lo_count[i]), n, alpha, sigma)[1]
        high = certify_from_counts(1, int(hi_count[i]), n, alpha, sigma)[1]
        assert low - 1e-9 <= radii[i] <= high + 1e-9
    # Points far from the hyperplane (pA close to 1) are certified; most of those right on it abstain.
    assert certified[p_a > 0.99].all()
    assert certified[np.abs(p_a - 0.5) < 0.01].mean() < 0.5


def test_predict_on_half_space_is_right_when_it_answers():
    torch.manual_seed(1)
    w = torch.randn(1, 4, 4)
    model = HalfSpace(w, b=-float(w.sum()) * 0.5)
    smooth = Smooth(model, num_classes=2, sigma=0.25)
    points = torch.rand(200, 1, 4, 4)
    margins = points.flatten(1) @ w.flatten() + model.b
    predictions = np.array(smooth.predict_batch(points, 1000, 0.001, 4096, seeds=list(range(200))))
    answered = predictions != ABSTAIN
    assert answered.mean() > 0.5
    assert (predictions[answered] == (margins[answered] > 0).long().numpy()).all()


class Recorder(torch.nn.Module):
    """Records what the base classifier sees and whether autograd is on; votes by the first pixel's sign."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.5)
        self.inputs: list[torch.Tensor] = []
        self.grad_enabled: list[bool] = []
        self.training_flags: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        self.training_flags.append(self.training)
        first = x.flatten(1)[:, 0]
        return torch.stack([first, -first, torch.zeros_like(first)], dim=1)


def test_noise_is_unclamped_pixel_space_gaussian_in_eval_mode_without_autograd():
    model = Recorder().train()
    smooth = Smooth(model, num_classes=3, sigma=0.5)
    x = torch.full((3, 8, 8), 0.9)
    smooth.predict(x, n=1000, alpha=0.001, batch_size=300, seed=0)
    seen = torch.cat(model.inputs)
    assert [len(b) for b in model.inputs] == [300, 300, 300, 100]
    noise = seen - x
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)
    assert noise.std().item() == pytest.approx(0.5, rel=0.02)
    assert seen.max().item() > 1.5 and seen.min().item() < 0.0  # never clamped to [0, 1]
    assert not any(model.grad_enabled) and not any(model.training_flags)
    assert not model.training


def test_selection_and_estimation_draws_are_separate():
    model = Recorder()
    smooth = Smooth(model, num_classes=3, sigma=0.5)
    smooth.certify(torch.zeros(1, 2, 2), n0=100, n=1000, alpha=0.001, batch_size=400, seed=3)
    assert [len(b) for b in model.inputs] == [100, 400, 400, 200]
    selection, estimation = model.inputs[0], torch.cat(model.inputs[1:])
    assert not torch.isin(selection.flatten(), estimation.flatten()).any()


def test_seed_makes_certification_reproducible_and_batching_invisible():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    smooth = Smooth(net, num_classes=5, sigma=0.25, group_images=True)
    xs = torch.rand(6, 3, 2, 2)
    seeds = [11, 12, 13, 14, 15, 16]
    for n, batch in ((50, 400), (500, 128)):  # several images per forward pass, then chunked images
        together = smooth.certify_batch(xs, 20, n, 0.01, batch, seeds=seeds)
        alone = [smooth.certify(x, 20, n, 0.01, batch, seed=s) for x, s in zip(xs, seeds, strict=True)]
        assert together == alone
        counts = smooth.sample_counts(xs, n, batch)
        assert (counts.sum(axis=1) == n).all()
        ungrouped = Smooth(net, num_classes=5, sigma=0.25, group_images=False)
        assert ungrouped.certify_batch(xs, 20, n, 0.01, batch, seeds=seeds) == together
    other = smooth.certify_batch(xs, 20, 500, 0.01, 128, seeds=[s + 100 for s in seeds])
    assert other != smooth.certify_batch(xs, 20, 500, 0.01, 128, seeds=seeds)


def test_votes_are_counted_per_image():
    # A classifier that returns the (noise-free) class encoded in the image mean: counts must stay with their image.
    class MeanClass(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            means = x.flatten(1).mean(1)
            return -((means[:, None] - torch.arange(4.0)[None, :]) ** 2)

    smooth = Smooth(MeanClass(), num_classes=4, sigma=0.01, group_images=True)  # several images per pass
    xs = torch.stack([torch.full((1, 3, 3), float(c)) for c in (2, 0, 3, 1, 1)])
    counts = smooth.sample_counts(xs, 30, 100)
    assert (counts.argmax(axis=1) == [2, 0, 3, 1, 1]).all()
    assert (counts.max(axis=1) == 30).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1, "sigma": 0.5}, "num_classes"),
        ({"num_classes": 10, "sigma": -0.1}, "sigma"),
        ({"num_classes": 10, "sigma": float("nan")}, "sigma"),
    ],
)
def test_invalid_smooth_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Smooth(torch.nn.Identity(), **kwargs)


def test_invalid_sample_sizes_are_rejected():
    smooth = Smooth(torch.nn.Flatten(), num_classes=4, sigma=0.5)
    with pytest.raises(ValueError, match="n0"):
        smooth.certify(torch.zeros(1, 2, 2), 0, 100, 0.001, 10)
    with pytest.raises(ValueError, match="batch_size"):
        smooth.predict(torch.zeros(1, 2, 2), 100, 0.001, 0)
    with pytest.raises(ValueError, match="one image"):
        smooth.predict(torch.zeros(2, 1, 2, 2), 100, 0.001, 10)


@pytest.mark.parametrize("group_images", [False, True])
def test_noise_is_a_function_of_seed_image_and_draw_whatever_the_batch(group_images):
    # Draw j of image i is the same number at every batch size (blocks of NOISE_BLOCK), so `batch: auto`
    # reproduces `batch: 400` bit for bit.
    xs = torch.rand(3, 1, 2, 2)
    seeds = [5, 6, 7]

    def noise(batch: int) -> torch.Tensor:
        model = Recorder()
        Smooth(model, num_classes=3, sigma=0.5, group_images=group_images).sample_counts(
            xs, 450, batch, [torch.Generator().manual_seed(s) for s in seeds]
        )
        return torch.cat(model.inputs)

    reference = noise(400)
    for batch in (7, 200, 333, 1000, 4096):
        assert torch.equal(noise(batch), reference), batch


def test_certify_at_any_batch_gives_the_same_results():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    xs = torch.rand(4, 3, 2, 2)
    seeds = [21, 22, 23, 24]
    results = {
        (batch, group): Smooth(net, num_classes=5, sigma=0.5, group_images=group).certify_batch(
            xs, 100, 1000, 0.001, batch, seeds=seeds
        )
        for batch in (37, 400, 4096)
        for group in (False, True)
    }
    assert len({tuple(r) for r in results.values()}) == 1
