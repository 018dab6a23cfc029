"""What every training method is made of: its options, its class attributes, the shared step helpers.

A method is one subclass of :class:`Method` in its own module of this package. The class says, torch-free:

- ``name`` (the ``--method`` value), ``display`` (as the papers' tables print it) and ``group`` (the family the
  aggregation's envelope tables put its models in);
- ``options``: its own :class:`Option` s (fields of ``TrainConfig``, command-line flags, schema entries);
- ``defaults``: its values of shared fields that differ from the shared default (MACER's k = 16);
- ``identity``: the fields always named in a model's cell id; ``noise_draws``: whether ``num_noise_vec`` > 1
  is meaningful, ``chunked``: whether the batch is split into ``num_noise_vec`` chunks (then m must divide the
  batch size); ``noise_free``: whether sigma may be 0; ``attacking``: whether the epoch log reports an
  adversarial accuracy; ``lr_decay_offset``: the schedule timing of the code the method comes from;
- ``check(config)``: its cross-field rules.

An instance runs the method's training step on one loader batch (``step``), with the epoch's warm-ups
(``set_epoch``) and the attack of the per-epoch adversarial evaluation (``evaluation_attack``).

The methods' modules import torch inside the functions that use it: the Snakemake DAG and ``TrainConfig`` read
the class attributes only, and must not import torch (the rule: ``rsmooth.TORCH_FREE_MODULES``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from rsmooth.train_config import TrainConfig

StepStats = tuple[float, int, int]


@dataclass(frozen=True)
class Option:
    """One training hyper-parameter: a ``TrainConfig`` field, a ``--flag`` of ``scripts/train.py`` and an
    entry of the config schema's training section, all generated from this.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``; ``nullable`` allows ``None``. Bounds: ``minimum``
    (inclusive), ``above`` (exclusive minimum), ``below`` (exclusive maximum), or ``choices``. ``short`` is the
    name in cell ids. An ``exclusive`` option has a value only in its own method's configs (``None``
    elsewhere, and setting it for another method is an error); the options of the first methods are carried
    by every config, so that the ids and command lines of existing models stay as they were.
    """

    name: str
    kind: type
    default: Any
    help: str = ""
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    short: str | None = None
    exclusive: bool = False

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the value and what is allowed."""
        if value is None and self.nullable:
            return
        name = self.name
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(self.choices)}")
            return
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            return
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
            return
        if self.kind is int:
            ok = not isinstance(value, bool) and isinstance(value, int)
            what = "a positive integer" if self.minimum == 1 else "a non-negative integer"
        else:
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            what = "a non-negative number" if self.above is None else "a positive number"
        if self.below is not None:
            if not (ok and self.above < value < self.below):
                raise ValueError(f"{name} must lie in ({self.above:g}, {self.below:g}), got {value!r}")
            return
        if not ok or (self.minimum is not None and value < self.minimum):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        if self.above is not None and not value > self.above:
            raise ValueError(f"{name} must be {what}, got {value!r}")

    def schema(self) -> dict[str, Any]:
        """The JSON-schema entry with the bounds of :meth:`check`."""
        if self.choices is not None:
            entry: dict[str, Any] = {"enum": [*self.choices, *([None] if self.nullable else [])]}
            return entry
        kind = {int: "integer", float: "number", bool: "boolean", str: "string"}[self.kind]
        entry = {"type": [kind, "null"] if self.nullable else kind}
        if self.minimum is not None:
            entry["minimum"] = self.minimum
        if self.above is not None:
            entry["exclusiveMinimum"] = self.above
        if self.below is not None:
            entry["exclusiveMaximum"] = self.below
        return entry


def warmup_factor(epoch: int, warmup: int) -> float:
    """``min(1, (epoch + 1) / warmup)``: the reference's linear warm-up (epoch counted from 0)."""
    return min(1.0, (epoch + 1) / warmup)


def add_stats(a: StepStats, b: StepStats) -> StepStats:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


