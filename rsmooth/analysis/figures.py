"""Certified-accuracy figures (PNG or SVG, chosen by the file suffix), and the figures of a run
(:func:`write_figures`).

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no display, and no
change to the caller's matplotlib backend. Each file is written atomically and carries the provenance
record in its metadata (PNG text chunk / SVG ``<metadata>``) when one is given.

Every curve of a figure gets its own (colour, line style) pair (:func:`curve_styles`), legends sit outside
the data, and certified accuracy is drawn as the exact step curve of the logs (:func:`step_curve`). Beside
the papers: the published points of the same key (``data/paper_numbers.csv``) are overlaid
(:func:`paper_points`), the run's 95% Clopper-Pearson band over its images shades each curve, and CERTIFY's
largest certifiable radius at the run's N and alpha is marked. A figure with nothing to show is not
written: :func:`write_figures` returns the figures it wrote, and the report lists those.
"""

from __future__ import annotations

import io
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from rsmooth.analysis.grids import plot_max_radius
from rsmooth.analysis.metrics import (
    Logs,
    average_certified_radius,
    clopper_pearson,
    envelope,
    max_certifiable_radius,
    representative_models,
)
from rsmooth.analysis.paper import load_paper_numbers, scorecard
from rsmooth.analysis.provenance import provenance_line
from rsmooth.analysis.results import by_group, method_group, paper_values
from rsmooth.analysis.tables import procedure_caption
from rsmooth.io import atomic_open
from rsmooth.pipeline import format_value
from rsmooth.train.methods import REGISTRY, get_method

FORMATS = {".png": "png", ".svg": "svg"}
# Ten colours (matplotlib's tab10) times four line styles: 40 curves, no two alike (see curve_styles).
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LINE_STYLES = ("solid", "dashed", "dashdot", "dotted")
MAX_STYLES = len(COLOURS) * len(LINE_STYLES)
# Envelope groups under the paper's (method, setting) key, as the scorecard maps them.
_PAPER_GROUPS = {group: key for cls in REGISTRY.values() for group, key in cls.paper_envelopes.items()}
PAPER_MARKER = {"marker": "D", "markersize": 5, "markeredgecolor": "black", "linestyle": "none"}
BAND_ALPHA = 0.15
LEVEL = 0.95


