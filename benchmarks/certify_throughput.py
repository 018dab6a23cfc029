#!/usr/bin/env python
"""Certification throughput: rsmooth's sampler against a per-image loop in the style of the reference.

Both certify the same images with a randomly initialised CIFAR ResNet-110 at 32x32 and report base-classifier
samples per second (selection plus estimation draws) and their ratio. The reference style: one image at a
time, ``torch.no_grad``, the image tiled and noise drawn per batch, predictions moved to the host and counted
with a Python loop per sample.

    python benchmarks/certify_throughput.py                      # CPU, small N
    python benchmarks/certify_throughput.py --device cuda --n 100000 --batch 400 --amp
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rsmooth.models import get_architecture
from rsmooth.smoothing import Smooth, certify_from_counts


def reference_style_counts(model, x, num, batch_size, sigma, num_classes):
    with torch.no_grad():
        counts = np.zeros(num_classes, dtype=int)
        for _ in range(int(np.ceil(num / batch_size))):
            this_batch = min(batch_size, num)
            num -= this_batch
            batch = x.repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            for idx in predictions.cpu().numpy():  # the reference's per-sample counting loop
                counts[idx] += 1
        return counts


def reference_style_certify(model, x, n0, n, alpha, batch_size, sigma, num_classes):
    model.eval()
    selection = reference_style_counts(model, x, n0, batch_size, sigma, num_classes)
    top = int(selection.argmax())
    estimation = reference_style_counts(model, x, n, batch_size, sigma, num_classes)
    return certify_from_counts(top, int(estimation[top]), n, alpha, sigma)


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--amp", action="store_true", help="float16 autocast for rsmooth (CUDA only)")
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = get_architecture(f"cifar_resnet{args.depth}", "cifar10").to(device).eval()
    xs = torch.rand(args.images, 3, 32, 32, device=device)
    smooth = Smooth(model, 10, args.sigma, amp=args.amp)
    samples = args.images * (args.n0 + args.n)

    # Warm-up: cuDNN autotuning and allocator growth are not part of either measurement.
    smooth.certify(xs[0], args.n0, min(args.n, 2 * args.batch), 0.001, args.batch)

    seeds = list(range(args.images))
    ref_times, ours_times = [], []
    for _ in range(args.repeats):  # alternate, and keep the best of each, so that load spikes hit both alike
        ref_times.append(
            timed(
                lambda: [
                    reference_style_certify(model, x, args.n0, args.n, 0.001, args.batch, args.sigma, 10)
                    for x in xs
                ],
                device,
            )
        )
        ours_times.append(
            timed(lambda: smooth.certify_batch(xs, args.n0, args.n, 0.001, args.batch, seeds=seeds), device)
        )
    ref_seconds, ours_seconds = min(ref_times), min(ours_times)

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}; ResNet-{args.depth} 32x32")
    print(
        f"images {args.images}, N0 {args.n0}, N {args.n}, batch {args.batch}, amp {args.amp}, best of {args.repeats}"
    )
    print(
        f"reference-style loop: {samples / ref_seconds:10.1f} samples/s ({ref_seconds / args.images:.3f} s/image)"
    )
    print(
        f"rsmooth:              {samples / ours_seconds:10.1f} samples/s ({ours_seconds / args.images:.3f} s/image)"
    )
    print(f"speed-up: {ref_seconds / ours_seconds:.2f}x")


if __name__ == "__main__":
    main()
