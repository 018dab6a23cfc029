"""The empirical-robustness part of the report: figures, per-model tables and the certificate audit of a run.

Input: the *attack plan* the workflow writes (``results/analysis/empirical/attacks.json``): one entry per attack
log with its model (``cell``, ``sigma``, the certification ``certify_log``), its ``group`` (an envelope group, or
``null`` for a model attacked at every eps), the setting (``attack``, ``base_attack``, ``num_noise``, ``n``),
``eps`` and ``log``; plus ``alpha_certify`` and ``alpha_predict``.

Outputs under ``out``, the figures only where the run has two settings or more to compare in them (the report
lists what is there): ``figures/m_test.png`` (certified vs empirical for each m_test and vanilla PGD, Figure 3),
``figures/n.png`` (empirical accuracy vs PREDICT's n, Figure 7), ``figures/estimator.png`` (plug-in vs
gradient-free, Figure 8, only where the gradient-free estimator ran), ``figures/groups.png`` (certified and
empirical per group, e.g. SmoothAdv vs Cohen), ``accuracy.{csv,html}`` (empirical accuracy per model, setting and
eps, with the certified accuracy of the same model at that radius), ``audit.{csv,html}``. The certified curves
are the full step curves of the attacked models' certification logs, not only their values at the attacked eps.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsmooth.analysis.empirical import audit_summary, certificate_audit, empirical_accuracy
from rsmooth.analysis.figures import plot_certified_and_empirical, step_curve
from rsmooth.analysis.metrics import certified_accuracy
from rsmooth.analysis.tables import write_html_page
from rsmooth.html_page import display_frame, interactive_table
from rsmooth.io import atomic_open
from rsmooth.logformat import read_attack_log, read_certify_log

FIGURES = ("m_test", "n", "estimator", "groups")


def _label(run: Mapping[str, Any]) -> str:
    if run["base_attack"]:
        return f"vanilla PGD on f (n = {run['n']})"
    name = {"pgd": "SmoothAdv-PGD", "ddn": "SmoothAdv-DDN", "pgd_stein": "PGD, gradient-free"}[run["attack"]]
    return f"{name}, m_test = {run['num_noise']} (n = {run['n']})"


def accuracy_frame(plan: Mapping[str, Any]) -> pd.DataFrame:
    """One row per attack log: model, group, setting, eps, empirical and certified accuracy (same model)."""
    rows, certify_logs = [], {}
    for run in plan["runs"]:
        cert = certify_logs.setdefault(run["certify_log"], read_certify_log(run["certify_log"]))
        rows.append(
            {
                "group": run["group"] or "",
                "model": _model(run),
                "setting": _label(run),
                "attack": run["attack"],
                "base_attack": bool(run["base_attack"]),
                "num_noise": int(run["num_noise"]),
                "n": int(run["n"]),
                "eps": float(run["eps"]),
                "empirical_accuracy": empirical_accuracy(read_attack_log(run["log"])),
                "certified_accuracy": float(certified_accuracy(cert, [float(run["eps"])])[0]),
            }
        )
    return pd.DataFrame(rows)


def _curves(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for setting, part in frame.groupby("setting", sort=False):
        part = part.sort_values("eps")
        out[f"empirical, {setting}"] = (part["eps"].to_numpy(), part["empirical_accuracy"].to_numpy())
    return out


def _model(run: Mapping[str, Any]) -> str:
    return f"{run['cell']} @ sigma {run['sigma']}"


def certified_curve(
    part: pd.DataFrame, certify_logs: Mapping[str, pd.DataFrame], label: str, max_radius: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The full certified step curve of the models attacked in ``part`` (``certify_logs`` by model), from
    their certification logs: one model's own curve, or for a group the upper envelope of the models its eps
    attacked (at each attacked eps that is the group's best model there, as the authors chose)."""
    models = list(dict.fromkeys(part["model"]))
    what = f" (envelope of the {len(models)} models attacked)" if len(models) > 1 else ""
    curve = step_curve({m: certify_logs[m] for m in models}, max_radius)
    return {f"certified, {label}{what}": curve}


