"""Checkpoints: this project's files and the released Cohen et al. / Salman et al. ones.

File layout (a superset of the reference ``{epoch, arch, state_dict, optimizer}`` dict, so the reference code can
read our files too): ``state_dict`` is the state dict of ``nn.Sequential(normalization, network)``, keys ``1.*``
(the normalization constants are non-persistent buffers, hence no ``0.*`` keys), plus metadata: ``normalization``
(``Normalization.to_dict()``), ``dataset``, ``num_classes``, ``sigma``, ``config``, ``rsmooth_version``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError, UntrustedCheckpointError, describe_exception
from ..io import atomic_torch_save
from .architectures import ARCHITECTURES, _unwrap, classifier_name, default_num_classes, get_architecture
from .normalization import NORMALIZATIONS, Normalization, resolve_normalization

__all__ = ["load_checkpoint", "save_checkpoint"]

_RESERVED_KEYS = frozenset(
    {
        "epoch",
        "arch",
        "state_dict",
        "optimizer",
        "normalization",
        "dataset",
        "num_classes",
        "sigma",
        "config",
        "rsmooth_version",
    }
)
_MODULE = "module."


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    arch: str,
    epoch: int,
    normalization: Normalization | str | Mapping[str, Any],
    dataset: str,
    num_classes: int,
    sigma: float | None = None,
    optimizer_state: dict | None = None,
    config: dict | None = None,
    **extra: Any,
) -> None:
    """Atomically write a checkpoint of ``model`` (``nn.Sequential(normalization, network)``).

    DataParallel/DDP wrappers (around the Sequential or around the network) are removed from the keys, so a
    file never depends on how the model was trained. ``extra`` keys are stored as they are; keep them plain
    python so the file loads with ``weights_only=True``.
    """
    clash = sorted(_RESERVED_KEYS & extra.keys())
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} collide with reserved checkpoint keys")
    default_num_classes(arch)  # fail now on an unknown arch rather than when loading
    norm = resolve_normalization(normalization)
    state = _network_state_dict(_unwrap(model).state_dict())
    checkpoint = {
        "epoch": int(epoch),
        "arch": arch,
        # CPU copies: the file then loads anywhere, whatever device the model trained on.
        "state_dict": {f"1.{k}": v.detach().cpu() for k, v in state.items()},
        "optimizer": optimizer_state,
        "normalization": norm.to_dict(),
        "dataset": dataset,
        "num_classes": int(num_classes),
        "sigma": None if sigma is None else float(sigma),
        "config": config,
        "rsmooth_version": __version__,
        **extra,
    }
    atomic_torch_save(checkpoint, path)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    normalization: Normalization | str | Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    map_location: Any = "cpu",
    trust: bool = False,
) -> tuple[nn.Sequential, dict]:
    """Load a checkpoint into a fresh ``nn.Sequential(normalization, network)`` in eval mode.

    Accepts this project's files and the released Cohen/Salman ones (keys ``1.*``, ``1.module.*``,
    ``module.1.*`` or bare network keys, no stored normalization). ``arch``, ``normalization`` and
    ``num_classes`` override what the file stores; ``normalization`` is required when the file has none.
    Returns ``(model, raw checkpoint dict)``. When ``map_location`` is a device the model is moved there.

    The file is read with ``torch.load(weights_only=True)``, which cannot run code; the reference formats
    (``epoch``, ``arch``, ``state_dict``, ``optimizer``) load that way. A file that needs the full unpickler
    raises :class:`UntrustedCheckpointError` unless ``trust=True``. Anything unreadable raises
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    raw = _torch_load(path, map_location, trust)
    checkpoint = _as_checkpoint_dict(raw, path)
    stored_arch = checkpoint.get("arch")

    if arch is None:
        if not stored_arch:
            raise ValueError(
                f"checkpoint {path} stores no 'arch'; pass arch=, one of: {', '.join(ARCHITECTURES)}"
            )
        arch = str(stored_arch)
    elif stored_arch and stored_arch != arch:
        warnings.warn(
            f"checkpoint {path} says arch {stored_arch!r}; building the requested {arch!r} instead",
            stacklevel=2,
        )

    norm = _choose_normalization(checkpoint.get("normalization"), normalization, path)
    state = _network_state_dict(checkpoint["state_dict"], path)

    if num_classes is None:
        # The head's weight is what will actually load, so it wins over the stored number.
        head_weight = state.get(f"{classifier_name(arch)}.weight")
        if isinstance(head_weight, torch.Tensor) and head_weight.dim() == 2:
            num_classes = int(head_weight.shape[0])
        elif checkpoint.get("num_classes") is not None:
            num_classes = int(checkpoint["num_classes"])
        else:
            num_classes = default_num_classes(arch)

    model = get_architecture(arch, norm, num_classes)
    _load_network(model[1], state, path=path, stored_arch=stored_arch, arch=arch)
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    model.eval()
    return model, checkpoint


