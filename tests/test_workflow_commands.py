"""The shell commands the workflow renders for the presets' jobs are the recorded ones.

Snakemake reruns a finished job when its command's parameters change (rerun trigger `params`), so a refactor
of the rules or of the config loading must render every job's command exactly as before: otherwise an
existing results/ tree would be recomputed. tests/data/commands/<variant>.txt.gz holds the sorted
``rule<TAB>command`` lines of a dry run (``snakemake -n -p``) of each variant, recorded before the
one-config refactor (issue 19); the local report rules' lines (aggregate, figures, empirical, plan, runtimes)
were re-recorded when issue 20 made them take their script as an input and the run-time page gained its plan
figure (local jobs of seconds). A deliberate change of the presets or of a command regenerates them:

    PYTHONPATH=$PWD python tests/test_workflow_commands.py
"""

from __future__ import annotations

import difflib
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SNAPSHOTS = ROOT / "tests" / "data" / "commands"

# Variant -> config files (relative to the repository root). The *_attacks and *_options overrides name
# explicit attack targets: the envelope's attacks only appear in a DAG once its checkpoint has run.
VARIANTS = {
    "paper": ["config/config.yaml"],
    "paper_attacks": ["config/config.yaml", "tests/data/commands/paper_attacks.yaml"],
    "demo": ["config/demo.yaml"],
    "demo_attacks": ["config/demo.yaml", "tests/data/commands/demo_attacks.yaml"],
    "demo_options": ["config/demo.yaml", "tests/data/commands/demo_options.yaml"],
    "imagenet": ["config/imagenet.yaml"],
    "imagenet_smoothmix": ["config/imagenet_smoothmix.yaml"],
    "mnist": ["config/mnist.yaml"],
}


def rendered_commands(configfiles: list[str], workdir: Path) -> list[str]:
    """``rule<TAB>command`` of every job with a shell command in a dry run, sorted; the scripts' directory
    (absolute, or relative to the working directory for the report rules) is written ``<scripts>`` so that the
    lines do not depend on the checkout's path."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "-n", "-p", "--directory",
         str(workdir), "--configfile", *(str(ROOT / f) for f in configfiles)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    lines, rule = [], None
    for line in output.splitlines():
        if match := re.match(r"^(?:rule|localrule|checkpoint) (\w+):$", line):
            rule = match.group(1)
        elif line.startswith("Shell command: ") and rule is not None:
            command = line.removeprefix("Shell command: ")
            if command != "None":
                # The relative form first: the absolute path can be the tail of the relative one.
                for scripts in (os.path.relpath(ROOT / "scripts", workdir.resolve()), str(ROOT / "scripts")):
                    command = command.replace(scripts, "<scripts>")
                lines.append(f"{rule}\t{command}")
            rule = None
    return sorted(lines)


def snapshot_path(variant: str) -> Path:
    return SNAPSHOTS / f"{variant}.txt.gz"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_job_commands_are_the_recorded_ones(variant, tmp_path):
    recorded = gzip.decompress(snapshot_path(variant).read_bytes()).decode().splitlines()
    rendered = rendered_commands(VARIANTS[variant], tmp_path)
    if rendered != recorded:
        diff = list(difflib.unified_diff(recorded, rendered, "recorded", "rendered", lineterm="", n=0))
        pytest.fail(f"{variant}: {len(diff)} diff lines; the first 40:\n" + "\n".join(diff[:40]))


def write_snapshots(workdir: Path) -> None:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for variant, files in VARIANTS.items():
        lines = rendered_commands(files, workdir / variant)
        # mtime 0: the same commands give the same bytes, so git sees no change.
        snapshot_path(variant).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
        print(f"{snapshot_path(variant).relative_to(ROOT)}: {len(lines)} commands")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_snapshots(Path(tmp))
