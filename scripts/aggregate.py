#!/usr/bin/env python
"""Aggregate the certification logs of a run into the papers' tables, a per-cell table, the scorecard against
the papers' numbers, and the configuration page of the report.

Reads ``grid.json`` (cells, their hyper-parameters, experiments and logs; written by the workflow) and
``config.json``. Writes under ``--out``: ``tables/<name>.{csv,md,tex,html}``, ``scorecard.{csv,html}``,
``cells.{csv,html}`` and ``configuration.html``; every file carries the run's provenance.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rsmooth.analysis import (
    NO_ACR,
    TABLE_RADII,
    abstention_rate,
    abstention_table,
    acr_table,
    average_certified_radius,
    certified_accuracy,
    clean_accuracy,
    collect_provenance,
    envelope_cells,
    envelope_table,
    linf_cells,
    linf_table,
    load_paper_numbers,
    model_cells,
    model_setting,
    model_table,
    per_sigma_envelope_table,
    procedure_caption,
    read_certify_log,
    scorecard,
    scorecard_summary,
    scorecard_table,
    seed_summary,
    smoothmix_keys,
    to_html,
    write_table,
)
from rsmooth.io import atomic_open, read_config_file
from rsmooth.train.methods import get_method

Logs = dict[str, pd.DataFrame]


def method_group(cell: dict[str, Any]) -> str:
    """The family a cell's model belongs to, as the papers' envelope tables group them."""
    method = cell["train"]["method"]
    if method == "smoothadv":
        extras = [
            name
            for name, on in (("pretraining", cell["pretrain"]), ("self-training", cell["pseudo_labels"]))
            if on
        ]
        return "+".join(["smoothadv", *extras])
    return get_method(method).group


def load_logs(grid: dict[str, Any]) -> tuple[Logs, dict[str, tuple[str, str]]]:
    """All logs by display name ``<cell> @ sigma=<s>``, and each name's (cell id, sigma)."""
    logs, keys = {}, {}
    for cell_id, cell in grid.items():
        for sigma, path in cell["logs"].items():
            name = f"{cell_id} @ sigma={sigma}"
            logs[name] = read_certify_log(path)
            keys[name] = (cell_id, sigma)
    return logs, keys


def group_logs(grid: dict[str, Any], keys: dict[str, tuple[str, str]], logs: Logs) -> dict[str, Logs]:
    groups: dict[str, Logs] = defaultdict(dict)
    for name, (cell_id, _) in keys.items():
        groups[method_group(grid[cell_id])][name] = logs[name]
    return dict(groups)


# Envelope groups under the paper's (method, setting) key.
_PAPER_GROUPS = {
    "gaussian": ("gaussian", "envelope"),
    "smoothadv": ("smoothadv", "envelope"),
    "smoothadv+pretraining": ("smoothadv", "envelope+pretraining"),
    "smoothadv+self-training": ("smoothadv", "envelope+self-training"),
    "smoothadv+pretraining+self-training": ("smoothadv", "envelope+pretraining+self-training"),
}


