#!/usr/bin/env python
"""Samples saved by sequential certification, replayed on the released Cohen et al. CIFAR-10 logs.

Each row of a log gives an estimate of the probability ``p`` that the base classifier votes for the true
label:

- correct rows: CERTIFY's lower bound was ``Phi(radius / sigma)``; ``p`` is the vote fraction ``nA / n`` whose
  one-sided Clopper-Pearson bound at ``n = 100,000`` and alpha = 0.001 is that value (1 for radii at or above
  the largest one reachable at alpha = 0.001, which some released files exceed: they used alpha = 0.01);
- wrong rows (another class certified with ``pA``): ``p = 1 - pA``, the most the true label can have;
- abstentions (bound below 1/2, so ``p < 0.505``): not recoverable from the log. The main figures assume
  ``p`` uniform on ``[0.505 - w, 0.505]``, ``w`` chosen so that the density of ``p`` continues the density of
  the correct rows on ``[0.505, 0.6]`` (so abstentions close to 1/2 are as common as barely certified images
  are); ``--abstain-p 0.5`` gives the worst case (every abstention exactly at 1/2).

Both procedures are then simulated on Bernoulli(``p``) votes with the same alpha: CERTIFY with N0 + N =
100,100 (the selection draws always pick the true class for correct rows, so only the count matters), and
the sequential test with the true label (no selection) and ``n_max = 100,000``. Printed per sigma and over
all: mean samples per image, the ratio to CERTIFY, and certified accuracy at every table radius for both.

Oracle limit. For each replayed image the fewest samples that any procedure valid at alpha could expect to
use to earn the level the sequential test earned there (an oracle that knows ``p``): certifying level ``j``
with probability at least ``1 - gamma`` is a test of ``p <= theta_j`` against ``p``, so by Wald's bound (the
data-processing inequality for the stopped likelihood ratio) ``E_p[N] >= kl(1 - gamma, alpha) / KL(p,
theta_j)`` (Bernoulli KL divergences), with ``gamma = 0.05``; an abstention (level -1) costs the oracle
nothing. rsmooth's share of the limit is the oracle's mean samples over rsmooth's.

    python benchmarks/sequential_savings.py                  # both tests, 20 replays of every log
    python benchmarks/sequential_savings.py --abstain-p 0.5  # worst case for abstentions
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import brentq
from scipy.stats import beta, norm

from rsmooth.analysis import read_certify_log
from rsmooth.sequential import TESTS, SequentialTest, simulate

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "cohen2019" / "certify"
LOGS = {s: f"cifar10/resnet110/noise_{s:.2f}/test/sigma_{s:.2f}" for s in (0.12, 0.25, 0.5, 1.0)}
RADII = np.round(np.arange(0, 2.26, 0.25), 2)
N0, N, N_MAX, ALPHA = 100, 100_000, 100_000, 0.001


def vote_fraction(lower: float, n: int = N, alpha: float = ALPHA) -> float:
    """The ``nA / n`` whose one-sided Clopper-Pearson lower bound is ``lower`` (1 beyond the reachable top)."""
    if lower >= alpha ** (1 / n):
        return 1.0
    return brentq(lambda k: beta.ppf(alpha, k, n - k + 1) - lower, 1.0, n - 1e-9) / n


def vote_probabilities(path: Path, sigma: float, abstain_p: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``p`` (true label) per row and whether CERTIFY's logged prediction was correct."""
    df = read_certify_log(path)
    p_a = np.array([vote_fraction(norm.cdf(r / sigma)) for r in df["radius"]])
    correct = df["correct"].to_numpy() == 1
    abstain = df["predict"].to_numpy() == -1
    p = np.where(correct, p_a, 1.0 - p_a)
    top = vote_fraction(0.5)
    if abstain_p is not None:
        p[abstain] = abstain_p
    else:
        density = np.sum(correct & (p_a >= top) & (p_a < 0.6)) / (0.6 - top)
        width = min(top, abstain.sum() / max(density, 1e-9))
        p[abstain] = top - width * (np.arange(abstain.sum()) + 0.5) / max(abstain.sum(), 1)
    return p, correct


