"""The papers' tables, built from CERTIFY logs, and their CSV, Markdown, LaTeX and HTML renderings.

A builder returns a :class:`Table`: the numbers to show, which cells are the best of their column, optional
notes shown before a value (the clean accuracy of an envelope cell, as Salman et al. print it) and the tidy
frame that the CSV holds for users' own analysis. Renderers mark best cells in each format's own way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rsmooth.analysis.grids import input_dim, linf_radius
from rsmooth.analysis.metrics import (
    Logs,
    abstention_rate,
    accuracy_grid,
    average_certified_radius,
    best_per_radius,
    linf_to_l2,
)
from rsmooth.analysis.provenance import provenance_line
from rsmooth.fastpath import precision_note
from rsmooth.html_page import escape, page, write_page
from rsmooth.io import atomic_open

MISSING = "–"
NO_ACR = "not computable, the sequential procedure certifies grid radii only"


def procedure_caption(certify: Mapping[str, Any]) -> str:
    """Which procedure and alpha produced a table, from the loaded config's ``certify`` section
    (``rsmooth.pipeline.load_config``: every default filled in); a precision other than fp32 is named too (the
    certificate is then one of the reduced-precision network)."""
    alpha = f"alpha = {certify['alpha']:g}"
    note = precision_note(certify["precision"])
    note = f"; {note}" if note else ""
    if certify["procedure"] == "sequential":
        return (
            f"sequential certification at grid radii ({certify['test']} test, n_max = {certify['n']}, "
            f"{alpha}){note}"
        )
    return f"CERTIFY (N0 = {certify['n0']}, N = {certify['n']}, {alpha}){note}"


@dataclass(frozen=True)
class Table:
    """A table to render. ``values`` holds numbers (fractions) or text; ``best`` marks cells to emphasise;
    ``notes`` holds text shown before a value; ``data`` is what the CSV holds (default: ``values``)."""

    values: pd.DataFrame
    best: pd.DataFrame | None = None
    notes: pd.DataFrame | None = None
    caption: str = ""
    digits: int = 2
    percent: bool = False
    data: pd.DataFrame | None = None

    def format_value(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return MISSING
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return f"{float(value) * (100 if self.percent else 1):.{self.digits}f}"
        return str(value)

    def text(self) -> pd.DataFrame:
        """Every cell as plain text, without marks or notes."""
        return self.values.map(self.format_value).astype(object)

    def cells(self) -> list[tuple[str, list[tuple[str, str, bool]]]]:
        """Rows as (label, [(note, text, is_best), ...])."""
        text = self.text()
        rows = []
        for i, label in enumerate(self.values.index):
            cells = []
            for j in range(self.values.shape[1]):
                raw = None if self.notes is None else self.notes.iat[i, j]
                note = "" if raw is None or pd.isna(raw) else str(raw)
                best = False if self.best is None else bool(self.best.iat[i, j])
                cells.append((note, text.iat[i, j], best))
            rows.append((str(label), cells))
        return rows


def radius_label(radius: float) -> str:
    """Column label of a radius as the papers print it: ``r = 0.25``, ``r = 1.0``."""
    return f"r = {np.format_float_positional(float(radius), trim='0')}"


def column_best(values: pd.DataFrame, *, higher: bool = True) -> pd.DataFrame:
    """True at every cell equal to its column's best (all tied cells). A column whose best is 0 or NaN
    marks nothing: "best of all zeros" carries no information."""
    numbers = values.apply(pd.to_numeric, errors="coerce").astype(float)
    target = numbers.max() if higher else numbers.min()
    marked = numbers.eq(target, axis=1) & (target > 0)
    return marked.fillna(False).astype(bool)


def _radii(radii: ArrayLike) -> np.ndarray:
    return np.atleast_1d(np.asarray(radii, dtype=np.float64))


# ------------------------------------------------------------------------------------------------ builders


def model_table(
    logs: Logs, radii: ArrayLike, *, caption: str = "", digits: int = 2, percent: bool = False
) -> Table:
    """One row per model, one column per radius, certified accuracy; the best entry per column marked
    (Cohen et al.'s ``vary_noise`` tables, Salman et al. Tables 6-15). ``percent``: shown in percent."""
    radii = _radii(radii)
    grid = accuracy_grid(logs, radii)
    values = grid.set_axis([radius_label(r) for r in radii], axis=1)
    values.index.name = "model"
    best = column_best(values)
    data = (
        grid.rename_axis(index="model", columns="radius").stack().rename("certified_accuracy").reset_index()
    )
    data["best"] = best.to_numpy().ravel()
    return Table(values, best=best, caption=caption, digits=digits, percent=percent, data=data)


def envelope_table(
    groups: Mapping[str, Logs],
    radii: ArrayLike,
    *,
    caption: str = "",
    digits: int = 2,
    show_clean: bool = True,
    percent: bool = False,
) -> Table:
    """One row per group of models (e.g. a method, or a method with pre-training): at each radius the best
    model's certified accuracy, with its clean accuracy in parentheses before it (Salman et al. Tables 1-2
    and 16-17). The best group per column is marked. ``percent``: both shown in percent."""
    radii = _radii(radii)
    frames = []
    for name, logs in groups.items():
        frame = best_per_radius(logs, radii)
        frame.insert(0, "group", name)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    labels = [radius_label(r) for r in radii]
    values = data.pivot(index="group", columns="radius", values="certified_accuracy").reindex(list(groups))
    values = values.set_axis(labels, axis=1)
    values.index.name = None
    notes = None
    if show_clean:
        clean = data.pivot(index="group", columns="radius", values="clean_accuracy").reindex(list(groups))
        scale = 100 if percent else 1
        notes = clean.set_axis(labels, axis=1).map(lambda v: f"({v * scale:.{digits}f})")
    return Table(
        values,
        best=column_best(values),
        notes=notes,
        caption=caption,
        digits=digits,
        percent=percent,
        data=data,
    )


def per_sigma_envelope_table(
    logs_by_sigma: Mapping[float, Logs],
    radii: ArrayLike,
    *,
    caption: str = "",
    digits: int = 2,
    percent: bool = False,
) -> Table:
    """The envelope over the models of each noise level: one row per sigma (Salman et al. Figure 1, middle)."""
    # repr-exact labels: with "{:.2f}" sigma 0.12 and 0.125 would share a label and one row would vanish.
    groups = {f"σ = {float(sigma)!r}": logs for sigma, logs in logs_by_sigma.items()}
    return envelope_table(groups, radii, caption=caption, digits=digits, percent=percent)


def abstention_table(
    groups: Mapping[str, Logs], radii: ArrayLike, *, caption: str = "", digits: int = 1
) -> Table:
    """For each group, the abstention rate (percent) of the envelope's best model at each radius
    (Salman et al. Table 4)."""
    radii = _radii(radii)
    frames = []
    for name, logs in groups.items():
        frame = best_per_radius(logs, radii)
        frame.insert(0, "group", name)
        frame["abstention_rate"] = [abstention_rate(logs[m]) for m in frame["model"]]
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    values = data.pivot(index="group", columns="radius", values="abstention_rate").reindex(list(groups))
    values = values.set_axis([radius_label(r) for r in radii], axis=1)
    values.index.name = None
    return Table(values, caption=caption, digits=digits, percent=True, data=data)


def linf_table(
    groups: Mapping[str, Logs],
    dataset: str,
    *,
    eps: float | None = None,
    l2_radius: float | None = None,
    caption: str = "",
    digits: int = 1,
) -> Table:
    """l-inf certified accuracy at ``eps`` (2/255 on CIFAR-10, 1/255 on ImageNet by default) implied by the
    l2 certificate at ``eps * sqrt(d)``, and the standard (clean) accuracy of the model chosen there
    (Salman et al. Tables 3 and 5). Pass ``l2_radius`` to evaluate at another l2 radius, e.g. the paper's
    rounded ones in ``grids.PAPER_LINF_L2_RADIUS``."""
    eps = linf_radius(dataset) if eps is None else eps
    radius = float(linf_to_l2(eps, input_dim(dataset))) if l2_radius is None else float(l2_radius)
    frames = []
    for name, logs in groups.items():
        frame = best_per_radius(logs, [radius])
        frame.insert(0, "group", name)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True).rename(columns={"radius": "l2_radius"})
    data.insert(1, "linf_radius", eps)
    eps_text = f"{eps * 255:g}/255"
    values = pd.DataFrame(
        {
            f"ℓ∞ acc. at {eps_text}": data["certified_accuracy"].to_numpy(),
            "standard acc.": data["clean_accuracy"].to_numpy(),
        },
        index=list(groups),
    )
    best = column_best(values)
    best.iloc[:, 1] = False  # only the certified column is a contest
    caption = caption or f"ℓ∞ radius {eps_text} via the ℓ2 certificate at r = {radius:.4g} ({dataset})"
    return Table(values, best=best, caption=caption, digits=digits, percent=True, data=data)


