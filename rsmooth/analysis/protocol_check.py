"""The paper-protocol check of a sequential run (``certify.cohen_skip``): CERTIFY with the run's n0, N and alpha
on a subset of the images certified sequentially.

The sequential procedure has CERTIFY's guarantee at far fewer draws, but its certificates are grid radii: a run
certified that way cannot give the papers' average certified radius, and a reader may rightly want to see the
papers' own protocol on the same models. The check gives both: a scorecard of the CERTIFY logs against the
papers (ACR included), and the two procedures image by image at each grid radius. The two draw independent
noise, so they may disagree on an image whose certificate lies near a radius (each is wrong with probability
at most alpha, not the same draws); McNemar's exact test on the discordant images says whether one certifies
more often than the other beyond that chance.

Input: the grid description with a ``cohen_log`` beside each certification's ``log``
(``rsmooth.pipeline.grid_description(..., cohen_check=True)``).
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from rsmooth.analysis.paper import (
    MATCH,
    NOT_RUN,
    load_paper_numbers,
    load_paper_tables,
    scorecard,
    scorecard_headline,
)
from rsmooth.analysis.results import (
    VERDICTS,
    Certification,
    Settings,
    cells_run_table,
    headline_table,
    paper_values,
    read_grid,
)
from rsmooth.analysis.tables import to_html, write_html_page
from rsmooth.html_page import display_frame, interactive_table
from rsmooth.io import atomic_open
from rsmooth.logformat import read_certify_log
from rsmooth.pipeline import format_value

AGREEMENT_COLUMNS = (
    "model",
    "sigma",
    "radius",
    "images",
    "certified CERTIFY",
    "certified sequential",
    "CERTIFY only",
    "sequential only",
    "McNemar p",
    "draws CERTIFY",
    "mean draws sequential",
)


def read_checks(grid: Mapping[str, Any]) -> list[tuple[Certification, Certification]]:
    """(sequential, CERTIFY) certification pairs of the grid description, in its order, both logs read."""
    entries = grid["certifications"]
    unchecked = [entry["log"] for entry in entries if "cohen_log" not in entry]
    if unchecked:
        raise ValueError(
            f"the grid description has no CERTIFY check log (cohen_log) for {unchecked[:3]}: the workflow "
            "writes them only with certify.cohen_skip set"
        )
    return [
        (c, dataclasses.replace(c, log=read_certify_log(entry["cohen_log"])))
        for c, entry in zip(read_grid(grid), entries, strict=True)
    ]


def _certified(both: pd.DataFrame, procedure: str, radius: float) -> np.ndarray:
    """Per image: correct with a certified radius of at least ``radius`` (the papers' certified accuracy) under
    ``procedure`` (the column suffix of the joined logs)."""
    radii = both[f"radius {procedure}"].to_numpy(dtype=np.float64)
    return (both[f"correct {procedure}"].to_numpy() == 1) & (radii >= radius)


def agreement(
    sequential: pd.DataFrame, cohen: pd.DataFrame, radii: Sequence[float], draws: int
) -> pd.DataFrame:
    """The two procedures on the images both logs hold, one row per radius: images, how many each certifies,
    how many only one of them certifies, McNemar's exact two-sided p on those discordant images, CERTIFY's
    ``draws`` per image (n0 + N) and the sequential procedure's mean draws on these images.

    A CERTIFY image the sequential log lacks, or two logs that disagree on an image's label, is an error."""
    where = cohen.attrs.get("path", "the CERTIFY log")
    missing = sorted(set(cohen["idx"]) - set(sequential["idx"]))
    if missing:
        raise ValueError(
            f"{where}: images {missing[:5]} ({len(missing)} in all) are not in the sequential log "
            f"{sequential.attrs.get('path', '')}: certify.cohen_skip must be a multiple of the certified skip"
        )
    both = cohen.merge(sequential, on="idx", suffixes=(" cohen", " sequential"))
    if not len(both):
        raise ValueError(f"{where}: no images, so nothing to compare")
    labels = both["label cohen"].to_numpy() != both["label sequential"].to_numpy()
    if labels.any():
        idx = both["idx"].to_numpy()[labels][:5].tolist()
        raise ValueError(f"{where}: the labels of images {idx} differ from the sequential log's")
    mean_draws = float(both["samples"].mean()) if "samples" in both else float("nan")
    rows = []
    for radius in radii:
        by_cohen = _certified(both, "cohen", radius)
        by_sequential = _certified(both, "sequential", radius)
        only_cohen = int((by_cohen & ~by_sequential).sum())
        only_sequential = int((by_sequential & ~by_cohen).sum())
        discordant = only_cohen + only_sequential
        rows.append(
            {
                "radius": float(radius),
                "images": len(both),
                "certified CERTIFY": int(by_cohen.sum()),
                "certified sequential": int(by_sequential.sum()),
                "CERTIFY only": only_cohen,
                "sequential only": only_sequential,
                "McNemar p": binomtest(only_cohen, discordant, 0.5).pvalue if discordant else 1.0,
                "draws CERTIFY": int(draws),
                "mean draws sequential": mean_draws,
            }
        )
    return pd.DataFrame(rows)


def cohen_settings(config: Mapping[str, Any]) -> Settings:
    """The analysis settings of the CERTIFY check: the run's, under CERTIFY with the same n0, N and alpha."""
    return Settings.from_config({**config, "certify": {**config["certify"], "procedure": "cohen"}})


def write_protocol_check(
    grid: Mapping[str, Any], config: Mapping[str, Any], out: str | os.PathLike
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write under ``out``: ``protocol_check.csv`` (:func:`agreement` of every certification, at the analysis
    radii), ``scorecard_cohen.csv`` (the CERTIFY logs' scorecard against the papers) and
    ``protocol_check.html`` (both, with the run's provenance). Returns (agreement, scorecard)."""
    out = Path(out)
    settings = cohen_settings(config)
    pairs = read_checks(grid)
    certify = config["certify"]
    draws = int(certify["n0"]) + int(certify["n"])
    frames = []
    for sequential, cohen in pairs:
        frame = agreement(sequential.log, cohen.log, settings.radii, draws)
        frame.insert(0, "sigma", sequential.sigma)
        frame.insert(0, "model", sequential.model.id)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)[list(AGREEMENT_COLUMNS)]
    checked = [cohen for _, cohen in pairs]
    card = scorecard(
        load_paper_numbers().query("dataset == @settings.dataset"),
        paper_values(checked, settings.dataset, acr=True, reach=settings.reach),
    )
    with atomic_open(out / "protocol_check.csv") as handle:
        table.to_csv(handle, index=False)
    with atomic_open(out / "scorecard_cohen.csv") as handle:
        card.to_csv(handle, index=False)
    body = _page_body(table, card, settings, checked, int(certify["cohen_skip"]))
    write_html_page(
        out / "protocol_check.html", "Paper protocol: CERTIFY on a subset", body, settings.provenance
    )
    return table, card


def _page_body(
    table: pd.DataFrame, card: pd.DataFrame, settings: Settings, checked: Sequence[Certification], skip: int
) -> str:
    images = sorted({len(c.log) for c in checked})
    ran = card[card["status"] != NOT_RUN]
    discordant = int((table["CERTIFY only"] + table["sequential only"]).sum())
    lowest = float(table["McNemar p"].min())
    reach = ", ".join(f"{settings.reach(s):.3f} at sigma = {format_value(s)}" for s in sorted({c.sigma for c in checked}))  # fmt: skip
    shown = display_frame(
        table,
        names={"sigma": "Sigma", "radius": "Radius", "images": "Images"},
        digits={"McNemar p": 3, "mean draws sequential": 0},
    )
    return (
        f"<p>The models of this run certified a second time, with {html.escape(settings.procedure)}, the papers' "
        f"procedure, on 1 in {skip} test images ({'/'.join(map(str, images))} images per model): these images "
        "were also certified sequentially, so the two procedures can be compared image by image, and the CERTIFY "
        "logs give the average certified radius (ACR) that grid radii cannot. Largest radius CERTIFY can "
        f"certify: {html.escape(reach)}.</p>"
        "<h2>The two procedures, image by image</h2>"
        f"<p>{discordant} (image, radius) pairs in all are certified by one procedure and not the other; the "
        f"smallest McNemar p is {lowest:.3g}. The two draw independent noise and each is wrong with probability "
        "at most alpha, so an image whose certificate lies near a radius can go either way; a small p at a "
        "radius says that one procedure certifies more often there than such chance explains.</p>"
        + interactive_table(
            shown,
            "Per model, sigma and radius: the images certified by CERTIFY and by the sequential procedure (correct, "
            "certified radius at least r), those certified by one only, McNemar's exact two-sided p, and the "
            "draws per image",
            table_id="agreement",
        )
        + "<h2>Scorecard under CERTIFY</h2>"
        + f"<p>{len(ran)} paper cells covered, {int((ran['status'] == MATCH).sum())} match.</p>"
        + VERDICTS
        + to_html(headline_table(scorecard_headline(card, load_paper_tables())), fragment=True)
        + cells_run_table(
            ran,
            "Every paper cell the CERTIFY check covers: the paper's value, the check's value with its 95% interval "
            "and the images it is over, its reach, the difference and the verdict; rates in percent, the ACR and "
            "the reach in l2 units.",
            table_id="cells_run_cohen",
        )
    )
