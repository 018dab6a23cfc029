"""The papers' published numbers (shipped as data) and the scorecard that sets this run's numbers beside them.

``data/paper_numbers.csv`` holds one row per published table cell; ``data/paper_tables.csv`` one row per
table with its title, the text it was transcribed from and caveats (``data/README.md`` describes both).
A run's numbers meet the paper's on the key ``(dataset, method, setting, sigma, metric, radius)``; the
helpers below produce run cells in that key so the mapping is explicit rather than guessed from names.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rsmooth.analysis.grids import linf_radius, paper_linf_l2_radius
from rsmooth.analysis.metrics import (
    Logs,
    abstention_rate,
    average_certified_radius,
    best_per_radius,
    certified_accuracy,
)
from rsmooth.analysis.tables import Table
from rsmooth.errors import PaperDataError, describe_exception
from rsmooth.train.methods import EACH_MODEL, SEED_MEAN, get_method

KEY_COLUMNS = ("dataset", "method", "setting", "sigma", "metric", "radius")
METRICS = (
    "certified_accuracy",
    "clean_accuracy",
    "abstention_rate",
    "acr",
    "linf_certified_accuracy",
    "linf_clean_accuracy",
)
NOT_RUN = "not run"
MATCH = "match"
DIFFERS = "differs"


PAPER_NUMBERS_COLUMNS = (
    "paper", "table", "dataset", "method", "setting", "sigma", "metric", "radius", "value", "precision", "std",
    "row", "column", "note",
)  # fmt: skip
PAPER_TABLES_COLUMNS = ("paper", "table", "title", "source", "note")


def read_paper_csv(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """A paper-data CSV with exactly ``columns``, every row complete, all as text; else PaperDataError."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        if text and not text.endswith("\n"):
            raise PaperDataError(f"{path}: truncated (the last line has no newline)", path)
        # keep_default_na=False: empty sigma/radius/setting are "not applicable", kept as "".
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise PaperDataError(
            f"{path}: not a paper-data CSV with columns {', '.join(columns)} ({describe_exception(error)})",
            path,
        ) from error
    if tuple(df.columns) != tuple(columns):
        raise PaperDataError(
            f"{path}: expected the columns {', '.join(columns)}, found {', '.join(map(str, df.columns[:16]))}",
            path,
        )
    short = df.index[df.isna().any(axis=1)]  # only a row with missing fields has NaN here
    if len(short):
        raise PaperDataError(f"{path}: row {int(short[0]) + 2} has fewer than {len(columns)} fields", path)
    return df


def _data_path(name: str) -> Path:
    return Path(str(resources.files("rsmooth.analysis").joinpath("data", name)))