def acr_table(logs: Logs, radii: ArrayLike, *, caption: str = "", digits: int = 3, acr: bool = True) -> Table:
    """One row per model: ACR, then certified accuracy at each radius (as in SmoothMix's tables); the best
    per column marked. Accuracies are shown in percent with one decimal, ACR with ``digits`` decimals.

    ``acr=False`` (logs of the sequential procedure, whose radii are grid radii, not maximal ones): the ACR
    column shows the missing mark and the caption says why, rather than a mean of grid radii."""
    radii = _radii(radii)
    grid = accuracy_grid(logs, radii)
    if not acr:
        acrs = pd.Series(np.nan, index=list(logs), dtype=float)
        caption = f"{caption} (ACR: {NO_ACR})" if caption else f"ACR: {NO_ACR}"
    else:
        acrs = pd.Series({name: average_certified_radius(df) for name, df in logs.items()})
    values = grid.set_axis([radius_label(r) for r in radii], axis=1)
    best = column_best(values)
    text = values.map(lambda v: f"{v * 100:.1f}").astype(object)
    text.insert(0, "ACR", acrs.map(lambda v: MISSING if np.isnan(v) else f"{v:.{digits}f}"))
    best.insert(0, "ACR", column_best(acrs.to_frame()).iloc[:, 0])
    text.index.name = "model"
    data = (
        grid.rename_axis(index="model", columns="radius").stack().rename("certified_accuracy").reset_index()
    )
    data = data.merge(acrs.rename("acr").rename_axis("model").reset_index(), on="model")
    return Table(text, best=best, caption=caption, digits=digits, data=data)


