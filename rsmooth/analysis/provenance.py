"""Provenance of a result: which configuration, code and package versions and seeds produced it, and for each
certification or attack log the run that wrote it.

The run record (:func:`run_record`) is written by ``scripts/certify.py`` and ``scripts/attack.py`` beside their
log once it is complete, as ``<log>.provenance.json`` (:func:`write_provenance_sidecar`): the command line, the
date, the host's GPU, driver, CUDA and torch, the checkpoint's sha256 and the data files' sha256 (from the data
set's stamp, ``<data root>/.ready/<dataset>.json``, where ``scripts/prepare_data.py`` computes them once). The
logs themselves are unchanged, so the reference readers and old logs read as before. :func:`result_provenance`
reads a log's record back for the report (its shards' for a merged log); for a log written before the records
existed it falls back on the settings its partial file kept (``<log>.done``: the checkpoint's sha256, the
device). Every path shown is relative to the run's working directory (:func:`shown_path`): no absolute path of
the machine that ran it appears in the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
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


# -- the run record of a log ----------------------------------------------------------------------------------

SIDECAR_SUFFIX = ".provenance.json"
_CHECKOUT = Path(rsmooth.__file__).resolve().parents[1]


def shown_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` as the report shows it: relative to ``root`` (default: the working directory, the run's) when
    under it, else relative to the rsmooth checkout (``scripts/certify.py``), else only its last two parts
    after ``.../``. A relative path is kept as it is."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    resolved = path.resolve()
    for base in (Path(root or os.getcwd()).resolve(), _CHECKOUT):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return ".../" + "/".join(resolved.parts[-2:])


def shown_command(argv: Sequence[str], root: str | os.PathLike | None = None) -> str:
    """A command line (``sys.argv``, with ``python`` before the script) with every absolute path, also the
    value of an ``--option=/path``, shown by :func:`shown_path`."""

    def token(arg: str) -> str:
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
            return f"{option}={token(value)}"
        return shown_path(arg, root) if os.path.isabs(arg) else arg

    return shlex.join(["python", *(token(a) for a in argv)])


def _nvidia_driver() -> str | None:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def host_record(device: str | None = None) -> dict[str, Any]:
    """The host a job ran on: ``gpu`` (name, None off a GPU), ``driver`` (NVIDIA's), ``cuda`` (the CUDA torch
    was built with), ``cudnn``, ``torch``, ``python``, ``platform``, and the ``device`` the job used."""
    record: dict[str, Any] = {"device": device, "gpu": None, "driver": None, "cuda": None, "cudnn": None}
    torch = sys.modules.get("torch")  # the scripts have it imported; never imported here for the analysis
    if torch is not None:
        record["torch"] = torch.__version__
        record["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            record["gpu"] = torch.cuda.get_device_name(0)
            record["cudnn"] = torch.backends.cudnn.version()
            record["driver"] = _nvidia_driver()
    else:
        record["torch"] = package_versions(("torch",))["torch"]
    record["python"] = platform.python_version()
    record["platform"] = platform.platform(terse=True)
    return record


def data_checksums(stamp: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The data set's files from its stamp: ``{"stamp": path, "files": {path: sha256, or the size where the
    stamp predates the checksums, or "directory"}}``, paths by :func:`shown_path`; ``{}`` without a stamp."""
    stamp = Path(stamp)
    try:
        record = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    sha256 = record.get("sha256", {})
    files = {shown_path(name, root): sha256.get(name, size) for name, size in record.get("files", {}).items()}
    return {"dataset": record.get("dataset"), "stamp": shown_path(stamp.absolute(), root), "files": files}