def load_paper_numbers(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every transcribed cell: ``paper, table, dataset, method, setting, sigma, metric, radius, value,
    precision, std, row, column, note``; ``value``, ``precision`` and ``std`` as floats (accuracies and
    rates as fractions, ACR in l2 units), the key columns as canonical text. ``path`` defaults to the
    shipped ``data/paper_numbers.csv``."""
    path = Path(path) if path is not None else _data_path("paper_numbers.csv")
    df = read_paper_csv(path, PAPER_NUMBERS_COLUMNS)
    for column in ("value", "precision", "std"):
        try:
            df[column] = pd.to_numeric(df[column].replace("", np.nan)).astype(float)
        except (ValueError, TypeError) as error:
            raise PaperDataError(f"{path}: column {column!r} is not numeric ({error})", path) from error
    return df


def load_paper_tables(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per transcribed table: ``paper, table, title, source, note``."""
    return read_paper_csv(
        Path(path) if path is not None else _data_path("paper_tables.csv"), PAPER_TABLES_COLUMNS
    )


def model_setting(steps: int, m_train: int, eps: float) -> str:
    """The ``setting`` of one SmoothAdv model, as the paper data spell it: ``"T=2 m=1 eps=0.25"``."""
    return f"T={steps} m={m_train} eps={float(eps):g}"


def _key_text(value: object) -> str:
    """Canonical text of a key value: numbers by ``%g`` (so 0.5, "0.50" and np.float64(0.5) agree)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | np.number):
        return format(float(value), "g")
    text = str(value).strip()
    try:
        return format(float(text), "g") if text else ""
    except ValueError:
        return text


def _keyed(df: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in (*KEY_COLUMNS, "value") if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    out = df.copy()
    for column in KEY_COLUMNS:
        out[column] = [_key_text(v) for v in out[column]]
    return out


def scorecard(
    paper_numbers: pd.DataFrame, run_values: pd.DataFrame, *, tolerance: float | None = None
) -> pd.DataFrame:
    """Every paper cell beside this run's value for the same key.

    Returns ``paper, table, row, column, <key columns>, paper_value, run_value, difference, status`` with
    ``difference = run_value - paper_value`` and ``status`` one of ``"not run"`` (the run has no value for
    the key), ``"match"`` (within ``tolerance``; by default half the paper's printed precision, i.e. equal
    after rounding) or ``"differs"``; ``paper_std``, ``run_std`` (a ``std`` column of ``run_values``: the
    spread over seeds) and ``std_status``, the same comparison of the spreads where both exist. ``run_values`` needs the key columns and ``value``; a key that occurs
    twice in it is an error, since the cell it belongs to would be ambiguous.
    """
    paper = _keyed(paper_numbers, "paper_numbers")
    run = _keyed(run_values, "run_values")
    duplicated = run[run.duplicated(list(KEY_COLUMNS), keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise ValueError(
            f"run_values holds {len(duplicated)} rows with a repeated key, e.g. "
            + ", ".join(f"{c}={first[c]!r}" for c in KEY_COLUMNS)
        )
    has_std = "std" in run.columns
    run = run[[*KEY_COLUMNS, "value", *(["std"] if has_std else [])]].rename(
        columns={"value": "run_value", "std": "run_std"}
    )
    run["run_value"] = pd.to_numeric(run["run_value"]).astype(float)
    if not has_std:
        run["run_std"] = np.nan
    merged = paper.merge(run, on=list(KEY_COLUMNS), how="left")
    merged = merged.rename(columns={"value": "paper_value"})
    merged["difference"] = merged["run_value"] - merged["paper_value"]
    if tolerance is None:
        precision = merged["precision"] if "precision" in merged else pd.Series(0.0, index=merged.index)
        limit = precision.fillna(0.0).astype(float) / 2
    else:
        limit = pd.Series(float(tolerance), index=merged.index)
    # The small slack absorbs the float error of e.g. 0.605 - 0.61 against a limit of 0.005.
    close = merged["difference"].abs() <= limit + 1e-9
    merged["status"] = np.where(merged["run_value"].isna(), NOT_RUN, np.where(close, MATCH, DIFFERS))
    # Where the paper prints a spread over seeds, the run's spread is compared with it the same way.
    paper_std = merged["std"] if "std" in merged else pd.Series(np.nan, index=merged.index)
    merged["paper_std"] = paper_std.astype(float)
    merged["run_std"] = merged["run_std"].astype(float)
    std_close = (merged["run_std"] - merged["paper_std"]).abs() <= limit + 1e-9
    merged["std_status"] = np.where(
        merged["paper_std"].isna() | merged["run_std"].isna(), "", np.where(std_close, MATCH, DIFFERS)
    )
    columns = [
        "paper",
        "table",
        "row",
        "column",
        *KEY_COLUMNS,
        "paper_value",
        "run_value",
        "difference",
        "status",
        "paper_std",
        "run_std",
        "std_status",
    ]
    return merged[[c for c in columns if c in merged.columns]]


def scorecard_summary(card: pd.DataFrame) -> pd.DataFrame:
    """Cells per paper and table by status, plus the mean absolute difference over the cells run."""
    counts = card.pivot_table(
        index=["paper", "table"], columns="status", values="paper_value", aggfunc="size", fill_value=0
    )
    for status in (MATCH, DIFFERS, NOT_RUN):
        if status not in counts:
            counts[status] = 0
    counts = counts[[MATCH, DIFFERS, NOT_RUN]]
    counts["mean_abs_difference"] = card.groupby(["paper", "table"])["difference"].apply(
        lambda d: d.abs().mean()
    )
    return counts.reset_index().rename_axis(columns=None)


def scorecard_table(card: pd.DataFrame, *, caption: str = "Scorecard", percent: bool = True) -> Table:
    """The scorecard as a renderable table: paper value, this run's value, difference and status per cell;
    cells not run show the status only. Rates are shown in percent, ACR as is."""

    def show(value: float, metric: str, signed: bool = False) -> str:
        if pd.isna(value):
            return "–"
        if percent and metric != "acr":
            return f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}"
        return f"{value:+.3f}" if signed else f"{value:.3f}"

    def spread(values: str, stds: str) -> list[str]:
        # "mean ± std" where the paper prints a spread over seeds (and the run has one).
        if "paper_std" not in card:
            return [show(v, m) for v, m in zip(card[values], card["metric"], strict=True)]
        return [
            show(v, m) + ("" if pd.isna(sd) or pd.isna(v) else f" ± {show(sd, m)}")
            for v, sd, m in zip(card[values], card[stds], card["metric"], strict=True)
        ]

    with_spread = "paper_std" in card and card["paper_std"].notna()
    run_std = card["run_std"].where(with_spread) if "run_std" in card else None
    card = card.assign(run_std=run_std) if run_std is not None else card
    rows = {
        "paper": card["paper"],
        "table": card["table"],
        "row": card["row"],
        "column": card["column"],
        "paper value": spread("paper_value", "paper_std"),
        "this run": spread("run_value", "run_std"),
        "difference": [show(v, m, True) for v, m in zip(card["difference"], card["metric"], strict=True)],
        "status": card["status"],
        **(
            {"spread": card["std_status"]} if "std_status" in card and card["std_status"].ne("").any() else {}
        ),
    }
    values = pd.DataFrame(rows).set_index("paper")
    values.index.name = "paper"
    return Table(values.astype(object), caption=caption, data=card.reset_index(drop=True))


# ----------------------------------------------------------------------------- run values in the paper key


def _cells(
    dataset: str,
    method: str,
    setting: str,
    sigma: float | None,
    items: Iterable[tuple[str, float | None, float]],
) -> pd.DataFrame:
    rows = [
        {
            "dataset": dataset,
            "method": method,
            "setting": setting,
            "sigma": sigma,
            "metric": metric,
            "radius": radius,
            "value": value,
        }
        for metric, radius, value in items
    ]
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, "value"])


def model_cells(
    df: pd.DataFrame,
    radii: ArrayLike,
    *,
    dataset: str,
    method: str,
    setting: str = "",
    sigma: float | None = None,
    acr: bool = True,
) -> pd.DataFrame:
    """Run values of one model: certified accuracy at each radius (include 0 for the clean column) and ACR
    (``acr=False`` for logs of grid radii, whose ACR is not the papers')."""
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    acc = certified_accuracy(df, radii)
    items = [("certified_accuracy", float(r), float(a)) for r, a in zip(radii, acc, strict=True)]
    if acr:
        items.append(("acr", None, average_certified_radius(df)))
    return _cells(dataset, method, setting, sigma, items)


def envelope_cells(
    logs: Logs, radii: ArrayLike, *, dataset: str, method: str, setting: str = "envelope"
) -> pd.DataFrame:
    """Run values of an envelope over ``logs``: at each radius the best model's certified accuracy, its clean
    accuracy and its abstention rate (Salman et al. Tables 1-2, 4, 16-17)."""
    best = best_per_radius(logs, radii)
    items = []
    for row in best.itertuples(index=False):
        items += [
            ("certified_accuracy", row.radius, row.certified_accuracy),
            ("clean_accuracy", row.radius, row.clean_accuracy),
            ("abstention_rate", row.radius, abstention_rate(logs[row.model])),
        ]
    return _cells(dataset, method, setting, None, items)


def linf_cells(
    logs: Logs, *, dataset: str, method: str, setting: str = "envelope", l2_radius: float | None = None
) -> pd.DataFrame:
    """Run values for the l-inf tables (Salman et al. Tables 3 and 5): the envelope's certified and clean
    accuracy at the l2 radius the paper used (``grids.PAPER_LINF_L2_RADIUS``), so that the comparison is
    like for like; pass ``l2_radius`` for another (e.g. the exact ``eps * sqrt(d)``)."""
    eps = linf_radius(dataset)
    radius = paper_linf_l2_radius(dataset) if l2_radius is None else float(l2_radius)
    row = best_per_radius(logs, [radius]).iloc[0]
    items = [
        ("linf_certified_accuracy", eps, float(row["certified_accuracy"])),
        ("linf_clean_accuracy", eps, float(row["clean_accuracy"])),
    ]
    return _cells(dataset, method, setting, None, items)


# ------------------------------------------------------------------- SmoothMix's tables: models and seeds


def smoothmix_keys(dataset: str, train: dict) -> list[tuple[str, str, bool]]:
    """``(method, setting, over_seeds)`` under which SmoothMix's tables hold a model trained from scratch
    with ``train`` (TrainConfig values) on ``dataset``; ``over_seeds``: the table reports the mean and
    standard deviation over seeds of this model (MNIST Tables 4-5), else the seed-0 model (the ablations).

    The method decides (:meth:`~rsmooth.train.methods.Method.paper_rows`, its rows of seed-combined tables).
    """
    rows = get_method(train["method"]).paper_rows(dataset, train)
    return [(r.method, r.setting, r.seeds == SEED_MEAN) for r in rows if r.seeds != EACH_MODEL]


def seed_summary(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Run values of the same model trained with several seeds (one frame per seed, same keys): ``value``
    the mean and ``std`` the standard deviation over seeds (numpy's, ddof 0; 0 for a single seed)."""
    stacked = pd.concat(frames, ignore_index=True)
    keys = list(KEY_COLUMNS)
    grouped = stacked.groupby(keys, sort=False, dropna=False)["value"]
    out = grouped.agg(value="mean", std=lambda v: float(np.std(v.to_numpy(dtype=float)))).reset_index()
    return out[[*keys, "value", "std"]]


__all__ = [
    "KEY_COLUMNS",
    "METRICS",
    "envelope_cells",
    "linf_cells",
    "load_paper_numbers",
    "load_paper_tables",
    "model_cells",
    "model_setting",
    "scorecard",
    "scorecard_summary",
    "scorecard_table",
    "seed_summary",
    "smoothmix_keys",
]
