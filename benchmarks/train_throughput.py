#!/usr/bin/env python
"""Training throughput (images per second) of each method: rsmooth against a straightforward implementation.

The straightforward version is what one writes from the papers' pseudocode: the smoothed classifier's
softmax is averaged with a Python loop over the m noise draws (one forward pass per draw), and gradients are
normalised with a loop over the examples; Stability, MACER and Consistency run one forward pass per noise
draw. Both run the same number of attack steps, noise draws and SGD steps on a randomly initialised model
and random data, fp32. rsmooth is then measured for each fast-path variant of ``--variants`` (``fp32``,
``bf16``, ``fp16`` joined with ``+cl`` for channels_last; fp16 with a gradient scaler, bf16 without), each
beside the straightforward loop measured in the same run (``--repeats`` alternating rounds, the best of each
run). The last column is the cost of one image relative
to Gaussian training (rsmooth's rates, same variant).

    python benchmarks/train_throughput.py                          # CPU, ResNet-110, batch 64: fp32, bf16+cl
    python benchmarks/train_throughput.py --lenet                  # CPU, LeNet 28x28 (MNIST), batch 64
    python benchmarks/train_throughput.py --device cuda --batch 256 --variants fp32 fp16+cl bf16+cl
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import timed

from rsmooth import fastpath
from rsmooth.models import get_architecture
from rsmooth.plan import write_throughput
from rsmooth.train.methods import MethodStep
from rsmooth.train_config import TrainConfig

SETTINGS = {
    "gaussian": {"method": "gaussian"},
    "smoothadv-pgd-m1": {"method": "smoothadv", "attack": "pgd", "steps": 2},
    "smoothadv-pgd-m4-multi": {"method": "smoothadv", "attack": "pgd", "steps": 2, "num_noise_vec": 4, "multi_noise": True},
    "smoothadv-ddn-m1": {"method": "smoothadv", "attack": "ddn", "steps": 2},
    "pgd_noise": {"method": "pgd_noise", "steps": 2},
    "smoothmix-m2": {"method": "smoothmix", "steps": 2, "num_noise_vec": 2, "mix_step": 1},
    "stability": {"method": "stability"},
    "macer-k16": {"method": "macer"},  # k = 16, MACER's default
    "consistency-m2": {"method": "consistency"},  # m = 2, Consistency's default here
    "smoothadv-pgd-m4-T10": {"method": "smoothadv", "attack": "pgd", "steps": 10, "num_noise_vec": 4},
}  # fmt: skip
DEFAULT_METHODS = [m for m in SETTINGS if m != "smoothadv-pgd-m4-T10"]
# The rows whose cost factor rsmooth.plan reads (its method_factors keys, for the setting benchmarked here).
PLAN_KEYS = {
    "smoothadv-pgd-m1": "smoothadv_pgd", "smoothadv-pgd-m4-multi": "smoothadv_pgd_multi",
    "smoothadv-ddn-m1": "smoothadv_ddn", "pgd_noise": "pgd_noise", "smoothmix-m2": "smoothmix",
    "stability": "stability", "macer-k16": "macer", "consistency-m2": "consistency",
}  # fmt: skip


def loop_attack(model, x, y, noise, eps, steps, stein=False):
    """PGD on the smoothed soft classifier with per-draw forward passes and per-example normalisation."""
    model.eval()
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(steps):
        probs = sum(F.softmax(model(x + delta + noise[:, i]), dim=1) for i in range(noise.shape[1]))
        loss = F.nll_loss(torch.log((probs / noise.shape[1]).clamp_min(1e-20)), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            for j in range(len(x)):  # per-example normalisation, one example at a time
                delta[j] += grad[j] / grad[j].norm().clamp_min(1e-12) * (2 * eps / steps)
            delta.copy_((x + delta).clamp(0, 1) - x)
            delta.copy_(delta.renorm(2, 0, eps))
    model.train()
    return (x + delta).detach()


def loop_step(config: TrainConfig, model, optimizer, x, y):
    """One loader batch of ``config.method``, written straightforwardly."""
    m, sigma = config.num_noise_vec, config.sigma
    if config.method in ("stability", "macer", "consistency"):
        return loop_baseline_step(config, model, optimizer, x, y)
    for xc, yc in zip(x.tensor_split(m), y.tensor_split(m), strict=True):
        noise = torch.randn(len(xc), m, *xc.shape[1:], device=xc.device) * sigma
        if config.method == "gaussian":
            inputs, targets = xc + noise[:, 0], yc
        elif config.method == "pgd_noise":
            inputs, targets = (
                loop_attack(model, xc, yc, torch.zeros_like(noise), config.eps, config.steps) + noise[:, 0],
                yc,
            )
        else:
            x_adv = loop_attack(model, xc, yc, noise, config.eps, config.steps)
            inputs = (
                torch.cat([x_adv + noise[:, i] for i in range(m)])
                if config.multi_noise or config.method == "smoothmix"
                else x_adv + noise[:, 0]
            )
            targets = yc.repeat(len(inputs) // len(yc))
        losses = [F.cross_entropy(model(inputs), targets)]
        if config.method == "smoothmix":  # the mixed half of SmoothMix: one more forward/backward pass
            losses.append(F.cross_entropy(model(inputs.flip(0)), targets.flip(0)))
        optimizer.zero_grad()
        sum(losses).backward()
        optimizer.step()


def loop_baseline_step(config: TrainConfig, model, optimizer, x, y):
    """Stability, MACER and Consistency from their formulas: one forward pass per noise draw."""
    m, sigma = config.num_noise_vec, config.sigma
    chunks = m if config.method == "consistency" else 1
    for xc, yc in zip(x.tensor_split(chunks), y.tensor_split(chunks), strict=True):
        if config.method == "stability":
            clean, noisy = model(xc), model(xc + torch.randn_like(xc) * sigma)
            stab = -(F.softmax(clean, 1) * F.log_softmax(noisy, 1)).sum(1).mean()
            loss = F.cross_entropy(clean, yc) + config.stability_lambda * stab
        else:
            logits = [model(xc + torch.randn_like(xc) * sigma) for _ in range(m)]
            probs = [F.softmax(z, 1) for z in logits]
            mean = sum(probs) / m
            if config.method == "macer":
                loss = F.nll_loss(torch.log(mean + 1e-10), yc)  # the robustness term costs no forward pass
            else:
                kl = sum(F.kl_div(F.log_softmax(z, 1), mean, reduction="none").sum(1) for z in logits) / m
                loss = (
                    F.cross_entropy(torch.cat(logits), yc.repeat(m)) + (config.consistency_lambda * kl).mean()
                )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def parse_variant(text: str) -> tuple[str, bool]:
    """``bf16+cl`` -> (precision, channels_last)."""
    precision, *flags = text.split("+")
    if precision not in fastpath.PRECISIONS or set(flags) - {"cl"}:
        raise argparse.ArgumentTypeError(f"a variant is fp32|bf16|fp16 with an optional +cl, got {text!r}")
    return precision, "cl" in flags


def rsmooth_step(config: TrainConfig, model, optimizer, device, precision: str, channels_last: bool):
    """The training step of rsmooth.train.loop for ``precision`` and memory format (as train() builds it)."""
    fmt = fastpath.memory_format(channels_last)
    model = model.to(memory_format=fmt)
    autocast = functools.partial(fastpath.autocast, precision, device.type)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")
    return MethodStep(
        config, model, optimizer, scaler, autocast=autocast, memory_format=fmt, precision=precision
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each run's best round counts")
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--lenet", action="store_true", help="LeNet on 28x28 MNIST-shaped data instead")
    parser.add_argument(
        "--variants", nargs="+", default=["fp32", "bf16+cl"], help="fp32, bf16+cl, fp16+cl, ..."
    )
    parser.add_argument("--methods", nargs="*", default=DEFAULT_METHODS, choices=list(SETTINGS))
    parser.add_argument(
        "--throughput-out",
        type=Path,
        help="add the fp32 Gaussian rate and the cost factors to a throughput file for scripts/plan.py",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    variants = [(v, *parse_variant(v)) for v in args.variants]
    arch, dataset, shape = (
        ("lenet", "mnist", (1, 28, 28))
        if args.lenet
        else (f"cifar_resnet{args.depth}", "cifar10", (3, 32, 32))
    )
    torch.manual_seed(0)
    x = torch.rand(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; {arch} {'x'.join(map(str, shape[1:]))}; batch {args.batch}"
    )
    print(
        f"{'method':24s} {'variant':9s} {'rsmooth img/s':>14s} {'straightforward fp32':>21s} {'ratio':>6s} "
        f"{'cost vs gaussian':>17s}"
    )
    gaussian_rate: dict[str, float] = {}
    fp32_rates: dict[str, float] = {}
    for method in args.methods:
        config = TrainConfig(arch=arch, batch_size=args.batch, eps=0.5, sigma=0.25, dataset=dataset,
                             **SETTINGS[method]).validate()  # fmt: skip
        model = get_architecture(arch, dataset).to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        steps = {"loop": functools.partial(loop_step, config, model, optimizer)}
        for variant, precision, channels_last in variants:
            try:
                fastpath.check_fast_path(device.type, precision=precision, channels_last=channels_last)
            except ValueError as err:
                print(f"{method:24s} {variant:9s} skipped: {err}")
                continue
            variant_model = get_architecture(arch, dataset).to(device).train()
            variant_model.load_state_dict(model.state_dict())
            variant_optimizer = torch.optim.SGD(variant_model.parameters(), lr=0.01, momentum=0.9)
            steps[variant] = rsmooth_step(
                config, variant_model, variant_optimizer, device, precision, channels_last
            )
        # Rounds alternate the runs and keep each one's best, so that a load change on a shared machine does not
        # fall on one side of a ratio only.
        for step in steps.values():
            step(x, y)  # warm-up
        best = dict.fromkeys(steps, 0.0)
        for _ in range(args.repeats):
            for label, step in steps.items():
                rate = (
                    args.batches
                    * len(x)
                    / timed(lambda step=step: [step(x, y) for _ in range(args.batches)], device)
                )
                best[label] = max(best[label], rate)
        loop_rate = best.pop("loop")
        for variant, rate in best.items():
            if method == "gaussian":
                gaussian_rate[variant] = rate
            cost = f"{gaussian_rate[variant] / rate:17.1f}" if variant in gaussian_rate else f"{'-':>17s}"
            print(f"{method:24s} {variant:9s} {rate:14.1f} {loop_rate:21.1f} {rate / loop_rate:6.2f} {cost}")
            if variant == "fp32" and variant in gaussian_rate:
                fp32_rates[method] = rate
    if args.throughput_out:
        # fp32, the plan's default precision; factors keyed as rsmooth.plan.method_factor looks them up.
        if "gaussian" not in fp32_rates:
            raise SystemExit(
                "--throughput-out needs the gaussian row in fp32 (--methods gaussian ... --variants fp32)"
            )
        prefix = "" if args.lenet else "resnet:"
        factors = {
            prefix + PLAN_KEYS[m]: round(fp32_rates["gaussian"] / r, 2)
            for m, r in fp32_rates.items()
            if m in PLAN_KEYS
        }
        figures = {
            "gpu": name,
            "train_images_per_second": {arch: round(fp32_rates["gaussian"], 1)},
            "method_factors": factors,
        }
        print(f"wrote {write_throughput(args.throughput_out, figures, update=True)}: {figures}")


if __name__ == "__main__":
    main()
