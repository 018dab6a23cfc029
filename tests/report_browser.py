"""The report in a real browser: headless Chromium opens ``report.html``, visits every category and
subcategory as a reader clicks through them, opens every result, and checks that each figure and table
renders, that the interactive tables sort and filter, and that the browser logs no error. Used by the demo
test in tests/test_workflow.py (on the shared demo run) and runnable on any report::

    python tests/report_browser.py results/.../report.html --shots /tmp/shots
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from headless_chromium import Browser, BrowserError, child_frames

# The report app (Snakemake's report, React): globals `app`, `categories` (category -> subcategory -> paths)
# and `results` (path -> entry). Navigation goes through the links a reader clicks.
READY = "typeof app !== 'undefined' && typeof categories !== 'undefined' && document.querySelector('nav a') !== null"
LAYOUT = (
    "JSON.stringify(Object.fromEntries(Object.entries(categories).map(([c, s]) => "
    "[c, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.length]))])))"
)
NAV_TEXTS = "[...document.querySelectorAll('nav li a, nav table tbody tr')].map(a => a.textContent.trim())"
NAV_ROWS = "[...document.querySelectorAll('nav table tbody tr')].map(r => r.textContent.trim())"
HOME = "app.setView({navbarMode: 'menu', category: undefined, subcategory: undefined, content: 'metadata'}), true"
IMAGE_SHOWN = (
    "(() => { const img = document.querySelector('img:not(nav img)'); return !!img && img.complete && "
    "img.naturalWidth > 100 && img.getBoundingClientRect().height > 20 ? img.naturalWidth + 'x' + img.naturalHeight : ''; })()"
)
CONTENT_KIND = "app.state.content"


def click_nav(name: str) -> str:
    """JavaScript: click the navigation link that reads ``name``; true when found."""
    return (
        "(() => { const a = [...document.querySelectorAll('nav li a')].find(a => a.textContent.trim() === "
        f"{json.dumps(name)}); if (!a) return false; a.click(); return true; }})()"
    )


def click_result(index: int) -> str:
    """JavaScript: click the view button of the ``index``-th result of the navigation's result list."""
    return (
        f"(() => {{ const row = document.querySelectorAll('nav table tbody tr')[{index}]; "
        "row.querySelector('td:last-child a').click(); return row.textContent.trim(); })()"
    )


# Inside one page of the report (its iframe): what is shown.
PAGE_STATE = """JSON.stringify({
  ready: document.readyState,
  style: [...document.querySelectorAll('style')].map(s => s.textContent).find(t => t.startsWith('body{')) || '',
  tables: [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null)
      .map(t => ({id: t.id, rows: t.querySelectorAll('tbody tr').length, height: t.getBoundingClientRect().height})),
  interactive: [...document.querySelectorAll('.rsmooth-interactive table[id]')].map(t => t.id),
  datatables: [...document.querySelectorAll('.rsmooth-interactive table.dataTable')].map(t => t.id),
  text: document.body.innerText.slice(0, 300),
})"""

# Sort by the first numeric column (else the first), both ways; then filter by the first row's first cell.
SORT_AND_FILTER = """(async (id) => {
  const pause = () => new Promise(r => setTimeout(r, 150));
  const table = document.getElementById(id);
  const box = table.closest('.dt-container');
  const rows = () => [...table.querySelectorAll('tbody tr')].filter(r => !r.querySelector('td.dt-empty'));
  const headers = [...table.querySelectorAll('thead th')];
  let column = headers.findIndex(h => h.classList.contains('dt-type-numeric'));
  const numeric = column >= 0;
  if (column < 0) column = 0;
  const values = () => rows().map(r => r.cells[column].textContent.trim());
  const info = () => (box.querySelector('.dt-info') || {textContent: ''}).textContent;
  // itables sorts on a click on the header's sort icon (data-dt-order="icon-only").
  const sorter = headers[column].querySelector('.dt-column-order') || headers[column];
  sorter.click(); await pause();
  const first = values();
  sorter.click(); await pause();
  const second = values();
  const before = info();
  const term = rows()[0].cells[0].textContent.trim();
  const input = box.querySelector('.dt-search input');
  input.value = term; input.dispatchEvent(new Event('input', {bubbles: true})); await pause();
  const filtered = rows().map(r => r.textContent);
  const after = info();
  input.value = ''; input.dispatchEvent(new Event('input', {bubbles: true})); await pause();
  return JSON.stringify({header: headers[column].textContent.trim(), numeric, first, second, term, filtered,
                         before, after, search: !!input, paging: !!box.querySelector('.dt-paging')});
})"""


def _numbers(texts: list[str]) -> list[float]:
    return [float(t.replace(",", "")) for t in texts if re.fullmatch(r"-?[\d,]+(\.\d+)?", t)]


def check_sort_and_filter(browser: Browser, context: int, table: str) -> dict[str, Any]:
    state = json.loads(browser.evaluate(f"({SORT_AND_FILTER})({json.dumps(table)})", context))
    assert state["search"] and state["paging"], (table, state)
    first, second = state["first"], state["second"]
    if state["numeric"]:
        up, down = _numbers(first), _numbers(second)
        assert up == sorted(up) and down == sorted(down, reverse=True), (
            table,
            state["header"],
            first,
            second,
        )
    elif len(set(first)) > 1:
        assert first != second, (table, state["header"], first)
    term = state["term"].lower()
    assert state["filtered"] and all(term in row.lower() for row in state["filtered"]), (table, state)
    return state


