"""The certification and attack logs on disk: the one place that writes, resumes, merges and reads them.

Layout. A log is tab-separated text, one header line then one row per image, every line ending in a newline:

- CERTIFY (Cohen et al.): ``idx label predict radius correct time``; rsmooth writes the radius with 8
  significant digits and ``time`` as float seconds with 4 decimals.
- Sequential certification: the same columns plus a final ``samples`` (the draws the image used).
- Attack (the reference ``predict.py``): ``idx label predict basePredict correct time``.

``predict`` is :data:`ABSTAIN` (-1) when the smoothed classifier abstains; ``correct`` is 1 when it returns the
label (an abstention is not correct). Sequential logs in label mode (the test is on the true label, so no
class is predicted) write :data:`NOT_LABEL` (-2) when the test ruled out that g returns the label (a wrong
prediction) and -1 when it could not decide; logs written before this code have -1 for both and still read
(their abstention rate then includes the wrong predictions).

Partial file. While a run is in progress its rows go to ``<log>.partial``: a first line
``# rsmooth-certify {settings as JSON}``, the header, then rows in the order they were done, fsynced per call.
A rerun resumes from it when its settings are the same and refuses otherwise; a last line cut by a kill is
dropped and redone. Only once every selected index is done is the complete log written under its final name
(atomically, rows in index order) and the partial file renamed ``<log>.done``: the record of the finished run.
A rerun with the very same settings whose log is gone (Snakemake deletes the outputs of a job it counts as
failed, e.g. every member of a killed SLURM bundle) rewrites the log from that record instead of redoing the
work; a rerun with other settings discards it (:func:`write_log`).

Reading. Every row written here matches a strict pattern (:func:`parse_rows`: the partial file and the shards
to merge are read that way, without pandas). Logs of the reference code are read by :func:`read_certify_log`
and :func:`read_attack_log` into DataFrames: they write ``time`` as ``str(datetime.timedelta)``
(``0:02:31.238689``) and radii with 3 significant digits, and ``#`` lines are skipped. An index occurring twice
is an error everywhere (e.g. shards that overlap).

This module imports neither torch nor pandas at import time, so the light pipeline jobs start fast.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsmooth.errors import LogFormatError, describe_exception
from rsmooth.io import atomic_open

if TYPE_CHECKING:
    import pandas as pd

ABSTAIN = -1
NOT_LABEL = -2  # sequential label mode: "not the label" (a wrong prediction), apart from an abstention

CERTIFY_HEADER = ("idx", "label", "predict", "radius", "correct", "time")
# Sequential certification appends the base-classifier draws used per image; the reference readers ignore it.
SEQUENTIAL_HEADER = (*CERTIFY_HEADER, "samples")
# The attack log of the reference predict.py: PREDICT on the adversarial example, and the base classifier's
# class on it without noise.
ATTACK_HEADER = ("idx", "label", "predict", "basePredict", "correct", "time")
HEADERS = {"\t".join(h): h for h in (CERTIFY_HEADER, SEQUENTIAL_HEADER, ATTACK_HEADER)}

REQUIRED_COLUMNS = CERTIFY_HEADER[:5]
ATTACK_COLUMNS = ATTACK_HEADER[:5]

_META_PREFIX = "# rsmooth-certify "
_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?$")
# "1 day, 2:03:04.5", "0:02:31.238689"; "15:04" is not a timedelta string, so hours are required.
_TIMEDELTA = re.compile(r"^(?:(?P<days>-?\d+) days?, )?(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d*)?)$")


def _correct(label: int, prediction: int) -> int:
    return int(prediction == label and prediction != ABSTAIN)


def format_row(idx: int, label: int, prediction: int, radius: float, seconds: float) -> str:
    """One CERTIFY line; the radius keeps 8 significant digits (the reference's 3 bias counts at grid radii)."""
    return f"{idx}\t{label}\t{prediction}\t{radius:.8g}\t{_correct(label, prediction)}\t{seconds:.4f}\n"


def format_sequential_row(
    idx: int, label: int, prediction: int, radius: float, seconds: float, samples: int
) -> str:
    """One sequential-certification line: a CERTIFY line and the draws the image used."""
    return format_row(idx, label, prediction, radius, seconds).rstrip("\n") + f"\t{samples}\n"


def format_attack_row(idx: int, label: int, prediction: int, base_prediction: int, seconds: float) -> str:
    """One attack-log line: ``correct`` is 1 when PREDICT returns the label (an abstention is not correct)."""
    correct = _correct(label, prediction)
    return f"{idx}\t{label}\t{prediction}\t{base_prediction}\t{correct}\t{seconds:.4f}\n"


def parse_duration(value: str | float) -> float:
    """Seconds from a float (``15.4``) or a ``str(datetime.timedelta)`` (``0:02:31.238689``, ``1 day, 0:00:01``)."""
    import numpy as np

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


def _is_duration(text: str) -> bool:
    return bool(_NUMBER.match(text) or _TIMEDELTA.match(text))


def parse_rows(
    lines: Iterable[str], header: Sequence[str], path: Path, *, first_line: int, hint: str
) -> dict[int, str]:
    """Index -> line (with its newline) of rows written by this module: as many fields as ``header``, each a
    number (``time`` also a timedelta string), ``correct`` 0 or 1, no index twice. A bad row raises
    :class:`~rsmooth.errors.LogFormatError` naming the file and line, followed by ``hint``."""
    rows: dict[int, str] = {}
    correct = header.index("correct")
    time = header.index("time")
    for number, line in enumerate(lines, start=first_line):
        fields = line.split("\t")
        good = len(fields) == len(header) and all(
            (_is_duration if k == time else _NUMBER.match)(f) for k, f in enumerate(fields)
        )
        if not good or fields[correct] not in ("0", "1"):
            raise LogFormatError(
                f"{path}, line {number}: not a row of {len(header)} numbers: {line[:80]!r}; {hint}", path
            )
        idx = int(fields[0])
        if idx in rows:
            raise LogFormatError(f"{path} holds index {idx} twice; {hint}", path)
        rows[idx] = line + "\n"
    return rows


class PartialLog:
    """The append-only partial log of one run (see the module docstring for its layout)."""

    def __init__(
        self, path: str | os.PathLike, meta: dict[str, Any], header: Sequence[str] = CERTIFY_HEADER
    ) -> None:
        self.path = Path(path)
        self.meta = meta
        self.header = tuple(header)
        self.rows: dict[int, str] = {}
        if self.path.exists():
            self._resume()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(self.path) as handle:
                handle.write(_META_PREFIX + json.dumps(meta, sort_keys=True) + "\n")
                handle.write("\t".join(self.header) + "\n")

    def _resume(self) -> None:
        try:
            text = self.path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise LogFormatError(
                f"{self.path} is not an rsmooth partial certification log (not text: {err}); delete it to restart",
                self.path,
            ) from None
        lines = text.split("\n")
        # A kill mid-write leaves a last line without its newline: drop it, it is redone.
        complete, torn = lines[:-1], lines[-1]
        if len(complete) < 2 or not complete[0].startswith(_META_PREFIX):
            raise LogFormatError(
                f"{self.path} is not an rsmooth partial certification log (expected a first line starting "
                f"{_META_PREFIX.strip()!r} and the header); delete it to restart",
                self.path,
            )
        try:
            stored = json.loads(complete[0][len(_META_PREFIX) :])
        except json.JSONDecodeError as err:
            raise LogFormatError(
                f"{self.path}: its settings line is not JSON ({err}); delete it to restart", self.path
            ) from None
        if stored != self.meta:
            changed = sorted(k for k in set(stored) | set(self.meta) if stored.get(k) != self.meta.get(k))
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {self.meta.get(k)!r}" for k in changed)
            raise ValueError(
                f"{self.path} was written with other settings ({details}); "
                "delete it to restart, or rerun with the original settings to resume"
            )
        if complete[1] != "\t".join(self.header):
            raise LogFormatError(f"{self.path}: second line is not the header {self.header}", self.path)
        self.rows = parse_rows(
            complete[2:], self.header, self.path, first_line=3, hint="delete the file to restart"
        )
        if torn:
            with open(self.path, "r+") as handle:
                handle.truncate(len(text) - len(torn))

    def append(self, rows: Sequence[tuple[int, str]]) -> None:
        with open(self.path, "a") as handle:
            handle.write("".join(line for _, line in rows))
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.update(rows)

    def finalize(
        self, outfile: str | os.PathLike, indices: Iterable[int], keep_as: str | os.PathLike | None = None
    ) -> None:
        """Write the complete log under ``outfile`` (rows in index order); the partial file is then renamed to
        ``keep_as`` (the run's record, see :func:`write_log`) or removed."""
        missing = [i for i in indices if i not in self.rows]
        if missing:
            raise RuntimeError(
                f"cannot finalize {outfile}: {len(missing)} indices missing, first {missing[:5]}"
            )
        with atomic_open(outfile) as handle:
            handle.write("\t".join(self.header) + "\n")
            handle.writelines(self.rows[i] for i in sorted(self.rows))
        if keep_as is not None:
            os.replace(self.path, keep_as)
        else:
            self.path.unlink()


def read_partial_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """The settings recorded on a partial log's first line, or ``None`` when there is no readable one (the
    resume itself then reports what is wrong)."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(_META_PREFIX):
        return None
    try:
        settings = json.loads(first[len(_META_PREFIX) :])
    except json.JSONDecodeError:
        return None
    return settings if isinstance(settings, dict) else None


def write_log(
    outfile: str | os.PathLike,
    indices: Sequence[int],
    rows: Callable[[list[int]], list[tuple[int, str]]],
    *,
    settings: dict[str, Any],
    header: Sequence[str] = CERTIFY_HEADER,
    images_per_call: int = 1,
    partial_path: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Path:
    """Run ``rows(chunk)`` on the indices not yet in the partial file, ``images_per_call`` at a time, appending
    its ``(index, line)`` pairs after each call; then write the complete log to ``outfile``.

    The partial file is ``partial_path`` (default ``<outfile>.partial``) and records ``settings``; a progress
    bar shows on a terminal only (``progress=None``), so cluster log files stay clean.
    """
    from tqdm import tqdm

    outfile = Path(outfile)
    partial_path = Path(partial_path) if partial_path else outfile.with_name(outfile.name + ".partial")
    done_path = partial_path.with_name(partial_path.name.removesuffix(".partial") + ".done")
    if _rewrite_from_record(done_path, partial_path, outfile, indices, settings, header):
        return outfile
    log = PartialLog(partial_path, settings, header=header)
    todo = [i for i in indices if i not in log.rows]
    if log.rows:
        print(f"resuming from {partial_path}: {len(log.rows)} of {len(indices)} images done", file=sys.stderr)
    disable = None if progress is None else not progress
    bar = tqdm(total=len(indices), initial=len(indices) - len(todo), unit="img", disable=disable)
    for start in range(0, len(todo), images_per_call):
        chunk = todo[start : start + images_per_call]
        log.append(rows(chunk))
        bar.update(len(chunk))
    bar.close()
    log.finalize(outfile, indices, keep_as=done_path)
    return outfile


def _rewrite_from_record(
    done_path: Path,
    partial_path: Path,
    outfile: Path,
    indices: Sequence[int],
    settings: dict[str, Any],
    header: Sequence[str],
) -> bool:
    """Write ``outfile`` from the record of a finished run (``<log>.done``: the partial file, renamed when the
    run ended) when that run had these very settings (the checkpoint's sha256 among them) and every index;
    otherwise drop the record. Snakemake deletes a finished job's output when the job is counted as failed
    (a SLURM bundle killed after some of its members ended, a time limit hit while Snakemake stored the
    output): the rerun then costs nothing."""
    if partial_path.exists() or not done_path.exists():
        return False
    if read_partial_settings(done_path) == settings:
        try:
            record = PartialLog(done_path, settings, header=header)
        except (LogFormatError, ValueError):
            record = None
        if record is not None and all(i in record.rows for i in indices):
            record.finalize(outfile, indices, keep_as=done_path)
            print(
                f"{outfile}: rewritten from {done_path}, the record of a finished run with these settings",
                file=sys.stderr,
            )
            return True
    done_path.unlink()
    return False


def merge_logs(shards: Sequence[str | os.PathLike]) -> list[str]:
    """The lines (header first, rows in index order) of the log that the shard logs of one run make together.

    Every shard is read once, must have the header of one kind of log (all the same) and rows as this module
    writes them; an index in two shards is an error (they overlap).
    """
    header: str | None = None
    rows: dict[int, str] = {}
    for shard in map(Path, shards):
        text = shard.read_bytes().decode("utf-8", "replace")
        first = text.split("\n", 1)[0]
        if first not in HEADERS or header not in (None, first):
            expected = [header] if header else list(HEADERS)
            raise LogFormatError(f"{shard}: expected a header among {expected}, got {first[:80]!r}", shard)
        header = first
        if not text.endswith("\n"):
            raise LogFormatError(f"{shard}: truncated (the last line has no newline): {text[-40:]!r}", shard)
        lines = text[:-1].split("\n")[1:]
        for idx, line in parse_rows(
            lines, HEADERS[first], shard, first_line=2, hint="not a shard log"
        ).items():
            if idx in rows:
                raise LogFormatError(
                    f"{shard}: index {idx} is also in another shard; the shards overlap", shard
                )
            rows[idx] = line.rstrip("\n")
    return [header, *(rows[i] for i in sorted(rows))]


# -- reading any log, the reference code's included, into a DataFrame ------------------------------------------


def read_certify_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read one CERTIFY log into a DataFrame with columns ``idx, label, predict, radius, correct[, time]``.

    ``time`` becomes float seconds whatever its format; a sequential log's ``samples`` are integers. A log
    with a header but no rows gives an empty frame (the metrics refuse it, see ``rsmooth.analysis.metrics``).
    Raises :class:`~rsmooth.errors.LogFormatError` naming the file for an empty, binary, cut-off or foreign
    file, missing columns, unparsable values, or an index that occurs twice (e.g. two shard logs that
    overlap). The path is kept in ``df.attrs["path"]`` so later errors can name the file.
    """
    return _read_log(
        path, "certification", REQUIRED_COLUMNS, ("idx", "label", "predict", "correct"), ("radius",)
    )


def read_attack_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read one attack log (the reference predict.py's and this project's ``scripts/attack.py``'s) into a
    DataFrame with columns ``idx, label, predict, basePredict, correct[, time]``; errors as
    :func:`read_certify_log`."""
    return _read_log(path, "attack", ATTACK_COLUMNS, ATTACK_COLUMNS, ())


def _read_log(
    path: str | os.PathLike,
    kind: str,
    required: tuple[str, ...],
    integer_columns: tuple[str, ...],
    float_columns: tuple[str, ...],
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

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
