"""Certified-accuracy figures (PNG or SVG, chosen by the file suffix).

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no display, and no
change to the caller's matplotlib backend. Each file is written atomically and carries the provenance
record in its metadata (PNG text chunk / SVG ``<metadata>``) when one is given.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rsmooth.analysis.grids import PLOT_STEP, radius_grid
from rsmooth.analysis.metrics import Logs, certified_accuracy, envelope
from rsmooth.analysis.provenance import provenance_line
from rsmooth.io import atomic_open

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