def certify_radii(p: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Simulated CERTIFY radius of the true label (-inf for an abstention or a wrong class)."""
    counts = rng.binomial(N, p)
    lower = np.where(counts > 0, beta.ppf(ALPHA, np.maximum(counts, 1), N - counts + 1), 0.0)
    return np.where(lower >= 0.5, sigma * norm.ppf(lower), -np.inf)


def bernoulli_kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(a) || Bernoulli(b)), 0 log 0 = 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(a > 0, a * np.log(a / b), 0.0)
        second = np.where(a < 1, (1 - a) * np.log((1 - a) / (1 - b)), 0.0)
    return first + second


def oracle_samples(p: np.ndarray, level: np.ndarray, test: SequentialTest, gamma: float = 0.05) -> np.ndarray:
    """Wald's lower bound on the expected samples of any alpha-valid procedure that certifies ``level``
    (with probability at least ``1 - gamma``) when the vote probability is ``p``; 0 for an abstention."""
    theta = test.thresholds[np.maximum(level, 0)]
    need = bernoulli_kl(np.array(1 - gamma), np.array(ALPHA)) / bernoulli_kl(p, theta)
    return np.where(level >= 0, np.minimum(need, N_MAX), 0.0)


def accuracy(radius: np.ndarray) -> np.ndarray:
    return (radius[None, :] >= RADII[:, None] - 1e-12).mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", nargs="+", default=list(TESTS), choices=TESTS)
    parser.add_argument("--replays", type=int, default=20, help="simulations of every log")
    parser.add_argument(
        "--abstain-p", type=float, default=None, help="p of every abstention (default: see top)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    header = "  ".join(f"{r:>5.2f}" for r in RADII)
    totals: dict[str, list[float]] = {"cohen": [], **{t: [] for t in args.tests}}
    acc_all: dict[str, list[np.ndarray]] = {k: [] for k in totals}
    oracles: dict[str, list[float]] = {}
    gained: dict[str, list[float]] = {}
    for sigma, rel in LOGS.items():
        p, _ = vote_probabilities(FIXTURES / rel, sigma, args.abstain_p)
        p = np.tile(p, args.replays)
        cohen = certify_radii(p, sigma, rng)
        rows = {"cohen": (np.full(len(p), N0 + N), accuracy(cohen))}
        notes = []
        for name in args.tests:
            test = SequentialTest.for_radii(RADII, sigma, ALPHA, N_MAX, name)
            state = rng.bit_generator.state
            level, samples, _ = simulate(test, p, rng)
            radius = np.where(level >= 0, test.radii[np.maximum(level, 0)], -np.inf)
            rows[name] = (samples, accuracy(radius))
            rng.bit_generator.state = state  # the same votes, reporting the level at the stopping look
            old_level, _, _ = simulate(test, p, rng, keep_best=False)
            oracle = oracle_samples(p, level, test)
            oracles.setdefault(name, []).append(oracle.sum())
            # Net images raised (raised minus lowered): once one stream stops at another look than before, the
            # votes drawn for the rest differ, so per-image pairs are noisy; the net count is not biased.
            gained.setdefault(name, []).append(float((level > old_level).sum() - (level < old_level).sum()))
            notes.append(
                f"{name}: oracle limit {oracle.mean():.0f} samples ({(N0 + N) / oracle.mean():.1f}x), rsmooth at"
                f" {oracle.mean() / samples.mean():.1%} of it; keeping the highest level: net"
                f" {((level > old_level).mean() - (level < old_level).mean()):+.3%} of images raised"
            )
        print(f"\nsigma = {sigma:.2f} ({len(p) // args.replays} images x {args.replays} replays)")
        print(f"{'procedure':<10} {'samples':>9} {'ratio':>6}   certified accuracy (%) at r = {header}")
        for name, (samples, acc) in rows.items():
            ratio = (N0 + N) / samples.mean()
            print(
                f"{name:<10} {samples.mean():>9.0f} {ratio:>6.1f}   {'':>31}"
                + "  ".join(f"{a * 100:5.1f}" for a in acc)
            )
            totals[name].append(samples.sum())
            acc_all[name].append(acc * len(p))
        for name in args.tests:
            gap = (rows[name][1] - rows["cohen"][1]) * 100
            print(
                f"{'':<10} {'':>9} {'':>6}   {name + ' - cohen (pp)':>31}"
                + "  ".join(f"{g:5.1f}" for g in gap)
            )
        for note in notes:
            print("  " + note)
    images = len(LOGS) * len(p)
    print(f"\noverall ({len(LOGS)} sigmas)")
    for name in totals:
        mean = sum(totals[name]) / images
        acc = sum(acc_all[name]) / images
        print(
            f"{name:<10} {mean:>9.0f} {(N0 + N) / mean:>6.1f}   {'':>31}"
            + "  ".join(f"{a * 100:5.1f}" for a in acc)
        )
    for name in oracles:
        oracle = sum(oracles[name]) / images
        print(
            f"{name}: oracle limit {oracle:.0f} samples ({(N0 + N) / oracle:.1f}x fewer than CERTIFY);"
            f" rsmooth at {oracle / (sum(totals[name]) / images):.1%} of it; keeping the highest level"
            f" raised a net {sum(gained[name]) / images:+.3%} of images"
        )


if __name__ == "__main__":
    main()
