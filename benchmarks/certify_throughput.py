#!/usr/bin/env python
"""Certification throughput: rsmooth's sampler against a per-image loop in the style of the reference.

Both certify the same images with a randomly initialised CIFAR ResNet-110 at 32x32 (or ResNet-50 at 224x224,
``--resnet50``) and report base-classifier samples per second (selection plus estimation draws) and the ratio
to the reference-style loop measured in the same run. The reference style: one image at a time,
``torch.no_grad``, fp32, the image tiled and noise drawn per batch, predictions moved to the host and counted
with a Python loop per sample, at the reference batch (``--batch``, 400 as in the papers).

rsmooth is measured for every fast-path variant of ``--variants`` (``fp32``, ``tf32``, ``bf16``, ``fp16``, joined with
``+cl`` for channels_last and ``+compile`` for torch.compile) at every batch of ``--batches`` (``auto``: the
size ``Smooth.auto_batch_size`` picks; its search is not timed). Runs alternate and the best of
``--repeats`` is kept, so that load spikes on a shared machine hit every variant alike. The first (warm-up)
call of each run is timed apart and shown: it holds torch.compile's compilation and cuDNN's autotuning.

``--reference-json`` takes the reference from ``benchmarks/reference_certify.py`` (its own process, PyTorch
defaults: how the reference's users run it) instead of the in-process loop, which runs after rsmooth's fp32
setup has turned TF32 off and so is slower than the reference as run (``gpu.sh`` always passes it).
``--matmul-json`` (from ``benchmarks/matmul_rate.py``) adds the achieved FLOP/s (forward passes only, counted
with ``torch.utils.flop_counter``) as a fraction of the measured bf16 matrix-product rate. Rows are printed
as they are measured, so a run stopped by a time limit still shows the rows it finished.

    python benchmarks/certify_throughput.py                      # CPU: fp32, fp32+cl, bf16, bf16+cl
    python benchmarks/certify_throughput.py --device cuda --n 100000 --variants fp32 bf16+cl bf16+cl+compile \
        --batches 400 auto
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from timing import timed

from rsmooth import fastpath
from rsmooth.models import get_architecture
from rsmooth.plan import write_throughput
from rsmooth.smoothing import Smooth, certify_from_counts

REFERENCE = "reference-style loop (fp32)"


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


def flops_per_sample(model, shape, device) -> float:
    """Floating-point operations of one forward pass of one sample, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros((1, *shape), device=device))
    return float(counter.get_total_flops())


def parse_variant(text: str) -> tuple[str, bool, bool]:
    """``bf16+cl+compile`` -> (precision, channels_last, compile)."""
    precision, *flags = text.split("+")
    if precision not in fastpath.PRECISIONS or set(flags) - {"cl", "compile"}:
        raise argparse.ArgumentTypeError(
            f"a variant is fp32|tf32|bf16|fp16 with +cl and/or +compile, got {text!r}"
        )
    return precision, "cl" in flags, "compile" in flags


