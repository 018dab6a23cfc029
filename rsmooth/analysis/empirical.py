"""Empirical robustness from attack logs, set beside the certificates (SmoothAdv §4.2, App. C.4-C.6).

- Empirical accuracy at eps: the fraction of all rows with ``correct == 1`` (PREDICT on the adversarial example
  returns the label; an abstention counts as wrong), as the authors' analysis computes it.
- The empirical envelope: for each eps, the best empirical accuracy over the models attacked at that eps.
- The **certificate audit** (no reference has it). A certificate ``(cA, R)`` from CERTIFY says that g predicts cA
  everywhere within distance R of x, except with probability alpha. An attack at ``eps < R`` whose PREDICT returns
  a class other than cA (an abstention is not a class) therefore contradicts the certificate. Each such event has
  probability at most ``alpha_certify + alpha_predict`` (CERTIFY wrong, or PREDICT returning a class g does not
  predict), so their rate over the pairs of an audited model should stay below that sum; a rate well above it
  means a bug or a broken assumption (a different model, noise or data between the two runs, or float
  arithmetic that changed the classifier). Abstentions within the radius are counted apart: they are allowed
  (near the boundary PREDICT's vote margin shrinks) and are what lets empirical accuracy fall below certified
  accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rsmooth.analysis.metrics import certified_accuracy
from rsmooth.logformat import ABSTAIN

AUDIT_COLUMNS = (
    "model", "pairs", "contradictions", "contradiction_rate", "abstentions_within_radius", "bound",
    "above_bound",
)  # fmt: skip


def empirical_accuracy(df: pd.DataFrame) -> float:
    """Fraction of the attacked images on which PREDICT returned the label."""
    if len(df) == 0:
        raise ValueError(f"{df.attrs.get('path', 'attack log')}: no rows")
    return float((df["correct"] == 1).mean())


def empirical_curve(logs_by_eps: Mapping[float, pd.DataFrame]) -> pd.DataFrame:
    """Columns ``eps, empirical_accuracy``, sorted by eps."""
    rows = [(float(eps), empirical_accuracy(df)) for eps, df in logs_by_eps.items()]
    return pd.DataFrame(sorted(rows), columns=["eps", "empirical_accuracy"])


def empirical_envelope(curves: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """For each eps, the best empirical accuracy over ``curves`` (model -> curve) and the model reaching it
    (the first listed on a tie). Columns ``eps, empirical_accuracy, model``."""
    rows: dict[float, tuple[float, str]] = {}
    for model, curve in curves.items():
        for eps, accuracy in zip(curve["eps"], curve["empirical_accuracy"], strict=True):
            if eps not in rows or accuracy > rows[eps][0]:
                rows[eps] = (float(accuracy), model)
    return pd.DataFrame(
        [(eps, acc, model) for eps, (acc, model) in sorted(rows.items())],
        columns=["eps", "empirical_accuracy", "model"],
    )


def certified_empirical_gap(certify_log: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    """Columns ``eps, certified_accuracy, empirical_accuracy, gap`` (empirical minus certified; >= 0 but for
    abstentions and the alphas). The certified accuracy at radius eps of the same model."""
    certified = certified_accuracy(certify_log, curve["eps"].to_numpy())
    out = curve.copy()
    out.insert(1, "certified_accuracy", certified)
    out["gap"] = out["empirical_accuracy"] - out["certified_accuracy"]
    return out


def certificate_audit(certify_log: pd.DataFrame, attack_logs: Mapping[float, pd.DataFrame]) -> pd.DataFrame:
    """Every (image, eps) pair of one model whose attack eps lies strictly below the image's certified radius.

    Columns ``idx, eps, label, certified_class, radius, attacked_prediction, contradiction,
    abstained``: ``contradiction`` when PREDICT on the adversarial example returned a class other than the
    certified one, ``abstained`` when it abstained.
    """
    certified = certify_log.loc[certify_log["predict"] != ABSTAIN, ["idx", "label", "predict", "radius"]]
    certified = certified.rename(columns={"predict": "certified_class"})
    frames = []
    for eps, attack in attack_logs.items():
        pairs = certified.merge(attack[["idx", "predict"]], on="idx", how="inner")
        pairs = pairs.loc[pairs["radius"] > float(eps)].rename(columns={"predict": "attacked_prediction"})
        pairs.insert(1, "eps", float(eps))
        frames.append(pairs)
    columns = ["idx", "eps", "label", "certified_class", "radius", "attacked_prediction"]
    audit = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    audit["abstained"] = audit["attacked_prediction"] == ABSTAIN
    audit["contradiction"] = ~audit["abstained"] & (audit["attacked_prediction"] != audit["certified_class"])
    return audit[[*columns, "contradiction", "abstained"]].sort_values(["eps", "idx"], ignore_index=True)


def audit_summary(
    audits: Mapping[str, pd.DataFrame], alpha_certify: float, alpha_predict: float
) -> pd.DataFrame:
    """One row per model: pairs audited, contradictions and their rate, abstentions within the radius, the
    bound ``alpha_certify + alpha_predict`` on the rate, and whether the rate is above it."""
    bound = alpha_certify + alpha_predict
    rows = []
    for model, audit in audits.items():
        pairs = len(audit)
        contradictions = int(audit["contradiction"].sum())
        rate = contradictions / pairs if pairs else float("nan")
        rows.append(
            (
                model,
                pairs,
                contradictions,
                rate,
                int(audit["abstained"].sum()),
                bound,
                bool(pairs and rate > bound),
            )
        )
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def curve_at(curve: pd.DataFrame, eps: ArrayLike) -> np.ndarray:
    """Empirical accuracy at each of ``eps`` (NaN where the curve has no point)."""
    lookup = dict(zip(curve["eps"], curve["empirical_accuracy"], strict=True))
    return np.array([lookup.get(float(e), np.nan) for e in np.atleast_1d(eps)], dtype=float)
