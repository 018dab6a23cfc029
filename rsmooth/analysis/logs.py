"""Reading CERTIFY logs: this project's and the reference code's (Cohen et al.; Salman et al.).

Both are tab-separated with the header ``idx label predict radius correct time``. The reference writes
``time`` as a ``datetime.timedelta`` string (``H:MM:SS.ffffff``) and radii with 3 significant digits; this
project writes float seconds and 8 significant digits. Lines starting with ``#`` (the settings line of a
partial log) are skipped. Logs of the sequential procedure add a final column ``samples`` (draws per image),
read as integers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("idx", "label", "predict", "radius", "correct")

# "1 day, 2:03:04.5", "0:02:31.238689", "15:04" is not a timedelta string, so hours are required.
_TIMEDELTA = re.compile(r"^(?:(?P<days>-?\d+) days?, )?(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d*)?)$")


def parse_duration(value: str | float) -> float:
    """Seconds from a float (``15.4``) or a ``str(datetime.timedelta)`` (``0:02:31.238689``, ``1 day, 0:00:01``)."""
    if isinstance(value, int | float | np.number):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _TIMEDELTA.match(text)
    if match is None:
        raise ValueError(f"not a duration in seconds or H:MM:SS[.ffffff]: {value!r}")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


def read_certify_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read one CERTIFY log into a DataFrame with columns ``idx, label, predict, radius, correct[, time]``.

    ``time`` becomes float seconds whatever its format. A log with a header but no rows gives an empty frame
    (the metrics refuse it, see ``rsmooth.analysis.metrics``). Raises ``ValueError`` naming the file for
    missing columns, unparsable values, or an index that occurs twice (e.g. two shard logs that overlap).
    The path is kept in ``df.attrs["path"]`` so later errors can name the file.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: empty file, not even a header") from error
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: not a certification log, missing columns {missing} (has {list(df.columns)})"
        )
    for column in ("idx", "label", "predict", "correct"):
        try:
            df[column] = pd.to_numeric(df[column], errors="raise").astype(np.int64)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: column {column!r} is not integer: {error}") from error
    try:
        # Python's float() rounds correctly, so a logged "0.75" is exactly 0.75 and `radius >= 0.75` holds,
        # whatever float parser the installed pandas uses.
        df["radius"] = np.array([float(v) for v in df["radius"]], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: column 'radius' is not numeric: {error}") from error
    if not df["correct"].isin([0, 1]).all():
        raise ValueError(f"{path}: column 'correct' holds values other than 0 and 1")
    if "time" in df.columns:
        try:
            df["time"] = np.array([parse_duration(v) for v in df["time"]], dtype=np.float64)
        except ValueError as error:
            raise ValueError(f"{path}: column 'time': {error}") from error
    if "samples" in df.columns:
        try:
            df["samples"] = pd.to_numeric(df["samples"], errors="raise").astype(np.int64)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: column 'samples' is not integer: {error}") from error
    duplicated = df.loc[df["idx"].duplicated(), "idx"].unique()
    if len(duplicated):
        shown = ", ".join(map(str, duplicated[:10])) + (" ..." if len(duplicated) > 10 else "")
        raise ValueError(f"{path}: duplicate idx {shown} ({len(duplicated)} indices occur more than once)")
    df.attrs["path"] = str(path)
    return df
