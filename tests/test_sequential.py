"""Sequential certification: exact type-I error, the stopping rules one by one, and the batched sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom, norm

from rsmooth.analysis.metrics import abstention_rate
from rsmooth.logformat import NOT_LABEL
from rsmooth.sequential import (
    CONTINUE,
    STOP_BUDGET,
    STOP_RULED_OUT,
    STOP_TOP,
    STOP_UNREACHABLE,
    TESTS,
    SequentialTest,
    check_radii,
    exact_outcomes,
    look_schedule,
    sequential_test,
    simulate,
)
from rsmooth.smoothing import Smooth

RADII = [0.0, 0.25, 0.5, 0.75, 1.0]


class HalfSpace(torch.nn.Module):
    """Class 1 where the first pixel is positive: under N(0, sigma^2) noise, P(class 1) = Phi(x0 / sigma),
    so the smoothed classifier's true radius at x is exactly |x0|."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1)[:, 0]
        return torch.stack([-z, z], dim=1)


def half_space_images(offsets) -> torch.Tensor:
    xs = torch.zeros(len(offsets), 1, 2, 2)
    xs[:, 0, 0, 0] = torch.as_tensor(offsets, dtype=torch.float32)
    return xs


@pytest.mark.parametrize("method", TESTS)
def test_false_certificate_probability_is_at_most_alpha_just_below_every_threshold(method):
    alpha = 0.05  # large, so that a wrong level or a missing union-bound correction would show
    test = SequentialTest.for_radii(RADII, 0.5, alpha, 3000, method, beta=0.2)
    for level, threshold in enumerate(test.thresholds):
        outcome, _ = exact_outcomes(test, float(threshold) * (1 - 1e-9))
        assert outcome.sum() == pytest.approx(1.0, abs=1e-9)
        false = outcome[level + 1 :].sum()
        assert false <= alpha, (method, level, false)
    # Not vacuous: a fixed-n test at alpha errs with probability close to alpha at the threshold.
    assert false > alpha / 100


def test_uncorrected_repeated_looks_would_break_alpha():
    """The check above could fail: Clopper-Pearson at alpha at every look (no union bound) exceeds alpha."""
    alpha = 0.05
    k = len(look_schedule(3000, 100, 1.3))
    naive = SequentialTest.for_radii(RADII, 0.5, min(alpha * k, 0.49), 3000, "union", beta=0.2)
    outcome, _ = exact_outcomes(naive, 0.5 * (1 - 1e-9))
    assert outcome[1:].sum() > alpha


@pytest.mark.parametrize("method", TESTS)
def test_simulation_matches_the_exact_law(method):
    test = SequentialTest.for_radii(RADII, 0.5, 0.01, 2000, method)
    p = 0.8
    outcome, expected = exact_outcomes(test, p)
    level, samples, _ = simulate(test, np.full(8000, p), np.random.default_rng(0))
    observed = np.bincount(level + 1, minlength=len(outcome)) / len(level)
    assert np.abs(observed - outcome).max() < 0.03
    assert samples.mean() == pytest.approx(expected, rel=0.03)


def test_stop_top_when_the_top_reachable_level_is_certified():
    test = sequential_test(RADII, 0.5, 0.001, 20_000, "union")
    assert test.top_level == len(RADII) - 1
    t = int(test.looks[-5])
    level, stop = test.decide(t, len(test.looks) - 5)
    assert (int(level), int(stop)) == (len(RADII) - 1, STOP_TOP)
    # With sigma = 0.12 radius 0.5 needs p > Phi(4.2): not reachable in 20,000 draws, so 0.25 is the top.
    small = sequential_test(RADII, 0.12, 0.001, 20_000, "union")
    assert small.top_level == 1
    k = int(np.searchsorted(small.looks, 10_000))
    level, stop = small.decide(int(small.looks[k]), k)
    assert (int(level), int(stop)) == (1, STOP_TOP)