def write_empirical_analysis(
    plan: Mapping[str, Any], out: str | os.PathLike, provenance: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write the figures that have something to show, the accuracy table and the certificate audit of
    ``plan`` under ``out``; return the files written."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for stale in (out / "figures").glob(
        "*.png"
    ):  # a figure this run cannot draw must not survive from another
        stale.unlink()
    frame = accuracy_frame(plan)
    certify_logs = {_model(run): read_certify_log(run["certify_log"]) for run in plan["runs"]}
    # Drawn up to the largest attacked eps or certified radius, whichever is larger, in whole quarters.
    largest = max(
        [0.0, *frame["eps"], *(float(df["radius"].max()) for df in certify_logs.values() if len(df))]
    )
    max_radius = (np.floor(largest / 0.25) + 1) * 0.25
    written = []
    footer = (
        f"Certified: the CERTIFY logs of the models attacked (alpha = {plan['alpha_certify']:g}); empirical: "
        f"PREDICT on the adversarial examples (alpha = {plan['alpha_predict']:g}), at the attacked eps (markers)."
    )
    # One "study" is an envelope group, or one model attacked at every eps.
    parts: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for (group, model), part in frame.groupby(["group", "model"], sort=False) if len(frame) else ():
        parts[group or model].append(part)
    studies = {name: pd.concat(p) for name, p in parts.items()}
    first = next(iter(studies), None)

    def figure(name: str, select, title: str) -> None:
        # A figure is written only where the run has two settings or more to compare in it.
        if first is None:
            return
        part = select(studies[first])
        if part["setting"].nunique() < 2:
            return
        written.append(
            plot_certified_and_empirical(
                certified_curve(part, certify_logs, first, max_radius), _curves(part),
                out / "figures" / f"{name}.png", max_radius=max_radius, title=f"{title} ({first})",
                provenance=provenance, footer=footer,
            )
        )  # fmt: skip

    def at_top_n(part: pd.DataFrame) -> pd.DataFrame:
        return part[part["n"] == part["n"].max()]

    figure(
        "m_test",
        lambda p: at_top_n(p[p["attack"].eq("pgd")]),
        "Certified vs empirical, SmoothAdv-PGD for each m_test and vanilla PGD",
    )
    figure(
        "n",
        lambda p: p[p["attack"].eq("pgd") & ~p["base_attack"] & p["num_noise"].eq(p["num_noise"].max())],
        "Empirical accuracy for each n of PREDICT",
    )
    # Figure 8 only where the gradient-free estimator ran: without it the plug-in settings alone are m_test's.
    if first is not None and studies[first]["attack"].eq("pgd_stein").any():
        figure(
            "estimator",
            lambda p: at_top_n(p[p["attack"].isin(["pgd", "pgd_stein"]) & ~p["base_attack"]]),
            "SmoothAdv-PGD (plug-in) vs the gradient-free estimator",
        )
    if len(studies) >= 2:
        certified: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        empirical: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, part in studies.items():
            certified.update(certified_curve(part, certify_logs, name, max_radius))
            best = at_top_n(part[~part["base_attack"]])
            best = best[best["num_noise"] == best["num_noise"].max()].sort_values("eps")
            empirical[f"empirical, {name}"] = (best["eps"].to_numpy(), best["empirical_accuracy"].to_numpy())
        written.append(
            plot_certified_and_empirical(
                certified, empirical, out / "figures" / "groups.png", max_radius=max_radius,
                title="Certified and empirical accuracy per group", provenance=provenance, footer=footer,
            )
        )  # fmt: skip

    with atomic_open(out / "accuracy.csv") as handle:
        frame.to_csv(handle, index=False)
    written.append(out / "accuracy.csv")
    written.append(
        write_html_page(
            out / "accuracy.html",
            "Empirical accuracy per model",
            _accuracy_table(frame, plan),
            provenance,
        )
    )
    written.extend(_write_audit(plan, out, provenance))
    return written


