"""Atomic file writes: a final output name only ever holds a complete file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file, then rename, so a kill never leaves a truncated checkpoint."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file (``yaml.safe_load``) or, for a ``.json`` suffix, a JSON file, holding a mapping.

    Both build only plain data (``safe_load`` makes no python objects from tags), so a config file cannot run
    code.
    An empty file (or one of comments only) is refused too, since a file given on purpose holds settings;
    anything unparsable, binary or not a mapping raises
    :class:`~rsmooth.errors.ConfigFileError` naming the file.
    """
    import yaml

    from rsmooth.errors import ConfigFileError, describe_exception

    path = Path(path)
    is_json = path.suffix.lower() == ".json"
    try:
        text = path.read_bytes().decode("utf-8")
        values = json.loads(text) if is_json else yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        kind = "JSON" if is_json else "YAML"
        raise ConfigFileError(
            f"{path}: not a {kind} config file ({describe_exception(error)})", path
        ) from error
    if values is None:
        raise ConfigFileError(f"{path}: empty, expected a mapping of settings", path)
    if not isinstance(values, dict):
        raise ConfigFileError(
            f"{path}: a config file must hold a mapping of keys to values, found {type(values).__name__}",
            path,
        )
    return values