def test_stop_ruled_out_when_the_upper_bound_is_below_the_next_threshold():
    test = sequential_test(RADII, 0.5, 0.001, 20_000, "union")
    k = int(np.searchsorted(test.looks, 5000))
    t = int(test.looks[k])
    # p_hat = 0.75: certified at 0.25 (Phi(0.5) = 0.69), and 0.5 (Phi(1) = 0.84) is clearly ruled out.
    level, stop = test.decide(int(0.75 * t), k)
    assert (int(level), int(stop)) == (1, STOP_RULED_OUT)
    # Close to the next threshold the answer is not settled yet.
    level, stop = test.decide(int(0.835 * t), k)
    assert (int(level), int(stop)) == (1, CONTINUE)


def test_stop_unreachable_when_even_all_remaining_votes_could_not_certify_the_next_level():
    # A wide futility bound (tiny beta) cannot rule out, but the budget is nearly spent.
    test = SequentialTest.for_radii(
        RADII, 0.5, 0.001, 1000, "union", first_look=100, look_ratio=1.3, beta=1e-12
    )
    k = len(test.looks) - 2
    t = int(test.looks[k])
    remaining = 1000 - t
    successes = int(0.6 * t)  # level 0 certified; level 1 needs p > Phi(0.5) = 0.69
    assert successes + remaining < 0.69 * 1000
    level, stop = test.decide(successes, k)
    assert (int(level), int(stop)) == (0, STOP_UNREACHABLE)
    # With more votes still to come the next level stays reachable.
    level, stop = test.decide(int(0.6 * test.looks[0]), 0)
    assert int(stop) == CONTINUE


def test_stop_budget_at_n_max():
    test = SequentialTest.for_radii(RADII, 0.5, 0.001, 1000, "union", beta=1e-12)
    level, stop = test.decide(int(0.62 * 1000), len(test.looks) - 1)
    assert int(stop) == STOP_BUDGET and int(level) <= 0


def test_look_schedule_is_increasing_and_ends_at_n_max():
    looks = look_schedule(1000, 100, 1.3)
    assert looks[0] == 100 and looks[-1] == 1000 and np.all(np.diff(looks) > 0)
    assert look_schedule(50, 100, 1.3).tolist() == [50]


@pytest.mark.parametrize(
    ("radii", "alpha", "message"),
    [
        ([0.5, 0.25], 0.001, "strictly increasing"),
        ([0.25, 0.25], 0.001, "strictly increasing"),
        ([-0.25, 0.5], 0.001, ">= 0"),
        ([], 0.001, "non-empty"),
        ([0.25], 0.5, "alpha"),
        ([0.25], 0.0, "alpha"),
        ([0.25], -0.1, "alpha"),
    ],
)
def test_bad_arguments_are_rejected(radii, alpha, message):
    with pytest.raises(ValueError, match=message):
        SequentialTest.for_radii(radii, 0.5, alpha, 1000)


def test_bad_test_name_and_budget_are_rejected():
    with pytest.raises(ValueError, match="unknown sequential test 'bayes'"):
        SequentialTest.for_radii(RADII, 0.5, 0.001, 1000, "bayes")
    with pytest.raises(ValueError, match="n_max"):
        SequentialTest.for_radii(RADII, 0.5, 0.001, 0)


def test_zero_radius_is_added_to_the_grid():
    assert check_radii([0.5, 1.0]).tolist() == [0.0, 0.5, 1.0]
    assert SequentialTest.for_radii([0.5], 0.5, 0.001, 100).thresholds[0] == 0.5


# -- the sampler on the half-space classifier ------------------------------------------------------------


