"""The one HTML page writer: every HTML page rsmooth writes (the report's tables, scorecard, cells, configuration
and audit pages, the cost plan, the run times) is :func:`page`'s skeleton around its own body, with the one
:data:`STYLESHEET`. A change to how the report looks (interactive tables, units, column names) is made here
once and reaches every page.

Callers build the body (headings, tables, lists) from escaped text (:func:`escape`); :func:`page` adds the
document around it: the title, the stylesheet, optionally the title as ``<h1>`` heading and a provenance
footer. Standard library only: the plan and the analysis jobs import it without torch or pandas.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsmooth.io import atomic_open

# Rules for plain elements, so that pandas' tables (class "dataframe") and the plan's look like the report's
# own (class "rsmooth"); the `border` attribute pandas writes is overridden by the cell rules.
STYLESHEET = (
    "body{font-family:sans-serif}"
    "table{border-collapse:collapse;font-size:0.9em;border:none}"
    "th,td{padding:0.25em 0.6em;border:none;border-bottom:1px solid #ccc;text-align:right}"
    "th[scope=row]{text-align:left}td.best{font-weight:bold}"
    ".note{color:#666;font-size:0.85em}footer{font-size:0.8em;color:#555}"
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


__all__ = ["STYLESHEET", "escape", "page", "write_page"]
