"""Certify a data set (or one shard of it) into a resumable TSV log.

The log has the reference header ``idx label predict radius correct time``; its layout, the partial file a
killed job resumes from and the atomic final write are :mod:`rsmooth.logformat`'s. Rows are flushed to disk
after every call, so a killed job loses at most the images in flight; a rerun with the same settings skips
the rows already there, and one with different settings is refused.

Sequential certification (:func:`certify_dataset_sequential`) writes the same columns plus a final
``samples`` (the draws each image used); its ``radius`` is a grid radius, not a maximal one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rsmooth.logformat import SEQUENTIAL_HEADER, format_row, format_sequential_row, write_log
from rsmooth.sequential import DEFAULT_TEST, sequential_image_seed, sequential_test
from rsmooth.smoothing import NOISE_SCHEME, Smooth, image_seed
from rsmooth.validation import check_int, check_positive_int


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
    check_positive_int(skip, "skip")
    check_int(start, "start", 0)
    if start >= dataset_size or (stop is not None and stop <= start):
        # A job planned for a larger split than the one on disk would otherwise "succeed" with an empty log.
        shown = "end" if stop is None else stop
        raise ValueError(
            f"the index range [{start}, {shown}) holds no image of a data set of {dataset_size} images "
            f"(indices 0 to {dataset_size - 1})"
        )
    end = dataset_size if stop is None else min(stop, dataset_size)
    if max_index >= 0:
        end = min(end, max_index)
    first = start + (-start) % skip  # the first multiple of skip at or after start
    return list(range(first, max(end, first), skip))


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
    settings = {
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "batch_size": batch_size,
        "seed": seed,
        "sigma": smooth.sigma,
        "noise": NOISE_SCHEME,  # the noise stream (a resume never mixes two)
    }

    def rows(chunk: list[int]) -> list[tuple[int, str]]:
        images, labels = zip(*(dataset[i] for i in chunk), strict=True)
        xs = torch.stack(images)
        if smooth.device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        results = smooth.certify_batch(
            xs, n0, n, alpha, batch_size, seeds=[image_seed(seed, i) for i in chunk]
        )
        seconds = (time.perf_counter() - began) / len(chunk)
        return [
            (i, format_row(i, int(label), prediction, radius, seconds))
            for i, label, (prediction, radius) in zip(chunk, labels, results, strict=True)
        ]

    return write_log(
        outfile, indices, rows, settings={**(meta or {}), **settings}, images_per_call=images_per_call,
        partial_path=partial_path, progress=progress,
    )  # fmt: skip


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
    accuracy) the test is on the true label, and ``predict`` is the label, -2 ("wrong": ``NOT_LABEL``) or
    -1 (undecided: ``ABSTAIN``); otherwise ``n0`` draws select the class first, as in CERTIFY. Image ``i``'s
    noise comes from :func:`rsmooth.sequential.sequential_image_seed` (the seed, ``i`` and the test's
    settings). Resume and atomic finalization as in :func:`certify_dataset`; ``images_per_call`` images share the forward passes
    of one call, and each image's logged time is the call's wall time in proportion to its samples.
    """
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
        "noise_seeds": "per image and test settings",  # refuses partial logs of the older seeding
        "abstain_codes": "-2 not the label",  # refuses partial label-mode logs that wrote -1 for both
    }

    def rows(chunk: list[int]) -> list[tuple[int, str]]:
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
            seeds=[sequential_image_seed(seed, i, sequential) for i in chunk],
            n0=n0,
            test=sequential,
        )
        seconds = time.perf_counter() - began
        total = sum(samples for _, _, samples in results)
        return [
            (i, format_sequential_row(i, label, cls, radius, seconds * samples / total, samples))
            for i, label, (cls, radius, samples) in zip(chunk, labels, results, strict=True)
        ]

    return write_log(
        outfile, indices, rows, settings={**(meta or {}), **settings}, header=SEQUENTIAL_HEADER,
        images_per_call=images_per_call, partial_path=partial_path, progress=progress,
    )  # fmt: skip