def _torch_load(path: Path, map_location: Any, trust: bool) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint", path)
    if trust:
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:
            raise CheckpointError(
                f"{path}: not a readable torch checkpoint ({describe_exception(err)})", path
            ) from err
    try:
        # weights_only=True cannot run code: it rebuilds tensors, optimizer states and plain python only.
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        refused = _refused_globals(path, err)
        if refused:
            raise UntrustedCheckpointError(
                f"{path}: refused to load: the file holds objects that torch.load(weights_only=True) does not "
                f"rebuild ({', '.join(refused)}), and unpickling them may run code. If you trust where the file "
                "comes from, load it with --trust-checkpoint (config: trust_checkpoints: true; python: "
                "load_checkpoint(..., trust=True)).",
                path,
                refused,
            ) from None
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (truncated, corrupted or another format; "
            f"{_first_cause(err)}); expected a file written by torch.save",
            path,
        ) from err


def _refused_globals(path: Path, error: Exception) -> tuple[str, ...]:
    """The globals a weights_only load refused, or () when the file is simply not a torch checkpoint."""
    found = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return tuple(dict.fromkeys(found))
    try:  # zip-format files: torch lists every global, without unpickling anything
        return tuple(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return ()


def _first_cause(error: Exception) -> str:
    # torch wraps the unpickler's own complaint in a long paragraph about weights_only; keep the complaint.
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
    if match:
        return f"unpickler: {match[1].strip().split('  ')[0]}"
    return describe_exception(error)


def _as_checkpoint_dict(raw: Any, path: Path) -> dict:
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        return dict(raw)
    if isinstance(raw, Mapping) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        # A bare state dict: no metadata at all.
        return {"state_dict": dict(raw)}
    raise CheckpointError(
        f"{path} is not a model checkpoint: expected a dict with a 'state_dict' entry (or a bare state dict), "
        f"got {type(raw).__name__}"
        + (f" with keys {sorted(map(str, raw))[:8]}" if isinstance(raw, Mapping) else ""),
        path,
    )


def _choose_normalization(stored: Any, given: Any, path: Path) -> Normalization:
    stored_norm = None
    if stored is not None:
        try:
            stored_norm = resolve_normalization(stored)
        except ValueError as err:
            if given is None:
                raise ValueError(f"checkpoint {path} stores an unreadable normalization: {err}") from err
    if given is None:
        if stored_norm is None:
            raise ValueError(
                f"checkpoint {path} stores no normalization constants, so normalization= must be given; "
                f"allowed names: {', '.join(sorted(NORMALIZATIONS))} (or a dict with 'mean'/'std'). "
                "Cohen et al. models use 'cifar10' / 'imagenet'. Most Salman et al. (SmoothAdv) models need "
                "'<dataset>_center' (InputCenterLayer); their imagenet32/, "
                "cifar10/finetune_cifar_from_imagenetPGD2steps/ and cifar10/self_training/ models use the full "
                "normalization ('imagenet32' / 'cifar10'). See the SmoothAdv README."
            )
        return stored_norm
    given_norm = resolve_normalization(given)
    if stored_norm is not None and stored_norm != given_norm:
        warnings.warn(
            f"checkpoint {path} was saved with normalization {stored_norm.to_dict()}, "
            f"overridden by the requested {given_norm.to_dict()}",
            stacklevel=3,
        )
    return given_norm


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _network_state_dict(state: Mapping[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Keys relative to the network (index 1), whatever wrappers the writer used."""
    state = _strip_prefix(state, _MODULE)  # DataParallel around the whole Sequential
    if state and all(k.split(".", 1)[0] in {"0", "1"} for k in state):
        # Sequential layout. Normalization constants are never loaded from the weights: they come from the
        # metadata or the caller. A file with persistent `0.*` buffers (another implementation) is read anyway.
        dropped = sorted(k for k in state if k.startswith("0."))
        if dropped:
            warnings.warn(
                f"checkpoint {path}: ignoring normalization-layer entries {dropped[:4]}; "
                "the normalization comes from the checkpoint metadata or the normalization= argument",
                stacklevel=3,
            )
        state = {k[2:]: v for k, v in state.items() if k.startswith("1.")}
    return _strip_prefix(state, _MODULE)  # DataParallel around the network (reference ImageNet: `1.module.*`)


def _load_network(
    network: nn.Module, state: dict[str, Any], *, path: Path, stored_arch: Any, arch: str
) -> None:
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    # Files from PyTorch < 0.4.1 have no BatchNorm `num_batches_tracked`; it is unused in eval mode and with
    # the default momentum, so its absence is harmless.
    fatal_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape
    ]
    if fatal_missing or unexpected or mismatched:
        parts = []
        for label, keys in (
            ("missing", fatal_missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{len(keys)} {label}: {keys[:5]}{more}")
        raise ValueError(
            f"checkpoint {path} (arch {stored_arch!r}) does not fit the requested architecture {arch!r}: "
            + "; ".join(parts)
        )
    network.load_state_dict(state, strict=False)
