"""The papers' published numbers (shipped as data) and the scorecard that sets this run's numbers beside them.

``data/paper_numbers.csv`` holds one row per published table cell; ``data/paper_tables.csv`` one row per
table with its title, the text it was transcribed from and caveats (``data/README.md`` describes both).
A run's numbers meet the paper's on the key ``(dataset, method, setting, sigma, metric, radius)``; the
helpers below produce run cells in that key so the mapping is explicit rather than guessed from names.

The verdict (:func:`scorecard`). A run certifies few images (40 in the demo, 500 in the papers), so its value
is an estimate: each run cell carries ``images`` and the 95% interval of its value (Clopper-Pearson for
accuracies and rates, over the images certified; Student's t for the ACR, a mean over images). A cell
*matches* when the paper's value, up to its printed rounding, lies inside that interval, and *differs*
otherwise. It is *beyond reach* (neither) when the cell asks for a radius larger than any certificate the
run's N and alpha can give at its sigma (``reach``, :func:`rsmooth.analysis.metrics.max_certifiable_radius`):
the run's value there is 0 by construction, whatever the model, so it says nothing about the paper.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

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
    clopper_pearson,
    mean_interval,
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
BEYOND_REACH = "beyond reach"
STATUSES = (MATCH, DIFFERS, BEYOND_REACH, NOT_RUN)
LEVEL = 0.95  # coverage of the run values' intervals
# Columns a run value may carry besides the key and ``value``: the spread over seeds, the images it is over,
# its interval, and the largest radius the run could certify for it (in the cell's radius units).
RUN_COLUMNS = ("std", "images", "low", "high", "reach")


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
    """Every paper cell beside this run's value for the same key, with a verdict (module docstring).

    Returns ``paper, table, row, column, <key columns>, paper_value, run_value, run_low, run_high, images,
    reach, difference, status, paper_std, run_std, std_status``: ``difference = run_value - paper_value``;
    ``run_low, run_high`` the run value's 95% interval; ``status`` one of ``"not run"`` (the run has no value
    for the key), ``"beyond reach"`` (the cell's radius, or for the ACR the paper's value, exceeds ``reach``),
    ``"match"`` (the paper's value lies in the interval widened by ``tolerance``, by default half the paper's
    printed precision) or ``"differs"``. A run value without an interval (no ``low``/``high`` columns) has
    the point itself as interval, so the verdict is "equal after rounding"; one without ``reach`` is never
    beyond reach. ``std_status`` compares the spread over seeds (``std`` of ``run_values``) with the paper's
    where both exist, at the printed precision. A key that occurs twice in ``run_values`` is an error.
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
    run = run[[*KEY_COLUMNS, "value", *(c for c in RUN_COLUMNS if c in run.columns)]].rename(
        columns={"value": "run_value", "std": "run_std", "low": "run_low", "high": "run_high"}
    )
    for column in ("run_value", "run_std", "run_low", "run_high", "images", "reach"):
        run[column] = pd.to_numeric(run[column]).astype(float) if column in run else np.nan
    run["run_low"] = run["run_low"].fillna(run["run_value"])
    run["run_high"] = run["run_high"].fillna(run["run_value"])
    merged = paper.merge(run, on=list(KEY_COLUMNS), how="left")
    merged = merged.rename(columns={"value": "paper_value"})
    merged["difference"] = merged["run_value"] - merged["paper_value"]
    if tolerance is None:
        precision = merged["precision"] if "precision" in merged else pd.Series(0.0, index=merged.index)
        limit = precision.fillna(0.0).astype(float) / 2
    else:
        limit = pd.Series(float(tolerance), index=merged.index)
    # The small slack absorbs the float error of e.g. 0.605 - 0.61 against a limit of 0.005.
    slack = limit + 1e-9
    inside = (merged["paper_value"] >= merged["run_low"] - slack) & (
        merged["paper_value"] <= merged["run_high"] + slack
    )
    beyond = _beyond_reach(merged)
    merged["status"] = np.select(
        [merged["run_value"].isna(), beyond, inside], [NOT_RUN, BEYOND_REACH, MATCH], default=DIFFERS
    )
    # Where the paper prints a spread over seeds, the run's spread is compared with it at the printed precision.
    paper_std = merged["std"] if "std" in merged else pd.Series(np.nan, index=merged.index)
    merged["paper_std"] = paper_std.astype(float)
    std_close = (merged["run_std"] - merged["paper_std"]).abs() <= slack
    merged["std_status"] = np.where(
        merged["paper_std"].isna() | merged["run_std"].isna(), "", np.where(std_close, MATCH, DIFFERS)
    )
    columns = [
        "paper", "table", "row", "column", *KEY_COLUMNS, "paper_value", "run_value", "run_low", "run_high",
        "images", "reach", "difference", "status", "paper_std", "run_std", "std_status",
    ]  # fmt: skip
    return merged[[c for c in columns if c in merged.columns]]


