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
- ``check(config)``: its cross-field rules;
- its cost for the planner (``rsmooth.plan.method_factor``): ``training_cost(values)`` (the measured row that
  applies, the noisy copies an SGD step trains on, the attack's forward-backward passes) and ``benchmarks``
  (the rows of ``benchmarks/train_throughput.py`` measured for it: the planner's default factors);
- its place in the papers' tables (``rsmooth.analysis``): ``envelope_group`` and ``paper_envelopes`` (the
  envelope tables), ``paper_rows`` (the per-model tables, and how seeds combine there).

An instance runs the method's training step on one loader batch (``step``), with the epoch's warm-ups
(``set_epoch``) and the attack of the per-epoch adversarial evaluation (``evaluation_attack``).

The methods' modules import torch inside the functions that use it: the Snakemake DAG and ``TrainConfig`` read
the class attributes only, and must not import torch (the rule: ``rsmooth.TORCH_FREE_MODULES``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rsmooth.options import Option

if TYPE_CHECKING:
    from rsmooth.train_config import TrainConfig

# One loader batch's (summed loss, correct predictions, examples). The first two are 0-d tensors on the model's
# device (float64, int64), so a training step never waits for the GPU: the loop reads them once an epoch. The
# loss is summed in float64 as Python floats were, so the epoch log keeps its digits.
StepStats = tuple[Any, Any, int]


@dataclass(frozen=True)
class TrainingCost:
    """What one training image of a config costs, in the terms of the planner's measured factors
    (``rsmooth.plan.method_factor``): ``row`` names the measured factor that applies (a key of
    ``method_factors``), ``copies`` the noisy copies of the image the SGD step trains on, ``attack_passes`` the
    forward-backward passes of the training attack (``m * T`` for an attack on the smoothed classifier)."""

    row: str
    copies: int = 1
    attack_passes: int = 0


@dataclass(frozen=True)
class Benchmark:
    """One row of ``benchmarks/train_throughput.py`` (``label`` there): the TrainConfig ``settings`` it ran and
    the cost of one training image relative to Gaussian training that it measured, on LeNet (``factor``) and
    on a ResNet where measured (``resnet_factor``). ``measured`` False marks a factor assumed, not measured
    (``note`` says from what). These are the planner's default ``method_factors``."""

    label: str
    factor: float
    settings: Mapping[str, Any] = field(default_factory=dict)
    resnet_factor: float | None = None
    measured: bool = True
    note: str = ""


# How a paper table holds a model (PaperRow.seeds): each model is its own row (SmoothAdv's per-model tables),
# the row is the mean and std over the model's seeds, or only the seed-0 model counts (SmoothMix's ablations).
EACH_MODEL, SEED_MEAN, SEED_ZERO = "each model", "seed mean", "seed 0"


@dataclass(frozen=True)
class PaperRow:
    """A row of a paper's per-model table that holds a model: its ``(method, setting)`` key in
    ``data/paper_numbers.csv`` (``rsmooth.analysis.paper``) and how seeds combine (``seeds``: one of
    :data:`EACH_MODEL`, :data:`SEED_MEAN`, :data:`SEED_ZERO`)."""

    method: str
    setting: str
    seeds: str


def one_model_per_sigma(method: str, dataset: str) -> PaperRow:
    """SmoothMix's tables hold one model per sigma of a method (setting ""): on MNIST the mean and std
    over its seeds (Tables 4-5), elsewhere the seed-0 model."""
    return PaperRow(method, "", SEED_MEAN if dataset == "mnist" else SEED_ZERO)


def noise_count(values: Mapping[str, Any]) -> int:
    """m of TrainConfig values (1 when absent or None)."""
    return int(values.get("num_noise_vec") or 1)


def attack_steps(values: Mapping[str, Any]) -> int:
    """T of TrainConfig values (0 when absent or None)."""
    return int(values.get("steps") or 0)


def warmup_factor(epoch: int, warmup: int) -> float:
    """``min(1, (epoch + 1) / warmup)``: the reference's linear warm-up (epoch counted from 0)."""
    return min(1.0, (epoch + 1) / warmup)


def add_stats(a: StepStats, b: StepStats) -> StepStats:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def batch_stats(loss: Any, correct: Any, count: int) -> StepStats:
    """The :data:`StepStats` of a batch of ``count`` examples whose mean loss is ``loss`` and whose correct
    predictions are the True entries of the boolean tensor ``correct`` (no host synchronisation)."""
    return loss.detach().double() * count, correct.sum(), count


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
    # The planner: the benchmark rows measured for this method (their names are method_factors keys).
    benchmarks: ClassVar[dict[str, Benchmark]] = {}
    # The papers' envelope tables: envelope group -> its (method, setting) key in the paper data.
    paper_envelopes: ClassVar[dict[str, tuple[str, str]]] = {}

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        """Cross-field rules of this method (after every field passed its own check)."""

    @classmethod
    def is_attacking(cls, config: TrainConfig) -> bool:
        """Whether a model of ``config`` is attacked in training (then the epoch log has test_acc_adv)."""
        return cls.attacking

    @classmethod
    def is_chunked(cls, config: TrainConfig) -> bool:
        """Whether a batch of ``config`` is split into ``num_noise_vec`` chunks (then m must divide it)."""
        return cls.chunked

    @classmethod
    def id_head(cls, values: dict[str, Any]) -> str:
        return cls.name

    @classmethod
    def id_fields(cls, values: dict[str, Any]) -> tuple[str, ...]:
        return cls.identity

    @classmethod
    def training_cost(cls, values: Mapping[str, Any]) -> TrainingCost:
        """The cost of one training image of the cell ``values`` (TrainConfig fields; absent ones count as
        m 1, T 0, no multi-noise): one clean or noisy copy, no attack, under the row named as the method."""
        return TrainingCost(cls.name)

    @classmethod
    def envelope_group(cls, pretrained: bool, self_trained: bool) -> str:
        """The family whose envelope a model joins in the aggregation's tables (``rsmooth.analysis``)."""
        return cls.group

    @classmethod
    def paper_rows(cls, dataset: str, train: Mapping[str, Any]) -> list[PaperRow]:
        """The rows of the papers' per-model tables that a model trained from scratch with ``train``
        (TrainConfig values) on ``dataset`` and certified at its own sigma fills; none by default."""
        return []

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
        return batch_stats(loss, logits.argmax(1) == targets, len(targets))
