"""A run's certification results: which paper row each model stands for, and the tables of the report.

Input: the *grid description* the workflow writes (``results/analysis/grid.json``)::

    {"models": {"<model id>": {"experiments": [...], "train": {TrainConfig fields},
                               "pretrain": "<pre-training model id>" | null, "self_training": bool}},
     "certifications": [{"model": "<model id>", "sigma": 0.25, "log": "<certification log>"}, ...]}

Sigmas stay numbers and models are named by field: nothing is parsed back from a display name. One
:class:`Certification` is one model smoothed at one sigma with its log; its :attr:`~Certification.name`
(``<model id> @ sigma=<sigma>``) only labels table rows and curves.

The mapping to the papers (:func:`paper_values`): each envelope group (:func:`method_group`) gives the
envelope and l-inf rows of its paper table; a model trained from scratch and certified at its own sigma gives
its per-model rows (SmoothAdv's per-model tables, SmoothMix's tables with the mean and spread over seeds).
Each method's class says which (``envelope_group``, ``paper_envelopes``, ``paper_rows`` of
``rsmooth.train.methods``); nothing here names a method.
:func:`write_results` writes every table, the scorecard, the per-(model, sigma) table and the configuration
page; nothing here imports matplotlib (the run's figures are :func:`rsmooth.analysis.figures.write_figures`).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rsmooth.analysis.grids import has_linf_table, table_radii
from rsmooth.analysis.metrics import (
    Logs,
    abstention_rate,
    average_certified_radius,
    certified_accuracy,
    clean_accuracy,
    max_certifiable_radius,
)
from rsmooth.analysis.paper import (
    BEYOND_REACH,
    DIFFERS,
    MATCH,
    NOT_RUN,
    STATUSES,
    envelope_cells,
    linf_cells,
    load_paper_numbers,
    load_paper_tables,
    model_cells,
    not_run_list,
    not_run_summary,
    scorecard,
    scorecard_headline,
    scorecard_table,
    seed_summary,
)
from rsmooth.analysis.provenance import PROVENANCE_COLUMNS, collect_provenance, provenance_table
from rsmooth.analysis.tables import (
    NO_ACR,
    Table,
    abstention_table,
    acr_table,
    envelope_table,
    linf_table,
    model_table,
    per_sigma_envelope_table,
    procedure_caption,
    to_html,
    write_html_page,
    write_table,
)
from rsmooth.html_page import display_frame, interactive_table
from rsmooth.io import atomic_open
from rsmooth.logformat import read_certify_log
from rsmooth.pipeline import GridModel, certify_radii, format_value
from rsmooth.train.methods import EACH_MODEL, REGISTRY, SEED_MEAN, get_method
from rsmooth.train_config import OPTIONS

# The report's tables of accuracies: percent with one decimal.
PERCENT = {"percent": True, "digits": 1}

TABLES = ("per_model", "envelope", "envelope_per_sigma", "abstention", "linf", "acr")

# Envelope groups under the paper's (method, setting) key: each method's paper_envelopes, registry order.
_PAPER_GROUPS = {group: key for cls in REGISTRY.values() for group, key in cls.paper_envelopes.items()}


@dataclass(frozen=True)
class Certification:
    """One model of the grid (:class:`rsmooth.pipeline.GridModel`) smoothed at one sigma, and its
    certification log."""

    model: GridModel
    sigma: float
    log: pd.DataFrame = dataclasses.field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.model.id} @ sigma={format_value(self.sigma)}"


def read_grid(grid: Mapping[str, Any]) -> list[Certification]:
    """The certifications of a grid description, their logs read (in the description's order)."""
    models = {
        model_id: GridModel(
            model_id,
            entry["train"],
            list(entry["experiments"]),
            pretrain=entry.get("pretrain"),
            self_training=bool(entry.get("self_training", False)),
        )
        for model_id, entry in grid["models"].items()
    }
    return [
        Certification(models[entry["model"]], float(entry["sigma"]), read_certify_log(entry["log"]))
        for entry in grid["certifications"]
    ]


def logs_by_name(certifications: Sequence[Certification]) -> Logs:
    return {c.name: c.log for c in certifications}


def method_group(model: GridModel) -> str:
    """The family a model belongs to, as the papers' envelope tables group them (the method decides)."""
    return get_method(model.train["method"]).envelope_group(bool(model.pretrain), bool(model.self_training))


def by_group(certifications: Sequence[Certification]) -> dict[str, Logs]:
    """Envelope group -> logs by name, groups in order of first appearance."""
    groups: dict[str, Logs] = defaultdict(dict)
    for c in certifications:
        groups[method_group(c.model)][c.name] = c.log
    return dict(groups)


def by_sigma(certifications: Sequence[Certification]) -> dict[float, Logs]:
    """Certification sigma -> logs by name."""
    sigmas: dict[float, Logs] = defaultdict(dict)
    for c in certifications:
        sigmas[c.sigma][c.name] = c.log
    return dict(sigmas)


def paper_values(
    certifications: Sequence[Certification],
    dataset: str,
    *,
    acr: bool = True,
    reach: Callable[[float], float] | None = None,
) -> pd.DataFrame:
    """This run's numbers under the papers' keys: envelopes, l-inf, and single models of the per-model tables
    (their ACR only with ``acr``: the sequential procedure's grid radii give none). ``reach`` maps a sigma to
    the largest radius the run can certify at it (:attr:`Settings.reach`); an envelope's is the largest over
    its models' sigmas."""
    radii = table_radii(dataset)
    groups = by_group(certifications)
    sigmas: dict[str, set[float]] = defaultdict(set)
    for c in certifications:
        sigmas[method_group(c.model)].add(c.sigma)

    def reach_of(*at: float) -> float | None:
        return None if reach is None else max(reach(s) for s in at)

    frames = []
    for group, (method, setting) in _PAPER_GROUPS.items():
        if group in groups:
            envelope_reach = reach_of(*sigmas[group])
            frames.append(
                envelope_cells(
                    groups[group],
                    radii,
                    dataset=dataset,
                    method=method,
                    setting=setting,
                    reach=envelope_reach,
                )
            )
            if setting == "envelope" and has_linf_table(dataset):
                frames.append(
                    linf_cells(
                        groups[group], dataset=dataset, method=method, setting=setting, reach=envelope_reach
                    )
                )
    smoothmix: dict[tuple[str, str, float], dict[int, Certification]] = defaultdict(dict)
    for c in certifications:
        train = c.model.train
        if not c.model.from_scratch or c.sigma != train["sigma"]:
            continue  # the per-model tables hold models trained from scratch and certified at their own sigma
        for row in get_method(train["method"]).paper_rows(dataset, train):
            if row.seeds == EACH_MODEL:  # SmoothAdv's per-model tables: every model a row of its own
                frames.append(
                    model_cells(
                        c.log, [0.0, *radii], dataset=dataset, method=row.method, setting=row.setting,
                        sigma=c.sigma, acr=acr, reach=reach_of(c.sigma),
                    )
                )  # fmt: skip
            # SmoothMix's tables: one model per (method, setting, sigma), the mean and std over its seeds.
            elif row.seeds == SEED_MEAN or train["seed"] == 0:
                models = smoothmix[(row.method, row.setting, c.sigma)]
                if train["seed"] in models:
                    raise ValueError(
                        f"two models of seed {train['seed']} for SmoothMix's {row.method} {row.setting!r} at "
                        f"sigma {format_value(c.sigma)}: {models[train['seed']].name} and {c.name}"
                    )
                models[train["seed"]] = c
    for (method, setting, sigma), by_seed in smoothmix.items():
        per_seed = [
            model_cells(
                c.log,
                [0.0, *radii],
                dataset=dataset,
                method=method,
                setting=setting,
                sigma=sigma,
                acr=acr,
                reach=reach_of(sigma),
            )
            for _, c in sorted(by_seed.items())
        ]
        frames.append(seed_summary(per_seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def certification_frame(
    certifications: Sequence[Certification], radii: Sequence[float], *, acr: bool = True
) -> pd.DataFrame:
    """One row per (model, sigma): the model's hyper-parameters, clean and certified accuracy, ACR,
    abstention rate, images, and the sequential procedure's mean draws per image where it was used."""
    rows = []
    for c in certifications:
        df = c.log
        row = {"model": c.model.id, "experiments": ", ".join(c.model.experiments), "certify sigma": c.sigma}
        row.update(
            {k: c.model.train[k] for k in ("method", "attack", "sigma", "eps", "steps", "num_noise_vec")}
        )
        row.update(
            {
                "clean accuracy": clean_accuracy(df),
                **{f"r = {r:g}": a for r, a in zip(radii, certified_accuracy(df, radii), strict=True)},
                "ACR": average_certified_radius(df) if acr else NO_ACR,
                "abstention": abstention_rate(df),
                "images": len(df),
            }
        )
        if "samples" in df.columns:  # the sequential procedure's draws per image
            row["mean samples"] = float(df["samples"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Settings:
    """What the analysis takes from the run's configuration."""

    dataset: str
    radii: list[float]
    procedure: str  # the caption naming the certification procedure and alpha
    acr: bool  # CERTIFY gives maximal radii, so an ACR; the sequential procedure's grid radii do not
    provenance: dict[str, Any]
    reach: Callable[[float], float] | None = None  # sigma -> the largest radius the run can certify

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """From the loaded config (``rsmooth.pipeline.load_config``; the workflow's ``config.json``)."""
        # `training` has no schema defaults: an unset seed is TrainConfig's.
        seeds = {"training": config["training"].get("seed", OPTIONS["seed"].default), "certify": config["certify"]["seed"]}  # fmt: skip
        return cls(
            dataset=config["training"]["dataset"],
            radii=[float(r) for r in config["analysis"]["radii"]],
            procedure=procedure_caption(config["certify"]),
            acr=config["certify"]["procedure"] == "cohen",
            provenance=collect_provenance(config, seeds),
            reach=certify_reach(config),
        )


def certify_reach(config: Mapping[str, Any]) -> Callable[[float], float]:
    """sigma -> the largest radius the run's certification can give (``max_certifiable_radius`` with the
    loaded config's N, alpha, procedure and, for the sequential procedure, its grid and test)."""
    certify = config["certify"]
    sequential = certify["procedure"] == "sequential"
    return functools.partial(
        max_certifiable_radius,
        n=int(certify["n"]),
        alpha=float(certify["alpha"]),
        procedure=certify["procedure"],
        radii=certify_radii(dict(config)) if sequential else None,
        test=certify["test"] if sequential else None,
    )


def result_tables(certifications: Sequence[Certification], settings: Settings) -> dict[str, Table]:
    """The report's tables by name (:data:`TABLES`), each caption naming the procedure and alpha."""
    logs, groups, radii, acr = (
        logs_by_name(certifications),
        by_group(certifications),
        settings.radii,
        settings.acr,
    )
    tables = {
        # Percent with one decimal, as the papers print them (the CSVs keep the fractions).
        "per_model": model_table(
            logs, radii, caption="Certified accuracy (%) of every model (best per radius marked)", **PERCENT
        ),
        "envelope": envelope_table(
            groups,
            radii,
            caption="Best model per radius: certified accuracy (%), its clean accuracy (%) before it",
            **PERCENT,
        ),
        "envelope_per_sigma": per_sigma_envelope_table(
            by_sigma(certifications), radii, caption="Envelope per sigma: certified accuracy (%)", **PERCENT
        ),
        "abstention": abstention_table(
            groups,
            radii,
            caption="Abstention rate (%) of the best model per radius"
            + (
                ""
                if acr
                else " (sequential on the true label: logs before the -2 code count wrong as abstained)"
            ),
        ),
        "linf": linf_table(
            groups, settings.dataset, caption="l-inf certified accuracy implied by the l2 certificates"
        )
        if has_linf_table(settings.dataset)
        else Table(
            pd.DataFrame(
                {"l-inf table": [f"none: the papers publish no l-inf table for {settings.dataset}"]}
            ),
            caption="l-inf certified accuracy: not compared on this data set",
        ),
        "acr": acr_table(
            logs, radii, caption="Average certified radius (ACR) and certified accuracy", acr=acr
        ),
    }
    return {
        name: dataclasses.replace(table, caption=f"{table.caption}; {settings.procedure}")
        for name, table in tables.items()
    }


def write_results(
    grid: Mapping[str, Any], config: Mapping[str, Any], out: str | os.PathLike
) -> tuple[pd.DataFrame, list[Certification]]:
    """Write under ``out``: ``tables/<name>.{csv,md,tex,html}``, ``scorecard.{csv,html}``, ``cells.{csv,html}``
    (one row per model and sigma) and ``configuration.html``, every file with the run's provenance. Returns
    the scorecard and the certifications read."""
    out = Path(out)
    settings = Settings.from_config(config)
    certifications = read_grid(grid)
    for name, table in result_tables(certifications, settings).items():
        write_table(table, out / "tables" / name, provenance=settings.provenance)

    dataset = settings.dataset
    card = scorecard(
        load_paper_numbers().query("dataset == @dataset"),
        paper_values(certifications, dataset, acr=settings.acr, reach=settings.reach),
    )
    with atomic_open(out / "scorecard.csv") as handle:
        card.to_csv(handle, index=False)
    write_html_page(out / "scorecard.html", "Scorecard: this run beside the papers",
                    _scorecard_body(card, settings, certifications), settings.provenance)  # fmt: skip
    missing = not_run_list(card)
    with atomic_open(out / "scorecard_not_run.csv") as handle:
        missing.to_csv(handle, index=False)
    write_html_page(out / "scorecard_not_run.html", "Scorecard: the paper cells not run",
                    _not_run_body(missing, settings), settings.provenance)  # fmt: skip

    frame = certification_frame(certifications, settings.radii, acr=settings.acr)
    with atomic_open(out / "cells.csv") as handle:
        frame.to_csv(handle, index=False)
    write_html_page(out / "cells.html", "Per-cell results", _cells_body(frame, settings), settings.provenance)

    provenance = settings.provenance
    results = [(c.log.attrs["path"], c.model.id, c.sigma) for c in certifications]
    per_result, data_files = provenance_table(results)
    with atomic_open(out / "provenance.csv") as handle:
        pd.DataFrame(per_result, columns=PROVENANCE_COLUMNS).to_csv(handle, index=False)
    config_body = (
        f"<p>{len(grid['models'])} models, {len(certifications)} certification logs, "
        f"{sum(len(c.log) for c in certifications)} certified images.</p>"
        + _provenance_section(per_result, data_files)
        + f"<h2>Code and packages</h2><pre>{html.escape(json.dumps(provenance, indent=2, sort_keys=True))}</pre>"
        f"<h2>Configuration</h2><pre>{html.escape(_yaml(config))}</pre>"
    )
    write_html_page(out / "configuration.html", "Configuration", config_body, provenance)
    return card, certifications


def _cells_body(frame: pd.DataFrame, settings: Settings) -> str:
    """The per-(model, sigma) table: accuracies in percent, readable names, sortable and searchable."""
    radii = [c for c in frame.columns if c.startswith("r = ")]
    percent = ["clean accuracy", *radii, "abstention"]
    names = {
        "certify sigma": "Certified at sigma",
        "clean accuracy": "Clean accuracy (%)",
        **{c: f"Certified accuracy (%) at {c}" for c in radii},
        "ACR": "ACR",
        "abstention": "Abstention (%)",
        "num_noise_vec": "Noise draws m (training)",
        "sigma": "Training sigma",
        "eps": "Training eps",
        "steps": "Attack steps (training)",
    }
    digits = {"ACR": 3} if settings.acr and "ACR" in frame.columns else {}
    shown = display_frame(frame, percent=percent, names=names, digits=digits)
    caption = (
        f"One row per trained model and certification noise level: {len(frame)} certification logs of this "
        f"run, certified with {settings.procedure}. Certified accuracy at radius r is the share of the "
        "certified test images classified correctly with a certified L2 radius of at least r (abstentions "
        "count as wrong)."
    )
    return interactive_table(shown, caption, table_id="cells")


VERDICTS = (
    "<p><strong>How to read the verdicts.</strong> Each value of this run is an estimate over the images it "
    "certified, shown with its 95% interval: Clopper-Pearson (exact binomial) for accuracies and rates, "
    "Student's t for the ACR (a mean over images). A cell <em>matches</em> when the paper's value, up to the "
    "rounding it is printed with, lies inside that interval: with this many images the run cannot tell the two "
    "apart. It <em>differs</em> when the paper's value lies outside. It is <em>beyond reach</em> (neither) when "
    "the cell asks for a radius larger than any certificate this run can give at its sigma, "
    "sigma &times; &Phi;<sup>-1</sup>(alpha<sup>1/N</sup>) for CERTIFY with N draws and failure probability "
    "alpha (the top grid radius the sequential test reaches within n_max draws): there the run's value is 0 "
    "whatever the model (for the ACR: the paper's ACR exceeds that radius). An envelope's interval is the one "
    "of the model that wins at that radius, and a mean over seeds pools the seeds' images; the choice of the "
    "best model is not accounted for. <em>Not run</em>: this run has no model for the cell.</p>"
)


def _scorecard_body(card: pd.DataFrame, settings: Settings, certifications: Sequence[Certification]) -> str:
    headline = scorecard_headline(card, load_paper_tables())
    ran = card[card["status"] != NOT_RUN]
    images = sorted({len(c.log) for c in certifications})
    reach = ""
    if settings.reach is not None and certifications:
        by_sigma = ", ".join(
            f"{settings.reach(s):.3f} at sigma = {format_value(s)}"
            for s in sorted({c.sigma for c in certifications})
        )
        reach = f" The largest radius it can certify is {by_sigma}."
    totals = {status: int((card["status"] == status).sum()) for status in STATUSES}
    return (
        f"<p>{len(ran)} of {len(card)} cells of the papers' {html.escape(settings.dataset)} tables are covered by "
        f"this run ({totals[MATCH]} match, {totals[DIFFERS]} differ, {totals[BEYOND_REACH]} beyond reach), "
        f"certified with {html.escape(settings.procedure)} on {'/'.join(map(str, images)) or 'no'} images per "
        f"model.{html.escape(reach)}</p>"
        + VERDICTS
        + "<h2>Per paper table</h2>"
        + to_html(headline_table(headline), fragment=True)
        + "<h2>Cells run</h2>"
        + cells_run_table(
            ran,
            "Every cell of the papers' tables that this run covers: the paper's value, this run's value with its "
            "95% interval and the images it is over, the run's reach, the difference and the verdict; rates in "
            "percent, the ACR and the reach in l2 units.",
            table_id="cells_run",
        )
        + "<h2>Cells not run</h2>"
        + f"<p>{totals[NOT_RUN]} paper cells have no model in this run; per paper, table and method below, one "
        "paper row each in <code>scorecard_not_run.html</code>, one cell each in <code>.csv</code>.</p>"
        + to_html(_not_run_summary_table(not_run_summary(card)), fragment=True)
    )


def cells_run_table(ran: pd.DataFrame, caption: str, *, table_id: str) -> str:
    """The scorecard rows of the cells a run covers as an interactive table (``<p>none</p>`` without any)."""
    if not len(ran):
        return "<p>none</p>"
    return interactive_table(
        display_frame(scorecard_table(ran).text().reset_index()), caption, table_id=table_id
    )


def headline_table(headline: pd.DataFrame) -> Table:
    def shown(value: Any, digits: int, scale: float) -> str:
        return value if isinstance(value, str) else f"{value * scale:.{digits}f}"

    values = pd.DataFrame(
        {
            "paper": headline["paper"],
            "table": headline["table"],
            "title": headline["title"],
            "cells run": headline["run"].astype(str),
            "match": headline[MATCH].astype(str),
            "differ": headline[DIFFERS].astype(str),
            "beyond reach": headline[BEYOND_REACH].astype(str),
            "not run": headline[NOT_RUN].astype(str),
            "best certified accuracy (%)": [shown(v, 1, 100) for v in headline["best certified accuracy"]],
            "paper (%)": [shown(v, 1, 100) for v in headline["paper (same cell)"]],
            "at": headline["at"],
            "best ACR": [shown(v, 3, 1) for v in headline["best ACR"]],
            "paper ACR": [shown(v, 3, 1) for v in headline["paper ACR (same cell)"]],
        }
    ).set_index("paper")
    caption = (
        "Per paper table: cells run and their verdicts; the run's best certified accuracy at a radius > 0 (and "
        "best ACR) among the cells it can reach, beside the paper's value of that same cell"
    )
    return Table(values.astype(object), caption=caption, data=headline)


def _not_run_summary_table(summary: pd.DataFrame) -> Table:
    counts = summary.astype({"settings": str, "cells": str})  # counts as integers, not 9.00
    values = counts.set_index("paper") if len(summary) else pd.DataFrame({"cells": []})
    caption = "Paper cells not run, per paper, table and method (settings: distinct settings of the method)"
    return Table(values.astype(object), caption=caption, data=summary)


def _not_run_body(missing: pd.DataFrame, settings: Settings) -> str:
    """The cells not run, one row per paper row (a model or setting the run lacks) with its columns: a row per
    cell made the demo's page 1.8 MB, and the report embeds each page as a data URL, which Chromium refuses
    above 2 MB (a blank page). The CSV keeps one row per cell."""
    if not len(missing):
        return "<p>0 cells.</p>"
    keys = ["paper", "table", "method", "setting", "sigma", "paper row"]
    rows = (
        missing.groupby(keys, dropna=False, sort=False)
        .agg(cells=("paper column", "size"), columns=("paper column", lambda c: ", ".join(map(str, c))))
        .reset_index()
    )
    caption = (
        f"Every row of the papers' {settings.dataset} tables with cells this run has no model for: the paper "
        "row, how many of its cells are not run, and which columns (scorecard_not_run.csv lists each cell with "
        "its published value)"
    )
    return f"<p>{len(missing)} cells in {len(rows)} paper rows.</p>" + interactive_table(
        display_frame(rows), caption, table_id="not_run"
    )


def _provenance_section(per_result: list[dict[str, Any]], data_files: Mapping[str, Any]) -> str:
    """Per result, the run that wrote it (``rsmooth.analysis.provenance``), and the data files' checksums."""
    frame = pd.DataFrame(per_result, columns=PROVENANCE_COLUMNS)
    results = Table(
        frame.set_index("result").astype(object),
        caption="Per certification log: the checkpoint certified, the command, date and host of the job that "
        "wrote it (one row per shard of a merged log); paths relative to the run's working directory",
        data=frame,
    )
    files = pd.DataFrame(
        {"file": list(data_files), "sha256 (or size in bytes)": [str(v) for v in data_files.values()]}
    )
    data = Table(
        files.set_index("file").astype(object) if len(files) else pd.DataFrame({"file": ["none recorded"]}),
        caption="The data files the certifications read, with the sha256 computed when the data set was put "
        "in place (a size where the data set's stamp predates the checksums)",
        data=files,
    )
    return (
        "<h2>Provenance per result</h2>"
        + (
            interactive_table(display_frame(frame), results.caption, table_id="provenance")
            if len(frame)
            else "<p>no results</p>"
        )
        + "<h2>Data files</h2>"
        + to_html(data, fragment=True)
    )


def _yaml(config: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)
