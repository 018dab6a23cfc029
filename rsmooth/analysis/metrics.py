"""Certified accuracy and the other numbers the papers report, computed from CERTIFY logs.

Every metric is over **all** rows of a log: an abstention (``predict == -1``, ``correct == 0``) counts as
wrong, as in the reference ``analyze.py``. A log without rows has no defined accuracy, so the metrics raise
``ValueError`` rather than return NaN that would surface as "nan" in a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

Logs = Mapping[str, pd.DataFrame]


def _check_rows(df: pd.DataFrame, what: str) -> int:
    if len(df) == 0:
        source = df.attrs.get("path", "certification log")
        raise ValueError(f"{source}: the log has no rows, so its {what} is undefined")
    return len(df)


def _certified_radii(df: pd.DataFrame) -> np.ndarray:
    """Sorted radii of the correctly classified rows (NaN radii never count as certified)."""
    radius = df["radius"].to_numpy(dtype=np.float64)
    keep = (df["correct"].to_numpy() == 1) & ~np.isnan(radius)
    return np.sort(radius[keep])


def certified_accuracy(df: pd.DataFrame, radii: ArrayLike) -> np.ndarray:
    """Fraction of all rows with ``correct == 1`` and ``radius >= r``, for each ``r`` in ``radii``.

    Radii beyond the largest certified radius give 0; an all-abstain log gives zeros.
    """
    n = _check_rows(df, "certified accuracy")
    certified = _certified_radii(df)
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    # Rows with radius >= r are those from the first position where r could be inserted on the left.
    return (len(certified) - np.searchsorted(certified, radii, side="left")) / n


def clean_accuracy(df: pd.DataFrame) -> float:
    """Certified accuracy at radius 0: the smoothed classifier's accuracy, abstentions counted wrong."""
    return float(certified_accuracy(df, [0.0])[0])


def average_certified_radius(df: pd.DataFrame) -> float:
    """ACR: the mean of ``correct * radius`` over all rows (wrong and abstained rows contribute 0)."""
    _check_rows(df, "average certified radius")
    correct = df["correct"].to_numpy() == 1
    return float(np.where(correct, df["radius"].to_numpy(dtype=np.float64), 0.0).mean())


acr = average_certified_radius


def abstention_rate(df: pd.DataFrame) -> float:
    """Fraction of rows where CERTIFY abstained (``predict == -1``); a fraction, not a percentage. A
    sequential label-mode "not the label" (-2, a wrong prediction) is not an abstention."""
    _check_rows(df, "abstention rate")
    return float((df["predict"].to_numpy() == -1).mean())


def l2_to_linf(radius: ArrayLike, dim: int) -> np.ndarray | float:
    """The l-inf radius certified by an l2 radius in ``dim`` dimensions: the l2 ball of radius r contains
    the l-inf ball of radius r / sqrt(d)."""
    out = np.asarray(radius, dtype=np.float64) / math.sqrt(dim)
    return float(out) if out.ndim == 0 else out


def linf_to_l2(eps: ArrayLike, dim: int) -> np.ndarray | float:
    """The l2 radius needed to certify an l-inf radius ``eps`` in ``dim`` dimensions: eps * sqrt(d)."""
    out = np.asarray(eps, dtype=np.float64) * math.sqrt(dim)
    return float(out) if out.ndim == 0 else out


def high_probability_accuracy(
    df: pd.DataFrame, radii: ArrayLike, alpha: float = 0.001, rho: float = 0.001
) -> np.ndarray:
    """Cohen et al.'s lower bound on the true certified accuracy, holding with probability 1 - rho.

    mean - alpha - sqrt(alpha (1 - alpha) ln(1/rho) / n) - ln(1/rho) / (3 n), with ``mean`` the certified
    accuracy of the ``n`` rows and ``alpha`` CERTIFY's failure probability. Like the reference it is not
    clipped at 0.
    """
    n = _check_rows(df, "certified accuracy")
    log_term = math.log(1.0 / rho)
    slack = alpha + math.sqrt(alpha * (1.0 - alpha) * log_term / n) + log_term / (3.0 * n)
    return certified_accuracy(df, radii) - slack


def accuracy_grid(logs: Logs, radii: ArrayLike) -> pd.DataFrame:
    """Certified accuracy of every model (rows, in mapping order) at every radius (columns)."""
    if not logs:
        raise ValueError("no models given")
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    rows = {}
    for name, df in logs.items():
        try:
            rows[name] = certified_accuracy(df, radii)
        except ValueError as error:
            raise ValueError(f"model {name!r}: {error}") from error
    return pd.DataFrame.from_dict(rows, orient="index", columns=radii)


