"""The one page writer (rsmooth.html_page): interactive tables that work offline, one stylesheet on every
page, the display conventions (percent, readable names, yes/no)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest

from rsmooth.html_page import (
    INTERACTIVE_CLASS,
    STYLESHEET,
    display_frame,
    interactive_table,
    page,
    readable_name,
)

ROOT = Path(__file__).resolve().parents[1]

# A resource the browser would fetch: <script src=...>, <link href=...>, an ES module import, a CSS import,
# a url(...) in CSS, fetch(...). Links a reader may click (<a href>) are not fetched.
NETWORK = re.compile(
    r"<script[^>]*\bsrc\s*=\s*[\"']?https?:"
    r"|<link[^>]*\bhref\s*=\s*[\"']?https?:"
    r"|\bimport\s*(?:\(|[^;'\"]*\bfrom\s*)\s*[\"']https?:"
    r"|@import\s+(?:url\()?[\"']?https?:"
    r"|url\(\s*[\"']?https?:"
    r"|fetch\(\s*[\"']https?:",
    re.IGNORECASE,
)


def decoded(text: str) -> str:
    """The text with every base64 payload that itables embeds (its JavaScript and CSS) decoded."""
    parts = [text]
    for payload in re.findall(r"[\"']([A-Za-z0-9+/]{1000,}={0,2})[\"']", text):
        parts.append(base64.b64decode(payload).decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "model": ["a", "b", "c"],
            "clean accuracy": [0.6, 0.575, float("nan")],
            "gpu": [True, False, True],
            "max_rss_mb": [100.4, 200.6, 300.2],
        }
    )


def test_interactive_table_embeds_its_library_and_fetches_nothing(frame):
    html = page("t", interactive_table(display_frame(frame), "a caption", table_id="t1"))
    everything = decoded(html)
    assert len(everything) > 2 * len(html) * 0.6, "the DataTables bundle is embedded (base64)"
    assert "DataTable" in everything
    assert not NETWORK.findall(everything), NETWORK.findall(everything)[:5]
    assert 'id="t1"' in html and "a caption" in html and INTERACTIVE_CLASS in html
    # A missing number reads as a dash, sorted as missing.
    assert '[\\"\u2013\\", \\"___NaN___\\"]' in html and '[\\"NaN\\"' not in html


def test_the_network_pattern_would_catch_a_connected_table(frame):
    from itables import to_html_datatable

    connected = to_html_datatable(frame, connected=True)
    assert NETWORK.findall(connected)


def test_the_library_is_embedded_once_per_page_and_only_where_needed(frame):
    two = page("t", interactive_table(frame, "x", table_id="a") + interactive_table(frame, "y", table_id="b"))
    one = page("t", interactive_table(frame, "x", table_id="a"))
    assert two.count("injectModule(") == one.count("injectModule(")
    assert "injectModule(" not in page("t", "<p>no table</p>")


def test_display_frame_percent_names_and_yes_no(frame):
    shown = display_frame(
        frame,
        percent=["clean accuracy"],
        names={"clean accuracy": "Clean accuracy (%)"},
        digits={"max_rss_mb": 0},
    )
    assert list(shown.columns) == ["Model", "Clean accuracy (%)", "Gpu", "Max rss mb"]
    assert shown["Clean accuracy (%)"].tolist()[:2] == [60.0, 57.5]
    assert shown["Gpu"].tolist() == ["yes", "no", "yes"]
    assert shown["Max rss mb"].tolist() == [100, 201, 300]
    with pytest.raises(KeyError, match="clean_accuracy"):
        display_frame(frame, percent=["clean_accuracy"])
    assert readable_name("max_rss_mb") == "Max rss mb" and readable_name("GPU-hours") == "GPU-hours"


def test_display_frame_leaves_unknown_counts_blank():
    counts = pd.DataFrame({"images": pd.array([3, None], dtype="Int64")})
    assert display_frame(counts)["Images"].tolist() == ["3", ""]


def test_every_html_writer_goes_through_the_one_page_writer():
    """No module writes a page or a pandas table of its own: documents and pandas' to_html appear only in
    html_page (page, static_table, interactive_table)."""
    own_documents = []
    for path in [*(ROOT / "rsmooth").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        if path.name == "html_page.py":
            continue
        text = path.read_text()
        if re.search(r"<html|<!DOCTYPE", text, re.IGNORECASE):
            own_documents.append(str(path.relative_to(ROOT)))
        if re.search(r"\.to_html\(", text):
            own_documents.append(f"{path.relative_to(ROOT)} (pandas to_html)")
    assert own_documents == []


def test_pages_of_every_writer_carry_the_one_stylesheet(tmp_path, frame):
    from rsmooth.analysis.tables import Table, to_html, write_html_page
    from rsmooth.pipeline import load_config
    from rsmooth.plan import plan_config

    written = write_html_page(tmp_path / "p.html", "Title", interactive_table(frame, "c", table_id="x"))
    table = Table(pd.DataFrame({"r = 0.5": [0.6]}, index=["m"]), percent=True, digits=1)
    config = load_config(ROOT / "config" / "demo.yaml")
    for html in (written.read_text(), to_html(table), plan_config(config).html()):
        assert html.startswith("<!DOCTYPE html>") and html.count(f"<style>{STYLESHEET}</style>") == 1
    assert ">60.0<" in to_html(table)