def curve_styles(count: int) -> list[dict[str, str]]:
    """``count`` (colour, line style) pairs, no two equal: the colour cycles every curve and the style shifts
    by one per curve and once more per cycle of colours, so neighbours differ in both and the 11th curve does
    not repeat the 1st. More than :data:`MAX_STYLES` curves cannot all be told apart: an error."""
    if count > MAX_STYLES:
        raise ValueError(f"{count} curves in one figure: at most {MAX_STYLES} can have distinct styles")
    return [
        {
            "color": COLOURS[i % len(COLOURS)],
            "linestyle": LINE_STYLES[(i + i // len(COLOURS)) % len(LINE_STYLES)],
        }
        for i in range(count)
    ]


def _axes_style(ax: Axes, max_radius: float, title: str | None) -> None:
    ax.set_xlim(0, max_radius)
    ax.set_ylim(0, 1)
    ax.set_xlabel("ℓ2 radius")
    ax.set_ylabel("certified accuracy")
    _percent_axes(ax)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize="medium")


def _percent_axes(ax: Axes, x: bool = False) -> None:
    """Accuracies are fractions; the axes print them in percent, as the papers and the tables do."""
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    if x:
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _legend_outside(ax: Axes, **kwargs: Any) -> None:
    """The legend right of the axes, outside the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", **kwargs)


def _save(
    fig: Figure, path: str | os.PathLike, provenance: Mapping[str, Any] | None, footer: str | None = None
) -> Path:
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: figures are written as {sorted(FORMATS)}, not {path.suffix!r}")
    if footer:
        fig.text(0.0, 0.0, footer, fontsize="x-small", ha="left", va="top", wrap=True)
    FigureCanvasAgg(fig)
    metadata = {"Description": f"rsmooth provenance: {provenance_line(provenance)}"} if provenance else None
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


# -- curves ----------------------------------------------------------------------------------------------------


def _knots(logs: Logs, max_radius: float) -> np.ndarray:
    radii = [0.0, float(max_radius)]
    for df in logs.values():
        radius = df["radius"].to_numpy(dtype=np.float64)
        keep = (df["correct"].to_numpy() == 1) & ~np.isnan(radius) & (radius < max_radius)
        radii.extend(radius[keep].tolist())
    return np.unique(np.asarray(radii))


def step_curve(logs: Logs, max_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact certified-accuracy curve of one log (or the upper envelope of several) from 0 to
    ``max_radius``, as the vertices of its steps: accuracy at r counts radii >= r, so it is constant on each
    (previous certified radius, next certified radius] and drops just after each certified radius."""
    if not logs:
        raise ValueError("no logs to draw")
    knots = _knots(logs, max_radius)
    values = envelope(logs, knots)  # the value on (previous knot, knot]
    x = np.concatenate([[knots[0]], np.repeat(knots[1:], 2)])
    x[1::2] = knots[:-1]  # each step starts at the previous knot ...
    y = np.concatenate([[values[0]], np.repeat(values[1:], 2)])
    return x, y  # ... and ends at its own, at the same height


def _images(logs: Logs) -> int:
    """The number of images behind a curve: the fewest of its logs (they agree within a run)."""
    return min(len(df) for df in logs.values())


def accuracy_band(y: np.ndarray, images: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The Clopper-Pearson ``level`` interval of each accuracy in ``y`` over ``images`` images."""
    return clopper_pearson(np.round(np.asarray(y) * images), np.full(len(y), images), level)


def _draw_curve(
    ax: Axes, logs: Logs, max_radius: float, style: Mapping[str, Any], label: str, band: bool
) -> tuple[np.ndarray, np.ndarray]:
    x, y = step_curve(logs, max_radius)
    ax.plot(x, y, label=label, linewidth=1.6, **style)
    if band:
        low, high = accuracy_band(y, _images(logs))
        ax.fill_between(x, low, high, color=style["color"], alpha=BAND_ALPHA, linewidth=0)
    return x, y


def _mark_reach(ax: Axes, radius: float | None, sigma: float | None = None) -> None:
    if radius is None or radius >= ax.get_xlim()[1]:
        return
    what = "" if sigma is None else f" at σ = {format_value(sigma)}"
    ax.axvline(
        radius, color="black", linewidth=0.9, linestyle=(0, (1, 2)), label=f"largest certifiable radius{what}"
    )


# -- the published points ----------------------------------------------------------------------------------------


def paper_points(
    paper: pd.DataFrame, *, dataset: str, method: str, setting: str, sigma: float | None
) -> pd.DataFrame:
    """The published certified accuracies of the key (``radius, value, paper, table``), sorted by radius; a
    point printed alike by two tables of a paper is kept once."""
    sigma_text = "" if sigma is None else format(float(sigma), "g")
    rows = paper[
        paper["dataset"].eq(dataset)
        & paper["method"].eq(method)
        & paper["setting"].eq(setting)
        & paper["sigma"].eq(sigma_text)
        & paper["metric"].eq("certified_accuracy")
    ]
    out = rows.assign(radius=rows["radius"].astype(float))[["radius", "value", "paper", "table"]]
    return (
        out.drop_duplicates(["radius", "value"]).sort_values("radius", kind="stable").reset_index(drop=True)
    )


def _draw_paper(ax: Axes, points: pd.DataFrame, colour: str, label: str) -> None:
    if len(points):
        ax.plot(points["radius"], points["value"], color=colour, label=label, **PAPER_MARKER)


def _tables(points: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(f"{p} {t}" for p, t in zip(points["paper"], points["table"], strict=True)))


# -- simple figures (kept for callers that draw their own) ---------------------------------------------------------


def plot_certified_accuracy(
    logs: Logs,
    path: str | os.PathLike,
    *,
    max_radius: float,
    title: str | None = None,
    legend_title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> Path:
    """One step curve of certified accuracy against radius per model (e.g. one representative model per
    sigma, Salman et al. Figure 1 right), each in its own colour and line style, the legend outside."""
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for (name, df), style in zip(logs.items(), curve_styles(len(logs)), strict=True):
        _draw_curve(ax, {name: df}, max_radius, style, name, band=False)
    _axes_style(ax, max_radius, title)
    _legend_outside(ax, title=legend_title)
    return _save(fig, path, provenance, footer)


def plot_envelopes(
    groups: Mapping[str, Logs],
    path: str | os.PathLike,
    *,
    max_radius: float,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> Path:
    """The upper envelope (best model at every radius) of each group on one axes: groups are methods, or
    values of an ablated training option (Figures 4-6). ``styles`` overrides a group's plot arguments."""
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for (name, logs), style in zip(groups.items(), curve_styles(len(groups)), strict=True):
        _draw_curve(ax, logs, max_radius, {**style, **dict((styles or {}).get(name, {}))}, name, band=False)
    _axes_style(ax, max_radius, title)
    _legend_outside(ax)
    return _save(fig, path, provenance, footer)


def plot_ablation(
    panels: Mapping[str, Logs],
    path: str | os.PathLike,
    *,
    parameter: str,
    max_radius: float,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """One panel per fixed setting (e.g. per sigma), one curve per value of the ablated ``parameter``
    (m_train, eps or training method: Salman et al. Figures 4-6). Panel logs are keyed by the value's label."""
    if not panels:
        raise ValueError("no panels to plot")
    fig = Figure(figsize=(5.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, logs) in zip(axes, panels.items(), strict=True):
        for (value, df), style in zip(logs.items(), curve_styles(len(logs)), strict=True):
            _draw_curve(ax, {value: df}, max_radius, style, f"{value}", band=False)
        _axes_style(ax, max_radius, panel)
        _legend_outside(ax, title=parameter)
    return _save(fig, path, provenance)


def plot_certified_and_empirical(
    certified: Mapping[str, tuple[np.ndarray, np.ndarray]],
    empirical: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    max_radius: float,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> Path:
    """Certified curves (thick; pass the step vertices of :func:`step_curve` for the exact curve) and
    empirical curves (thin, with markers at the attacked eps): SmoothAdv Figures 3, 7 and 8 and the
    certified-and-empirical comparison of SmoothAdv with Cohen et al. Each curve is
    ``label -> (radii or eps, accuracy)``; every curve has its own colour and line style."""
    fig = Figure(figsize=(7.8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    styles = iter(curve_styles(len(certified) + len(empirical)))
    for name, (x, y) in certified.items():
        ax.plot(x, y, label=name, linewidth=2.2, **next(styles))
    for name, (x, y) in empirical.items():
        ax.plot(x, y, label=name, linewidth=1.2, marker="o", markersize=3.5, **next(styles))
    _axes_style(ax, max_radius, title)
    ax.set_xlabel("ℓ2 radius (certified) or attack budget eps (empirical)")
    ax.set_ylabel("accuracy")
    _legend_outside(ax)
    return _save(fig, path, provenance, footer)


# -- the figures of a run -------------------------------------------------------------------------------------

# The figures a run can have; each is written only where the run has something to show in it, and
# paper_vs_run_<paper>_<table> once per paper table the run has cells of.
RUN_FIGURES = (
    "certified_accuracy",
    "envelopes",
    "per_sigma",
    "representative",
    "ablation_m_train",
    "ablation_eps",
    "ablation_method",
)
PAPER_VS_RUN = "paper_vs_run"
MAX_CURVES = 12
MAX_PER_PANEL = 6
# Figures 4-6: the envelope over all other hyper-parameters, one curve per value of the training option.
ABLATIONS = {"m_train": "num_noise_vec", "eps": "eps"}
# Figure 4: SmoothAdv against the vanilla-PGD baselines and Cohen et al.
BASELINES = ("gaussian", "smoothadv", "vanilla PGD", "vanilla PGD + noise")
METRIC_LABELS = {
    "certified_accuracy": "certified accuracy",
    "clean_accuracy": "clean accuracy (model chosen at r)",
    "abstention_rate": "abstention rate",
    "linf_certified_accuracy": "ℓ∞ certified accuracy",
    "linf_clean_accuracy": "ℓ∞ clean accuracy",
}
METRIC_MARKERS = ("o", "s", "^", "v", "P")


@dataclass(frozen=True)
class RunFacts:
    """What the figures say about the run: its data set and its certification settings (config ``certify``)."""

    dataset: str
    certify: Mapping[str, Any]

    @property
    def procedure(self) -> str:
        return procedure_caption(self.certify)

    def reach(self, sigma: float) -> float | None:
        """CERTIFY's largest certifiable radius at ``sigma``; None for the sequential procedure (grid radii)."""
        if self.certify["procedure"] != "cohen":
            return None
        return max_certifiable_radius(sigma, int(self.certify["n"]), float(self.certify["alpha"]))


def _footer(certifications: Sequence[Any], facts: RunFacts, extra: str = "") -> str:
    images = sorted({len(c.log) for c in certifications})
    count = f"{images[0]}" if len(images) == 1 else f"{images[0]}-{images[-1]}"
    models = len({c.model.id for c in certifications})
    return (
        f"{len(certifications)} certification logs of {models} models, {count} images each; {facts.procedure}."
        + (f" {extra}" if extra else "")
    )


def _panel_grid(
    rows: int, columns: int, width: float = 5.0, height: float = 3.3
) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=False)


def _legend_below(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="x-small", ncols=1, frameon=False)


def plot_envelope_panels(
    groups: Mapping[str, Logs],
    paper: pd.DataFrame,
    facts: RunFacts,
    sigmas: Mapping[str, float],
    path: str | os.PathLike,
    *,
    max_radius: float,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> dict[str, pd.DataFrame]:
    """One panel per method group: the run's envelope over the group's models with its Clopper-Pearson band,
    the paper's published envelope points of the group (Salman et al. Tables 1-2) and the largest radius
    certifiable at the group's largest sigma (``sigmas``). Returns the paper points drawn, by group."""
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = _panel_grid(rows, columns)
    drawn = {}
    for ax, (group, logs) in zip(axes.flat, groups.items(), strict=False):
        style = curve_styles(1)[0]
        _draw_curve(
            ax,
            logs,
            max_radius,
            style,
            f"this run: envelope of {len(logs)} logs" if len(logs) > 1 else "this run: its one log",
            band=True,
        )
        method, setting = _PAPER_GROUPS.get(group, (None, None))
        points = (
            paper_points(paper, dataset=facts.dataset, method=method, setting=setting, sigma=None)
            if method
            else paper.iloc[:0]
        )
        _draw_paper(ax, points, style["color"], f"paper: {_tables(points)}")
        drawn[group] = points
        _mark_reach(ax, facts.reach(sigmas[group]), sigmas[group])
        _axes_style(ax, max_radius, group)
        _legend_below(ax)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_axis_off()
    _save(fig, path, provenance, footer)
    return drawn


def plot_per_sigma_panels(
    cells: Mapping[tuple[str, float], Sequence[Any]],
    paper: pd.DataFrame,
    facts: RunFacts,
    path: str | os.PathLike,
    *,
    max_radius: float,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> dict[tuple[str, float], dict[str, pd.DataFrame]]:
    """Small multiples, one panel per (method group, sigma) the run certified, by group then sigma, three to a
    row: the group's models certified at that sigma (the :data:`MAX_PER_PANEL` with the highest ACR), each
    with its Clopper-Pearson band and, in its colour, the paper's published points for that model (its
    per-model table row), and the largest radius certifiable at that sigma. Returns the paper points drawn,
    by panel and curve."""
    groups = list(dict.fromkeys(g for g, _ in cells))
    panels = sorted((k for k in cells if cells[k]), key=lambda k: (groups.index(k[0]), k[1]))
    columns = min(3, len(panels))
    fig, axes = _panel_grid(-(-len(panels) // columns), columns, width=4.6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    drawn: dict[tuple[str, float], dict[str, pd.DataFrame]] = {}
    for ax, (group, sigma) in zip(axes.flat, panels, strict=False):
        chosen = sorted(cells[(group, sigma)], key=lambda c: -average_certified_radius(c.log))
        shown = chosen[:MAX_PER_PANEL]
        drawn[(group, sigma)] = {}
        for c, style in zip(shown, curve_styles(len(shown)), strict=True):
            _draw_curve(ax, {c.name: c.log}, max_radius, style, c.model.id, band=True)
            points = model_paper_points(c, paper, facts.dataset)
            _draw_paper(ax, points, style["color"], f"paper ({_tables(points)})")
            drawn[(group, sigma)][c.name] = points
        _mark_reach(ax, facts.reach(sigma))
        more = f", best {len(shown)} of {len(chosen)} by ACR" if len(chosen) > len(shown) else ""
        _axes_style(ax, max_radius, f"{group}, σ = {format_value(sigma)}{more}")
        _legend_below(ax)
    _save(fig, path, provenance, footer)
    return drawn


def model_paper_points(certification: Any, paper: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The published points of one model: its rows in the papers' per-model tables (a model trained from
    scratch and certified at its own sigma; the method decides the rows, as for the scorecard)."""
    model = certification.model
    frames = [paper_points(paper, dataset=dataset, method="", setting="", sigma=None).iloc[:0]]
    if model.from_scratch and certification.sigma == model.train["sigma"]:
        frames += [
            paper_points(
                paper, dataset=dataset, method=row.method, setting=row.setting, sigma=certification.sigma
            )
            for row in get_method(model.train["method"]).paper_rows(dataset, model.train)
        ]
    points = pd.concat(frames, ignore_index=True).drop_duplicates(["radius", "value"])
    return points.sort_values("radius", kind="stable").reset_index(drop=True)


def plot_paper_vs_run(
    cells: pd.DataFrame,
    path: str | os.PathLike,
    *,
    images: int,
    title: str,
    provenance: Mapping[str, Any] | None = None,
    footer: str | None = None,
) -> pd.DataFrame:
    """Each cell of one paper table that the run has: x the paper's value, y the run's with its 95%
    Clopper-Pearson interval over ``images`` (error bars), the diagonal where they agree; one marker and
    colour per metric; cells at radii beyond what the run can certify (``beyond_reach``) hollow. ``cells``
    has ``metric, paper_value, run_value, beyond_reach``. Returns the points drawn (with ``low, high``)."""
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="run = paper")
    low, high = accuracy_band(cells["run_value"].to_numpy(dtype=float), images)
    cells = cells.assign(low=low, high=high)
    metrics = list(dict.fromkeys(cells["metric"]))
    for k, (metric, style) in enumerate(zip(metrics, curve_styles(len(metrics)), strict=True)):
        part = cells[cells["metric"].eq(metric)]
        for beyond, fill in ((False, style["color"]), (True, "none")):
            some = part[part["beyond_reach"].eq(beyond)]
            if not len(some):
                continue
            y = some["run_value"].to_numpy(dtype=float)
            ax.errorbar(
                some["paper_value"],
                y,
                yerr=[y - some["low"], some["high"] - y],
                fmt=METRIC_MARKERS[k % len(METRIC_MARKERS)],
                color=style["color"],
                markerfacecolor=fill,
                markersize=5,
                elinewidth=0.8,
                capsize=2,
                label=METRIC_LABELS.get(metric, metric) + (" (beyond the run's reach)" if beyond else ""),
            )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("paper")
    ax.set_ylabel("this run (95% Clopper-Pearson)")
    _percent_axes(ax, x=True)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize="medium")
    _legend_outside(ax)
    _save(fig, path, provenance, footer)
    return cells


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def paper_vs_run_cells(
    certifications: Sequence[Any], paper: pd.DataFrame, facts: RunFacts
) -> dict[tuple[str, str], pd.DataFrame]:
    """The scorecard's cells that the run has, per ``(paper, table)``, for the rates it can put an interval
    on (ACR, in radius units, is left to the scorecard), each marked ``beyond_reach`` where its radius exceeds
    what CERTIFY can certify at the cell's sigma (an envelope's: the run's largest)."""
    acr = facts.certify["procedure"] == "cohen"
    values = paper_values(certifications, facts.dataset, acr=acr)
    if not len(values):
        return {}
    card = scorecard(paper[paper["dataset"].eq(facts.dataset)], values)
    card = card[card["run_value"].notna() & card["metric"].isin(list(METRIC_LABELS))]
    largest = max(c.sigma for c in certifications)

    def beyond(row: pd.Series) -> bool:
        reach = facts.reach(float(row["sigma"]) if row["sigma"] else largest)
        radius = float(row["radius"]) if row["radius"] else 0.0
        if row["metric"].startswith("linf"):
            return False  # an l-inf radius; its l2 radius is the paper's evaluation radius
        return reach is not None and radius > reach

    card = card.assign(beyond_reach=[beyond(r) for _, r in card.iterrows()]) if len(card) else card
    return {key: part for key, part in card.groupby(["paper", "table"], sort=False)}


def write_figures(
    certifications: Sequence[Any],
    out: str | os.PathLike,
    *,
    max_radius: float,
    provenance: Mapping[str, Any],
    dataset: str,
    certify: Mapping[str, Any],
    paper: pd.DataFrame | None = None,
) -> list[Path]:
    """Write under ``out`` the figures of a run's certifications
    (:class:`rsmooth.analysis.results.Certification`) that have something to show, and return them:
    the models with the highest ACR; the envelope per method group and the models per (group, sigma) as small
    multiples beside the papers' published points; one representative SmoothAdv model per sigma (SmoothAdv
    Figure 1); the ablations over m_train, eps and training method (Figures 4-6) where the run has two
    values or more; and a paper-vs-run scatter per paper table the run has cells of. ``certify`` is the
    loaded config's ``certify`` section (``rsmooth.pipeline.load_config``: N, alpha, procedure, precision);
    ``paper`` the published numbers (default: the shipped ones)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if not certifications:
        return written
    facts = RunFacts(dataset, dict(certify))
    paper = load_paper_numbers() if paper is None else paper
    plot = {"max_radius": max_radius, "provenance": provenance}
    footer = _footer(certifications, facts)
    band = "Shaded: 95% Clopper-Pearson band over the images; dotted vertical: the largest radius CERTIFY can give."

    best = sorted(certifications, key=lambda c: average_certified_radius(c.log), reverse=True)[:MAX_CURVES]
    title = (
        "every model" if len(best) == len(certifications) else f"the {len(best)} models with the highest ACR"
    )
    written.append(
        plot_certified_accuracy(
            {c.name: c.log for c in best}, out / "certified_accuracy.png", title=title, footer=footer, **plot
        )
    )
    groups = by_group(certifications)
    group_sigma = {g: max(c.sigma for c in certifications if method_group(c.model) == g) for g in groups}
    plot_envelope_panels(
        groups, paper, facts, group_sigma, out / "envelopes.png", footer=f"{footer} {band}", **plot
    )
    written.append(out / "envelopes.png")

    cells: dict[tuple[str, float], list[Any]] = defaultdict(list)
    smoothadv: dict[float, dict[str, Any]] = defaultdict(dict)  # sigma -> name -> certification
    for c in certifications:
        cells[(method_group(c.model), c.sigma)].append(c)
        if c.model.train["method"] == "smoothadv":
            smoothadv[c.sigma][c.name] = c
    plot_per_sigma_panels(cells, paper, facts, out / "per_sigma.png", footer=f"{footer} {band}", **plot)
    written.append(out / "per_sigma.png")

    if smoothadv:
        chosen = representative_models(
            {s: {n: c.log for n, c in by_name.items()} for s, by_name in smoothadv.items()}
        )
        curves = {
            f"σ = {format_value(s)}: {smoothadv[s][name].model.id}": smoothadv[s][name].log
            for s, name in sorted(chosen.items())
        }
        written.append(
            plot_certified_accuracy(
                curves,
                out / "representative.png",
                title="One SmoothAdv model per sigma (highest ACR)",
                footer=footer,
                **plot,
            )
        )

    for label, option in ABLATIONS.items():
        ablation: dict[str, Logs] = defaultdict(dict)
        for c in certifications:
            if c.model.train["method"] == "smoothadv" and c.model.from_scratch:
                ablation[f"{label} = {c.model.train[option]}"][c.name] = c.log
        if len(ablation) > 1:
            written.append(
                plot_envelopes(
                    dict(sorted(ablation.items())),
                    out / f"ablation_{label}.png",
                    title=f"SmoothAdv envelope by {label}",
                    footer=footer,
                    **plot,
                )
            )
    compared = {g: groups[g] for g in BASELINES if g in groups}
    if len(compared) > 1:
        written.append(
            plot_envelopes(
                compared,
                out / "ablation_method.png",
                # Titled for what it holds: Figure 4's vanilla-PGD baselines only where the run has them.
                title="Upper envelopes: " + ", ".join(compared),
                footer=footer,
                **plot,
            )
        )

    images = min(len(c.log) for c in certifications)
    for (paper_name, table), part in paper_vs_run_cells(certifications, paper, facts).items():
        path = out / f"{PAPER_VS_RUN}_{_slug(paper_name)}_{_slug(table)}.png"
        plot_paper_vs_run(
            part,
            path,
            images=images,
            title=f"{paper_name} {table}: {len(part)} cells",
            provenance=provenance,
            footer=footer,
        )
        written.append(path)
    return written


def figure_max_radius(dataset: str, radii: Sequence[float]) -> float:
    """The largest radius drawn: the paper's for the data set, or the largest analysis radius if beyond."""
    return max(plot_max_radius(dataset), *radii)
