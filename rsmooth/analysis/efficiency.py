"""Efficiency per rule for the report: GPU-hours used, images (and samples) per second, jobs retried.

Read from what a run leaves on disk, without torch:

- Snakemake's benchmark files, ``<benchmarks>/<folder>/<wildcards...>.tsv`` (:func:`read_benchmark`): one per
  job; the wall seconds of a GPU rule's jobs are its GPU-hours (one GPU per job, as the SLURM profile asks).
  Snakemake writes the benchmark of the attempt that succeeded only, so the time of killed attempts is not in
  it (their work is: a resumed job keeps what they did).
- The work logs of the jobs those benchmarks time (:data:`GPU_RULE_FOLDERS`): certification and attack shard
  logs (``rsmooth.logformat``, one row per image, ``time`` its seconds) and training epoch logs
  (``epochs.tsv``, ``time`` the seconds of each epoch). Rates divide the work by these logged seconds, which
  cover every attempt's part of a resumed job and leave out start-up and data loading.
- The SLURM executor plugin's logs, ``<slurm logs>/rule_<rule>/<wildcards>/<jobid>.log``: one file per
  attempt, so a job's attempts beyond its first are its retries. The cause of each is read from the log of
  the attempt before it: slurmstepd's ``*** JOB ... CANCELLED AT ... DUE TO TIME LIMIT ***`` (or
  ``PREEMPTION``), anything else "other". A job rerun on purpose later (a deleted shard) counts as retried
  too: the logs cannot tell the two apart.

A local run has no SLURM logs, an unfinished one lacks some work logs: those give zero retries and blank
(NaN) work, never an error. A benchmark file that is there but cut off or foreign raises
:class:`~rsmooth.errors.LogFormatError` naming it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from rsmooth.errors import LogFormatError, describe_exception
from rsmooth.logformat import read_attack_log, read_certify_log
from rsmooth.plan import significant

# The GPU rules of workflow/rules/*.smk (``gpu=1``) and the folder their benchmark files are in.
GPU_RULE_FOLDERS: dict[str, str] = {
    "pretrain": "pretrain",
    "train_standard_model": "pseudolabels",
    "train": "train",
    "certify": "certify",  # a (model, sigma) in one job
    "certify_shard": "certify",  # one of several jobs of a (model, sigma)
    "certify_cohen": "certify",  # CERTIFY beside a sequential run (certify.cohen_skip)
    "attack": "attack",
    "attack_shard": "attack",
}
GPU_RULES = tuple(GPU_RULE_FOLDERS)
# A benchmark folder's row in the table: one job or one shard of a cell are the same work.
_FOLDER_RULE = {folder: rule for rule, folder in reversed(GPU_RULE_FOLDERS.items())}

COLUMNS = [
    "rule",
    "gpu",
    "jobs",
    "GPU-hours",
    "epochs",
    "images",
    "samples",
    "work seconds",
    "images/s",
    "samples/s",
    "attempts",
    "retries",
    "retries: time limit",
    "retries: preemption",
    "retries: other",
]

_CANCELLED = re.compile(r"CANCELLED AT \S+ DUE TO (TIME LIMIT|PREEMPTION)")
# A job array's task logs (%A_%a.log) lie in the rule's folder itself, one per task: each is its own job.
_ARRAY_TASK_LOG = re.compile(r"^\d+_\d+$")


@dataclass(frozen=True)
class Benchmark:
    """One job's benchmark: its wall seconds and peak resident memory (MB; NaN where Snakemake wrote NA)."""

    seconds: float
    max_rss_mb: float


