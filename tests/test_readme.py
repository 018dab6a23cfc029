"""The README's commands are the ones the suite and CI run, its links and the docs' links lead somewhere, and
the cost figures it and docs/pipeline.md quote are what scripts/plan.py computes. Cheap: no pipeline run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_presets import PRESETS
from test_workflow import DEMO_COMMANDS

from rsmooth.pipeline import load_config
from rsmooth.plan import DEFAULT_THROUGHPUT, plan_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def sections(markdown: str) -> dict[str, str]:
    """Level-2 heading -> the text under it (up to the next level-2 heading)."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def bash_commands(text: str) -> list[str]:
    """The commands of every fenced bash block in text: continuation lines joined, comments and blank lines
    dropped, whitespace normalised."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def ci_commands() -> list[str]:
    """What .ci/run runs, after its shell options and the change to the repository root."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [shlex.join(shlex.split(line, comments=True)) for line in script.splitlines()]
    return [c for c in commands if c and not c.startswith(("set ", "cd "))]


README_SECTIONS = sections(README.read_text())


def test_setup_and_test_blocks_are_what_ci_runs():
    setup = bash_commands(README_SECTIONS["Set up"])
    test = bash_commands(README_SECTIONS["Test"])
    assert setup == ["python -m pip install -r requirements/lock.txt -e ."]
    assert test == ["python -m pytest"]
    assert setup + test == ci_commands()


def test_demo_block_is_what_the_demo_fixture_runs():
    assert bash_commands(README_SECTIONS["Demo"]) == list(DEMO_COMMANDS)


def test_toy_block_writes_a_tested_preset_and_runs_it():
    write, run = bash_commands(README_SECTIONS["Check a preset at toy scale"])
    script, preset, toy = shlex.split(write)[1:]
    assert script == "scripts/toy_config.py" and Path(preset).name in PRESETS
    run = shlex.split(run)
    assert run[0] == "snakemake" and run[run.index("--configfile") + 1] == toy


def test_every_repository_file_a_command_names_exists():
    """Scripts, configs and requirement files named in any bash block of the README or the docs; outputs
    (under results/) and placeholders are not looked up."""
    named = set()
    for page in PAGES:
        for command in bash_commands(page.read_text()):
            named |= {
                word
                for word in shlex.split(command)
                if re.fullmatch(r"(scripts|config|benchmarks|requirements|workflow)/[\w./-]+", word)
            }
    assert named, "no repository file named: the block parser is broken"
    missing = sorted(word for word in named if not (ROOT / word).exists())
    assert not missing, f"README or docs name files that do not exist: {missing}"


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```$", "", markdown, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page):
    text = page.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target.relative_to(ROOT)})")
        elif anchor and target.suffix == ".md" and anchor not in heading_anchors(target.read_text()):
            broken.append(f"{link} (no heading #{anchor} in {target.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", README.read_text()))
    assert linked == {p.name for p in (ROOT / "docs").glob("*.md")}


def plan(preset: str):
    return plan_config(load_config(ROOT / "config" / preset), DEFAULT_THROUGHPUT, name=preset)


def test_cost_figures_are_what_the_plan_computes():
    rows = {}
    for line in (ROOT / "docs" / "pipeline.md").read_text().splitlines():
        if match := re.fullmatch(r"\| `config/([\w.]+)` \| (.+) \|", line):
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    assert set(rows) == set(PRESETS)
    for preset, written in rows.items():
        computed = plan(preset)
        certify = next(r for r in computed.stages if r["stage"] == "certification: CERTIFY")
        # The totals: the last stage's cumulative figures (a stage of the other procedure has None there).
        cohen, sequential = (
            [r[key] for r in computed.stages if r[key] is not None][-1]
            for key in ("cumulative_cohen", "cumulative_sequential")
        )
        figures = [cohen, certify["gpu_hours"], sequential]
        assert written == [f"{x:,.0f}" for x in figures] + [f"{computed.gpu_jobs:,}"], preset
    paper = plan("config.yaml")
    hours = {}
    for row in paper.stages:
        stage = row["stage"].split(":")[0].replace("certification", "certification: CERTIFY")
        if row["stage"] in ("certification: CERTIFY", "attacks (empirical)") or stage in (
            "pre-training",
            "training",
        ):
            hours[stage] = hours.get(stage, 0.0) + row["gpu_hours"]
    split = (
        "{:,.0f} of pre-training, {:,.0f} of training, {:,.0f} of certification and {:,.0f} of the empirical"
    )
    assert split.format(*hours.values()) in " ".join((ROOT / "docs" / "pipeline.md").read_text().split())
    readme = " ".join(README.read_text().split())
    assert f"about {paper.total_gpu_hours:,.0f} GPU-hours" in readme
    assert f"in {paper.gpu_jobs:,} GPU jobs" in readme
