"""Reading CERTIFY logs: this project's and the reference code's (Cohen et al.; Salman et al.).

Both are tab-separated with the header ``idx label predict radius correct time``. The reference writes
``time`` as a ``datetime.timedelta`` string (``H:MM:SS.ffffff``) and radii with 3 significant digits; this
project writes float seconds and 8 significant digits. Lines starting with ``#`` (the settings line of a
partial log) are skipped. Logs of the sequential procedure add a final column ``samples`` (draws per image),
read as integers.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rsmooth.errors import LogFormatError, describe_exception

REQUIRED_COLUMNS = ("idx", "label", "predict", "radius", "correct")
ATTACK_COLUMNS = ("idx", "label", "predict", "basePredict", "correct")

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
    (the metrics refuse it, see ``rsmooth.analysis.metrics``). Raises :class:`~rsmooth.errors.LogFormatError`
    naming the file for an empty, binary, cut-off or foreign file,
    missing columns, unparsable values, or an index that occurs twice (e.g. two shard logs that overlap).
    The path is kept in ``df.attrs["path"]`` so later errors can name the file.
    """
    return _read_log(
        path, "certification", REQUIRED_COLUMNS, ("idx", "label", "predict", "correct"), ("radius",)
    )


def read_attack_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read one attack log (the reference predict.py's and this project's ``scripts/attack.py``'s) into a
    DataFrame with columns ``idx, label, predict, basePredict, correct[, time]``; errors as
    :func:`read_certify_log`."""
    columns = ATTACK_COLUMNS
    return _read_log(path, "attack", columns, columns, ())


def _read_log(
    path: str | os.PathLike,
    kind: str,
    required: tuple[str, ...],
    integer_columns: tuple[str, ...],
    float_columns: tuple[str, ...],
) -> pd.DataFrame:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        if text and not text.endswith("\n"):
            # Every writer (this project's atomic writes, the reference's print per row) ends each line with a
            # newline, so a last line without one is a cut-off row, possibly one that still parses.
            raise LogFormatError(f"{path}: truncated (the last line has no newline): {text[-40:]!r}", path)
        df = pd.read_csv(
            io.StringIO(text), sep="\t", comment="#", dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError as error:
        raise LogFormatError(f"{path}: empty file, not even a header", path) from error
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise LogFormatError(
            f"{path}: not a {kind} log (a tab-separated text file with header "
            f"{' '.join(required)} ...): {describe_exception(error)}",
            path,
        ) from error
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise LogFormatError(
            f"{path}: not a {kind} log, missing columns {missing} (has {list(df.columns)[:8]})", path
        )
    for column in integer_columns:
        try:
            df[column] = pd.to_numeric(df[column], errors="raise").astype(np.int64)
        except (ValueError, TypeError) as error:
            raise LogFormatError(f"{path}: column {column!r} is not integer: {error}", path) from error
    for column in float_columns:
        try:
            # Python's float() rounds correctly, so a logged "0.75" is exactly 0.75 and `radius >= 0.75`
            # holds, whatever float parser the installed pandas uses.
            df[column] = np.array([float(v) for v in df[column]], dtype=np.float64)
        except ValueError as error:
            raise LogFormatError(f"{path}: column {column!r} is not numeric: {error}", path) from error
    if not df["correct"].isin([0, 1]).all():
        raise LogFormatError(f"{path}: column 'correct' holds values other than 0 and 1", path)
    if "time" in df.columns:
        try:
            df["time"] = np.array([parse_duration(v) for v in df["time"]], dtype=np.float64)
        except ValueError as error:
            raise LogFormatError(f"{path}: column 'time': {error}", path) from error
    if "samples" in df.columns:
        try:
            df["samples"] = pd.to_numeric(df["samples"], errors="raise").astype(np.int64)
        except (ValueError, TypeError) as error:
            raise LogFormatError(f"{path}: column 'samples' is not integer: {error}", path) from error
    duplicated = df.loc[df["idx"].duplicated(), "idx"].unique()
    if len(duplicated):
        shown = ", ".join(map(str, duplicated[:10])) + (" ..." if len(duplicated) > 10 else "")
        raise LogFormatError(
            f"{path}: duplicate idx {shown} ({len(duplicated)} indices occur more than once)", path
        )
    df.attrs["path"] = str(path)
    return df