def test_half_space_certificates_are_sound_and_far_points_stop_early():
    sigma, alpha, n_max = 0.5, 0.01, 20_000
    smooth = Smooth(HalfSpace(), 2, sigma)
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-0.3, 1.3, 120)
    results = smooth.certify_sequential_batch(
        half_space_images(offsets), RADII, alpha, n_max, 4096, labels=[1] * len(offsets), seeds=range(120)
    )
    false = 0
    for offset, (cls, radius, samples) in zip(offsets, results, strict=True):
        assert samples <= n_max
        if cls >= 0:
            assert cls == 1 and radius in RADII
            false += radius >= offset  # the true radius is |offset| (offset > 0 for class 1)
    # P(at least `false` errors) under the bound alpha per point must not be tiny.
    assert binom.sf(false - 1, len(offsets), alpha) > 1e-3
    # Points far from the boundary and from every grid radius settle fast.
    far = smooth.certify_sequential_batch(
        half_space_images([2.0, -1.0]), RADII, alpha, n_max, 4096, labels=[1, 1], seeds=[1, 2]
    )
    assert far[0][:2] == (1, 1.0) and far[0][2] < n_max / 10
    assert far[1] == (NOT_LABEL, 0.0, far[1][2]) and far[1][2] <= 200  # ruled out: wrong, not abstained


def test_half_space_without_label_selects_the_class_and_counts_the_selection():
    smooth = Smooth(HalfSpace(), 2, 0.5)
    cls, radius, samples = smooth.certify_sequential(
        half_space_images([-0.6])[0], RADII, 0.01, 20_000, 500, seed=4
    )
    assert (cls, radius) == (0, 0.5)  # class 0 at distance 0.6: robust at 0.5, not at 0.75
    assert samples > 100


def test_results_do_not_depend_on_batch_size_or_other_images():
    smooth = Smooth(HalfSpace(), 2, 0.5)
    offsets = [0.3, 1.7, -0.2, 0.52, 0.9]
    xs = half_space_images(offsets)
    seeds = [11, 12, 13, 14, 15]
    reference = smooth.certify_sequential_batch(xs, RADII, 0.001, 5000, 1000, labels=[1] * 5, seeds=seeds)
    for batch in (1, 37, 256, 10_000):
        assert (
            smooth.certify_sequential_batch(xs, RADII, 0.001, 5000, batch, labels=[1] * 5, seeds=seeds)
            == reference
        )
    alone = [
        smooth.certify_sequential(xs[i], RADII, 0.001, 5000, 300, label=1, seed=seeds[i]) for i in range(5)
    ]
    assert alone == reference
    free = smooth.certify_sequential_batch(xs, RADII, 0.001, 5000, 999, seeds=seeds)
    assert (
        smooth.certify_sequential_batch(xs.flip(0), RADII, 0.001, 5000, 64, seeds=seeds[::-1]) == free[::-1]
    )


def test_batch_stays_full_while_images_wait():
    calls = []

    class Recording(HalfSpace):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    smooth = Smooth(Recording(), 2, 0.5)
    offsets = np.linspace(0.05, 1.5, 12)
    smooth.certify_sequential_batch(
        half_space_images(offsets), RADII, 0.001, 3000, 250, labels=[1] * 12, seeds=range(12)
    )
    # Every forward pass but the last is full.
    assert all(size == 250 for size in calls[:-1]) and 0 < calls[-1] <= 250


def test_sequential_sampler_rejects_bad_arguments():
    smooth = Smooth(HalfSpace(), 2, 0.5)
    x = half_space_images([1.0])[0]
    with pytest.raises(ValueError, match="strictly increasing"):
        smooth.certify_sequential(x, [0.5, 0.25], 0.001, 100, 10)
    with pytest.raises(ValueError, match="alpha"):
        smooth.certify_sequential(x, RADII, 0.6, 100, 10)
    with pytest.raises(ValueError, match="labels must lie in"):
        smooth.certify_sequential(x, RADII, 0.001, 100, 10, label=2)
    with pytest.raises(ValueError, match="batch_size"):
        smooth.certify_sequential(x, RADII, 0.001, 100, 0)


def test_threshold_of_a_radius_is_the_gaussian_cdf():
    test = SequentialTest.for_radii([0.0, 0.25], 0.5, 0.001, 100)
    assert test.thresholds[1] == pytest.approx(norm.cdf(0.5))