def _accuracy_table(frame: pd.DataFrame, plan: Mapping[str, Any]) -> str:
    """The per-attack table: accuracies in percent, readable names, sortable and searchable."""
    shown = display_frame(
        frame,
        percent=["empirical_accuracy", "certified_accuracy"],
        names={
            "base_attack": "Attack on the base classifier",
            "num_noise": "Noise draws m_test",
            "n": "PREDICT n",
            "eps": "eps (L2)",
            "empirical_accuracy": "Empirical accuracy (%)",
            "certified_accuracy": "Certified accuracy (%) at eps",
        },
    )
    caption = (
        f"One row per attack log of this run ({len(frame)}): the model, the attack setting and its L2 budget "
        "eps. Empirical accuracy: PREDICT on the adversarial example returns the label (an abstention counts "
        "as wrong). Certified accuracy: the same model's certificates at radius eps "
        f"(CERTIFY alpha = {plan['alpha_certify']:g}, PREDICT alpha = {plan['alpha_predict']:g})."
    )
    return interactive_table(shown, caption, table_id="accuracy")


def _write_audit(plan: Mapping[str, Any], out: Path, provenance: Mapping[str, Any] | None) -> list[Path]:
    by_model: dict[str, dict[float, list[str]]] = defaultdict(lambda: defaultdict(list))
    certify_of: dict[str, str] = {}
    for run in plan["runs"]:
        model = f"{run['cell']} @ sigma {run['sigma']} / {_label(run)}"
        by_model[model][float(run["eps"])].append(run["log"])
        certify_of[model] = run["certify_log"]
    audits = {
        model: certificate_audit(
            read_certify_log(certify_of[model]),
            {eps: read_attack_log(logs[0]) for eps, logs in by_eps.items()},
        )
        for model, by_eps in by_model.items()
    }
    summary = audit_summary(audits, plan["alpha_certify"], plan["alpha_predict"])
    events = pd.concat(
        [a[a["contradiction"]].assign(model=m) for m, a in audits.items()] or [pd.DataFrame()],
        ignore_index=True,
    )
    with atomic_open(out / "audit.csv") as handle:
        summary.to_csv(handle, index=False)
    bound = plan["alpha_certify"] + plan["alpha_predict"]
    body = (
        "<p>For every image that is both certified (class cA, radius R) and attacked by the same model at "
        "eps &lt; R, a PREDICT that returns a class other than cA (not an abstention) contradicts the "
        f"certificate. Each such event has probability at most alpha_certify + alpha_predict = {bound:g}. "
        "<b>A rate well above that bound means a bug or a broken assumption</b> (another model, noise or data "
        "between certification and attack, or arithmetic that changed the classifier). Abstentions within "
        "the radius are allowed and counted apart.</p>"
        + interactive_table(
            display_frame(
                summary,
                percent=["contradiction_rate", "bound"],
                digits={"contradiction_rate": 3, "bound": 3},
                names={
                    "pairs": "Images certified and attacked below their radius",
                    "contradiction_rate": "Contradiction rate (%)",
                    "abstentions_within_radius": "Abstentions within the radius",
                    "bound": "Bound (%)",
                    "above_bound": "Above the bound",
                },
            ),
            f"Per attacked model: images certified and attacked below their radius, contradictions and their "
            f"rate beside the bound alpha_certify + alpha_predict = {bound:g}.",
            table_id="audit",
        )
        + "<h2>Contradictions</h2>"
        + (
            interactive_table(
                display_frame(events),
                "Every image whose attack contradicts its certificate: the model, the image, the certified "
                "class and radius, the attack's eps and PREDICT's answer.",
                table_id="contradictions",
            )
            if len(events)
            else "<p>none</p>"
        )
    )
    return [out / "audit.csv", write_html_page(out / "audit.html", "Certificate audit", body, provenance)]