def run_record(
    argv: Sequence[str],
    *,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_sha256: str | None = None,
    data_stamp: str | os.PathLike | None = None,
    device: str | None = None,
    root: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """What a certification or attack job records beside its log (module docstring), JSON-ready."""
    commit, dirty = git_commit()
    return {
        "command": shown_command(argv, root),
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_record(device),
        "checkpoint": None
        if checkpoint is None
        else {"path": shown_path(Path(checkpoint).absolute(), root), "sha256": checkpoint_sha256},
        "data": data_checksums(data_stamp, root) if data_stamp is not None else {},
        "rsmooth_version": rsmooth.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
    }


def result_provenance(log: str | os.PathLike) -> list[dict[str, Any]]:
    """The run records behind a log: its own ``<log>.provenance.json``, else its shards' (a merged log:
    ``<log without .tsv>/shard-*.tsv.provenance.json``), else a record rebuilt from the settings of its
    finished partial file(s) (``.done``: checkpoint sha256 and device only, ``"recorded": "settings"``).
    Empty when none of these exist (e.g. a log of the reference code)."""
    log = Path(log)
    shards = sorted(log.with_suffix("").glob("shard-*.tsv"), key=lambda p: int(p.stem.split("-")[1]))
    records = []
    for part in [log] if log.with_name(log.name + SIDECAR_SUFFIX).exists() or not shards else shards:
        sidecar = part.with_name(part.name + SIDECAR_SUFFIX)
        done = part.with_name(part.name + ".done")
        if sidecar.exists():
            records.append(json.loads(sidecar.read_text()))
        elif done.exists():
            from rsmooth.logformat import read_partial_settings

            settings = read_partial_settings(done) or {}
            records.append(
                {
                    "recorded": "settings",
                    "checkpoint": {"sha256": settings.get("checkpoint_sha256")},
                    "host": {"device": settings.get("device")},
                    "date_utc": datetime.fromtimestamp(done.stat().st_mtime, UTC).isoformat(
                        timespec="seconds"
                    ),
                }
            )
    return records


PROVENANCE_COLUMNS = [
    "result", "model", "sigma", "checkpoint sha256", "command", "date (UTC)", "device", "GPU", "driver",
    "CUDA", "torch", "data files hashed", "trained (UTC)", "trained on", "recorded",
]  # fmt: skip


def _training_record(checkpoint: Mapping[str, Any], default_path: Path) -> dict[str, Any]:
    """The record ``scripts/train.py`` wrote beside the checkpoint a certification names (``default_path``, the
    workflow's ``results/models/<model>/model.pt``, where the certification's record names none), if it is
    there; ``{"other checkpoint": True}`` when it is the record of another checkpoint (retrained since)."""
    path = checkpoint.get("path") or default_path
    if str(path).startswith(".../"):
        return {}
    try:
        record = json.loads(Path(f"{path}{SIDECAR_SUFFIX}").read_text())
    except (OSError, ValueError):
        return {}
    trained = (record.get("checkpoint") or {}).get("sha256")
    if checkpoint.get("sha256") and trained and trained != checkpoint["sha256"]:
        return {"other checkpoint": True}
    return record


def provenance_table(
    results: Sequence[tuple[str, str, float]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (:data:`PROVENANCE_COLUMNS`) for ``(log path, model, sigma)`` results, one per run record (a merged
    log has one per shard), and the data files' checksums over all records (``path -> sha256``). What a log
    lacks shows as "not recorded"."""
    missing = "not recorded"
    rows, data = [], {}
    for log, model, sigma in results:
        records = result_provenance(log) or [{"recorded": "none"}]
        for record in records:
            host = record.get("host") or {}
            checkpoint = record.get("checkpoint") or {}
            files = (record.get("data") or {}).get("files", {})
            data.update(files)
            hashed = sum(isinstance(v, str) and len(v) == 64 for v in files.values())
            # The workflow's layout: results/certify/<model>/<log> certifies results/models/<model>/model.pt.
            training = _training_record(checkpoint, Path(log).parents[2] / "models" / model / "model.pt")
            trained_host = training.get("host") or {}
            trained = "another checkpoint (retrained since)" if training.get("other checkpoint") else missing
            rows.append(
                {
                    "result": shown_path(Path(log).absolute()),
                    "model": model,
                    "sigma": sigma,
                    "checkpoint sha256": checkpoint.get("sha256") or missing,
                    "command": record.get("command") or missing,
                    "date (UTC)": record.get("date_utc") or missing,
                    "device": host.get("device") or missing,
                    "GPU": host.get("gpu") or ("none" if host.get("device") == "cpu" else missing),
                    "driver": host.get("driver") or ("none" if host.get("device") == "cpu" else missing),
                    "CUDA": host.get("cuda") or missing,
                    "torch": host.get("torch") or missing,
                    "data files hashed": f"{hashed} of {len(files)}" if files else missing,
                    "trained (UTC)": training.get("date_utc") or trained,
                    "trained on": trained_host.get("gpu") or trained_host.get("device") or trained,
                    "recorded": record.get("recorded", "run record"),
                }
            )
    return rows, data


def write_provenance_sidecar(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``<path>.provenance.json`` beside an output that cannot embed the record itself."""
    sidecar = Path(f"{path}.provenance.json")
    with atomic_open(sidecar) as handle:
        json.dump(_jsonable(record), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return sidecar
