"""The training loop: data, model, schedule, per-epoch evaluation, exact resumption, DDP.

Resumption: after every epoch the full state (model, optimiser, scheduler, AMP scaler, epoch, log, RNG
states) is written atomically to a resume file *beside* the final output, never under the output's name
(Snakemake deletes declared outputs before a job runs). A rerun continues after the last finished epoch.
Every random choice of an epoch (data order, augmentation, noise, attack noise) is drawn from generators
seeded by (seed, epoch, rank) at the start of the epoch, so on CPU a resumed run ends with exactly the
weights of an uninterrupted one. The final checkpoint is written only after the last epoch.

Multi-GPU: launched by ``torchrun``, each process trains on its slice of every global batch under
DistributedDataParallel (NCCL on CUDA, gloo on CPU); rank 0 evaluates and writes the files.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from tqdm import tqdm

from rsmooth import fastpath
from rsmooth.data import get_dataset, num_classes
from rsmooth.data.selftraining import load_merged_trainset
from rsmooth.errors import ResumeFileError, describe_exception
from rsmooth.fastpath import DEFAULT_PRECISION, check_fast_path
from rsmooth.io import atomic_open, atomic_torch_save
from rsmooth.models import (
    NORMALIZATIONS,
    get_architecture,
    load_checkpoint,
    replace_classifier_head,
    save_checkpoint,
)
from rsmooth.train.batches import epoch_rng, plan_epoch, rank_slice
from rsmooth.train.methods import MethodStep
from rsmooth.train_config import OPTIONS, TrainConfig

# Batches between two updates of the progress bar's running loss and accuracy (each update is a host sync).
PROGRESS_EVERY = 20
LOG_COLUMNS = ("epoch", "time", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_acc_adv")


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        """The process's place in a ``torchrun`` job (or a single process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def default_resume_path(output: Path) -> Path:
    return output.with_name(output.name + ".resume")


def default_log_path(output: Path) -> Path:
    return output.with_name(output.name + ".log.tsv")


@dataclass
class _Run:
    """What the epochs of one training run work on, as :func:`_prepare` builds it."""

    config: TrainConfig
    ddp: Distributed
    device: torch.device
    model: nn.Module  # the bare model: evaluated and saved
    trained: nn.Module  # the model the steps train (DistributedDataParallel over several processes)
    normalization: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    step: MethodStep
    train_set: Dataset
    num_labelled: int
    test_set: Dataset
    start_epoch: int
    history: list[dict[str, float]]


