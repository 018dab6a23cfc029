"""Exceptions raised by the data loaders.

The messages are meant to be acted on by a person: they name the exact files that are expected (full paths under the
data root) and where to obtain them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rsmooth.errors import FileFormatError


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are absent (and cannot be, or were not asked to be, downloaded).

    ``missing`` holds the expected paths that were not found.
    """

    def __init__(self, message: str, missing: Sequence[str | os.PathLike] = ()) -> None:
        super().__init__(message)
        self.missing: tuple[Path, ...] = tuple(Path(p) for p in missing)


class DatasetFormatError(FileFormatError):
    """A data file exists but does not have the published on-disk format (keys, shapes, dtypes, label range)."""


class DatasetIntegrityError(RuntimeError):
    """A data file's checksum does not match the official one."""
