#!/usr/bin/env python
"""Training throughput (images per second) of each method: rsmooth against a straightforward implementation.

The straightforward version is what one writes from the papers' pseudocode: the smoothed classifier's
softmax is averaged with a Python loop over the m noise draws (one forward pass per draw), and gradients are
normalised with a loop over the examples; Stability, MACER and Consistency run one forward pass per noise
draw. Both run the same number of attack steps, noise draws and SGD steps on a randomly initialised model
and random data. The last column is the cost of one image relative to Gaussian training (rsmooth's rates).

    python benchmarks/train_throughput.py                          # CPU, ResNet-110, batch 64
    python benchmarks/train_throughput.py --lenet                  # CPU, LeNet 28x28 (MNIST), batch 64
    python benchmarks/train_throughput.py --device cuda --batch 256 --amp --channels-last
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import torch
import torch.nn.functional as F

from rsmooth.models import get_architecture
from rsmooth.train import TrainConfig
from rsmooth.train.methods import MethodStep

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


def measure(step, batches, x, y, device) -> float:
    step(x, y)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(batches):
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * len(x) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--lenet", action="store_true", help="LeNet on 28x28 MNIST-shaped data instead")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--methods", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    device = torch.device(args.device)
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
        f"device: {name}; torch {torch.__version__}; {arch} {'x'.join(map(str, shape[1:]))}; batch {args.batch}; amp {args.amp}; channels_last {args.channels_last}"
    )
    print(
        f"{'method':24s} {'rsmooth img/s':>14s} {'straightforward img/s':>22s} {'ratio':>6s} {'cost vs gaussian':>17s}"
    )
    gaussian_rate = None
    for method in args.methods:
        config = TrainConfig(
            arch=arch,
            batch_size=args.batch,
            eps=0.5,
            sigma=0.25,
            amp=args.amp,
            channels_last=args.channels_last,
            dataset=dataset,
            **SETTINGS[method],
        ).validate()
        model = get_architecture(arch, dataset).to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        use_amp = args.amp and device.type == "cuda"
        autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp else contextlib.nullcontext
        )
        fmt = torch.channels_last if args.channels_last and device.type == "cuda" else torch.contiguous_format
        model = model.to(memory_format=fmt)
        ours = MethodStep(
            config,
            model,
            optimizer,
            torch.amp.GradScaler("cuda", enabled=use_amp),
            autocast=autocast,
            memory_format=fmt,
        )
        ours_rate = measure(ours, args.batches, x, y, device)
        loop_rate = measure(
            functools.partial(loop_step, config, model, optimizer), args.batches, x, y, device
        )
        if method == "gaussian":
            gaussian_rate = ours_rate
        cost = f"{gaussian_rate / ours_rate:17.1f}" if gaussian_rate else f"{'-':>17s}"
        print(f"{method:24s} {ours_rate:14.1f} {loop_rate:22.1f} {ours_rate / loop_rate:6.2f} {cost}")


if __name__ == "__main__":
    main()
