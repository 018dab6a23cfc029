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
import html
import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rsmooth.analysis.grids import TABLE_RADII, has_linf_table, table_radii
from rsmooth.analysis.metrics import (
    Logs,
    abstention_rate,
    average_certified_radius,
    certified_accuracy,
    clean_accuracy,
)
from rsmooth.analysis.paper import (
    envelope_cells,
    linf_cells,
    load_paper_numbers,
    model_cells,
    scorecard,
    scorecard_summary,
    scorecard_table,
    seed_summary,
)
from rsmooth.analysis.provenance import collect_provenance
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
    write_html_page,
    write_table,
)
from rsmooth.html_page import display_frame, interactive_table, static_table
from rsmooth.io import atomic_open
from rsmooth.logformat import read_certify_log
from rsmooth.pipeline import GridModel, format_value
from rsmooth.train.methods import EACH_MODEL, REGISTRY, SEED_MEAN, get_method

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


def paper_values(certifications: Sequence[Certification], dataset: str, *, acr: bool = True) -> pd.DataFrame:
    """This run's numbers under the papers' keys: envelopes, l-inf, and single models of the per-model tables
    (their ACR only with ``acr``: the sequential procedure's grid radii give none)."""
    radii = table_radii(dataset)
    groups = by_group(certifications)
    frames = []
    for group, (method, setting) in _PAPER_GROUPS.items():
        if group in groups:
            frames.append(
                envelope_cells(groups[group], radii, dataset=dataset, method=method, setting=setting)
            )
            if setting == "envelope" and has_linf_table(dataset):
                frames.append(linf_cells(groups[group], dataset=dataset, method=method, setting=setting))
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
                        sigma=c.sigma, acr=acr,
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
                c.log, [0.0, *radii], dataset=dataset, method=method, setting=setting, sigma=sigma, acr=acr
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

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        seeds = {"training": config["training"].get("seed", 0), "certify": config["certify"].get("seed", 0)}
        return cls(
            dataset=config["training"]["dataset"],
            radii=[float(r) for r in config.get("analysis", {}).get("radii", TABLE_RADII["cifar10"])],
            procedure=procedure_caption(config["certify"]),
            acr=config["certify"].get("procedure", "cohen") == "cohen",
            provenance=collect_provenance(config, seeds),
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
        paper_values(certifications, dataset, acr=settings.acr),
    )
    with atomic_open(out / "scorecard.csv") as handle:
        card.to_csv(handle, index=False)
    write_html_page(out / "scorecard.html", "Scorecard: this run beside the papers", _scorecard_body(card, settings),
                    settings.provenance)  # fmt: skip

    frame = certification_frame(certifications, settings.radii, acr=settings.acr)
    with atomic_open(out / "cells.csv") as handle:
        frame.to_csv(handle, index=False)
    write_html_page(out / "cells.html", "Per-cell results", _cells_body(frame, settings), settings.provenance)

    provenance = settings.provenance
    config_body = (
        f"<h2>Configuration</h2><pre>{html.escape(_yaml(config))}</pre>"
        f"<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2, sort_keys=True))}</pre>"
        f"<p>{len(grid['models'])} models, {len(certifications)} certification logs, "
        f"{sum(len(c.log) for c in certifications)} certified images.</p>"
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


def _scorecard_body(card: pd.DataFrame, settings: Settings) -> str:
    summary = static_table(
        display_frame(scorecard_summary(card), digits={"mean_abs_difference": 3}),
        "Cells per paper and table by verdict; the mean absolute difference over the cells run (fractions).",
    )
    ran = card[card["status"] != "not run"]
    return (
        f"<p>{len(ran)} of {len(card)} cells of the papers' {settings.dataset} tables are covered by this run, "
        f"certified with {html.escape(settings.procedure)}.</p>"
        f"<h2>Summary</h2>{summary}<h2>Cells run</h2>"
        + (
            interactive_table(
                display_frame(scorecard_table(ran).text().reset_index(), names={"status": "Verdict"}),
                "Every cell of the papers' tables that this run reproduces: the paper's value, this run's "
                "value and their difference, in percent (ACR as is).",
                table_id="cells_run",
            )
            if len(ran)
            else "<p>none</p>"
        )
        + "<h2>Cells not run</h2>"
        + interactive_table(
            display_frame(card[card["status"] == "not run"][["paper", "table", "row", "column"]]),
            "Cells of the papers' tables that no model of this run stands for.",
            table_id="not_run",
        )
    )


def _yaml(config: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)
