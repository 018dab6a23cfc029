#!/usr/bin/env python
"""Data loading against training: is the loader ever the bottleneck?

For CIFAR-10 (in-memory uint8 arrays; RandomCrop(32, padding=4) + flip + ToTensor per item, as the references)
and ImageNet (JPEG files; RandomResizedCrop(224) + flip + ToTensor) the training loader of rsmooth
(``get_dataset(..., augment=True)`` in a ``DataLoader``) is timed at each ``--workers`` count, with and without
pinned memory, on synthetic data in the real on-disk formats, and set beside the training throughput of a
Gaussian-noise step (ResNet-110 at 32x32, ResNet-50 at 224x224) on ``--device`` in fp32 and bf16 +
channels_last. The loader keeps up when its images/s exceed the training's; the per-worker rate says how
many workers a faster device needs.

    python benchmarks/loader_throughput.py                       # CPU, workers 0 and 2
    python benchmarks/loader_throughput.py --device cuda --workers 0 4 8 16
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import torch
from timing import timed
from torch.utils.data import DataLoader

from rsmooth import fastpath
from rsmooth.data import get_dataset
from rsmooth.data.synthetic import write_synthetic_cifar10, write_synthetic_imagenet
from rsmooth.models import get_architecture
from rsmooth.train.methods import MethodStep
from rsmooth.train_config import TrainConfig


def loader_rate(dataset, batch: int, workers: int, pin: bool, batches: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, pin_memory=pin,
                        drop_last=True, persistent_workers=workers > 0)  # fmt: skip
    iterator = iter(loader)
    next(iterator)  # worker start-up is not part of the rate
    began = time.perf_counter()
    seen = 0
    for _ in range(batches):
        try:
            x, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            x, _ = next(iterator)
        seen += len(x)
    return seen / (time.perf_counter() - began)


def train_rate(
    arch: str, dataset: str, shape, batch: int, device, precision: str, channels_last: bool, steps: int
) -> float:
    config = TrainConfig(arch=arch, dataset=dataset, method="gaussian", batch_size=batch).validate()
    fmt = fastpath.memory_format(channels_last)
    model = get_architecture(arch, dataset).to(device).train().to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step = MethodStep(config, model, optimizer, scaler, autocast=functools.partial(fastpath.autocast, precision, device.type),
                      memory_format=fmt, precision=precision)  # fmt: skip
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    step(x, y)  # warm-up
    return steps * batch / timed(lambda: [step(x, y) for _ in range(steps)], device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="loader batches timed")
    parser.add_argument("--steps", type=int, default=2, help="training steps timed")
    parser.add_argument(
        "--datasets", nargs="+", default=["cifar10", "imagenet"], choices=["cifar10", "imagenet"]
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    setups = {
        "cifar10": ("cifar_resnet110", (3, 32, 32), lambda root: write_synthetic_cifar10(root, n_train=2048, n_test=16)),
        "imagenet": ("resnet50", (3, 224, 224),
                     lambda root: write_synthetic_imagenet(root, num_classes=10, n_per_class=40, size=(300, 400))),
    }  # fmt: skip
    print(
        f"device {device}; torch {torch.__version__}; {torch.get_num_threads()} threads; batch {args.batch}"
    )
    print(f"{'data set':9s} {'what':34s} {'images/s':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            arch, shape, write = setups[name]
            root = Path(tmp) / name
            write(root)
            dataset = get_dataset(name, "train", root, augment=True)
            for workers in args.workers:
                for pin in (False, True) if device.type == "cuda" else (False,):
                    rate = loader_rate(dataset, args.batch, workers, pin, args.batches)
                    label = f"loader, {workers} workers" + (", pinned" if pin else "")
                    print(f"{name:9s} {label:34s} {rate:10.1f}")
            for precision, channels_last in (("fp32", False), ("bf16", True)):
                rate = train_rate(arch, name, shape, args.batch, device, precision, channels_last, args.steps)
                print(
                    f"{name:9s} {'training, gaussian ' + fastpath.describe(precision, channels_last, False):34s} {rate:10.1f}"
                )


if __name__ == "__main__":
    main()