def train(
    config: TrainConfig,
    output: str | os.PathLike,
    *,
    data_root: str | os.PathLike,
    resume_path: str | os.PathLike | None = None,
    log_path: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Path:
    """Train a model as ``config`` says and write its final checkpoint to ``output``; return ``output``.

    ``resume_path`` (default ``<output>.resume``) holds the per-epoch state; ``log_path`` (default
    ``<output>.log.tsv``) the epoch log with columns :data:`LOG_COLUMNS` (accuracies are fractions).
    """
    config.validate()
    output = Path(output)
    resume_path = Path(resume_path) if resume_path else default_resume_path(output)
    log_path = Path(log_path) if log_path else default_log_path(output)
    for name in ("pretrained", "pseudo_labels"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name} file {path} does not exist")

    ddp = Distributed.from_env()
    if config.batch_size % ddp.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {ddp.world_size} processes")
    torch_device = _setup_device(ddp, device)
    try:
        run = _prepare(config, ddp, torch_device, Path(data_root), resume_path)
        for epoch in range(run.start_epoch, config.epochs):
            _run_epoch(run, epoch, log_path, resume_path, progress)
        if ddp.is_main:
            _save_final(run, output)
            resume_path.unlink(missing_ok=True)
        if ddp.world_size > 1:
            dist.barrier()
    finally:
        if ddp.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return output


def _prepare(
    config: TrainConfig, ddp: Distributed, device: torch.device, data_root: Path, resume_path: Path
) -> _Run:
    """Data, model, optimiser, schedule and the method's step; the state of the last finished epoch when
    ``resume_path`` exists."""
    use_cuda = device.type == "cuda"
    check_fast_path(device.type, precision=config.precision, channels_last=config.channels_last)
    train_set, num_labelled, test_set = _datasets(config, data_root)
    model, normalization = _build_model(config, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = _lr_schedule(config, optimizer)
    # bf16 has float32's exponent range and needs no scaler; fp16 (amp) does.
    precision = ("fp16" if use_cuda else DEFAULT_PRECISION) if config.amp else config.precision
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and use_cuda)
    start_epoch, history = 0, []
    if resume_path.exists():
        start_epoch, history = _load_resume(resume_path, config, model, optimizer, scheduler, scaler)
        if ddp.is_main:
            print(
                f"resuming from {resume_path}: {start_epoch} of {config.epochs} epochs done",
                file=sys.stderr,
            )
    trained = nn.parallel.DistributedDataParallel(model) if ddp.world_size > 1 else model
    autocast = (
        (lambda: fastpath.autocast(precision, device.type))
        if precision != DEFAULT_PRECISION
        else contextlib.nullcontext
    )
    step = MethodStep(
        config,
        trained,
        optimizer,
        scaler,
        autocast=autocast,
        memory_format=memory_format,
        precision=precision,
    )
    return _Run(
        config=config, ddp=ddp, device=device, model=model, trained=trained, normalization=normalization,
        optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=step, train_set=train_set,
        num_labelled=num_labelled, test_set=test_set, start_epoch=start_epoch, history=history,
    )  # fmt: skip


def _lr_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """StepLR stepped after each epoch gives lr0 * gamma^floor(epoch / step), Cohen's and Salman's schedule;
    with lr_decay_offset k it is first stepped after epoch k (:func:`_run_epoch`), so every decay comes k
    epochs late (the SmoothMix repository's scheduler.step(epoch) after the epoch: k = 1). lr_step_size 0:
    constant."""
    if config.lr_step_size:
        return torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_size, config.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _run_epoch(run: _Run, epoch: int, log_path: Path, resume_path: Path, progress: bool | None) -> None:
    """One epoch: seeded from (seed, epoch, rank), trained, the lr stepped; then, on rank 0, evaluated, logged
    and written to the resume file."""
    config, ddp = run.config, run.ddp
    began = time.time()
    _seed_epoch(config.seed, epoch, ddp.rank)
    run.step.set_epoch(epoch)
    lr = run.optimizer.param_groups[0]["lr"]
    train_loss, train_acc = _train_epoch(
        run.step, run.trained, run.train_set, run.num_labelled, config, epoch, ddp, run.device, progress
    )
    if epoch >= config.decay_offset:
        run.scheduler.step()
    if ddp.is_main:
        test_loss, test_acc, test_adv = evaluate(
            run.model, run.test_set, config, run.step.eps, run.device, attacker=run.step.evaluation_attack
        )
        row = (epoch + 1, time.time() - began, lr, train_loss, train_acc, test_loss, test_acc, test_adv)
        run.history.append(dict(zip(LOG_COLUMNS, row, strict=True)))
        _write_log(log_path, run.history)
        _save_resume(run, epoch + 1, resume_path)
    if ddp.world_size > 1:
        dist.barrier()


def _save_resume(run: _Run, epochs_done: int, path: Path) -> None:
    atomic_torch_save(
        {
            "epoch": epochs_done,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "history": run.history,
            "config": run.config.to_dict(),
            "rng": _rng_states(),
        },
        path,
    )


def _save_final(run: _Run, output: Path) -> None:
    config = run.config
    save_checkpoint(
        output,
        run.model,
        arch=config.arch,
        epoch=config.epochs,
        normalization=run.normalization,
        dataset=config.dataset,
        num_classes=num_classes(config.dataset),
        sigma=config.sigma,
        optimizer_state=run.optimizer.state_dict(),
        config=config.to_dict(),
        history=run.history,
    )


def _setup_device(ddp: Distributed, device: str | None) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ddp.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if ddp.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _datasets(config: TrainConfig, data_root: Path) -> tuple[Dataset, int, Dataset]:
    """(training set, number of labelled items at its front, evaluation set)."""
    if config.pseudo_labels:
        labelled, pseudo = load_merged_trainset(config.pseudo_labels, data_root, augment=True)
        train_set: Dataset = ConcatDataset([labelled, pseudo])
        num_labelled = len(labelled)
    else:
        train_set = get_dataset(config.dataset, "train", data_root, augment=True)
        num_labelled = len(train_set)
    test_set = get_dataset(config.dataset, "test", data_root, augment=False)
    if config.test_subset and config.test_subset < len(test_set):
        # Evenly spaced, so that every class is represented as in the full set.
        test_set = Subset(
            test_set, np.linspace(0, len(test_set) - 1, config.test_subset).astype(int).tolist()
        )
    return train_set, num_labelled, test_set


def _build_model(config: TrainConfig, device: torch.device) -> tuple[nn.Module, Any]:
    """A fresh model, or a pre-trained one with a new classifier head (fine-tuning, all weights trained)."""
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every rerun
    classes = num_classes(config.dataset)
    if config.pretrained is None:
        normalization = NORMALIZATIONS[config.dataset]
        return get_architecture(config.arch, normalization, classes).to(device), normalization
    pretrained, checkpoint = load_checkpoint(config.pretrained)
    normalization = checkpoint["normalization"]  # the pre-trained model's own constants
    replace_classifier_head(pretrained, classes)
    model = get_architecture(config.arch, normalization, classes)
    try:
        model.load_state_dict(pretrained.state_dict())
    except RuntimeError as err:
        raise ValueError(
            f"pre-trained model {config.pretrained} (arch {checkpoint.get('arch')!r}) does not fit arch "
            f"{config.arch!r}: {str(err).splitlines()[0]}"
        ) from err
    return model.to(device), normalization


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed every generator the epoch uses from (seed, epoch, rank) alone."""
    value = int(epoch_rng(seed, epoch, 1 + rank).integers(2**62))
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


def _train_epoch(
    step: MethodStep,
    model: nn.Module,
    train_set: Dataset,
    num_labelled: int,
    config: TrainConfig,
    epoch: int,
    ddp: Distributed,
    device: torch.device,
    progress: bool | None,
) -> tuple[float, float]:
    plan = plan_epoch(
        num_labelled,
        config.batch_size,
        config.seed,
        epoch,
        num_pseudo=len(train_set) - num_labelled,
        num_batches=config.batches_per_epoch,
    )
    loader = DataLoader(
        train_set,
        batch_sampler=[rank_slice(indices, ddp.rank, ddp.world_size) for indices, _ in plan],
        num_workers=config.workers,
        generator=torch.Generator().manual_seed(
            int(epoch_rng(config.seed, epoch, 1000 + ddp.rank).integers(2**62))
        ),
        pin_memory=device.type == "cuda",
    )
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    disable = True if not ddp.is_main else (None if progress is None else not progress)
    bar = tqdm(
        zip(plan, loader, strict=True),
        total=len(plan),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=disable,
        leave=False,
    )
    for index, ((_, pseudo), (x, y)) in enumerate(bar, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        weight = config.self_training_weight if pseudo else 1.0
        batch_loss, batch_correct, batch_count = step(x, y, weight)
        loss_sum, correct, count = loss_sum + batch_loss, correct + batch_correct, count + batch_count
        # Reading the running figures waits for the GPU, so the bar shows them every few batches only.
        if not bar.disable and (index % PROGRESS_EVERY == 0 or index == len(plan)):
            bar.set_postfix(loss=f"{float(loss_sum) / count:.3f}", acc=f"{int(correct) / count:.3f}")
    return float(loss_sum) / count, int(correct) / count


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    eps: float,
    device: torch.device,
    *,
    attacker: Callable[..., torch.Tensor | None] | None = None,
) -> tuple[float, float, float]:
    """(loss, accuracy) of the base classifier under one noise draw per image, and the accuracy under the
    method's own training attack at the current eps with that noise draw (NaN when the method does not
    attack). ``attacker(model, x, y, noise)`` is the training step's ``evaluation_attack`` (built from
    ``config`` and ``eps`` when not given)."""
    model.eval()
    if attacker is None and config.attacking:
        method = MethodStep(config, model, None, None, autocast=contextlib.nullcontext)
        method.eps = eps
        attacker = method.evaluation_attack
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.workers)
    loss_sum, correct, adv_correct, count = 0.0, 0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        noise = torch.randn_like(x) * config.sigma
        logits = model(x + noise)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        count += len(y)
        if config.attacking:
            x_adv = attacker(model, x, y, noise)
            adv_correct += int((model(x_adv + noise).argmax(1) == y).sum())
    adv_acc = adv_correct / count if config.attacking else math.nan
    return loss_sum / count, correct / count, adv_acc


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_open(path) as handle:
        handle.write("\t".join(LOG_COLUMNS) + "\n")
        for row in history:
            handle.write("\t".join(_format(row[c]) for c in LOG_COLUMNS) + "\n")


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _rng_states() -> dict[str, Any]:
    # Plain tensors and python values only, so the resume file loads with weights_only=True (no pickled numpy
    # objects). Kept for inspection: each epoch reseeds from (seed, epoch, rank), which makes resumption exact.
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


_RESUME_KEYS = ("epoch", "model", "optimizer", "scheduler", "scaler", "history", "config")


def _read_resume_state(path: Path) -> dict[str, Any]:
    """The resume file's dict, read with weights_only=True (it never holds code), or ResumeFileError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ResumeFileError(
            f"resume file {path} is unreadable ({describe_exception(err)}): truncated, corrupted, written by "
            "an older rsmooth, or not a resume file; delete it to restart the training from scratch",
            path,
        ) from None
    missing = [k for k in _RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ResumeFileError(
            f"resume file {path} is not an rsmooth training resume file (missing {missing}); "
            "delete it to restart the training from scratch",
            path,
        )
    return state


def _load_resume(
    path: Path,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> tuple[int, list[dict[str, float]]]:
    state = _read_resume_state(path)
    # Options added since the file was written are read as their defaults (a run resumes across the upgrade).
    stored = {
        **{k: v for k, v in config.to_dict().items() if k not in state["config"] and v == OPTIONS[k].default},
        **state["config"],
    }
    if stored != config.to_dict():
        changed = sorted(k for k, v in config.to_dict().items() if stored.get(k) != v)
        raise ValueError(
            f"resume file {path} was written with other settings ({', '.join(changed)}); "
            "delete it to start over, or rerun with the original settings"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"])