def run_values(
    grid: dict, keys: dict, logs: Logs, groups: dict[str, Logs], dataset: str, *, acr: bool = True
) -> pd.DataFrame:
    """This run's numbers under the papers' keys: envelopes, l-inf, and single models of the per-model tables
    (their ACR only with ``acr``: the sequential procedure's grid radii give none)."""
    radii = TABLE_RADII.get(dataset, TABLE_RADII["cifar10"])
    frames = []
    for group, (method, setting) in _PAPER_GROUPS.items():
        if group in groups:
            frames.append(
                envelope_cells(groups[group], radii, dataset=dataset, method=method, setting=setting)
            )
            if setting == "envelope":
                frames.append(linf_cells(groups[group], dataset=dataset, method=method, setting=setting))
    smoothmix: dict[tuple[str, str, float], dict[int, tuple[str, pd.DataFrame]]] = defaultdict(dict)
    for name, (cell_id, sigma) in keys.items():
        cell = grid[cell_id]
        train = cell["train"]
        if cell["pretrain"] or cell["pseudo_labels"] or float(sigma) != train["sigma"]:
            continue  # the per-model tables hold models trained from scratch and certified at their own sigma
        if train["method"] == "smoothadv":
            setting = model_setting(train["steps"], train["num_noise_vec"], train["eps"])
            frames.append(
                model_cells(
                    logs[name], [0.0, *radii], dataset=dataset, method=f"smoothadv_{train['attack']}",
                    setting=setting, sigma=float(sigma), acr=acr,
                )
            )  # fmt: skip
        # SmoothMix's tables: one model per (method, setting, sigma), the mean and std over its seeds.
        for method, setting, over_seeds in smoothmix_keys(dataset, train):
            if over_seeds or train["seed"] == 0:
                models = smoothmix[(method, setting, float(sigma))]
                if train["seed"] in models:
                    raise ValueError(
                        f"two models of seed {train['seed']} for SmoothMix's {method} {setting!r} at sigma "
                        f"{sigma}: {models[train['seed']][0]} and {name}"
                    )
                models[train["seed"]] = (name, logs[name])
    for (method, setting, sigma), by_seed in smoothmix.items():
        per_seed = [
            model_cells(
                log, [0.0, *radii], dataset=dataset, method=method, setting=setting, sigma=sigma, acr=acr
            )
            for _, (_, log) in sorted(by_seed.items())
        ]
        frames.append(seed_summary(per_seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def cells_frame(grid: dict, keys: dict, logs: Logs, radii: list[float], *, acr: bool = True) -> pd.DataFrame:
    rows = []
    for name, (cell_id, sigma) in keys.items():
        cell, df = grid[cell_id], logs[name]
        row = {"cell": cell_id, "experiments": ", ".join(cell["experiments"]), "certify sigma": float(sigma)}
        row.update(
            {k: cell["train"][k] for k in ("method", "attack", "sigma", "eps", "steps", "num_noise_vec")}
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


def write_html(path: Path, title: str, body: str, provenance: dict) -> None:
    footer = html.escape(json.dumps(provenance, sort_keys=True))
    with atomic_open(path) as handle:
        handle.write(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}<footer><small>provenance: {footer}</small></footer>"
            "</body></html>\n"
        )


def read_run(description: str) -> tuple[argparse.Namespace, dict[str, Any], dict[str, Any]]:
    """Parse ``--grid --config --out`` and read the grid and configuration files."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    return args, read_config_file(args.grid), read_config_file(args.config)


def main() -> None:
    args, grid, config = read_run(__doc__)
    dataset = config["training"]["dataset"]
    radii = [float(r) for r in config.get("analysis", {}).get("radii", TABLE_RADII["cifar10"])]
    seeds = {"training": config["training"].get("seed", 0), "certify": config["certify"].get("seed", 0)}
    provenance = collect_provenance(config, seeds)
    # Every table says which procedure and alpha produced it; grid radii (sequential) have no ACR.
    procedure = procedure_caption(config["certify"])
    acr = config["certify"].get("procedure", "cohen") == "cohen"

    logs, keys = load_logs(grid)
    groups = group_logs(grid, keys, logs)
    by_sigma: dict[float, Logs] = defaultdict(dict)
    for name, (_, sigma) in keys.items():
        by_sigma[float(sigma)][name] = logs[name]

    tables = {
        "per_model": model_table(
            logs, radii, caption="Certified accuracy of every model (best per radius marked)"
        ),
        "envelope": envelope_table(groups, radii, caption="Best model per radius, with its clean accuracy"),
        "envelope_per_sigma": per_sigma_envelope_table(dict(by_sigma), radii, caption="Envelope per sigma"),
        "abstention": abstention_table(
            groups,
            radii,
            caption="Abstention rate (%) of the best model per radius"
            + ("" if acr else " (tested on the true label: wrong predictions count as abstentions)"),
        ),
        "linf": linf_table(
            groups, dataset, caption="l-inf certified accuracy implied by the l2 certificates"
        ),
        "acr": acr_table(
            logs, radii, caption="Average certified radius (ACR) and certified accuracy", acr=acr
        ),
    }
    for name, table in tables.items():
        table = dataclasses.replace(table, caption=f"{table.caption}; {procedure}")
        write_table(table, args.out / "tables" / name, provenance=provenance)

    card = scorecard(
        load_paper_numbers().query("dataset == @dataset"),
        run_values(grid, keys, logs, groups, dataset, acr=acr),
    )
    with atomic_open(args.out / "scorecard.csv") as handle:
        card.to_csv(handle, index=False)
    summary = scorecard_summary(card).to_html(index=False, float_format="{:.3f}".format)
    ran = card[card["status"] != "not run"]
    body = (
        f"<p>{len(ran)} of {len(card)} cells of the papers' {dataset} tables are covered by this run, "
        f"certified with {html.escape(procedure)}.</p>"
        f"<h2>Summary</h2>{summary}<h2>Cells run</h2>"
        + (to_html(scorecard_table(ran), fragment=True) if len(ran) else "<p>none</p>")
        + "<h2>Cells not run</h2>"
        + card[card["status"] == "not run"][["paper", "table", "row", "column"]].to_html(index=False)
    )
    write_html(args.out / "scorecard.html", "Scorecard: this run beside the papers", body, provenance)

    cells = cells_frame(grid, keys, logs, radii, acr=acr)
    with atomic_open(args.out / "cells.csv") as handle:
        cells.to_csv(handle, index=False)
    write_html(
        args.out / "cells.html",
        "Per-cell results",
        cells.to_html(index=False, float_format="{:.3f}".format),
        provenance,
    )

    config_body = (
        f"<h2>Configuration</h2><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>"
        f"<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2, sort_keys=True))}</pre>"
        f"<p>{len(grid)} models, {len(logs)} certification logs, {int(np.sum([len(d) for d in logs.values()]))} "
        "certified images.</p>"
    )
    write_html(args.out / "configuration.html", "Configuration", config_body, provenance)
    print(f"{len(logs)} logs; scorecard: {len(ran)} of {len(card)} paper cells run")


if __name__ == "__main__":
    main()
