"""Certified-accuracy figures (PNG or SVG, chosen by the file suffix), and the figures of a run
(:func:`write_figures`).

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no display, and no
change to the caller's matplotlib backend. Each file is written atomically and carries the provenance
record in its metadata (PNG text chunk / SVG ``<metadata>``) when one is given. A figure with nothing to
compare is an empty canvas saying so (:func:`empty_figure`), so that the report always has the same figures.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rsmooth.analysis.grids import PLOT_STEP, plot_max_radius, radius_grid
from rsmooth.analysis.metrics import (
    Logs,
    average_certified_radius,
    certified_accuracy,
    envelope,
    representative_models,
)
from rsmooth.analysis.provenance import provenance_line
from rsmooth.io import atomic_open
from rsmooth.pipeline import format_value

FORMATS = {".png": "png", ".svg": "svg"}


def _axes_style(ax: Axes, max_radius: float, title: str | None) -> None:
    ax.set_xlim(0, max_radius)
    ax.set_ylim(0, 1)
    ax.set_xlabel("ℓ2 radius")
    ax.set_ylabel("certified accuracy")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)


def _save(fig: Figure, path: str | os.PathLike, provenance: Mapping[str, Any] | None) -> Path:
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: figures are written as {sorted(FORMATS)}, not {path.suffix!r}")
    FigureCanvasAgg(fig)
    metadata = {"Description": f"rsmooth provenance: {provenance_line(provenance)}"} if provenance else None
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def empty_figure(path: str | os.PathLike, message: str, provenance: Mapping[str, Any] | None = None) -> Path:
    """A figure that only says ``message`` (why there is nothing to draw)."""
    fig = Figure(figsize=(5.4, 3.8))
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _save(fig, path, provenance)


def _grid(max_radius: float, step: float) -> np.ndarray:
    return radius_grid(0.0, max_radius, step)


def plot_certified_accuracy(
    logs: Logs,
    path: str | os.PathLike,
    *,
    max_radius: float,
    step: float = PLOT_STEP,
    title: str | None = None,
    legend_title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """One curve of certified accuracy against radius per model (e.g. one representative model per sigma,
    Salman et al. Figure 1 right)."""
    radii = _grid(max_radius, step)
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    for name, df in logs.items():
        ax.plot(radii, certified_accuracy(df, radii), label=name)
    _axes_style(ax, max_radius, title)
    ax.legend(title=legend_title, fontsize="small")
    return _save(fig, path, provenance)


def plot_envelopes(
    groups: Mapping[str, Logs],
    path: str | os.PathLike,
    *,
    max_radius: float,
    step: float = PLOT_STEP,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """The upper envelope (best model at every radius) of each group: groups are methods for the overall
    envelopes (Figure 1 left) or (method, sigma) pairs for the per-sigma envelopes (Figure 1 middle).
    ``styles`` maps a group to extra ``Axes.plot`` arguments, e.g. a shared colour per sigma and a dashed
    line for the baseline."""
    radii = _grid(max_radius, step)
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    for name, logs in groups.items():
        ax.plot(radii, envelope(logs, radii), label=name, **dict((styles or {}).get(name, {})))
    _axes_style(ax, max_radius, title)
    ax.legend(fontsize="small")
    return _save(fig, path, provenance)


def plot_ablation(
    panels: Mapping[str, Logs],
    path: str | os.PathLike,
    *,
    parameter: str,
    max_radius: float,
    step: float = PLOT_STEP,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """One panel per fixed setting (e.g. per sigma), one curve per value of the ablated ``parameter``
    (m_train, eps or training method: Salman et al. Figures 4-6). Panel logs are keyed by the value's label."""
    if not panels:
        raise ValueError("no panels to plot")
    radii = _grid(max_radius, step)
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, logs) in zip(axes, panels.items(), strict=True):
        for value, df in logs.items():
            ax.plot(radii, certified_accuracy(df, radii), label=f"{value}")
        _axes_style(ax, max_radius, panel)
        ax.legend(title=parameter, fontsize="small")
    return _save(fig, path, provenance)