def check_report(report: Path, chromium: str, shots: Path | None = None) -> dict[str, Any]:
    """Visit every category, subcategory and result of ``report``; returns what was seen. Raises
    AssertionError on anything that does not render, and on any error the browser logged."""
    seen: dict[str, Any] = {"results": [], "sorted_and_filtered": [], "screenshots": []}
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    def shot(browser: Browser, name: str) -> None:
        if shots:
            seen["screenshots"].append(str(browser.screenshot(shots / f"{name}.png")))

    with Browser(chromium) as browser:
        browser.open(report.resolve().as_uri())
        browser.wait_for(READY)
        layout = json.loads(browser.evaluate(LAYOUT))
        seen["layout"] = layout
        shot(browser, "00-home")
        for c, (category, subcategories) in enumerate(sorted(layout.items())):
            # Two or more subcategories: the app then lists them first, and never reuses a stale result
            # list (see the comment at the top of workflow/rules/aggregate.smk).
            assert len(subcategories) >= 2, (category, subcategories)
            for s, (subcategory, count) in enumerate(sorted(subcategories.items())):
                browser.evaluate(HOME)
                assert browser.wait_for(click_nav(category)), category
                browser.wait_for(f"{NAV_TEXTS}.includes({json.dumps(subcategory)})")
                assert browser.wait_for(click_nav(subcategory)), (category, subcategory)
                rows = browser.wait_for(
                    f"(() => {{ const r = {NAV_ROWS}; return r.length === {count} ? r : null; }})()"
                )
                for index in range(count):
                    label = browser.evaluate(click_result(index))
                    name = f"{c}{s}{index:02d}-{category}-{subcategory}-{label}"
                    kind = browser.wait_for(
                        f"{CONTENT_KIND} === 'img' || {CONTENT_KIND} === 'html' ? {CONTENT_KIND} : ''"
                    )
                    if kind == "img":
                        size = browser.wait_for(IMAGE_SHOWN)
                        seen["results"].append({"category": category, "result": label, "image": size})
                    else:
                        page = check_page(browser, category, label)
                        seen["results"].append({"category": category, "result": label, **page})
                        for table in page["datatables"]:
                            state = check_sort_and_filter(browser, page["context"], table)
                            seen["sorted_and_filtered"].append((label, table, state["header"]))
                    shot(browser, re.sub(r"[^\w.-]+", "_", name)[:80])
                assert len(rows) == count
        check_intro_links(browser, layout, shot)
        time.sleep(0.5)
        browser.evaluate("1")  # collect the last events
        seen["errors"] = list(browser.errors)
    assert not seen["errors"], seen["errors"]
    return seen


def check_page(browser: Browser, category: str, label: str) -> dict[str, Any]:
    """The HTML page in the content iframe: loaded, with the one stylesheet, every table with rows and
    a height, every interactive table turned into a DataTable."""
    deadline = time.monotonic() + 30
    while True:
        frames = child_frames(browser)
        contexts = browser.frame_contexts()
        ready = [contexts[f] for f in frames if f in contexts]
        if ready:
            try:
                state = json.loads(browser.evaluate(PAGE_STATE, ready[-1]))
            except BrowserError:
                state = {"ready": "gone"}
            if state["ready"] == "complete" and state["datatables"] == state["interactive"]:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"{category} / {label}: the page did not render ({frames}, {contexts})")
        time.sleep(0.2)
    assert state["style"], (label, "not the report's stylesheet")
    assert state["tables"] or "<pre>" in state["text"] or state["text"], (label, state)
    for table in state["tables"]:
        assert table["height"] > 10, (label, table)
    return {**state, "context": ready[-1]}


def check_intro_links(browser: Browser, layout: dict[str, Any], shot) -> None:
    """From a subcategory's list, the intro's link to another category shows that category's own list
    (the stale-list bug of Snakemake's report app with single-subcategory categories)."""
    categories = sorted(layout)
    for here, there in zip(categories, categories[1:] + categories[:1], strict=True):
        browser.evaluate(HOME)
        browser.wait_for(click_nav(here))
        sub = sorted(layout[here])[0]
        browser.wait_for(click_nav(sub))
        link = f"[...document.querySelectorAll('a[href^=\"javascript:app.showCategory\"]')].find(a => decodeURIComponent(a.href).includes({json.dumps(there)}))"
        if not browser.evaluate(f"!!({link})"):
            continue  # the intro links only some categories
        browser.evaluate(f"({link}).click(), true")
        expected = sorted(layout[there])
        shown = browser.wait_for(
            f"(() => {{ const t = {NAV_TEXTS}; return {json.dumps(expected)}.every(s => t.includes(s)) ? t : null; }})()"
        )
        # The category's own list of subcategories, not the previous subcategory's results.
        assert browser.evaluate(NAV_ROWS) == [], (here, there, shown)
        shot(browser, f"intro-{here}-to-{there}".replace(" ", "_"))


def main() -> None:
    from headless_chromium import ensure_chromium

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--shots", type=Path)
    args = parser.parse_args()
    chromium, reason = ensure_chromium()
    if chromium is None:
        sys.exit(reason)
    seen = check_report(args.report, chromium, args.shots)
    print(json.dumps({k: v for k, v in seen.items() if k != "screenshots"}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