def _beyond_reach(merged: pd.DataFrame) -> pd.Series:
    """True where the cell needs more than the run can certify: a radius above ``reach`` (accuracies and rates
    at a radius), or for the ACR a paper value above it (the run's ACR is at most its reach)."""
    reach = merged["reach"]
    radius = pd.to_numeric(merged["radius"].replace("", "0"), errors="coerce").fillna(0.0)
    needed = np.where(merged["metric"] == "acr", merged["paper_value"], radius)
    # A radius equal to the reach is certifiable (every vote for the class); the slack is the logs' rounding.
    return pd.Series(reach.notna() & (needed > reach * (1 + 1e-7)), index=merged.index)


def scorecard_summary(card: pd.DataFrame) -> pd.DataFrame:
    """Cells per paper and table by status (:data:`STATUSES`), and the cells run."""
    counts = card.pivot_table(
        index=["paper", "table"], columns="status", values="paper_value", aggfunc="size", fill_value=0
    )
    for status in STATUSES:
        if status not in counts:
            counts[status] = 0
    counts = counts[list(STATUSES)].astype(int)
    counts.insert(0, "run", counts[list(STATUSES[:-1])].sum(axis=1))
    return counts.reset_index().rename_axis(columns=None)


def _best_cell(cells: pd.DataFrame) -> pd.Series | None:
    """The run cell with the highest run value (the larger radius on ties), or None."""
    if cells.empty:
        return None
    radius = pd.to_numeric(cells["radius"].replace("", "0"), errors="coerce").fillna(0.0)
    order = np.lexsort((-radius.to_numpy(), -cells["run_value"].to_numpy()))
    return cells.iloc[order[0]]


