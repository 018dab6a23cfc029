"""Input normalization as the first layer of the classifier.

Randomized smoothing adds Gaussian noise in [0, 1] pixel space, so normalization cannot be part of the data
pipeline: it is layer 0 of ``nn.Sequential(normalization, network)``, exactly as in Cohen et al. and Salman et al.
The constants are registered as *non-persistent* buffers: they follow ``.to(device)`` / ``.half()`` but stay out of
the state_dict, so our state dicts have the same key layout as the released reference checkpoints (no ``0.*``
keys). The price is that a checkpoint cannot tell which normalization it needs; we therefore store it as metadata
(see ``rsmooth.models.checkpoint``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rsmooth.dataset_info import DATASET_SPECS, dataset_spec

__all__ = [
    "NORMALIZATIONS",
    "InputCenterLayer",
    "Normalization",
    "NormalizeLayer",
    "dataset_normalization",
    "resolve_normalization",
]


def _channel_buffer(values: Sequence[float]) -> torch.Tensor:
    # Shape [1, C, 1, 1] broadcasts over any batch size and spatial size.
    return torch.tensor([float(v) for v in values], dtype=torch.float32).view(1, -1, 1, 1)


def _check_channels(x: torch.Tensor, expected: int, layer: str) -> None:
    # Without this check a 1-channel constant would silently broadcast over a 3-channel input (or vice versa).
    if x.dim() != 4 or x.shape[1] != expected:
        raise ValueError(f"{layer} expects a [B, {expected}, H, W] batch, got shape {tuple(x.shape)}")


class NormalizeLayer(nn.Module):
    """Per-channel standardization ``(x - mean_c) / std_c`` (Cohen et al. ``NormalizeLayer``)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need the same length, got {len(mean)} and {len(std)}")
        self.register_buffer("mean", _channel_buffer(mean), persistent=False)
        self.register_buffer("std", _channel_buffer(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.mean.shape[1], "NormalizeLayer")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class InputCenterLayer(nn.Module):
    """Mean subtraction only, ``x - mean_c`` (Salman et al. ``InputCenterLayer``)."""

    mean: torch.Tensor

    def __init__(self, mean: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", _channel_buffer(mean), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.mean.shape[1], "InputCenterLayer")
        return x - self.mean

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}"


@dataclass(frozen=True)
class Normalization:
    """Normalization constants.

    ``std=None`` means mean subtraction only ("input centering"). An empty ``mean`` (with ``std=None``) is the
    identity, which is what ``none`` and SmoothMix's ``mnist`` are.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        # Normalize lists / tensors / ints to tuples of floats so equality and hashing are reliable.
        mean = tuple(float(v) for v in self.mean)
        std = None if self.std is None else tuple(float(v) for v in self.std)
        if std is not None:
            if len(std) != len(mean):
                raise ValueError(f"Normalization: mean has {len(mean)} channels but std has {len(std)}")
            if not mean:
                raise ValueError("Normalization: the identity (empty mean) must have std=None")
            if any(not (math.isfinite(s) and s > 0) for s in std):
                raise ValueError(f"Normalization: std must be finite and positive, got {std}")
        if any(not math.isfinite(m) for m in mean):
            raise ValueError(f"Normalization: mean must be finite, got {mean}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def is_identity(self) -> bool:
        return len(self.mean) == 0

    @property
    def kind(self) -> str:
        """``"identity"``, ``"center"`` (mean only) or ``"standardize"`` (mean and std)."""
        if self.is_identity:
            return "identity"
        return "center" if self.std is None else "standardize"

    def to_dict(self) -> dict[str, Any]:
        """Plain-python form (lists/None), safe for ``torch.load(weights_only=True)``, JSON and YAML."""
        return {"mean": list(self.mean), "std": None if self.std is None else list(self.std)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalization:
        if not isinstance(d, Mapping) or "mean" not in d or set(d) - {"mean", "std"}:
            raise ValueError(f"a normalization dict needs the key 'mean' and optionally 'std', got {d!r}")
        return cls(mean=tuple(d["mean"]), std=None if d.get("std") is None else tuple(d["std"]))

    def layer(self) -> nn.Module:
        """A fresh layer 0 for ``nn.Sequential(layer, network)``."""
        if self.is_identity:
            return nn.Identity()
        if self.std is None:
            return InputCenterLayer(self.mean)
        return NormalizeLayer(self.mean, self.std)


def _from_specs() -> dict[str, Normalization]:
    # Every data set's spec gives its models' normalization (``<name>``) and a mean-only variant
    # (``<name>_center``, Salman et al.'s InputCenterLayer); see rsmooth.dataset_info for the constants.
    table: dict[str, Normalization] = {}
    for name in sorted(DATASET_SPECS):  # alphabetical: the order the help texts list the names in
        spec = DATASET_SPECS[name]
        if spec.normalization is not None:
            table[name] = Normalization(mean=spec.normalization.mean, std=spec.normalization.std)
        if spec.center_mean is not None:
            table[f"{name}_center"] = Normalization(mean=spec.center_mean)
    # A dedicated identity (empty mean) rather than mean 0 / std 1, so it fits any channel count.
    table["none"] = Normalization(mean=())
    return table


NORMALIZATIONS: dict[str, Normalization] = _from_specs()


def dataset_normalization(dataset: str) -> Normalization:
    """The normalization a model trained on ``dataset`` starts with (its spec's constants)."""
    spec = dataset_spec(dataset)
    if spec.normalization is None:
        raise ValueError(f"dataset {dataset!r} has no normalization: no model is trained on it")
    return NORMALIZATIONS[spec.name]


def resolve_normalization(spec: str | Mapping[str, Any] | Normalization) -> Normalization:
    """Turn a name from ``NORMALIZATIONS``, a ``to_dict()`` dict, or a Normalization into a Normalization."""
    if isinstance(spec, Normalization):
        return spec
    allowed = ", ".join(sorted(NORMALIZATIONS))
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {spec!r}; allowed names: {allowed}")
        return NORMALIZATIONS[key]
    if isinstance(spec, Mapping):
        return Normalization.from_dict(spec)
    raise ValueError(
        f"normalization must be a name, a dict with 'mean'/'std' or a Normalization, got {spec!r}; "
        f"allowed names: {allowed}"
    )