def plot_certified_and_empirical(
    certified: Mapping[str, tuple[np.ndarray, np.ndarray]],
    empirical: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    max_radius: float,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Certified curves (solid) and empirical curves (dashed, with markers at the attacked eps): SmoothAdv
    Figures 3, 7 and 8 and the certified-and-empirical comparison of SmoothAdv with Cohen et al. Each curve is
    ``label -> (radii or eps, accuracy)``."""
    fig = Figure(figsize=(5.4, 3.8))
    ax = fig.add_subplot()
    for name, (x, y) in certified.items():
        ax.plot(x, y, label=name, linewidth=2)
    for name, (x, y) in empirical.items():
        ax.plot(x, y, label=name, linestyle="--", marker=".", markersize=4)
    _axes_style(ax, max_radius, title)
    ax.set_ylabel("accuracy (certified: solid, empirical: dashed)")
    ax.legend(fontsize="x-small")
    return _save(fig, path, provenance)


# -- the figures of a run -------------------------------------------------------------------------------------

RUN_FIGURES = (
    "certified_accuracy", "envelopes", "envelopes_per_sigma", "representative", "ablation_m_train",
    "ablation_eps", "ablation_method",
)  # fmt: skip
MAX_CURVES = 12
# Figures 4-6: the envelope over all other hyper-parameters, one curve per value of the training option.
ABLATIONS = {"m_train": "num_noise_vec", "eps": "eps"}
# Figure 4: SmoothAdv against the vanilla-PGD baselines and Cohen et al.
BASELINES = ("gaussian", "smoothadv", "vanilla PGD", "vanilla PGD + noise")


def write_figures(
    certifications: Sequence[Any], out: str | os.PathLike, *, max_radius: float, provenance: Mapping[str, Any]
) -> list[Path]:
    """Write :data:`RUN_FIGURES` under ``out`` from a run's certifications
    (:class:`rsmooth.analysis.results.Certification`): the models with the highest ACR, the upper envelopes
    overall and per sigma, one representative SmoothAdv model per sigma (SmoothAdv Figure 1), and the
    ablations over m_train, eps and training method (Figures 4-6)."""
    from rsmooth.analysis.results import by_group, method_group

    out = Path(out)
    plot = {"max_radius": max_radius, "provenance": provenance}
    logs = {c.name: c.log for c in certifications}
    groups = by_group(certifications)
    written = []

    best = sorted(certifications, key=lambda c: average_certified_radius(c.log), reverse=True)[:MAX_CURVES]
    title = "every model" if len(best) == len(logs) else f"the {len(best)} models with the highest ACR"
    written.append(
        plot_certified_accuracy(
            {c.name: c.log for c in best}, out / "certified_accuracy.png", title=title, **plot
        )
    )
    written.append(plot_envelopes(groups, out / "envelopes.png", title="Upper envelopes", **plot))

    per_sigma: dict[str, Logs] = defaultdict(dict)
    smoothadv: dict[float, dict[str, Any]] = defaultdict(dict)  # sigma -> name -> certification
    for c in certifications:
        per_sigma[f"{method_group(c.model)}, sigma={format_value(c.sigma)}"][c.name] = c.log
        if c.model.train["method"] == "smoothadv":
            smoothadv[c.sigma][c.name] = c
    written.append(
        plot_envelopes(dict(per_sigma), out / "envelopes_per_sigma.png", title="Envelopes per sigma", **plot)
    )

    path = out / "representative.png"
    if smoothadv:
        chosen = representative_models(
            {s: {n: c.log for n, c in by_name.items()} for s, by_name in smoothadv.items()}
        )
        curves = {
            f"sigma={format_value(s)}: {smoothadv[s][name].model.id}": smoothadv[s][name].log
            for s, name in sorted(chosen.items())
        }
        written.append(plot_certified_accuracy(curves, path, title="One SmoothAdv model per sigma", **plot))
    else:
        written.append(empty_figure(path, "no SmoothAdv models in this run", provenance))

    for label, option in ABLATIONS.items():
        ablation: dict[str, Logs] = defaultdict(dict)
        for c in certifications:
            if c.model.train["method"] == "smoothadv" and c.model.from_scratch:
                ablation[f"{label}={c.model.train[option]}"][c.name] = c.log
        path = out / f"ablation_{label}.png"
        if len(ablation) > 1:
            title = f"SmoothAdv envelope by {label}"
            written.append(plot_envelopes(dict(sorted(ablation.items())), path, title=title, **plot))
        else:
            message = (
                f"this run has SmoothAdv models with {len(ablation)} value(s) of {label}: nothing to compare"
            )
            written.append(empty_figure(path, message, provenance))

    compared = {g: groups[g] for g in BASELINES if g in groups}
    path = out / "ablation_method.png"
    if len(compared) > 1:
        written.append(
            plot_envelopes(compared, path, title="SmoothAdv against the vanilla-PGD baselines", **plot)
        )
    else:
        message = "this run has fewer than two of: Gaussian, SmoothAdv, vanilla PGD (+ noise)"
        written.append(empty_figure(path, message, provenance))
    return written


def figure_max_radius(dataset: str, radii: Sequence[float]) -> float:
    """The largest radius drawn: the paper's for the data set, or the largest analysis radius if beyond."""
    return max(plot_max_radius(dataset), *radii)
