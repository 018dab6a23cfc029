#!/usr/bin/env python
"""Sequential certification against CERTIFY with real forward passes: samples, wall clock, accuracy.

Certifies the same images of a data set with a saved model twice, in the same run: CERTIFY
(``Smooth.certify_batch``, N0 + N draws) and sequential certification on the true label
(``Smooth.certify_sequential_batch``, at most N draws, the table radii), same alpha, same batch size. Prints
mean samples per image, wall-clock seconds, their ratios, and certified accuracy at every radius.

    python benchmarks/sequential_wallclock.py --checkpoint results/models/<cell>/model.pt \
        --data-root resources/demo-data --images 10 --n 2000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rsmooth.data import get_dataset
from rsmooth.models import load_checkpoint
from rsmooth.sequential import TESTS, sequential_test
from rsmooth.smoothing import Smooth, image_seed

RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]


def accuracy(correct: np.ndarray, radius: np.ndarray) -> list[float]:
    return [float(np.mean(correct & (radius >= r - 1e-12))) for r in RADII]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--sigma", type=float, default=None, help="default: the checkpoint's training sigma")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000, help="CERTIFY's N and the sequential n_max")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--test", default="union", choices=TESTS)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    model, checkpoint = load_checkpoint(args.checkpoint, map_location=args.device)
    sigma = args.sigma or float(checkpoint["sigma"])
    smooth = Smooth(model.to(args.device), int(checkpoint.get("num_classes") or 10), sigma)
    dataset = get_dataset(args.dataset, "test", args.data_root, augment=False)
    indices = list(range(min(args.images, len(dataset))))
    xs = torch.stack([dataset[i][0] for i in indices])
    labels = np.array([int(dataset[i][1]) for i in indices])
    seeds = [image_seed(0, i) for i in indices]
    test = sequential_test(RADII, sigma, args.alpha, args.n, args.test)  # built (and cached) before timing

    began = time.perf_counter()
    cohen = []
    for i in range(len(indices)):  # one image per call, as scripts/certify.py does on a CPU
        cohen += smooth.certify_batch(
            xs[i : i + 1], args.n0, args.n, args.alpha, args.batch, seeds=seeds[i : i + 1]
        )
    cohen_seconds = time.perf_counter() - began
    began = time.perf_counter()
    sequential = smooth.certify_sequential_batch(
        xs, RADII, args.alpha, args.n, args.batch, labels=labels.tolist(), seeds=seeds, test=test
    )
    sequential_seconds = time.perf_counter() - began

    cohen_cls = np.array([c for c, _ in cohen])
    cohen_radius = np.array([r for _, r in cohen])
    seq_cls = np.array([c for c, _, _ in sequential])
    seq_radius = np.array([r for _, r, _ in sequential])
    samples = np.array([s for _, _, s in sequential])
    print(f"{len(indices)} images, sigma = {sigma}, alpha = {args.alpha}, N0 + N = {args.n0 + args.n}, "
          f"n_max = {args.n}, batch {args.batch}, {args.device}, test {args.test}")  # fmt: skip
    print(f"{'procedure':<11}{'samples/img':>12}{'seconds':>10}   certified accuracy (%) at r = {RADII}")
    for name, mean, seconds, acc in (
        ("cohen", args.n0 + args.n, cohen_seconds, accuracy(cohen_cls == labels, cohen_radius)),
        ("sequential", samples.mean(), sequential_seconds, accuracy(seq_cls == labels, seq_radius)),
    ):
        print(f"{name:<11}{mean:>12.0f}{seconds:>10.1f}   " + " ".join(f"{a * 100:5.1f}" for a in acc))
    print(f"samples ratio {(args.n0 + args.n) / samples.mean():.2f}x, wall-clock ratio "
          f"{cohen_seconds / sequential_seconds:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