def read_benchmark(path: str | os.PathLike) -> Benchmark:
    """The last row of a Snakemake benchmark TSV (header ``s h:m:s max_rss ...``, rows of as many fields,
    every line ending in a newline), the row of the job's last repeat."""
    path = Path(path)
    expected = (
        "a Snakemake benchmark file (a tab-separated header starting 's\\th:m:s' and rows of as many fields)"
    )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise LogFormatError(f"{path}: not {expected}: {describe_exception(error)}", path) from None
    if not text.endswith("\n"):
        raise LogFormatError(f"{path}: truncated (the last line has no newline); expected {expected}", path)
    header, *rows = text[:-1].split("\n")
    names = header.split("\t")
    if names[:2] != ["s", "h:m:s"] or not rows:
        raise LogFormatError(f"{path}: not {expected}; got {text[:80]!r}", path)
    fields = rows[-1].split("\t")
    if len(fields) != len(names):
        raise LogFormatError(
            f"{path}: last row has {len(fields)} fields, the header {len(names)}; expected {expected}", path
        )
    values = dict(zip(names, fields, strict=True))
    try:
        seconds = float(values["s"])
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise LogFormatError(f"{path}: column 's' is {values['s']!r}, not a number of seconds", path)
    rss = values.get("max_rss", "NA")
    return Benchmark(seconds, float(rss) if _is_number(rss) else math.nan)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def benchmark_jobs(benchmarks_root: str | os.PathLike) -> dict[str, dict[str, Benchmark]]:
    """Benchmark folder -> job (its wildcards path, ``model/sigma-0.25/shard-3``) -> benchmark; empty when the
    folder does not exist (nothing benchmarked yet)."""
    root = Path(benchmarks_root)
    jobs: dict[str, dict[str, Benchmark]] = {}
    if not root.is_dir():
        return jobs
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root).with_suffix("")
        if len(relative.parts) < 2:
            continue  # not in a rule's folder: not written by a benchmark directive
        jobs.setdefault(relative.parts[0], {})["/".join(relative.parts[1:])] = read_benchmark(path)
    return jobs


# -- retries -------------------------------------------------------------------------------------------------


@dataclass
class Retries:
    """Attempts and retries of one rule's jobs, the retries by the cause of the attempt that ended."""

    attempts: int = 0
    time_limit: int = 0
    preemption: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.time_limit + self.preemption + self.other

    def count(self, cause: str) -> None:
        """One more retry, after an attempt that ended by ``cause`` (:func:`attempt_cause`)."""
        if cause == "time limit":
            self.time_limit += 1
        elif cause == "preemption":
            self.preemption += 1
        else:
            self.other += 1

    def add(self, other: Retries) -> None:
        self.attempts += other.attempts
        self.time_limit += other.time_limit
        self.preemption += other.preemption
        self.other += other.other


def attempt_cause(log: str | os.PathLike) -> str:
    """Why an attempt ended, from its SLURM log: ``"time limit"``, ``"preemption"`` or ``"other"``."""
    text = Path(log).read_bytes().decode("utf-8", "replace")
    match = _CANCELLED.search(text)
    return match.group(1).lower() if match else "other"


def _job_order(log: Path) -> tuple[int, int | str]:
    # SLURM job ids grow, so they order a job's attempts; a name that is not an id goes last.
    return (0, int(log.stem)) if log.stem.isdigit() else (1, log.stem)


def slurm_retries(slurm_logs_root: str | os.PathLike) -> dict[str, Retries]:
    """Rule -> its attempts and retries, from the SLURM executor's logs (``rule_<rule>/<wildcards>/<id>.log``;
    a folder ``group_<name>`` keeps its name). Empty without the folder (a local run)."""
    root = Path(slurm_logs_root)
    by_rule: dict[str, Retries] = {}
    if not root.is_dir():
        return by_rule
    for rule_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = rule_folder.name.removeprefix("rule_")
        retries = by_rule.setdefault(name, Retries())
        jobs: dict[str, list[Path]] = {}
        for log in rule_folder.rglob("*.log"):
            single = log.parent == rule_folder and _ARRAY_TASK_LOG.match(log.stem)
            jobs.setdefault(str(log) if single else str(log.parent), []).append(log)
        for attempts in jobs.values():
            attempts.sort(key=_job_order)
            retries.attempts += len(attempts)
            for ended in attempts[:-1]:
                retries.count(attempt_cause(ended))
    return by_rule


# -- work done -----------------------------------------------------------------------------------------------