# ------------------------------------------------------------------------------------------------ renderers


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table, provenance: Mapping[str, Any] | None = None) -> str:
    """GitHub-flavoured Markdown; best cells in bold, notes before the value, provenance as an HTML comment."""
    lines = []
    if table.caption:
        lines += [f"**{_markdown_escape(table.caption)}**", ""]
    corner = _markdown_escape(str(table.values.index.name or ""))
    header = [corner] + [_markdown_escape(str(c)) for c in table.values.columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| --- |" + " ---: |" * table.values.shape[1])
    for label, cells in table.cells():
        out = []
        for note, text, best in cells:
            cell = f"**{text}**" if best else text
            out.append(_markdown_escape(f"{note} {cell}" if note else cell))
        lines.append("| " + " | ".join([_markdown_escape(label), *out]) + " |")
    if provenance is not None:
        lines += ["", f"<!-- rsmooth provenance: {provenance_line(provenance).replace('--', '- -')} -->"]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "σ": r"$\sigma$",
    "ε": r"$\epsilon$",
    "η": r"$\eta$",
    "α": r"$\alpha$",
    "ℓ": r"$\ell$",
    "∞": r"$\infty$",
    "≥": r"$\geq$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters and write the Greek letters used in labels as math."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: Table, provenance: Mapping[str, Any] | None = None) -> str:
    """A booktabs ``tabular`` (in a ``table`` float when there is a caption); best cells in ``\\textbf``,
    notes as a superscript before the value as in Salman et al.; provenance as a ``%`` comment."""
    lines = []
    if provenance is not None:
        lines.append(f"% rsmooth provenance: {provenance_line(provenance)}")
    if table.caption:
        lines += [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(table.caption)}}}"]
    lines.append(r"\begin{tabular}{l" + "r" * table.values.shape[1] + "}")
    lines.append(r"\toprule")
    header = [latex_escape(str(table.values.index.name or ""))] + [
        latex_escape(str(c)) for c in table.values.columns
    ]
    lines.append(" & ".join(header) + r" \\")
    lines.append(r"\midrule")
    for label, cells in table.cells():
        out = []
        for note, text, best in cells:
            cell = rf"\textbf{{{latex_escape(text)}}}" if best else latex_escape(text)
            out.append(rf"$^{{{latex_escape(note)}}}${cell}" if note else cell)
        lines.append(" & ".join([latex_escape(label), *out]) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    if table.caption:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_html(table: Table, provenance: Mapping[str, Any] | None = None, *, fragment: bool = False) -> str:
    """An HTML document (or only the ``<table>`` with ``fragment=True``); best cells have class ``best`` and
    are bold; provenance goes in a footer."""
    esc = escape
    parts = ['<table class="rsmooth">']
    if table.caption:
        parts.append(f"<caption>{esc(table.caption)}</caption>")
    corner = esc(str(table.values.index.name or ""))
    parts.append(
        "<thead><tr>"
        + f"<th>{corner}</th>"
        + "".join(f'<th scope="col">{esc(str(c))}</th>' for c in table.values.columns)
        + "</tr></thead>"
    )
    parts.append("<tbody>")
    for label, cells in table.cells():
        row = [f'<th scope="row">{esc(label)}</th>']
        for note, text, best in cells:
            body = (f'<span class="note">{esc(note)}</span> ' if note else "") + esc(text)
            row.append(f'<td class="best"><strong>{body}</strong></td>' if best else f"<td>{body}</td>")
        parts.append("<tr>" + "".join(row) + "</tr>")
    parts.append("</tbody></table>")
    footer = ""
    if provenance is not None:
        items = "".join(
            f"<dt>{esc(str(k))}</dt><dd><code>{esc(_provenance_value(v))}</code></dd>"
            for k, v in provenance.items()
        )
        footer = f'<footer class="provenance"><p>Provenance</p><dl>{items}</dl></footer>'
    body = "\n".join(parts) + ("\n" + footer if footer else "")
    if fragment:
        return body + "\n"
    return page(table.caption or "rsmooth table", body)


def _provenance_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return provenance_line(value) if isinstance(value, Mapping) else str(value)


def to_csv(table: Table, provenance: Mapping[str, Any] | None = None) -> str:
    """The table's tidy data at full precision, after a ``# rsmooth provenance: {...}`` line
    (read it back with ``pandas.read_csv(path, comment="#")``)."""
    data = table.data if table.data is not None else table.values.reset_index()
    header = f"# rsmooth provenance: {provenance_line(provenance)}\n" if provenance is not None else ""
    return header + data.to_csv(index=False, lineterminator="\n")


def write_html_page(
    path: str | os.PathLike, title: str, body: str, provenance: Mapping[str, Any] | None = None
) -> Path:
    """A standalone HTML page of the report: ``title`` as heading, ``body`` (HTML), the provenance in a footer."""
    return write_page(path, title, body, heading=True, provenance=provenance or {})


RENDERERS = {"csv": to_csv, "md": to_markdown, "tex": to_latex, "html": to_html}


def write_table(
    table: Table,
    stem: str | os.PathLike,
    formats: Sequence[str] = ("csv", "md", "tex", "html"),
    provenance: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``<stem>.<format>`` for each format, each atomically; returns the paths written."""
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise ValueError(f"unknown table formats {unknown}; known: {sorted(RENDERERS)}")
    written = []
    for fmt in formats:
        # Not with_suffix: stems such as "sigma_0.25" contain dots.
        path = Path(f"{os.fspath(stem)}.{fmt}")
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write(RENDERERS[fmt](table, provenance))
        written.append(path)
    return written