def default_variants(device: str) -> list[str]:
    return (
        ["fp32", "fp32+cl", "bf16", "bf16+cl"] if device == "cpu" else ["fp32", "bf16+cl", "bf16+cl+compile"]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=400, help="the reference-style loop's batch")
    parser.add_argument("--batches", nargs="+", default=None, help="rsmooth's batches (integers or auto)")
    parser.add_argument("--variants", nargs="+", default=None, help="fp32, bf16+cl, ... (see above)")
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--resnet50", action="store_true", help="ResNet-50 at 224x224 (ImageNet) instead")
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default 32, or 224 for ResNet-50)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-json", type=Path, help="the reference's figures (reference_certify.py)")
    parser.add_argument("--matmul-json", type=Path, help="the bf16 matmul rate (matmul_rate.py)")
    parser.add_argument(
        "--throughput-out",
        type=Path,
        help="add the fastest fp32 rsmooth rate to a throughput file for scripts/plan.py --throughput",
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    variants = [(v, *parse_variant(v)) for v in args.variants or default_variants(device.type)]
    batches = args.batches or [str(args.batch)]
    torch.manual_seed(0)
    if args.resnet50:
        side = args.size or 224
        arch, dataset, shape, classes = "resnet50", "imagenet", (3, side, side), 1000
    else:
        side = args.size or 32
        arch, dataset, shape, classes = f"cifar_resnet{args.depth}", "cifar10", (3, side, side), 10
    xs = torch.rand(args.images, *shape, device=device)
    samples = args.images * (args.n0 + args.n)
    seeds = list(range(args.images))

    reference_model = get_architecture(arch, dataset).to(device).eval()
    flops = flops_per_sample(reference_model, shape, device)
    peak = json.loads(args.matmul_json.read_text())["bf16_matmul_flops"] if args.matmul_json else None
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {device_name}; torch {torch.__version__}; {arch} {shape[1]}x{shape[2]}")
    print(f"images {args.images}, N0 {args.n0}, N {args.n}, best of {args.repeats}")
    print(
        f"{flops / 1e9:.3f} GFLOP a sample (forward), "
        + (f"bf16 matmul rate measured {peak / 1e12:.1f} TFLOP/s" if peak else "no matmul rate given")
    )
    runs = {}
    if args.reference_json:
        reference_figures = json.loads(args.reference_json.read_text())
        reference_rate = reference_figures["samples_per_second"]
        print(
            f"reference: {reference_figures['run']}, batch {reference_figures['batch']}, "
            f"N {reference_figures['n']}: {reference_figures['seconds_per_image']:.3f} s/image"
        )
    else:
        reference_rate = None
        runs[REFERENCE] = (args.batch, lambda n=args.n: [
            reference_style_certify(reference_model, x, args.n0, n, 0.001, args.batch, args.sigma, classes)
            for x in xs
        ])  # fmt: skip
    for name, precision, channels_last, compile in variants:
        model = get_architecture(arch, dataset).to(device).eval()  # its own copy: channels_last converts it
        model.load_state_dict(reference_model.state_dict())
        try:
            smooth = Smooth(model, classes, args.sigma, precision=precision, channels_last=channels_last,
                            compile=compile)  # fmt: skip
        except ValueError as err:
            print(f"skipped {name}: {err}")
            continue
        for batch in batches:
            size = (
                smooth.auto_batch_size(shape, limit=None if device.type == "cuda" else args.n)[0]
                if batch == "auto"
                else int(batch)
            )
            label = f"rsmooth {name}" + (" (auto)" if batch == "auto" else "")
            runs[label] = (size, lambda n=args.n, smooth=smooth, size=size: smooth.certify_batch(
                xs, args.n0, n, 0.001, size, seeds=seeds))  # fmt: skip

    # Warm-up: cuDNN autotuning, compilation and allocator growth are not part of any measurement (shown apart).
    first = {
        label: timed(lambda fn=fn, size=size: fn(min(args.n, 2 * size)), device)
        for label, (size, fn) in runs.items()
    }
    times = {label: [] for label in runs}
    for _ in range(args.repeats - 1):
        for label, (_, fn) in runs.items():
            times[label].append(timed(fn, device))
    header = (
        f"{'run':36s} {'batch':>6s} {'samples/s':>11s} {'s/image':>9s} {'s/image@100k':>13s} "
        f"{'vs reference':>12s} {'of bf16 mm':>10s} {'warm-up s':>9s}"
    )
    print(header, flush=True)
    best = {}
    for label, (size, fn) in runs.items():  # the last round row by row, each printed once measured
        times[label].append(timed(fn, device))
        best[label] = min(times[label])
        rate = samples / best[label]
        if reference_rate is None and label == REFERENCE:
            reference_rate = rate
        ratio = f"{rate / reference_rate:11.2f}x" if reference_rate else f"{'':>12s}"
        fraction = f"{rate * flops / peak:10.1%}" if peak else f"{'':>10s}"
        print(
            f"{label:36s} {size:6d} {rate:11.1f} {best[label] / args.images:9.3f} "
            f"{best[label] / samples * 100_100:13.3f} {ratio} {fraction} {first[label]:9.1f}",
            flush=True,
        )
    if args.throughput_out:
        # The plan's default precision is fp32: a reduced-precision rate would understate its cost.
        fp32 = [label for label in runs if label.startswith("rsmooth fp32") and "+" not in label]
        if not fp32:
            raise SystemExit("--throughput-out needs an fp32 run of rsmooth (add fp32 to --variants)")
        rate = max(samples / best[label] for label in fp32)
        figures = {"gpu": device_name, "certify_samples_per_second": {arch: round(rate, 1)}}
        print(f"wrote {write_throughput(args.throughput_out, figures, update=True)}: {figures}")


if __name__ == "__main__":
    main()
