"""The one HTML page writer: every HTML page rsmooth writes (the report's tables, scorecard, cells, configuration
and audit pages, the cost plan, the run times) is :func:`page`'s skeleton around its own body, with the one
:data:`STYLESHEET`. A change to how the report looks (interactive tables, units, column names) is made here
once and reaches every page.

Callers build the body (headings, tables, lists) from escaped text (:func:`escape`); :func:`page` adds the
document around it: the title, the stylesheet, optionally the title as ``<h1>`` heading and a provenance
footer. Long tables go through :func:`interactive_table` (sortable, searchable, paginated); a page holding one
carries the table library once, embedded, so that the page works offline and inside the Snakemake report.
:func:`display_frame` gives every table the same face: percentages with one decimal as the papers print them,
readable column names, "yes"/"no" for booleans. Standard library at import: the plan imports this module
without torch or pandas (pandas and itables are imported by the functions that need them).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsmooth.io import atomic_open

# Marks an interactive table in a page body, so that page() embeds the table library (once per page).
INTERACTIVE_CLASS = "rsmooth-interactive"
# Percentages are shown with one decimal, as the papers print them (60.0, not 0.60).
PERCENT_DIGITS = 1

# Rules for plain elements, so that pandas' tables (class "dataframe") and the plan's look like the report's
# own (class "rsmooth"); the `border` attribute pandas writes is overridden by the cell rules.
STYLESHEET = (
    "body{font-family:sans-serif}"
    "table{border-collapse:collapse;font-size:0.9em;border:none}"
    "th,td{padding:0.25em 0.6em;border:none;border-bottom:1px solid #ccc;text-align:right}"
    "th[scope=row],th:first-child,td:first-child{text-align:left}td.best{font-weight:bold}"
    ".note{color:#666;font-size:0.85em}footer{font-size:0.8em;color:#555}"
    "caption{caption-side:top;text-align:left;padding:0.3em 0;color:#333;font-size:0.95em}"
    "pre{background:#f6f6f6;padding:0.5em;overflow:auto}"
    f".{INTERACTIVE_CLASS}{{margin:0.5em 0 1.5em}}"
    f".{INTERACTIVE_CLASS} table.dataTable{{margin:0;width:auto}}"
    f".{INTERACTIVE_CLASS} td{{text-align:left}}.{INTERACTIVE_CLASS} td.dt-type-numeric{{text-align:right}}"
)


def escape(text: Any) -> str:
    """``text`` (any value, as ``str``) with ``& < > " '`` escaped, for element text and attribute values."""
    return html.escape(str(text))


def page(title: str, body: str, *, heading: bool = False, provenance: Mapping[str, Any] | None = None) -> str:
    """A whole HTML document: ``title`` (plain text) in the head, and as ``<h1>`` when ``heading``; ``body``
    (HTML) as given; ``provenance`` (when not ``None``) as JSON in a footer."""
    parts = [f"<h1>{escape(title)}</h1>"] if heading else []
    parts.append(body.rstrip("\n"))
    if provenance is not None:
        record = escape(json.dumps(dict(provenance), sort_keys=True))
        parts.append(f"<footer><small>provenance: {record}</small></footer>")
    content = "\n".join(parts)
    if INTERACTIVE_CLASS in body:
        content = table_library() + "\n" + content
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLESHEET}</style>\n</head>\n"
        f"<body>\n{content}\n</body>\n</html>\n"
    )