class _Crashing:
    """A data set that fails after ``limit`` reads, like a job killed mid-run."""

    def __init__(self, items, limit):
        self.items, self.limit, self.reads = items, limit, 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.limit:
            raise KeyboardInterrupt("killed")
        return self.items[i]


def test_dataset_log_resumes_after_a_crash_and_matches_an_uninterrupted_run(tmp_path):
    from rsmooth.analysis import read_certify_log
    from rsmooth.certification import certify_dataset_sequential

    smooth = Smooth(HalfSpace(), 2, 0.5)
    xs = half_space_images(np.linspace(-0.4, 1.6, 7))
    items = [(xs[i], int(i % 3 != 0)) for i in range(7)]
    kwargs = dict(radii=RADII, alpha=0.01, n_max=5000, batch_size=300, seed=3, images_per_call=2)
    whole = certify_dataset_sequential(smooth, items, range(7), tmp_path / "whole.tsv", **kwargs)
    out = tmp_path / "resumed.tsv"
    with pytest.raises(KeyboardInterrupt):
        certify_dataset_sequential(smooth, _Crashing(items, 4), range(7), out, **kwargs)
    assert not out.exists() and (tmp_path / "resumed.tsv.partial").exists()
    certify_dataset_sequential(smooth, items, range(7), out, **{**kwargs, "batch_size": 64})
    a, b = read_certify_log(whole), read_certify_log(out)
    columns = ["idx", "label", "predict", "radius", "correct", "samples"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    # Label 0 at a positive offset has p < 1/2: never certified, and logged as wrong, not as abstained.
    assert a.set_index("idx").loc[[3, 6], "predict"].tolist() == [NOT_LABEL, NOT_LABEL]
    assert a.loc[a["predict"] == NOT_LABEL, "correct"].eq(0).all()
    assert abstention_rate(a) == (a["predict"] == -1).mean() < (a["correct"] == 0).mean()
    with pytest.raises(KeyboardInterrupt):
        certify_dataset_sequential(smooth, _Crashing(items, 2), range(7), tmp_path / "x.tsv", **kwargs)
    with pytest.raises(ValueError, match="other settings"):
        certify_dataset_sequential(smooth, items, range(7), tmp_path / "x.tsv", **{**kwargs, "alpha": 0.05})


# -- issue 18: no false certificate through any door, every certificate earned kept ------------------------


@pytest.mark.parametrize(("method", "alpha"), [(m, a) for m in TESTS for a in (0.001, 0.05)])
def test_exact_false_certificate_probability_at_each_threshold_is_at_most_alpha_at_default_settings(
    method, alpha
):
    # The default schedule, futility level and budget of the scripts (n_max = --N = 100_000); the dynamic
    # program of crossing_probability over the vote count, at p on each threshold.
    test = sequential_test(RADII, 0.25, alpha, 100_000, method)
    worst = max(test.false_certificate_bound(level) for level in range(test.top_level + 1))
    assert worst <= alpha, (method, alpha, worst)
    assert worst > alpha / 20  # not vacuous


def test_the_boundary_bound_agrees_with_the_exact_law_of_the_whole_procedure():
    for method in TESTS:
        test = SequentialTest.for_radii(RADII, 0.5, 0.05, 3000, method, beta=0.2)
        for level, threshold in enumerate(test.thresholds[:3]):
            outcome, _ = exact_outcomes(test, float(threshold))
            # Stopping and keeping the highest level only remove paths from the boundary's crossings.
            assert outcome[level + 1 :].sum() <= test.false_certificate_bound(level) + 1e-9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(sigma=1.0), "sigma 1.0"),
        (dict(alpha=0.01), "alpha 0.01"),
        (dict(n_max=4000), "n_max 4000"),
        (dict(radii=[0.0, 0.5]), "radii"),
    ],
)
def test_a_test_object_built_for_other_settings_is_refused(change, message):
    smooth = Smooth(HalfSpace(), 2, 0.25)
    settings = dict(radii=RADII, sigma=0.25, alpha=0.001, n_max=2000)
    test = SequentialTest.for_radii(**{**settings, **change})
    with pytest.raises(ValueError, match=message):
        smooth.certify_sequential_batch(
            half_space_images([0.3]), RADII, 0.001, 2000, 500, labels=[1], seeds=[0], test=test
        )
    # The matching one runs: a point at distance 0.3 is never certified at radius 1.0 with sigma 0.25.
    good = SequentialTest.for_radii(**settings)
    [(_, radius, _)] = smooth.certify_sequential_batch(
        half_space_images([0.3]), RADII, 0.001, 2000, 500, labels=[1], seeds=[0], test=good
    )
    assert radius < 0.3