def best_per_radius(logs: Logs, radii: ArrayLike) -> pd.DataFrame:
    """The upper envelope over models: one row per radius with ``radius, model, certified_accuracy,
    clean_accuracy``.

    At each radius the model with the highest certified accuracy wins; ties go to the higher clean accuracy
    (certified accuracy at r = 0), as in Salman et al.'s envelope tables, and remaining ties to the model
    that comes first in ``logs``.
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    grid = accuracy_grid(logs, radii)
    clean = accuracy_grid(logs, [0.0]).iloc[:, 0].to_numpy()
    names = list(grid.index)
    order = np.arange(len(names))
    rows = []
    for j, radius in enumerate(radii):
        cert = grid.iloc[:, j].to_numpy()
        # lexsort sorts by the last key first: highest certified, then highest clean, then first listed.
        best = np.lexsort((order, -clean, -cert))[0]
        rows.append((float(radius), names[best], float(cert[best]), float(clean[best])))
    return pd.DataFrame(rows, columns=["radius", "model", "certified_accuracy", "clean_accuracy"])


def envelope(logs: Logs, radii: ArrayLike) -> np.ndarray:
    """The highest certified accuracy over models at each radius (the curve of the envelope figures)."""
    return accuracy_grid(logs, radii).to_numpy().max(axis=0)


def representative_models(logs_by_sigma: Mapping[float, Logs]) -> dict[float, str]:
    """For each noise level, the model with the highest ACR (first listed on ties).

    Salman et al.'s Figure 1 (right) shows "a representative model" per sigma without saying how it was
    chosen; the highest ACR is a reproducible stand-in that favours models good across all radii.
    """
    chosen = {}
    for sigma, logs in logs_by_sigma.items():
        if not logs:
            raise ValueError(f"no models for sigma = {sigma}")
        scores = {name: average_certified_radius(df) for name, df in logs.items()}
        chosen[sigma] = max(scores, key=scores.__getitem__)
    return chosen


def clopper_pearson(successes: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[Any, Any]:
    """The exact (Clopper-Pearson) two-sided ``level`` interval of a binomial proportion: ``(low, high)`` as
    fractions, for ``successes`` out of ``n`` images (scalars give floats, arrays arrays). Used to show how
    far a run's accuracy over few images can be from the true one (with 40 images one image is 2.5 points)."""
    from scipy.stats import beta  # scipy only where intervals are drawn or judged

    if not 0.0 < level < 1.0:
        raise ValueError(f"level = {level!r}: the interval's coverage must lie strictly between 0 and 1")
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    if np.any(total < 1) or np.any(k < 0) or np.any(k > total) or np.any(k != np.round(k)):
        raise ValueError(
            f"successes = {successes!r} of n = {n!r}: need whole numbers with 0 <= successes <= n and n >= 1"
        )
    tail = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        low = np.where(k == 0, 0.0, beta.ppf(tail, k, total - k + 1))
        high = np.where(k == total, 1.0, beta.ppf(1.0 - tail, k + 1, total - k))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def max_certifiable_radius(
    sigma: float,
    n: int,
    alpha: float,
    *,
    procedure: str = "cohen",
    radii: ArrayLike | None = None,
    test: str | None = None,
) -> float:
    """The largest l2 radius a run can certify at noise level ``sigma``, whatever its model: no image of its
    logs has a larger radius, so a paper cell at a larger radius is beyond the run's reach.

    - ``procedure="cohen"`` (CERTIFY, ``n`` estimation draws): when all ``n`` draws vote for the top class, the
      one-sided (1 - alpha) Clopper-Pearson lower bound is ``Beta^-1(alpha; n, 1) = alpha ** (1 / n)``, and the
      radius ``sigma * Phi^-1(alpha ** (1 / n))`` (0.48 at sigma 0.25, N = 256, alpha = 0.001). N0 only selects
      the class and does not enter the bound.
    - ``procedure="sequential"`` (``n`` = n_max, the grid ``radii``, the ``test``): the highest grid radius the
      test certifies when every one of the n_max draws votes for the class (``SequentialTest.top_level``).
    """
    from scipy.stats import norm

    if sigma <= 0 or n < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(
            f"sigma = {sigma!r}, n = {n!r}, alpha = {alpha!r}: need sigma > 0, n >= 1, 0 < alpha < 1"
        )
    if procedure == "sequential":
        from rsmooth.sequential import DEFAULT_TEST, sequential_test

        if radii is None:
            raise ValueError("the sequential procedure's reach needs its radius grid (radii)")
        sequential = sequential_test(radii, sigma, alpha, int(n), test or DEFAULT_TEST)
        return sequential.radius(sequential.top_level)
    if procedure != "cohen":
        raise ValueError(f"unknown certification procedure {procedure!r}; known: cohen, sequential")
    # 1 - alpha ** (1 / n) computed as -expm1(log(alpha) / n), so that a large n keeps its digits.
    return float(sigma * norm.isf(-math.expm1(math.log(alpha) / n)))


def mean_interval(values: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of ``values`` (the ACR's: the mean over images of ``correct * radius``);
    a single value, or values all equal, give the point itself."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("no values: the mean and its interval are undefined")
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean
    half = float(t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean - half, mean + half
