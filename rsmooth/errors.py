"""Typed errors for files that exist but are not what their reader expects.

Every reader of an external or intermediate file (checkpoints, data files, logs, manifests, resume files,
configs, the paper-number tables) raises a subclass of :class:`FileFormatError` whose message starts with the
file's path and says what was expected, so a truncated download or a foreign file never ends in a traceback
from deep inside ``pickle`` or ``pandas``. All are ``ValueError`` subclasses, as they were before they had types.
"""

from __future__ import annotations

import os
from pathlib import Path


class FileFormatError(ValueError):
    """A file exists but does not have the format its reader expects (truncated, empty, corrupted, foreign)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class CheckpointError(FileFormatError):
    """A checkpoint cannot be read: not a ``torch.save`` file, truncated, or not a model checkpoint."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint holds objects that ``torch.load(weights_only=True)`` refuses (pickled code or classes).

    Loading it anyway runs whatever its pickle says; that needs the explicit opt-in (``trust=True``,
    ``--trust-checkpoint``, ``trust_checkpoints: true``). ``globals`` lists the refused objects.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, globals_: tuple = ()) -> None:
        super().__init__(message, path)
        self.globals = tuple(globals_)


class LogFormatError(FileFormatError):
    """A certification log, a partial log, a shard log, a training epoch log or a Snakemake benchmark file is
    not in the expected TSV format."""


class ResumeFileError(FileFormatError):
    """A training resume file is unreadable or was not written by this project."""


class ConfigFileError(FileFormatError):
    """A configuration file (YAML/JSON) cannot be parsed or does not hold a mapping."""


class PaperDataError(FileFormatError):
    """A paper-number table (CSV) is unreadable or lacks its columns."""


class SettingError(ValueError):
    """A setting (command-line option, config value or argument of a public function) is outside what is allowed.

    The message names the setting, what is allowed and the value given; ``name`` and ``value`` hold the last
    two, so that a command line can report the option's own spelling.
    """

    def __init__(self, message: str, name: str, value: object) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


def describe_exception(error: BaseException) -> str:
    """``"Type: first line of the message"``: enough to say what went wrong without a wall of text."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


__all__ = [
    "CheckpointError",
    "ConfigFileError",
    "FileFormatError",
    "LogFormatError",
    "PaperDataError",
    "ResumeFileError",
    "SettingError",
    "UntrustedCheckpointError",
    "describe_exception",
]