class JobWork(NamedTuple):
    """What one job did: epochs trained, images certified/attacked/trained on, samples drawn (``None`` where
    not applicable or not recorded), and the seconds its log gives the work."""

    epochs: int | None
    images: int | None
    samples: int | None
    seconds: float


def _total(amounts: list[int | None]) -> int | None:
    # One job's amount unknown makes the rule's total unknown (not a smaller number that looks right).
    return None if not amounts or None in amounts else sum(amounts)


def work_log(results_root: Path, rule: str, job: str) -> Path | None:
    """The log of the work the benchmarked ``job`` of ``rule`` did (the workflow's layout), or ``None``."""
    logs = {
        "certify": results_root / "certify" / f"{job}.tsv",  # a cell's log, or a shard (job .../shard-K)
        "attack": results_root / "attack" / f"{job}.tsv",
        "train": results_root / "models" / job / "epochs.tsv",
        "pretrain": results_root / "pretrain" / job / "epochs.tsv",
        "train_standard_model": results_root / "pseudolabels" / f"{job}_epochs.tsv",
    }
    return logs.get(rule)


def read_epoch_log(path: str | os.PathLike) -> tuple[int, float]:
    """Epochs done and their seconds, from a training log (``epoch time lr ...``, one row per epoch)."""
    path = Path(path)
    try:
        log = pd.read_csv(path, sep="\t")
        seconds = pd.to_numeric(log["time"], errors="raise").astype(float)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        KeyError,
        ValueError,
    ) as error:
        raise LogFormatError(
            f"{path}: not a training epoch log (tab-separated, header 'epoch time lr ...', a number of "
            f"seconds per epoch): {describe_exception(error)}",
            path,
        ) from error
    return len(log), float(seconds.sum())


def job_work(
    rule: str,
    log: Path,
    job: str,
    *,
    samples_per_image: int | None,
    train_images: Mapping[tuple[str, str], int],
) -> JobWork:
    """What one job did, from its work log."""
    if rule in ("certify", "attack"):
        rows = read_certify_log(log) if rule == "certify" else read_attack_log(log)
        if "samples" in rows.columns:  # sequential certification: the draws vary per image
            samples = int(rows["samples"].sum())
        elif rule == "certify" and samples_per_image is not None:
            samples = len(rows) * samples_per_image
        else:
            samples = None
        seconds = float(rows["time"].sum()) if "time" in rows.columns else math.nan
        return JobWork(None, len(rows), samples, seconds)
    epochs, seconds = read_epoch_log(log)
    per_epoch = train_images.get((rule, job))
    return JobWork(epochs, None if per_epoch is None else epochs * per_epoch, None, seconds)


def _rate(amount: int | None, seconds: float | None) -> float:
    if amount is None or not seconds:
        return math.nan
    return amount / seconds