def write_page(
    path: str | os.PathLike,
    title: str,
    body: str,
    *,
    heading: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`page` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(page(title, body, heading=heading, provenance=provenance))
    return path


def table_library() -> str:
    """itables' DataTables bundle (JavaScript and CSS, ~0.7 MB) embedded in the page, as its offline mode
    writes it: no network access, so the tables work inside the self-contained Snakemake report."""
    from itables.javascript import generate_init_offline_itables_html
    from itables.options import dt_bundle

    return generate_init_offline_itables_html(dt_bundle)


def interactive_table(frame: Any, caption: str, *, table_id: str, page_length: int = 25) -> str:
    """``frame`` (a pandas DataFrame, shown as given: pass it through :func:`display_frame` first) as a
    sortable, searchable, paginated table with ``caption`` above it. Without JavaScript the static table
    itables writes beside it is shown. ``table_id`` must be unique within the page."""
    from itables import to_html_datatable

    table = to_html_datatable(
        frame,
        caption=caption,
        table_id=table_id,
        connected=False,
        maxBytes=0,  # never downsample: every row of the results is shown
        showIndex=False,
        pageLength=page_length,
        lengthMenu=[10, 25, 100, -1],
        format_floats_in_python=True,  # 60.0 as written, sorted by the number
        classes="display compact cell-border",
        # Search box, page length and paging on every table, short ones too (itables hides them when the
        # layout is its default and the rows fit on one page; the search box's options make it not so).
        layout={
            "topStart": "pageLength",
            "topEnd": {"search": {"placeholder": "filter rows"}},
            "bottomStart": "info",
            "bottomEnd": "paging",
        },
    )
    # itables writes a missing number as "NaN"; the report writes "–" for it everywhere.
    table = table.replace('[\\"NaN\\", \\"___NaN___\\"]', '[\\"\u2013\\", \\"___NaN___\\"]')
    return f'<div class="{INTERACTIVE_CLASS}">\n{table}\n</div>'


def static_table(frame: Any, caption: str = "") -> str:
    """A short ``frame`` (pandas; pass it through :func:`display_frame` first) as a plain table of the
    report's look, ``caption`` above it, a dash for a missing value."""
    table = frame.to_html(index=False, classes="rsmooth", border=0, na_rep="\u2013", escape=True)
    if caption:
        table = table.replace(">", f"><caption>{escape(caption)}</caption>", 1)
    return table


def readable_name(column: str) -> str:
    """A column name for a reader: ``max_rss_mb`` -> ``Max rss mb``; already readable names are kept."""
    text = str(column).replace("_", " ")
    return text[:1].upper() + text[1:]


def display_frame(
    frame: Any,
    *,
    percent: Sequence[str] = (),
    names: Mapping[str, str] | None = None,
    digits: Mapping[str, int] | None = None,
) -> Any:
    """A copy of ``frame`` (pandas) for display: the ``percent`` columns (fractions) times 100 with one
    decimal; the ``digits`` columns rounded to that many decimals (after the percent scaling); booleans as "yes"/"no"; columns renamed by ``names``, the
    others by :func:`readable_name`. Unknown column names are an error (a renamed column would else stay
    a fraction silently)."""
    import pandas as pd

    names = dict(names or {})
    digits = dict(digits or {})
    unknown = sorted({*percent, *names, *digits} - set(map(str, frame.columns)))
    if unknown:
        raise KeyError(f"columns {unknown} are not in the table; it has {[str(c) for c in frame.columns]}")
    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        if values.dtype == bool or (
            values.dtype == object and values.map(type).eq(bool).all() and len(values)
        ):
            shown[column] = values.map({True: "yes", False: "no"})
        elif str(values.dtype) in ("Int8", "Int16", "Int32", "Int64") and values.isna().any():
            # Counts with unknowns: blank where unknown (JSON has no NA; DataTables still sorts them as numbers).
            shown[column] = pd.Series(
                ["" if pd.isna(v) else str(v) for v in values], index=values.index, dtype=object
            )
    for column in percent:  # rounded to PERCENT_DIGITS unless ``digits`` names the column
        shown[column] = (shown[column].astype(float) * 100).round(digits.get(column, PERCENT_DIGITS))
    for column, places in digits.items():
        rounded = shown[column].astype(float).round(places)
        # Whole numbers without a trailing ".0" (itables formats a float column with one shared format).
        shown[column] = rounded.astype(int) if places == 0 and rounded.notna().all() else rounded
    return shown.rename(columns={c: names.get(str(c), readable_name(c)) for c in shown.columns})


__all__ = [
    "INTERACTIVE_CLASS",
    "STYLESHEET",
    "display_frame",
    "escape",
    "interactive_table",
    "page",
    "readable_name",
    "static_table",
    "table_library",
    "write_page",
]
