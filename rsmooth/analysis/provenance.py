"""Provenance of a result: which configuration, code and package versions and seeds produced it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import rsmooth
from rsmooth.io import atomic_open

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "statsmodels", "pandas", "matplotlib", "snakemake")
# Set by a workflow that runs from a copy of the code without its .git (e.g. on cluster nodes).
GIT_COMMIT_ENV = "RSMOOTH_GIT_COMMIT"


def _jsonable(value: Any) -> Any:
    """Mappings, sequences and scalars as plain JSON types; anything else (paths, numpy scalars) as str."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def canonical_json(config: Mapping[str, Any]) -> str:
    """The configuration as canonical JSON: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(
        _jsonable(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``config``: equal for equal configurations, whatever key order."""
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()


def _git(*args: str) -> str | None:
    root = Path(rsmooth.__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout rsmooth is imported from; (None, None) outside a git checkout."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV], None
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package, None where it is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect_provenance(
    config: Mapping[str, Any] | None = None,
    seeds: Mapping[str, int] | Sequence[int] | int | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    timestamp: bool = False,
) -> dict[str, Any]:
    """A JSON-ready record of what produced a result.

    Keys: ``config_hash`` (None without a config), ``rsmooth_version``, ``git_commit`` and ``git_dirty``
    (None outside git), ``python``, ``packages``, ``seeds``, then ``extra``. No timestamp by default, so
    that rerunning unchanged code on unchanged inputs writes identical files.
    """
    commit, dirty = git_commit()
    record: dict[str, Any] = {
        "config_hash": None if config is None else config_hash(config),
        "rsmooth_version": rsmooth.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "packages": package_versions(),
        "seeds": _jsonable(seeds),
    }
    if timestamp:
        record["created_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    if extra:
        record.update(_jsonable(extra))
    return record


def provenance_line(record: Mapping[str, Any]) -> str:
    """The record on one line, for comment headers."""
    return json.dumps(_jsonable(record), sort_keys=True)


def write_provenance_sidecar(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``<path>.provenance.json`` beside an output that cannot embed the record itself."""
    sidecar = Path(f"{path}.provenance.json")
    with atomic_open(sidecar) as handle:
        json.dump(_jsonable(record), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return sidecar