def rule_efficiency(
    benchmarks_root: str | os.PathLike,
    results_root: str | os.PathLike | None,
    slurm_logs_root: str | os.PathLike | None,
    gpu_rules: Iterable[str] = GPU_RULES,
    *,
    samples_per_image: int | None = None,
    train_images: Mapping[tuple[str, str], int] | None = None,
) -> pd.DataFrame:
    """One row per rule (columns :data:`COLUMNS`) of every rule with benchmarks or SLURM logs; a root that is
    ``None`` or missing gives no work (``results_root``) or no retries (``slurm_logs_root``).

        ``samples_per_image`` is CERTIFY's ``N0 + N`` (the final logs do not record it; sequential logs have a
        per-image ``samples`` column instead); ``train_images`` maps ``(rule, job)`` to the images of one of that
        training job's epochs (:func:`train_images_per_epoch`). Unknown amounts and rates are NaN, as is all work
        of a rule whose logs this module does not know (CPU rules).
    """
    gpu_rules = set(gpu_rules)
    train_images = train_images or {}
    benchmarks = {_FOLDER_RULE.get(f, f): jobs for f, jobs in benchmark_jobs(benchmarks_root).items()}
    retries: dict[str, Retries] = {}
    for name, tried in (slurm_retries(slurm_logs_root) if slurm_logs_root is not None else {}).items():
        # A shard's attempts count in its folder's row, with the benchmarks' (certify_shard -> certify).
        row = retries.setdefault(_FOLDER_RULE.get(GPU_RULE_FOLDERS.get(name, ""), name), Retries())
        row.add(tried)
    rows: list[dict[str, Any]] = []
    for rule in sorted(set(benchmarks) | set(retries)):
        jobs = benchmarks.get(rule, {})
        done = [
            job_work(rule, log, job, samples_per_image=samples_per_image, train_images=train_images)
            for job in jobs
            if results_root is not None
            and (log := work_log(Path(results_root), rule, job)) is not None
            and log.is_file()
        ]
        images = _total([w.images for w in done])
        samples = _total([w.samples for w in done])
        work_seconds = sum(w.seconds for w in done)
        seconds = sum(b.seconds for b in jobs.values())
        tried = retries.get(rule, Retries())
        rows.append(
            {
                "rule": rule,
                "gpu": rule in gpu_rules,
                "jobs": len(jobs),
                "GPU-hours": seconds / 3600 if rule in gpu_rules else 0.0,
                "epochs": _total([w.epochs for w in done]),
                "images": images,
                "samples": samples,
                "work seconds": work_seconds if done else None,
                "images/s": _rate(images, work_seconds),
                "samples/s": _rate(samples, work_seconds),
                "attempts": tried.attempts,
                "retries": tried.total,
                "retries: time limit": tried.time_limit,
                "retries: preemption": tried.preemption,
                "retries: other": tried.other,
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    # Counts stay integers with a blank for unknown (pandas' nullable Int64), seconds and rates floats.
    table = table.astype({"epochs": "Int64", "images": "Int64", "samples": "Int64", "work seconds": float})
    return table


def train_images_per_epoch(config: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """``(rule, job) -> images per epoch`` of every training job of a pipeline config (the workflow's
    ``config.json``), as the cost plan counts them (:func:`rsmooth.plan.images_per_epoch`)."""
    from rsmooth.pipeline import grid_models, pretrain_models
    from rsmooth.plan import images_per_epoch

    config = dict(config)
    images = {
        ("train", m.id): images_per_epoch(config, m.train["dataset"], m.self_training)
        for m in grid_models(config).values()
    }
    for name, values in pretrain_models(config).items():
        images["pretrain", name] = images_per_epoch(config, values["dataset"])
    if config["pseudo_labels"]["labels"] == "model":
        standard = {**config["training"], **config["pseudo_labels"]["standard_model"]}
        images["train_standard_model", "standard_model"] = images_per_epoch(config, standard["dataset"])
    return images


def certify_samples_per_image(config: Mapping[str, Any]) -> int | None:
    """CERTIFY's ``N0 + N`` under a loaded pipeline config (``rsmooth.pipeline.load_config``); ``None`` without
    a config, or for the sequential procedure (its logs count each image's samples)."""
    if not config or config["certify"]["procedure"] != "cohen":
        return None
    return int(config["certify"]["n0"]) + int(config["certify"]["n"])


def efficiency_html(table: pd.DataFrame) -> str:
    """The table for the report, sortable and searchable (:func:`rsmooth.html_page.interactive_table`):
    GPU-hours to 4 decimals (a demo's jobs take seconds), seconds and rates to 2, "yes"/"no" for the GPU
    column, blank or a dash for what is unknown or does not apply."""
    from rsmooth.html_page import display_frame, interactive_table

    present = set(table.columns)
    digits = {c: 4 if c == "GPU-hours" else 2 for c in ("GPU-hours", "work seconds", "images/s", "samples/s")}
    shown = display_frame(
        table,
        names={
            "gpu": "GPU rule",
            "work seconds": "Work (s)",
            "images/s": "Images/s",
            "samples/s": "Samples/s",
        },
        digits={c: d for c, d in digits.items() if c in present},
    )
    caption = (
        "Per rule: GPU-hours used (benchmark wall time of the GPU rules' successful attempts), the images "
        "and noise samples processed and their rates over the seconds the work logs record, and the jobs "
        "retried by cause (from the SLURM executor's logs; zero for a local run)."
    )
    return interactive_table(shown, caption, table_id="efficiency")


# -- the cost plan beside the run ------------------------------------------------------------------------------

PLAN_COLUMNS = [
    "rule",
    "planned jobs",
    "measured jobs",
    "planned GPU-seconds",
    "measured GPU-seconds",
    "planned GPU-hours",
    "measured GPU-hours",
    "measured / planned",
]


def plan_vs_measured(jobs: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Per rule (benchmark folder, as the plan names its ``rule`` rows): the jobs and GPU time the cost plan
    (``plan.csv`` of ``scripts/plan.py``, its ``table == "rule"`` rows) estimated beside those measured
    (``jobs``: ``rule, seconds`` per benchmarked job of a GPU rule). Columns :data:`PLAN_COLUMNS`; a rule on
    one side only has NaN on the other, and ``measured / planned`` is NaN where either is missing or 0."""
    planned = plan[plan["table"] == "rule"][["rule", "jobs", "gpu_hours"]].copy()
    planned["planned GPU-seconds"] = planned["gpu_hours"].astype(float) * 3600
    planned = planned.rename(columns={"jobs": "planned jobs"}).drop(columns="gpu_hours")
    gpu_folders = set(GPU_RULE_FOLDERS.values())
    measured = (
        jobs[jobs["rule"].isin(gpu_folders | set(planned["rule"]))]
        .groupby("rule")["seconds"]
        .agg(["count", "sum"])
        .reset_index()
        .rename(columns={"count": "measured jobs", "sum": "measured GPU-seconds"})
    )
    table = planned.merge(measured, on="rule", how="outer")
    table["planned GPU-hours"] = table["planned GPU-seconds"] / 3600
    table["measured GPU-hours"] = table["measured GPU-seconds"] / 3600
    ratio = table["measured GPU-seconds"] / table["planned GPU-seconds"].where(
        table["planned GPU-seconds"] > 0
    )
    table["measured / planned"] = ratio
    table = table.astype({"planned jobs": "Int64", "measured jobs": "Int64"})
    return table[PLAN_COLUMNS].reset_index(drop=True)


def plan_vs_measured_html(table: pd.DataFrame) -> str:
    """:func:`plan_vs_measured` as HTML, every time to 3 significant figures, jobs as integers."""
    shown = pd.DataFrame(
        {
            c: [
                "n/a" if pd.isna(v) else (f"{int(v):,}" if c.endswith("jobs") else significant(float(v)))
                for v in table[c].astype(object)
            ]
            for c in PLAN_COLUMNS[1:]
        }
    )
    shown.insert(0, "rule", table["rule"])
    from rsmooth.html_page import static_table

    return static_table(shown)


def plot_plan_vs_measured(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Planned and measured GPU-seconds per rule as paired horizontal bars on a log axis (the two can differ
    by orders of magnitude: a CPU demo against a plan of GPU throughput), written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(table["rule"])
    fig, ax = plt.subplots(figsize=(7.0, 0.6 * max(len(rules), 1) + 1.4))
    y = range(len(rules))
    series = (
        ("planned GPU-seconds", "planned", "#9ecae1", -0.2),
        ("measured GPU-seconds", "measured", "#08519c", 0.2),
    )
    for column, label, colour, offset in series:
        values = table[column].astype(float)
        ax.barh([i + offset for i in y], values.fillna(0.0), height=0.38, color=colour, label=label)
        for i, v in zip(y, values, strict=True):
            ax.text(v if v > 0 else 1e-9, i + offset, f" {significant(v)}", va="center", fontsize=8)
    ax.set_yticks(list(y), rules)
    ax.invert_yaxis()
    positive = pd.concat([table["planned GPU-seconds"], table["measured GPU-seconds"]]).astype(float)
    positive = positive[positive > 0]
    if len(positive):
        ax.set_xscale("log")
        ax.set_xlim(positive.min() / 3, positive.max() * 30)
    ax.set_xlabel("GPU-seconds (log scale)")
    ax.set_title("Cost plan against the run, per rule")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