def test_a_test_object_with_thresholds_of_another_sigma_cannot_be_built():
    test = SequentialTest.for_radii(RADII, 1.0, 0.001, 2000, "mixture")
    with pytest.raises(ValueError, match="not Phi"):
        SequentialTest(test.radii, 0.25, test.thresholds, 0.001, 2000, "mixture", test.looks, 0.05)
    with pytest.raises(ValueError, match="last look"):
        SequentialTest(test.radii, 1.0, test.thresholds, 0.001, 3000, "mixture", test.looks, 0.05)


def test_the_highest_level_certified_at_any_look_is_kept():
    test = sequential_test(RADII, 0.5, 0.01, 20_000, "union")
    k = int(np.searchsorted(test.looks, 2000))
    a = int(test.critical[1, k])  # just enough for level 1 at look k
    assert int(test.certified_level(a, k)) == 1
    # Far fewer votes later: on their own level 0 at most, but level 1 was earned at look k.
    later = len(test.looks) - 1
    assert int(test.certified_level(a, later)) < 1
    level, _ = test.decide(a, later, best=1)
    assert int(level) == 1


def test_sequential_image_seeds_depend_on_the_settings_that_change_the_answer():
    from rsmooth.sequential import sequential_image_seed

    base = sequential_test(RADII, 0.5, 0.001, 2000, "union")
    seeds = {
        sequential_image_seed(0, 7, t)
        for t in (
            base,
            sequential_test(RADII, 0.5, 0.001, 4000, "union"),
            sequential_test(RADII, 0.5, 0.01, 2000, "union"),
            sequential_test(RADII, 0.5, 0.001, 2000, "mixture"),
        )
    }
    assert len(seeds) == 4
    assert (
        sequential_image_seed(0, 7, base)
        == sequential_image_seed(0, 7, base)
        != sequential_image_seed(1, 7, base)
    )


def test_old_label_mode_logs_still_read_and_new_ones_count_wrong_apart_from_abstained(tmp_path):
    from rsmooth.analysis import read_certify_log
    from rsmooth.logformat import SEQUENTIAL_HEADER, format_sequential_row

    old = tmp_path / "old.tsv"  # before issue 18: -1 for both a wrong label and an undecided one
    rows = [(0, 1, 1, 0.5, 0.1, 900), (1, 1, -1, 0.0, 0.1, 300), (2, 0, -1, 0.0, 0.1, 100_000)]
    old.write_text("\t".join(SEQUENTIAL_HEADER) + "\n" + "".join(format_sequential_row(*r) for r in rows))
    df = read_certify_log(old)
    assert df["predict"].tolist() == [1, -1, -1] and df["correct"].tolist() == [1, 0, 0]
    assert abstention_rate(df) == pytest.approx(2 / 3)
    new = tmp_path / "new.tsv"
    rows[1] = (1, 1, NOT_LABEL, 0.0, 0.1, 300)
    new.write_text("\t".join(SEQUENTIAL_HEADER) + "\n" + "".join(format_sequential_row(*r) for r in rows))
    df = read_certify_log(new)
    assert df["predict"].tolist() == [1, NOT_LABEL, -1] and df["correct"].tolist() == [1, 0, 0]
    assert abstention_rate(df) == pytest.approx(1 / 3)
