"""Training hyper-parameters, validated before any data is read or any model built (no torch import: the
Snakemake DAG validates every grid cell with it)."""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

from rsmooth.dataset_info import DATASETS

METHODS = ("standard", "gaussian", "smoothadv", "pgd_vanilla", "pgd_noise", "smoothmix")
ATTACKS = ("pgd", "ddn", "pgd_stein")
# Methods whose training step attacks the model (and whose epoch log has an adversarial accuracy).
ATTACKING_METHODS = ("smoothadv", "pgd_vanilla", "pgd_noise", "smoothmix")


@dataclass
class TrainConfig:
    """Every hyper-parameter of one training run; defaults are the papers' CIFAR-10 settings.

    ``eps`` and ``smoothmix_alpha`` are in [0, 1] pixel L2 units (the reference's command
    line divides by 256: ``--epsilon 64`` is 0.25 here). ``lr_step_size = 0`` keeps the learning rate constant
    (fine-tuning). ``warmup`` is the number of epochs over which eps (SmoothAdv) or the mixup weight
    (SmoothMix) grows linearly, as ``min(1, (epoch + 1) / warmup)``.
    """

    dataset: str = "cifar10"
    arch: str = "cifar_resnet110"
    method: str = "gaussian"
    sigma: float = 0.25
    epochs: int = 150
    batch_size: int = 256
    lr: float = 0.1
    lr_step_size: int = 50
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # SmoothAdv and the vanilla-PGD baselines
    attack: str = "pgd"
    eps: float = 0.25
    steps: int = 10
    num_noise_vec: int = 1  # m_train
    multi_noise: bool = False  # the reference's --train-multi-noise
    warmup: int = 10
    ddn_gamma: float = 0.05  # DDN's starting norm is the current (warmed-up) eps, as the reference sets it
    # SmoothMix
    smoothmix_alpha: float = 1.0
    smoothmix_eta: float = 5.0
    mix_step: int = 0
    smoothmix_maxnorm: float | None = None
    # Pre-training, self-training
    pretrained: str | None = None
    pseudo_labels: str | None = None  # the merged training set manifest (scripts/pseudolabel.py)
    self_training_weight: float = 1.0  # eta of SmoothAdv appendix E.2
    # Runtime
    seed: int = 0
    workers: int = 2
    test_subset: int = 0  # test images evaluated per epoch; 0 = the whole test set
    amp: bool = False
    channels_last: bool = False

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad value and what is allowed; return self."""
        _choice("dataset", self.dataset, DATASETS)
        _choice("method", self.method, METHODS)
        _choice("attack", self.attack, ATTACKS)
        if self.dataset == "tinyimages":
            raise ValueError(
                "dataset 'tinyimages' has pseudo-labels only: train on cifar10 with pseudo_labels=..."
            )
        for name in ("epochs", "batch_size", "steps", "num_noise_vec", "warmup"):
            _positive_int(name, getattr(self, name))
        for name in ("workers", "test_subset", "lr_step_size", "mix_step", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        nonneg = ("sigma", "eps", "lr", "momentum", "weight_decay", "self_training_weight")
        for name in (*nonneg, "smoothmix_eta"):
            _finite_nonnegative(name, getattr(self, name))
        for name in ("lr_gamma", "smoothmix_alpha"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not 0 < self.ddn_gamma < 1:
            raise ValueError(f"ddn_gamma must lie in (0, 1), got {self.ddn_gamma!r}")
        if self.smoothmix_maxnorm is not None:
            _finite_nonnegative("smoothmix_maxnorm", self.smoothmix_maxnorm)
        needs_noise = self.method not in ("standard", "pgd_vanilla")
        if needs_noise and self.sigma == 0:
            raise ValueError(f"method {self.method!r} trains under Gaussian noise: sigma must be > 0, got 0")
        if self.num_noise_vec > 1 and self.method not in ("smoothadv", "smoothmix"):
            raise ValueError(
                f"num_noise_vec (m) > 1 applies to methods smoothadv and smoothmix only, not {self.method!r}"
            )
        chunked = self.method == "smoothmix" or (self.method == "smoothadv" and self.num_noise_vec > 1)
        if chunked and self.batch_size % self.num_noise_vec:
            raise ValueError(
                f"num_noise_vec (m) must divide batch_size: got m={self.num_noise_vec}, "
                f"batch_size={self.batch_size} (the batch is split into m chunks of batch_size/m images)"
            )
        if self.attack == "pgd_stein" and self.method == "smoothadv" and self.num_noise_vec < 2:
            raise ValueError(
                "attack 'pgd_stein' estimates the gradient from noise draws: needs num_noise_vec >= 2"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; allowed: {sorted(known)}")
        # YAML reads `sigma: 1` as an int; make it 1.0 so that ids and paths do not depend on the spelling.
        floats = {
            name
            for name, hint in typing.get_type_hints(cls).items()
            if float in (hint, *typing.get_args(hint))
        }
        return cls(
            **{
                k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else v
                for k, v in values.items()
            }
        )

    @property
    def attacking(self) -> bool:
        return self.method in ATTACKING_METHODS


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _finite_nonnegative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