def scorecard_headline(card: pd.DataFrame, tables: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per paper table: its title (from ``tables``, :func:`load_paper_tables`), the cells run, matching,
    differing, beyond reach and not run, and where the run has them its best certified accuracy at a radius
    > 0 within reach and its best ACR, each beside the paper's value of that same cell (``row``, ``r``).
    A table with nothing run says so (``"not run"``) instead of leaving numbers blank."""
    # Tables in the order of the paper data (Table 2 before Table 10), not sorted as text.
    order = list(dict.fromkeys(zip(card["paper"], card["table"], strict=True)))
    summary = scorecard_summary(card).set_index(["paper", "table"]).loc[order]
    titles = {} if tables is None else {(t.paper, t.table): t.title for t in tables.itertuples(index=False)}
    rows = []
    for (paper, table), counts in summary.iterrows():
        cells = card[(card["paper"] == paper) & (card["table"] == table)]
        judged = cells[cells["status"].isin([MATCH, DIFFERS])]
        radius = pd.to_numeric(judged["radius"].replace("", "0"), errors="coerce").fillna(0.0)
        accuracy = _best_cell(judged[(judged["metric"] == "certified_accuracy") & (radius > 0)])
        acr = _best_cell(judged[judged["metric"] == "acr"])
        row = {"paper": paper, "table": table, "title": titles.get((paper, table), ""), **counts.to_dict()}
        nothing = NOT_RUN if counts["run"] == 0 else "–"
        row["best certified accuracy"] = nothing if accuracy is None else accuracy["run_value"]
        row["paper (same cell)"] = nothing if accuracy is None else accuracy["paper_value"]
        row["at"] = "" if accuracy is None else f"{accuracy['row']}, r = {accuracy['radius']}"
        row["best ACR"] = nothing if acr is None else acr["run_value"]
        row["paper ACR (same cell)"] = nothing if acr is None else acr["paper_value"]
        rows.append(row)
    return pd.DataFrame(rows)


def not_run_summary(card: pd.DataFrame) -> pd.DataFrame:
    """The paper cells this run has no value for, counted per paper, table and method: ``paper, table,
    method, settings`` (distinct settings), ``sigmas`` (the sigmas named, as text) and ``cells``."""
    missing = card[card["status"] == NOT_RUN]
    columns = ["paper", "table", "method", "settings", "sigmas", "cells"]
    if missing.empty:
        return pd.DataFrame(columns=columns)
    grouped = missing.groupby(["paper", "table", "method"], sort=False)
    out = grouped.agg(
        settings=("setting", lambda v: v.replace("", np.nan).nunique()),
        sigmas=("sigma", lambda v: ", ".join(sorted({x for x in v if x}, key=float)) or "–"),
        cells=("metric", "size"),
    ).reset_index()
    return out[columns]


NOT_RUN_COLUMNS = {
    "paper": "paper",
    "table": "table",
    "method": "method",
    "setting": "setting",
    "sigma": "sigma",
    "metric": "metric",
    "radius": "radius",
    "row": "paper row",
    "column": "paper column",
}


def not_run_list(card: pd.DataFrame) -> pd.DataFrame:
    """Every paper cell this run has no value for, one row each, with readable column names
    (:data:`NOT_RUN_COLUMNS`) and the paper's value in percent (the ACR as is): the full list behind
    :func:`not_run_summary`, for a searchable table."""
    missing = card[card["status"] == NOT_RUN]
    out = missing[list(NOT_RUN_COLUMNS)].rename(columns=NOT_RUN_COLUMNS).reset_index(drop=True)
    out["paper value"] = [
        _percent_or_acr(v, m) for v, m in zip(missing["paper_value"], missing["metric"], strict=True)
    ]
    return out


def _percent_or_acr(value: float, metric: str) -> float:
    return float(value) if metric == "acr" else float(value) * 100


def scorecard_table(card: pd.DataFrame, *, caption: str = "Scorecard", percent: bool = True) -> Table:
    """The scorecard as a renderable table: paper value, this run's value and its 95% interval, the images it
    is over, the run's reach, difference and verdict per cell; cells not run show the verdict only. Rates in
    percent (as the papers print them), the ACR and the reach in l2 units."""

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
    low = card["run_low"] if "run_low" in card else card["run_value"]
    high = card["run_high"] if "run_high" in card else card["run_value"]
    images = card["images"] if "images" in card else pd.Series(np.nan, index=card.index)
    reach = card["reach"] if "reach" in card else pd.Series(np.nan, index=card.index)
    rows = {
        "paper": card["paper"],
        "table": card["table"],
        "row": card["row"],
        "column": card["column"],
        "paper value": spread("paper_value", "paper_std"),
        "this run": spread("run_value", "run_std"),
        "95% interval": [
            "–" if pd.isna(a) or pd.isna(n) else f"{show(a, m)} – {show(b, m)}"
            for a, b, n, m in zip(low, high, images, card["metric"], strict=True)
        ],
        "images": ["–" if pd.isna(n) else f"{int(n)}" for n in images],
        "largest certifiable radius": ["–" if pd.isna(r) else f"{r:.3f}" for r in reach],
        "difference": [show(v, m, True) for v, m in zip(card["difference"], card["metric"], strict=True)],
        "verdict": card["status"],
        **(
            {"spread": card["std_status"]} if "std_status" in card and card["std_status"].ne("").any() else {}
        ),
    }
    values = pd.DataFrame(rows).set_index("paper")
    values.index.name = "paper"
    return Table(values.astype(object), caption=caption, data=card.reset_index(drop=True))


# ----------------------------------------------------------------------------- run values in the paper key


class RunValue(NamedTuple):
    """One run value before it is keyed: its metric, radius, value, images and 95% interval."""

    metric: str
    radius: float | None
    value: float
    images: int
    low: float
    high: float


def _rate(metric: str, radius: float | None, successes: int, images: int) -> RunValue:
    """A rate over ``images`` (accuracy, abstention) with its Clopper-Pearson interval."""
    low, high = clopper_pearson(successes, images, LEVEL)
    return RunValue(metric, radius, successes / images, images, low, high)


def _acr(df: pd.DataFrame) -> RunValue:
    """The ACR with the t interval of a mean over the images (wrong and abstained images count 0)."""
    per_image = np.where(df["correct"].to_numpy() == 1, df["radius"].to_numpy(dtype=np.float64), 0.0)
    low, high = mean_interval(per_image, LEVEL)
    return RunValue("acr", None, average_certified_radius(df), len(df), low, high)


def _successes(df: pd.DataFrame, radii: ArrayLike) -> np.ndarray:
    # certified_accuracy is a count over len(df): recover the count exactly.
    return np.rint(certified_accuracy(df, radii) * len(df)).astype(int)


def _cells(
    dataset: str,
    method: str,
    setting: str,
    sigma: float | None,
    items: Iterable[RunValue],
    reach: float | None = None,
) -> pd.DataFrame:
    rows = [
        {"dataset": dataset, "method": method, "setting": setting, "sigma": sigma, **item._asdict()}
        for item in items
    ]
    frame = pd.DataFrame(rows, columns=[*KEY_COLUMNS, "value", "images", "low", "high"])
    frame["reach"] = np.nan if reach is None else float(reach)
    return frame


def model_cells(
    df: pd.DataFrame,
    radii: ArrayLike,
    *,
    dataset: str,
    method: str,
    setting: str = "",
    sigma: float | None = None,
    acr: bool = True,
    reach: float | None = None,
) -> pd.DataFrame:
    """Run values of one model: certified accuracy at each radius (include 0 for the clean column) and ACR
    (``acr=False`` for logs of grid radii, whose ACR is not the papers'), each with the images it is over,
    its 95% interval (``low``, ``high``) and ``reach``, the largest radius the run can certify at this sigma
    (:func:`rsmooth.analysis.metrics.max_certifiable_radius`; None: unknown)."""
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    items = [
        _rate("certified_accuracy", float(r), int(k), len(df))
        for r, k in zip(radii, _successes(df, radii), strict=True)
    ]
    if acr:
        items.append(_acr(df))
    return _cells(dataset, method, setting, sigma, items, reach)


def envelope_cells(
    logs: Logs,
    radii: ArrayLike,
    *,
    dataset: str,
    method: str,
    setting: str = "envelope",
    reach: float | None = None,
) -> pd.DataFrame:
    """Run values of an envelope over ``logs``: at each radius the best model's certified accuracy, its clean
    accuracy and its abstention rate (Salman et al. Tables 1-2, 4, 16-17), each with the interval over that
    model's images; ``reach`` is the largest radius any of the models can be certified at."""
    best = best_per_radius(logs, radii)
    items = []
    for row in best.itertuples(index=False):
        df = logs[row.model]
        certified, clean = _successes(df, [row.radius, 0.0])
        abstained = int(np.rint(abstention_rate(df) * len(df)))
        items += [
            _rate("certified_accuracy", row.radius, int(certified), len(df)),
            _rate("clean_accuracy", row.radius, int(clean), len(df)),
            _rate("abstention_rate", row.radius, abstained, len(df)),
        ]
    return _cells(dataset, method, setting, None, items, reach)


def linf_cells(
    logs: Logs,
    *,
    dataset: str,
    method: str,
    setting: str = "envelope",
    l2_radius: float | None = None,
    reach: float | None = None,
) -> pd.DataFrame:
    """Run values for the l-inf tables (Salman et al. Tables 3 and 5): the envelope's certified and clean
    accuracy at the l2 radius the paper used (``grids.PAPER_LINF_L2_RADIUS``), so that the comparison is
    like for like; pass ``l2_radius`` for another (e.g. the exact ``eps * sqrt(d)``). ``reach`` (l2) is
    converted by the same ratio, so that it compares with the cells' l-inf radius."""
    eps = linf_radius(dataset)
    radius = paper_linf_l2_radius(dataset) if l2_radius is None else float(l2_radius)
    row = best_per_radius(logs, [radius]).iloc[0]
    df = logs[row["model"]]
    certified, clean = _successes(df, [radius, 0.0])
    items = [
        _rate("linf_certified_accuracy", eps, int(certified), len(df)),
        _rate("linf_clean_accuracy", eps, int(clean), len(df)),
    ]
    return _cells(dataset, method, setting, None, items, None if reach is None else reach * eps / radius)


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
    the mean and ``std`` the standard deviation over seeds (numpy's, ddof 0; 0 for a single seed).

    Where the frames carry ``images`` and intervals (:func:`model_cells`), the mean's interval is over all the
    seeds' images: Clopper-Pearson on the pooled count for rates, and for the ACR the mean's t interval with
    the seeds' half-widths combined (``sqrt(sum h_i^2) / k``); ``reach`` is the smallest of the seeds'."""
    stacked = pd.concat(frames, ignore_index=True)
    keys = list(KEY_COLUMNS)
    grouped = stacked.groupby(keys, sort=False, dropna=False)
    out = (
        grouped["value"].agg(value="mean", std=lambda v: float(np.std(v.to_numpy(dtype=float)))).reset_index()
    )
    if not {"images", "low", "high"} <= set(stacked.columns):
        return out[[*keys, "value", "std"]]
    rows = []
    for _, group in grouped:
        images = int(group["images"].sum())
        metric = group["metric"].iloc[0]
        if metric == "acr":
            half = np.sqrt((((group["high"] - group["low"]) / 2) ** 2).sum()) / len(group)
            mean = float(group["value"].mean())
            low, high = mean - half, mean + half
        else:
            successes = int(np.rint((group["value"] * group["images"]).sum()))
            low, high = clopper_pearson(successes, images, LEVEL)
        reach = group["reach"].min() if "reach" in group else np.nan
        rows.append({"images": images, "low": low, "high": high, "reach": reach})
    extra = pd.DataFrame(rows, index=out.index)
    return pd.concat([out[[*keys, "value", "std"]], extra], axis=1)


__all__ = [
    "BEYOND_REACH",
    "KEY_COLUMNS",
    "METRICS",
    "STATUSES",
    "envelope_cells",
    "linf_cells",
    "load_paper_numbers",
    "load_paper_tables",
    "model_cells",
    "model_setting",
    "not_run_list",
    "not_run_summary",
    "scorecard",
    "scorecard_headline",
    "scorecard_summary",
    "scorecard_table",
    "seed_summary",
    "smoothmix_keys",
]
