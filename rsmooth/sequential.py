"""Anytime-valid sequential certification at a fixed grid of radii: the statistics (torch-free).

The question the papers' tables ask of each image is "is the smoothed classifier correct and robust at radius
r?" for a fixed grid ``0 = r_0 < r_1 < ... < r_m``. With Gaussian noise of level sigma and ``p`` the
probability that the base classifier votes for the class, "robust at r_j" holds when ``p > Phi(r_j / sigma)``
(Cohen et al., Theorem 1 with ``pB = 1 - pA``); ``r_0 = 0`` gives the threshold 1/2 ("g predicts the class").
The votes arrive one by one (in chunks, in practice) and each image stops as soon as its answer is settled.

Guarantee. For each grid threshold, each test below has a certification boundary (votes needed at each
look of a fixed schedule) that the votes cross, at any look, with probability at most alpha when ``p`` is
at or below the threshold. An image is certified at level ``j`` when its votes are past the boundaries of
levels 0..j. The bound holds over all looks at once, so it holds at any stopping time, however the
stopping rule is chosen: the probability that the reported level is wrong is at most alpha. A second,
upper boundary (level ``beta``) is used only to stop early; its error can only lose a certificate.

Tests (both written here on scipy; no confidence-sequence library is fit to depend on):

- ``"mixture"``: the Krichevsky-Trofimov (Beta(1/2, 1/2)) mixture of Bernoulli likelihood ratios. For any
  ``p0``, ``M_t(p0) = B(A + 1/2, t - A + 1/2) / B(1/2, 1/2) / (p0^A (1 - p0)^(t - A))`` is a non-negative
  martingale with mean 1 under ``p = p0``; Ville's inequality gives ``P(exists t: M_t(p) >= 1/alpha) <=
  alpha``, so ``{p0: M_t(p0) < 1/alpha}`` is a confidence sequence. ``log M_t`` is convex in ``p0`` and at
  most 0 at ``A / t``, so the set is an interval around ``A / t``: a threshold below ``A / t`` with
  ``M_t >= 1/alpha`` lies below the interval. Valid at every sample, so any look schedule may be used.
- ``"union"``: exact binomial (Clopper-Pearson) tails at every look of the finite schedule (the last look
  is ``n_max``) with a union bound over the ``K`` looks, calibrated: for each threshold the per-look level
  is the largest one (at least Bonferroni's ``alpha / K``) whose exact probability of crossing at ``p =
  threshold``, computed by dynamic programming over the vote count, is at most alpha. Crossing is an
  increasing event in the votes, so its probability is at most alpha for every ``p <= threshold``, and a
  false certificate at any level implies crossing at the first threshold at or above ``p``.

Measured on the replayed Cohen et al. logs (``benchmarks/sequential_savings.py``, alpha = 0.001) the
calibrated union test needs 25% fewer samples than the mixture at the same alpha (10.6x against 8.0x fewer
than CERTIFY), so it is ``DEFAULT_TEST``; the mixture stays as the schedule-free alternative.

The upper bound (level ``beta``, default ``FUTILITY = 0.05``) only decides when to stop: its error can
only lose a certificate, never make a false one, so it need not be at alpha. How many: an image whose ``p``
lies above threshold ``j`` loses level ``j`` only if the upper bound wrongly excludes one of thresholds
``0..j``, so the provable bound is ``(j + 1) * beta`` (a union over the levels), not ``beta``; the audit of
issue 18 measured at most 0.0064 (exact dynamic program over ``p`` on the grid).

Highest level kept. The reported level is the highest level certified at *any* look so far, not the one at
the stopping look: the certification boundaries bound the probability of crossing at any look, so a level
certified at an earlier look is as valid as one certified at the last (a false certificate at level ``j``,
whenever earned, is a crossing of the boundary of the first threshold at or above ``p``).

What the guarantee depends on. ``sigma`` turns the radii into thresholds, and ``alpha``, ``n_max`` and the
look schedule fix the boundaries; a :class:`SequentialTest` stores all of them and checks on construction
that its thresholds (and the union test's boundaries) are the ones these settings give, and
:meth:`SequentialTest.check_matches` refuses a model or request with other settings. Run a given image
once: rerunning it (even with a larger ``n_max``, another test or alpha) and keeping the better answer is a
choice among several tests and breaks alpha (issue 18 measured 0.00134 false certificates at alpha 0.001);
:func:`sequential_image_seed` makes the noise depend on those settings, so that such reruns are at least not
silently correlated with one another.

Stopping rules, checked at each look in this order (``k`` is the level certified now, -1 for none; they look
at nothing but the votes):

1. ``STOP_TOP``: ``k`` is the top level reachable within ``n_max`` samples (or the last grid level);
2. ``STOP_RULED_OUT``: the upper bound rules out the next level (``U_t <= Phi(r_{k+1} / sigma)``);
3. ``STOP_UNREACHABLE``: the next level could not be certified at any remaining look even if every remaining
   sample voted for the class;
4. ``STOP_BUDGET``: ``t = n_max``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import betainc, betaln
from scipy.stats import norm

from rsmooth.validation import check_alpha, check_positive_int, check_sigma

TESTS = ("mixture", "union")
DEFAULT_TEST = "union"

CONTINUE, STOP_TOP, STOP_RULED_OUT, STOP_UNREACHABLE, STOP_BUDGET = 0, 1, 2, 3, 4
STOP_NAMES = {
    CONTINUE: "continue",
    STOP_TOP: "top",
    STOP_RULED_OUT: "ruled_out",
    STOP_UNREACHABLE: "unreachable",
    STOP_BUDGET: "budget",
}

# Look schedules: the first look, and the growth factor of the looks after it.
FIRST_LOOK = {"mixture": 32, "union": 100}
LOOK_RATIO = {"mixture": 1.1, "union": 1.15}
# Level of the upper (futility) bound: an error there can only lose a certificate, never make a false one.
FUTILITY = 0.05
_KT = 0.5  # the Beta(a, a) prior of the mixture: a = 1/2 is Krichevsky-Trofimov


def check_radii(radii: Sequence[float]) -> np.ndarray:
    """The grid as a float array, with 0.0 prepended when missing; radii must be finite, >= 0, increasing."""
    values = np.asarray(list(radii), dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"radii must be a non-empty list of numbers, got {list(radii)!r}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"radii must be finite and >= 0, got {values.tolist()}")
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"radii must be strictly increasing, got {values.tolist()}")
    return values if values[0] == 0.0 else np.concatenate([[0.0], values])


def look_schedule(n_max: int, first: int, ratio: float) -> np.ndarray:
    """Look times ``first, ceil(first * ratio), ...`` (strictly increasing), the last one ``n_max``."""
    looks = []
    t = float(min(first, n_max))
    while math.ceil(t) < n_max:
        if not looks or math.ceil(t) > looks[-1]:
            looks.append(math.ceil(t))
        t *= ratio
    looks.append(n_max)
    return np.asarray(looks, dtype=np.int64)


def mixture_log_evidence(successes: np.ndarray, t: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """``log M_t(p0)`` of the Beta(1/2, 1/2) mixture (broadcasting over the arguments)."""
    a = np.asarray(successes, dtype=np.float64)
    b = np.asarray(t, dtype=np.float64) - a
    p0 = np.asarray(p0, dtype=np.float64)
    return betaln(a + _KT, b + _KT) - betaln(_KT, _KT) - a * np.log(p0) - b * np.log1p(-p0)


def binomial_upper_tail(successes: np.ndarray, t: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """``P(X >= A)`` for ``X ~ Binomial(t, p0)`` (1 where ``A = 0``)."""
    a = np.asarray(successes, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    safe = np.maximum(a, 1.0)
    return np.where(a > 0, betainc(safe, t - safe + 1.0, p0), 1.0)


def binomial_lower_tail(successes: np.ndarray, t: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """``P(X <= A)`` for ``X ~ Binomial(t, p0)`` (1 where ``A = t``)."""
    a = np.asarray(successes, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    safe = np.minimum(a, t - 1.0)
    return np.where(a < t, betainc(t - safe, safe + 1.0, 1.0 - np.asarray(p0)), 1.0)


@dataclass(frozen=True)
class SequentialTest:
    """An anytime-valid test of ``p > threshold_j`` for every grid level ``j``, with its stopping rules.

    Build with :meth:`for_radii`. ``looks`` are the numbers of votes at which the test is evaluated (the
    last is ``n_max``); :meth:`decide` is vectorized over images.
    """

    radii: np.ndarray
    sigma: float
    thresholds: np.ndarray
    alpha: float
    n_max: int
    method: str
    looks: np.ndarray
    beta: float
    critical: np.ndarray | None = field(init=False)  # union: votes for the class to certify, [level, look]
    futile: np.ndarray | None = field(init=False)  # union: votes against it to rule it out, [level, look]
    top_level: int = field(init=False)

    def __post_init__(self) -> None:
        expected = thresholds_for(self.radii, self.sigma)
        if np.shape(self.thresholds) != expected.shape or not np.array_equal(self.thresholds, expected):
            raise ValueError(
                f"thresholds {np.asarray(self.thresholds).tolist()} are not Phi(radii / sigma) for radii "
                f"{np.asarray(self.radii).tolist()} and sigma {self.sigma!r}: build the test with for_radii"
            )
        if self.method not in TESTS:
            raise ValueError(f"unknown sequential test {self.method!r}; known: {', '.join(TESTS)}")
        looks = np.asarray(self.looks)
        if looks.ndim != 1 or len(looks) == 0 or np.any(np.diff(looks) <= 0) or looks[0] < 1:
            raise ValueError(f"looks must be strictly increasing positive integers, got {looks.tolist()}")
        if int(looks[-1]) != self.n_max:
            raise ValueError(f"the last look must be n_max = {self.n_max}, got {int(looks[-1])}")
        check_alpha(self.alpha)
        check_alpha(self.beta, "beta")
        critical = futile = None
        if self.method == "union":
            critical = calibrated_critical_values(self.thresholds, self.looks, self.alpha)
            futile = calibrated_critical_values(1.0 - self.thresholds, self.looks, self.beta)
        object.__setattr__(self, "critical", critical)
        object.__setattr__(self, "futile", futile)
        # The highest level certifiable with n_max votes out of n_max (at any look): the grid's reachable top.
        looks = np.arange(len(self.looks))
        object.__setattr__(self, "top_level", int(self.certified_level(self.looks, looks).max()))

    @classmethod
    def for_radii(
        cls,
        radii: Sequence[float],
        sigma: float,
        alpha: float,
        n_max: int,
        method: str = DEFAULT_TEST,
        *,
        first_look: int | None = None,
        look_ratio: float | None = None,
        beta: float | None = None,
    ) -> SequentialTest:
        # sigma is checked by thresholds_for, alpha and beta by the constructor (__post_init__).
        grid = check_radii(radii)
        check_positive_int(n_max, "n_max")
        if method not in TESTS:
            raise ValueError(f"unknown sequential test {method!r}; known: {', '.join(TESTS)}")
        first = FIRST_LOOK[method] if first_look is None else first_look
        ratio = LOOK_RATIO[method] if look_ratio is None else look_ratio
        if not (first >= 1 and ratio > 1):
            raise ValueError(f"need first_look >= 1 and look_ratio > 1, got {first!r}, {ratio!r}")
        looks = look_schedule(int(n_max), int(first), float(ratio))
        beta = FUTILITY if beta is None else beta
        thresholds = thresholds_for(grid, float(sigma))
        return cls(grid, float(sigma), thresholds, float(alpha), int(n_max), method, looks, float(beta))

    def check_matches(self, radii: Sequence[float], sigma: float, alpha: float, n_max: int) -> None:
        """Refuse (``ValueError``) a request whose radii, sigma, alpha or n_max differ from the test's: its
        boundaries are calibrated for its own, and another sigma maps the radii to other thresholds (a test
        built for sigma 1.0 used on a sigma-0.25 model certifies radii four times too large)."""
        grid = check_radii(radii)
        mismatches = [
            f"{name} {mine!r} (the request's {theirs!r})"
            for name, mine, theirs in (
                ("sigma", self.sigma, float(sigma)),
                ("alpha", self.alpha, float(alpha)),
                ("n_max", self.n_max, int(n_max)),
            )
            if mine != theirs
        ]
        if grid.shape != self.radii.shape or not np.array_equal(grid, self.radii):
            mismatches.append(f"radii {self.radii.tolist()} (the request's {grid.tolist()})")
        if mismatches:
            raise ValueError("the SequentialTest was built for " + ", ".join(mismatches))

    # -- the bounds, as "which thresholds are excluded" -----------------------------------------------------

    def _lower_excluded(self, successes, look, level) -> np.ndarray:
        """True where threshold ``level`` lies below the lower bound after ``successes`` votes at ``look``."""
        a = np.asarray(successes, dtype=np.float64)
        if self.method == "mixture":
            n = self.looks[look].astype(np.float64)
            p0 = self.thresholds[level]
            with np.errstate(divide="ignore", invalid="ignore"):
                return (a > p0 * n) & (mixture_log_evidence(a, n, p0) >= -math.log(self.alpha))
        return a >= self.critical[level, look]

    def _upper_excluded(self, successes, look, level) -> np.ndarray:
        """True where threshold ``level`` lies above the (futility, level ``beta``) upper bound."""
        a = np.asarray(successes, dtype=np.float64)
        n = self.looks[look].astype(np.float64)
        if self.method == "mixture":
            p0 = self.thresholds[level]
            with np.errstate(divide="ignore", invalid="ignore"):
                return (a < p0 * n) & (mixture_log_evidence(a, n, p0) >= -math.log(self.beta))
        return n - a >= self.futile[level, look]

    def lower_boundary(self, level: int) -> np.ndarray:
        """Per look, the fewest votes that certify threshold ``level`` on its own (``looks + 1``: none)."""
        if self.method == "union":
            return self.critical[level].copy()
        lo = np.zeros(len(self.looks), dtype=np.int64)  # not excluded (or -1 below)
        hi = self.looks + 1  # excluded, or past every count
        index = np.arange(len(self.looks))
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            excluded = self._lower_excluded(mid, index, level) & (mid <= self.looks)
            hi, lo = np.where(excluded, mid, hi), np.where(excluded, lo, mid)
        return np.where(self._lower_excluded(lo, index, level), lo, hi)

    def false_certificate_bound(self, level: int) -> float:
        """An upper bound, by the dynamic program :func:`crossing_probability`, on the probability of a
        false certificate at ``level`` or above when ``p`` equals its threshold (the worst ``p`` for it):
        such a certificate crosses the level's boundary at some look."""
        return crossing_probability(float(self.thresholds[level]), self.looks, self.lower_boundary(level))

    def certified_level(self, successes: np.ndarray, look: np.ndarray) -> np.ndarray:
        """The highest level certified by ``successes`` votes at ``look`` (an index): -1 for none."""
        a = np.asarray(successes)[..., None]
        k = np.asarray(look)[..., None]
        return _level(self._lower_excluded(a, k, np.arange(len(self.thresholds))))

    # -- the decision at a look -------------------------------------------------------------------------------

    def decide(
        self, successes: np.ndarray, look: int | np.ndarray, best: int | np.ndarray = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Certified level (-1: none) and stop code for ``successes`` votes out of ``looks[look]``, where
        ``best`` is the highest level certified at an earlier look (kept: see the module docstring).

        ``successes``, ``look`` and ``best`` broadcast; the result arrays have their broadcast shape.
        """
        successes, look, best = np.broadcast_arrays(
            np.asarray(successes, dtype=np.int64),
            np.asarray(look, dtype=np.int64),
            np.asarray(best, dtype=np.int64),
        )
        t = self.looks[look]
        last = len(self.thresholds) - 1
        if np.any(successes < 0) or np.any(successes > t) or np.any(best < -1) or np.any(best > last):
            raise ValueError(f"need 0 <= successes <= looks[look] and -1 <= best <= {last}")
        level = np.maximum(self.certified_level(successes, look), best)
        nxt = np.minimum(level + 1, last)
        ruled_out = self._upper_excluded(successes, look, nxt)
        # Could the next level be certified at a later look if every remaining vote went to the class?
        gain = self.looks - t[..., None]  # [..., looks]
        later = np.arange(len(self.looks))
        reach = self._lower_excluded(successes[..., None] + gain, later, nxt[..., None])
        reachable = ((gain > 0) & reach).any(axis=-1)
        stop = np.full(level.shape, CONTINUE, dtype=np.int64)
        stop[~reachable] = STOP_UNREACHABLE
        stop[t >= self.n_max] = STOP_BUDGET
        stop[ruled_out & (level < last)] = STOP_RULED_OUT
        stop[level >= min(self.top_level, last)] = STOP_TOP
        return level, stop

    def radius(self, level: int) -> float:
        """The grid radius of a certified level (0.0 for level 0, and for -1, which is an abstention)."""
        return float(self.radii[level]) if level >= 0 else 0.0


def thresholds_for(radii: np.ndarray, sigma: float) -> np.ndarray:
    """``Phi(r / sigma)`` per grid radius; radii far beyond sigma give Phi = 1.0 in floating point, so they
    are kept just below 1 (never certified)."""
    check_sigma(sigma)
    return np.minimum(norm.cdf(np.asarray(radii, dtype=np.float64) / sigma), np.nextafter(1.0, 0.0))


def sequential_image_seed(seed: int, index: int, test: SequentialTest) -> int:
    """The noise seed of image ``index`` in a sequential run: it depends on the run seed and on every
    setting that changes the answer (test, alpha, n_max, beta, schedule), so runs with other settings draw
    other noise. Keeping the better of several runs of one image breaks alpha whatever the seeds (see the
    module docstring): run each image once."""
    settings = f"{test.method}|{test.alpha!r}|{test.n_max}|{test.beta!r}|{test.looks.tolist()}"
    words = np.frombuffer(settings.encode().ljust(-(-len(settings) // 4) * 4, b" "), dtype="<u4")
    entropy = [int(seed), int(index), *(int(w) for w in words)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def _level(excluded: np.ndarray) -> np.ndarray:
    """The highest level whose threshold (and every lower one) is excluded from below: -1 for none."""
    # Thresholds increase with the level and the excluded ones form a prefix; count them, robustly.
    prefix = np.cumprod(excluded, axis=-1)
    return prefix.sum(axis=-1) - 1


def critical_values(threshold: float, looks: np.ndarray, level: float) -> np.ndarray:
    """Per look, the fewest votes ``c`` with ``P(Binomial(t, threshold) >= c) <= level`` (``t + 1``: none)."""
    from scipy.stats import binom

    critical = binom.isf(level, looks, threshold) + 1
    # isf is computed in floating point: step to the exact smallest c whose tail is within the level.
    critical = np.clip(np.nan_to_num(critical, nan=looks + 1), 0, looks + 1).astype(np.int64)
    for _ in range(3):
        lower = critical - 1
        ok = (lower >= 0) & (binomial_upper_tail(lower, looks, threshold) <= level)
        critical = np.where(ok, lower, critical)
    bad = (critical <= looks) & (binomial_upper_tail(critical, looks, threshold) > level)
    return np.where(bad, critical + 1, critical)


def crossing_probability(threshold: float, looks: np.ndarray, critical: np.ndarray) -> float:
    """An upper bound on ``P(exists k: A_k >= critical[k])`` for Bernoulli(``threshold``) votes, ``A_k`` the
    votes for the class among the first ``looks[k]`` (exact up to the discarded tails, which it adds)."""
    from scipy.signal import fftconvolve
    from scipy.stats import binom

    offset, mass = 0, np.ones(1)  # mass[i]: P(A = offset + i, not crossed yet)
    crossed = discarded = 0.0
    previous = 0
    for t, c in zip(looks, critical, strict=True):
        step = int(t - previous)
        previous = int(t)
        lo, hi = (int(v) for v in binom.ppf([1e-18, 1 - 1e-18], step, threshold))
        lo, hi = max(lo - 1, 0), min(hi + 1, step)
        pmf = binom.pmf(np.arange(lo, hi + 1), step, threshold)
        discarded += max(0.0, 1.0 - pmf.sum())
        mass = np.clip(fftconvolve(mass, pmf), 0.0, None)
        offset += lo
        cut = int(c) - offset  # entries at or beyond the critical value cross now
        if cut < len(mass):
            crossed += mass[max(cut, 0) :].sum()
            mass = mass[: max(cut, 0)]
        if len(mass) == 0:
            break
        # Drop negligible ends so that the support stays a few standard deviations wide.
        keep = np.flatnonzero(mass > 1e-30)
        if len(keep) == 0:
            break
        discarded += mass[: keep[0]].sum() + mass[keep[-1] + 1 :].sum()
        offset += int(keep[0])
        mass = mass[keep[0] : keep[-1] + 1]
    return float(crossed + discarded)


def calibrated_critical_values(thresholds: np.ndarray, looks: np.ndarray, alpha: float) -> np.ndarray:
    """Critical values ``[level, look]`` of the union test: for each threshold, one per-look level, the
    largest (found by bisection between the Bonferroni ``alpha / K`` and ``alpha``) whose exact crossing
    probability at ``p = threshold`` is at most ``alpha``. The crossing event grows with ``p``, so it has
    probability at most alpha for every ``p <= threshold``."""
    rows = []
    for threshold in thresholds:
        lo, hi = math.log(alpha / len(looks)), math.log(alpha)
        best = critical_values(float(threshold), looks, alpha / len(looks))
        if (
            crossing_probability(float(threshold), looks, critical_values(float(threshold), looks, alpha))
            <= alpha
        ):
            best = critical_values(float(threshold), looks, alpha)
        else:
            for _ in range(8):
                mid = (lo + hi) / 2
                trial = critical_values(float(threshold), looks, math.exp(mid))
                if crossing_probability(float(threshold), looks, trial) <= alpha:
                    lo, best = mid, trial
                else:
                    hi = mid
        rows.append(best)
    return np.asarray(rows, dtype=np.int64)


@functools.lru_cache(maxsize=32)
def _cached(radii: tuple[float, ...], sigma: float, alpha: float, n_max: int, method: str) -> SequentialTest:
    return SequentialTest.for_radii(radii, sigma, alpha, n_max, method)


def sequential_test(
    radii: Sequence[float], sigma: float, alpha: float, n_max: int, method: str = DEFAULT_TEST
) -> SequentialTest:
    """:meth:`SequentialTest.for_radii` with the default schedule, cached (calibrating the union test takes
    seconds)."""
    return _cached(tuple(float(r) for r in radii), float(sigma), float(alpha), n_max, method)


def simulate(
    test: SequentialTest, p: np.ndarray, rng: np.random.Generator, *, keep_best: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``test`` on independent Bernoulli(``p[i]``) vote streams: (level, samples, stop code) per stream.

    Votes between looks are drawn as binomial increments, so a stream costs one draw per look.
    ``keep_best=False`` reports the level at the stopping look instead (before issue 18; for measuring).
    """
    p = np.asarray(p, dtype=np.float64)
    count = len(p)
    successes = np.zeros(count, dtype=np.int64)
    level = np.full(count, -1, dtype=np.int64)
    samples = np.zeros(count, dtype=np.int64)
    stop = np.zeros(count, dtype=np.int64)
    active = np.arange(count)
    previous = 0
    for k, t in enumerate(test.looks):
        successes[active] += rng.binomial(int(t - previous), p[active])
        previous = int(t)
        lv, st = test.decide(successes[active], k, level[active] if keep_best else -1)
        level[active] = lv
        done = st != CONTINUE
        finished = active[done]
        level[finished], stop[finished], samples[finished] = lv[done], st[done], t
        active = active[~done]
        if len(active) == 0:
            break
    return level, samples, stop


def exact_outcomes(test: SequentialTest, p: float, *, keep_best: bool = True) -> tuple[np.ndarray, float]:
    """Exact law of the outcome on a Bernoulli(``p``) vote stream: P(final level = j) for ``j = -1, 0, ...``
    (index ``j + 1``) and the expected number of samples.

    Dynamic programming over the vote count at each look: the paths still running are carried forward by a
    binomial convolution, the stopped ones are added to the outcome of their level. ``keep_best=False``:
    the level at the stopping look (before issue 18; for measuring).
    """
    from scipy.signal import fftconvolve
    from scipy.stats import binom

    levels = len(test.thresholds) + 1  # rows: the highest level certified so far, plus one
    outcome = np.zeros(levels)
    expected = 0.0
    running = np.zeros((levels, 1))  # running[b + 1, a]: P(a votes so far, best level b, still running)
    running[0, 0] = 1.0
    previous = 0
    for k, t in enumerate(test.looks):
        step = binom.pmf(np.arange(t - previous + 1), t - previous, p)
        grown = np.zeros((levels, t + 1))
        for row in np.flatnonzero(running.sum(axis=1) > 0):
            grown[row] = np.clip(fftconvolve(running[row], step), 0.0, None)[: t + 1]
        previous = int(t)
        running = np.zeros_like(grown)
        for row in np.flatnonzero(grown.sum(axis=1) > 0):
            level, stop = test.decide(np.arange(t + 1), k, row - 1 if keep_best else -1)
            done = stop != CONTINUE
            np.add.at(outcome, level[done] + 1, grown[row][done])
            expected += grown[row][done].sum() * t
            np.add.at(running, (level[~done] + 1, np.flatnonzero(~done)), grown[row][~done])
    return outcome, expected
