"""Certify a data set (or one shard of it) into a resumable TSV log.

The log has the reference header ``idx label predict radius correct time``. Rows are appended to a partial
file (``<outfile>.partial`` by default) and flushed to disk after every call, so a killed job loses at most
the images in flight; a rerun with the same settings skips the rows already there. Only when every selected
index is done is the complete log written under its final name, atomically. The partial file starts with a
comment line recording the settings, and a rerun with different settings refuses to mix the two.

Sequential certification (:func:`certify_dataset_sequential`) writes the same columns plus a final
``samples`` (the draws each image used); its ``radius`` is a grid radius, not a maximal one.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rsmooth.errors import LogFormatError
from rsmooth.io import atomic_open
from rsmooth.sequential import DEFAULT_TEST, sequential_test
from rsmooth.smoothing import ABSTAIN, Smooth, image_seed

CERTIFY_HEADER = ("idx", "label", "predict", "radius", "correct", "time")
# Sequential certification appends the base-classifier draws used per image; the reference readers ignore it.
SEQUENTIAL_HEADER = (*CERTIFY_HEADER, "samples")
# The attack log of the reference predict.py (rsmooth.empirical): PREDICT on the adversarial example, and the
# base classifier's class on it without noise.
ATTACK_HEADER = ("idx", "label", "predict", "basePredict", "correct", "time")
_META_PREFIX = "# rsmooth-certify "
_ROW_FIELD = re.compile(r"^-?[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?$")


def select_indices(
    dataset_size: int,
    *,
    skip: int = 1,
    max_index: int = -1,
    start: int = 0,
    stop: int | None = None,
) -> list[int]:
    """The data set indices to certify: every ``skip``-th index below ``max_index``, within [start, stop).

    ``skip`` and ``max_index`` mean what they mean in the reference ``certify.py`` (``max_index`` is a data
    set index, -1 for none); ``[start, stop)`` cuts a shard out of that selection by data set index. Unlike
    the reference, ``max_index`` also stops the loop when it is not a multiple of ``skip``.
    """
    if skip < 1:
        raise ValueError(f"skip must be >= 1, got {skip}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    end = dataset_size if stop is None else min(stop, dataset_size)
    if max_index >= 0:
        end = min(end, max_index)
    first = start + (-start) % skip  # the first multiple of skip at or after start
    return list(range(first, max(end, first), skip))


def format_row(idx: int, label: int, prediction: int, radius: float, seconds: float) -> str:
    """One log line; the radius keeps 8 significant digits (the reference's 3 bias counts at grid radii)."""
    correct = int(prediction == label and prediction != ABSTAIN)
    return f"{idx}\t{label}\t{prediction}\t{radius:.8g}\t{correct}\t{seconds:.4f}\n"


class PartialLog:
    """The append-only partial log of one certification run."""

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
        for number, line in enumerate(complete[2:], start=3):
            fields = line.split("\t")
            if len(fields) != len(self.header) or not all(_ROW_FIELD.match(f) for f in fields):
                raise LogFormatError(
                    f"{self.path}, line {number}: not a row of {len(self.header)} numbers: {line[:80]!r}; "
                    "delete the file to restart",
                    self.path,
                )
            idx = int(fields[0])
            if idx in self.rows:
                raise LogFormatError(f"{self.path} holds index {idx} twice; delete it to restart", self.path)
            self.rows[idx] = line + "\n"
        if torn:
            with open(self.path, "r+") as handle:
                handle.truncate(len(text) - len(torn))

    def append(self, rows: Sequence[tuple[int, str]]) -> None:
        with open(self.path, "a") as handle:
            handle.write("".join(line for _, line in rows))
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.update(rows)

    def finalize(self, outfile: str | os.PathLike, indices: Iterable[int]) -> None:
        """Write the complete log under ``outfile`` (rows in index order) and remove the partial file."""
        missing = [i for i in indices if i not in self.rows]
        if missing:
            raise RuntimeError(
                f"cannot finalize {outfile}: {len(missing)} indices missing, first {missing[:5]}"
            )
        with atomic_open(outfile) as handle:
            handle.write("\t".join(self.header) + "\n")
            handle.writelines(self.rows[i] for i in sorted(self.rows))
        self.path.unlink()


def certify_dataset(
    smooth: Smooth,
    dataset: torch.utils.data.Dataset,
    indices: Sequence[int],
    outfile: str | os.PathLike,
    *,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    seed: int,
    images_per_call: int = 1,
    partial_path: str | os.PathLike | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> Path:
    """Certify ``dataset[i]`` for every ``i`` in ``indices`` and write the log to ``outfile``.

    Resumes from ``partial_path`` (default ``<outfile>.partial``) when it exists. ``images_per_call``
    images are certified per call of :meth:`Smooth.certify_batch`; the logged time of each is the call's
    wall time divided among them. Image ``i`` draws its noise from ``image_seed(seed, i)``, so results do not
    depend on sharding, resumption or ``images_per_call``.
    """
    outfile = Path(outfile)
    partial_path = (
        Path(partial_path) if partial_path is not None else outfile.with_name(outfile.name + ".partial")
    )
    settings = {
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "batch_size": batch_size,
        "seed": seed,
        "sigma": smooth.sigma,
    }
    log = PartialLog(partial_path, {**(meta or {}), **settings})
    todo = [i for i in indices if i not in log.rows]
    if log.rows:
        print(f"resuming from {partial_path}: {len(log.rows)} of {len(indices)} images done", file=sys.stderr)
    # disable=None: tqdm shows the bar on a terminal only, not in cluster log files.
    disable = None if progress is None else not progress
    bar = tqdm(total=len(indices), initial=len(indices) - len(todo), unit="img", disable=disable)
    for start in range(0, len(todo), images_per_call):
        chunk = todo[start : start + images_per_call]
        images, labels = zip(*(dataset[i] for i in chunk), strict=True)
        xs = torch.stack(images)
        if smooth.device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        results = smooth.certify_batch(
            xs, n0, n, alpha, batch_size, seeds=[image_seed(seed, i) for i in chunk]
        )
        seconds = (time.perf_counter() - began) / len(chunk)
        log.append(
            [
                (i, format_row(i, int(label), prediction, radius, seconds))
                for i, label, (prediction, radius) in zip(chunk, labels, results, strict=True)
            ]
        )
        bar.update(len(chunk))
    bar.close()
    log.finalize(outfile, indices)
    return outfile


def certify_dataset_sequential(
    smooth: Smooth,
    dataset: torch.utils.data.Dataset,
    indices: Sequence[int],
    outfile: str | os.PathLike,
    *,
    radii: Sequence[float],
    alpha: float,
    n_max: int,
    batch_size: int,
    seed: int,
    n0: int = 100,
    use_labels: bool = True,
    test: str = DEFAULT_TEST,
    images_per_call: int = 64,
    partial_path: str | os.PathLike | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> Path:
    """Sequential certification (:meth:`Smooth.certify_sequential_batch`) of ``dataset[i]`` for every ``i``
    in ``indices``, written as a log with the reference columns and a final ``samples`` column.

    ``radius`` is the largest certified radius of the grid ``radii``. With ``use_labels`` (certified
    accuracy) the test is on the true label, ``predict`` is the label or -1, and "wrong" and "not certified
    at 0" both show as -1; otherwise ``n0`` draws select the class first, as in CERTIFY. Resume, seeds and
    atomic finalization as in :func:`certify_dataset`; ``images_per_call`` images share the forward passes
    of one call, and each image's logged time is the call's wall time in proportion to its samples.
    """
    outfile = Path(outfile)
    partial_path = (
        Path(partial_path) if partial_path is not None else outfile.with_name(outfile.name + ".partial")
    )
    sequential = sequential_test(radii, smooth.sigma, alpha, n_max, test)
    settings = {
        "procedure": "sequential",
        "test": test,
        "radii": [float(r) for r in sequential.radii],
        "n0": n0 if not use_labels else None,
        "n_max": n_max,
        "alpha": alpha,
        "seed": seed,
        "sigma": smooth.sigma,
        "use_labels": use_labels,
    }
    log = PartialLog(partial_path, {**(meta or {}), **settings}, header=SEQUENTIAL_HEADER)
    todo = [i for i in indices if i not in log.rows]
    if log.rows:
        print(f"resuming from {partial_path}: {len(log.rows)} of {len(indices)} images done", file=sys.stderr)
    disable = None if progress is None else not progress
    bar = tqdm(total=len(indices), initial=len(indices) - len(todo), unit="img", disable=disable)
    for start in range(0, len(todo), images_per_call):
        chunk = todo[start : start + images_per_call]
        images, labels = zip(*(dataset[i] for i in chunk), strict=True)
        labels = [int(y) for y in labels]
        if smooth.device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        results = smooth.certify_sequential_batch(
            torch.stack(images),
            sequential.radii,
            alpha,
            n_max,
            batch_size,
            labels=labels if use_labels else None,
            seeds=[image_seed(seed, i) for i in chunk],
            n0=n0,
            test=sequential,
        )
        seconds = time.perf_counter() - began
        total = sum(samples for _, _, samples in results)
        log.append(
            [
                (
                    i,
                    format_row(i, label, cls, radius, seconds * samples / total).rstrip("\n")
                    + f"\t{samples}\n",
                )
                for i, label, (cls, radius, samples) in zip(chunk, labels, results, strict=True)
            ]
        )
        bar.update(len(chunk))
    bar.close()
    log.finalize(outfile, indices)
    return outfile