class Method:
    """A training method: class attributes describe it (see the module docstring), an instance trains.

    ``Method(config, model, ...)`` builds the step of ``config.method`` (the registered subclass), so the
    training loop needs no dispatch of its own.
    """

    name: ClassVar[str]
    display: ClassVar[str]
    group: ClassVar[str]
    summary: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    identity: ClassVar[tuple[str, ...]] = ("sigma",)
    noise_draws: ClassVar[bool] = False
    chunked: ClassVar[bool] = False
    noise_free: ClassVar[bool] = False
    attacking: ClassVar[bool] = False
    lr_decay_offset: ClassVar[int] = 0

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        """Cross-field rules of this method (after every field passed its own check)."""

    @classmethod
    def is_attacking(cls, config: TrainConfig) -> bool:
        """Whether a model of ``config`` is attacked in training (then the epoch log has test_acc_adv)."""
        return cls.attacking

    @classmethod
    def id_head(cls, values: dict[str, Any]) -> str:
        return cls.name

    @classmethod
    def id_fields(cls, values: dict[str, Any]) -> tuple[str, ...]:
        return cls.identity

    def __new__(cls, config: TrainConfig, *args: Any, **kwargs: Any) -> Method:
        if cls is Method:
            from rsmooth.train.methods import get_method

            cls = get_method(config.method)
        return super().__new__(cls)

    def __init__(
        self,
        config: TrainConfig,
        model: Any,
        optimizer: Any,
        scaler: Any,
        *,
        autocast: Callable[[], contextlib.AbstractContextManager],
        memory_format: Any = None,
        precision: str = "fp32",
    ) -> None:
        import torch

        self.config = config
        self.model = model  # possibly DistributedDataParallel: used for the training forward passes
        self.base = model.module if hasattr(model, "module") else model  # attacks run on the bare model
        channels_last = memory_format is not None and memory_format == torch.channels_last
        if precision != "fp32" or channels_last:
            # The attacks inside training run in the training's precision and memory format too.
            from rsmooth.smoothing import FastForward

            self.base = FastForward(self.base, precision, channels_last)
        self.optimizer = optimizer
        self.scaler = scaler
        self.autocast = autocast
        self.memory_format = torch.contiguous_format if memory_format is None else memory_format
        self.eps = config.eps
        self.mix_weight = 1.0

    def set_epoch(self, epoch: int) -> None:
        """Warm-ups: eps (SmoothAdv, vanilla PGD) and the mixup weight (SmoothMix) grow over ``warmup`` epochs."""
        factor = warmup_factor(epoch, self.config.warmup)
        self.eps = self.config.eps * factor
        self.mix_weight = factor

    def __call__(self, x: Any, y: Any, weight: float = 1.0) -> StepStats:
        return self.step(x, y, weight)

    def step(self, x: Any, y: Any, weight: float) -> StepStats:
        """One loader batch: attacks, forward passes, loss and optimiser step(s); returns (summed loss,
        correct predictions, examples) for the epoch log."""
        raise NotImplementedError

    def evaluation_attack(self, model: Any, x: Any, y: Any, noise: Any) -> Any:
        """The adversarial input of the per-epoch evaluation (single noise draw ``noise``, ``[B, C, H, W]``):
        the method's own training attacker at the epoch's strength, as the reference's ``test()``; ``None``
        when the method does not attack."""
        return None

    # -- helpers shared by the steps ------------------------------------------------------------------

    def noise(self, x: Any, m: int) -> Any:
        """``[B, m, C, H, W]`` draws of N(0, sigma^2): copies of one image consecutive."""
        import torch

        return torch.randn((x.shape[0], m, *x.shape[1:]), device=x.device) * self.config.sigma

    def logits(self, inputs: Any) -> Any:
        import torch

        with self.autocast():
            if self.memory_format == torch.channels_last:
                from rsmooth.fastpath import to_memory_format

                inputs = to_memory_format(inputs, True)  # a clear error for inputs that are not images
            return self.model(inputs.contiguous(memory_format=self.memory_format)).float()

    def update(self, loss: Any) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def fit(self, inputs: Any, targets: Any, weight: float) -> StepStats:
        """Cross-entropy step on ready inputs."""
        import torch.nn.functional as F

        logits = self.logits(inputs)
        loss = F.cross_entropy(logits, targets) * weight
        self.update(loss)
        correct = int((logits.argmax(1) == targets).sum())
        return float(loss.detach()) * len(targets), correct, len(targets)
