#!/usr/bin/env python
"""CERTIFY as Cohen et al.'s ``core.py`` runs it, in a process of its own with PyTorch's defaults.

The yardstick of ``benchmarks/gpu.sh``: nothing of rsmooth's sampler is imported (``rsmooth.smoothing`` turns
TF32 off for the process when it runs in fp32; the reference's users run with PyTorch's defaults, under which
cuDNN may use TF32). The structure is the authors' per image: ``n0`` selection draws, then ``n`` estimation
draws, each in batches of ``--batch`` (400, as in the papers) of the image tiled with fresh noise under
``torch.no_grad``, predictions moved to the host and counted per sample, then the Clopper-Pearson bound. Only
the architecture comes from rsmooth (the same randomly initialised module as the rsmooth runs, seed 0).

Prints a one-line table and writes ``{"seconds_per_image", "samples_per_second", ...}`` to ``--json`` for
``certify_throughput.py --reference-json``.

    python benchmarks/reference_certify.py --device cuda --n 100000 --json ref110.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from rsmooth.models import get_architecture


def noisy_votes(model, x, num, batch, sigma, num_classes):
    """The reference's sampling loop: tile the image, add fresh noise, count the argmax on the host."""
    with torch.no_grad():
        counts = np.zeros(num_classes, dtype=int)
        remaining = num
        while remaining > 0:
            this_batch = min(batch, remaining)
            remaining -= this_batch
            tiled = x.repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(tiled, device=x.device) * sigma
            for label in model(tiled + noise).argmax(1).cpu().numpy():
                counts[label] += 1
        return counts


def certify(model, x, n0, n, alpha, batch, sigma, num_classes):
    """One image, the authors' order of work: select, estimate, bound, radius (or abstain: -1)."""
    model.eval()
    top = int(noisy_votes(model, x, n0, batch, sigma, num_classes).argmax())
    n_a = int(noisy_votes(model, x, n, batch, sigma, num_classes)[top])
    p_a = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
    return (-1, 0.0) if p_a < 0.5 else (top, sigma * norm.ppf(p_a))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=1, help="timed images (after one warm-up image)")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--resnet50", action="store_true", help="ResNet-50 (ImageNet) instead")
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default 32, or 224 for ResNet-50)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)  # the same module as certify_throughput.py's
    if args.resnet50:
        arch, dataset, classes, size = "resnet50", "imagenet", 1000, args.size or 224
    else:
        arch, dataset, classes, size = f"cifar_resnet{args.depth}", "cifar10", 10, args.size or 32
    model = get_architecture(arch, dataset).to(device).eval()
    xs = torch.rand(args.images + 1, 3, size, size, device=device)
    seconds = []
    for x in xs:  # the first is the warm-up (cuDNN autotuning, allocator growth)
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        certify(model, x, args.n0, args.n, 0.001, args.batch, args.sigma, classes)
        seconds.append(time.perf_counter() - began)
    per_image = float(np.median(seconds[1:]))
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    result = {
        "run": f"Cohen et al.'s core.py structure, PyTorch defaults{' (cuDNN TF32)' if tf32 else ''}",
        "arch": arch,
        "size": size,
        "batch": args.batch,
        "n0": args.n0,
        "n": args.n,
        "seconds_per_image": per_image,
        "samples_per_second": (args.n0 + args.n) / per_image,
        "torch": torch.__version__,
    }
    print(f"{result['run']}: batch {args.batch}, N0 {args.n0}, N {args.n}, median of {args.images} images")
    print(f"{per_image:.3f} s/image, {result['samples_per_second']:.1f} samples/s")
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
