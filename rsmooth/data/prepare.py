"""Put a data set in place under the data root, and describe what is there (``scripts/prepare_data.py``).

``source="download"``: data sets whose spec says ``downloadable`` are fetched by their backend (CIFAR-10 files
already present are verified against the official md5s instead, so a corrupt copy is never used; MNIST goes
through torchvision's md5-checked downloader); the others are checked in place, and a missing file raises the
loader's :class:`~rsmooth.data.errors.DatasetNotFoundError`, which says what to put where and where to get it.
``source="synthetic"``: small stand-ins in the same on-disk formats (for the demo and tests).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rsmooth.data.manifest import file_sha256
from rsmooth.data.registry import SyntheticSizes, backend, get_dataset
from rsmooth.dataset_info import dataset_spec

__all__ = ["SOURCES", "SyntheticSizes", "expected_files", "prepare_dataset", "stamp_record"]

SOURCES: tuple[str, ...] = ("download", "synthetic")


def _natural_key(path: Path) -> list[Any]:
    # "train_data_batch_2" before "train_data_batch_10", as the files are numbered.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def expected_files(dataset: str, root: str | Path) -> list[Path]:
    """Every file (or folder) of the spec of ``dataset`` under ``root``, each once, in natural path order."""
    spec = dataset_spec(dataset)
    paths = {Path(root) / spec.folder / f.path for f in spec.files}
    return sorted(paths, key=_natural_key)


def _download_or_check(dataset: str, root: Path) -> str:
    """Fetch or check ``dataset``; returns what was found and done."""
    spec = dataset_spec(dataset)
    fetch = backend(dataset).fetch
    if spec.downloadable and fetch is not None:
        return str(fetch(root))
    if not all(p.exists() for p in expected_files(dataset, root)):
        for split in spec.splits:  # the loader's DatasetNotFoundError says which file goes where
            get_dataset(dataset, split, root)
    return f"{spec.title}: every expected file is present under {root}"


def stamp_record(dataset: str, root: str | Path, source: str) -> dict[str, Any]:
    """What the stamp file says: the data set, its source and root, each expected file's size, and the sha256
    of each expected file (folders are not hashed): computed once here, shown in every result's provenance."""
    files = expected_files(dataset, root)
    sizes = {str(p): p.stat().st_size if p.is_file() else "directory" for p in files}
    sha256 = {str(p): file_sha256(p) for p in files if p.is_file()}
    return {"dataset": dataset, "source": source, "root": str(root), "files": sizes, "sha256": sha256}


def prepare_dataset(
    dataset: str, root: str | Path, source: str = "download", sizes: SyntheticSizes | None = None
) -> dict[str, Any]:
    """Put ``dataset`` in place under ``root`` (``sizes`` are needed for ``source="synthetic"``) and return
    its :func:`stamp_record`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of: {', '.join(SOURCES)}")
    root = Path(root)
    if source == "synthetic":
        if sizes is None:
            raise ValueError("source='synthetic' needs the sizes of the stand-ins")
        backend(dataset).synthesize(root, sizes)
        found = f"{dataset_spec(dataset).title}: synthetic stand-ins written under {root}"
    else:
        found = _download_or_check(dataset, root)
    return {**stamp_record(dataset, root, source), "found": found}
