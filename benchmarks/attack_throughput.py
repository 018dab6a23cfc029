#!/usr/bin/env python
"""Attack throughput: SmoothAdv-PGD on the smoothed classifier (rsmooth.empirical.attack_smoothed) against a
per-image loop in the style of the reference predict.py, and what the paper's empirical study costs.

For each m_test the same images are attacked by both (T steps, one forward and backward pass over the m noisy
copies per step) with a randomly initialised CIFAR ResNet-110 at 32x32; the figures are images/s and their
ratio. The reference style: one image at a time, the image tiled m times, the noise drawn once, the soft
smoothed classifier's cross-entropy, the gradient normalised and a step of 2*eps/T, projected back on the ball.

The cost of the empirical study is then extrapolated from two measured rates, forward passes per second at
the certification batch and forward+backward copies per second inside the attack: every attack log of the
config (groups x eps x settings) x images x (T * m attack copies + n PREDICT samples), against the
certification of the same config (logs x images x (N0 + N)). It is a ratio of measured work, so it carries
over to a GPU as long as the forward/backward ratio does; GPU-hours use the references' 14 s per image of
CERTIFY (100,100 samples, ResNet-110).

    python benchmarks/attack_throughput.py                        # CPU: m_test 1, 8, 128, T = 20
    python benchmarks/attack_throughput.py --device cuda --images 16
    python benchmarks/attack_throughput.py --device cuda --variants fp32 bf16+cl --no-study   # fast path

With ``--variants`` the rsmooth attack also runs on ``Smooth.attack_model()`` in each fast-path variant
(``bf16+cl``: bf16 autocast and channels_last, float32 logits and gradients), each beside the same
reference-style loop; ``--no-study`` skips the extrapolation to the empirical study.
"""

from __future__ import annotations

import argparse
import copy
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import timed

from rsmooth.empirical import attack_smoothed
from rsmooth.models import get_architecture
from rsmooth.pipeline import attack_settings, certification_set_size, grid_models, load_config
from rsmooth.smoothing import Smooth

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CERTIFY_SECONDS = 14.0  # Cohen et al.: ResNet-110, N0 + N = 100,100 samples per image, one GPU


def rsmooth_attack(model, x, y, *, eps, steps, num_noise, sigma, seed):
    generator = torch.Generator(x.device).manual_seed(seed)
    return attack_smoothed(
        model, x, y, eps=eps, steps=steps, num_noise=num_noise, sigma=sigma, generator=generator
    )


def reference_style_attack(model, x, y, *, eps, steps, num_noise, sigma, seed):
    """One image at a time, as the reference's predict.py drives its SmoothAdv-PGD attacker."""
    generator = torch.Generator(x.device).manual_seed(seed)
    out = []
    for b in range(x.shape[0]):
        inputs = x[b : b + 1].repeat(num_noise, 1, 1, 1)
        noise = torch.randn(inputs.shape, device=x.device, generator=generator) * sigma
        delta = torch.zeros_like(inputs[:1], requires_grad=True)
        for _ in range(steps):
            logits = model(inputs + delta + noise)
            soft = F.softmax(logits, dim=1).mean(0, keepdim=True)
            loss = F.nll_loss(torch.log(soft.clamp_min(1e-20)), y[b : b + 1])
            (grad,) = torch.autograd.grad(loss, delta)
            grad = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            with torch.no_grad():
                delta += 2 * eps / steps * grad
                delta.copy_((x[b : b + 1] + delta).clamp(0, 1) - x[b : b + 1])
                norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                delta *= torch.clamp(eps / norm.clamp_min(1e-12), max=1.0)
        out.append((x[b : b + 1] + delta).detach())
    return torch.cat(out)


def best_of(fn, repeats: int, device: torch.device) -> float:
    return min(timed(fn, device) for _ in range(repeats))


def study_work(config: dict) -> tuple[float, float, int, int]:
    """(attack copies, PREDICT samples, attack logs, images per log) of the config's empirical study."""
    empirical = config["empirical"]
    images = len(range(0, certification_set_size(config), empirical["skip"]))
    groups = len(empirical["envelope"]) if isinstance(empirical.get("envelope"), dict) else 1
    logs = copies = predict = 0
    for setting in attack_settings(config).values():
        for eps in empirical["eps"]:
            steps = 0 if float(eps) == 0 else empirical["steps"]  # eps 0: no attack, PREDICT only
            logs += groups
            copies += groups * images * steps * setting.num_noise
            predict += groups * images * (setting.n + 1)
    return copies, predict, logs, images


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-noise", type=int, nargs="+", default=[1, 8, 128])
    parser.add_argument("--images", type=int, default=2, help="images per m_test (one for m_test >= 64)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.5)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=400, help="PREDICT batch for the forward rate")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--variants", nargs="+", default=["fp32"], help="fp32, bf16+cl, fp16+cl, ...")
    parser.add_argument("--no-study", action="store_true", help="only the attack rates")
    parser.add_argument("--depth", type=int, default=110, help="CIFAR ResNet depth")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = get_architecture(f"cifar_resnet{args.depth}", "cifar10").to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; ResNet-{args.depth} 32x32; T = {args.steps}, eps = {args.eps}"
    )

    batch = torch.rand(args.batch, 3, 32, 32, device=device)
    with torch.no_grad():
        model(batch[:8])  # warm-up
        forward = args.batch / best_of(lambda: model(batch), max(args.repeats, 2), device)
    print(f"forward (PREDICT/CERTIFY, batch {args.batch}): {forward:8.1f} samples/s")

    copies_per_second = {}
    for m in args.num_noise:
        images = 1 if m >= 64 else args.images
        x = torch.rand(images, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (images,), device=device)
        kwargs = dict(eps=args.eps, steps=args.steps, num_noise=m, sigma=args.sigma)
        ref = best_of(partial(reference_style_attack, model, x, y, **kwargs, seed=0), args.repeats, device)
        for variant in args.variants:
            precision, *flags = variant.split("+")
            fast = model if variant == "fp32" else Smooth(
                copy.deepcopy(model), 10, args.sigma, precision=precision, channels_last="cl" in flags
            ).attack_model()  # fmt: skip
            ours = best_of(partial(rsmooth_attack, fast, x, y, **kwargs, seed=0), args.repeats, device)
            if variant == "fp32":
                copies_per_second[m] = images * args.steps * m / ours
            print(
                f"m_test {m:4d} {variant:8s}: reference-style {images / ref:8.3f} images/s, rsmooth "
                f"{images / ours:8.3f} images/s ({images * args.steps * m / ours:7.1f} copies/s forward+backward), "
                f"speed-up {ref / ours:.2f}x"
            )
    if args.no_study or not copies_per_second:
        return

    config = load_config(args.config)
    copies, predict, logs, images = study_work(config)
    backward_rate = copies_per_second[max(copies_per_second)]  # large m: full batches, as in the study's bulk
    attack_seconds = copies / backward_rate + predict / forward
    certify = config["certify"]
    n_grid = sum(len(model.certify_sigmas) for model in grid_models(config).values())  # certification logs
    cert_images = certification_set_size(config) // certify["skip"]
    cert_seconds = n_grid * cert_images * (certify["n0"] + certify["n"]) / forward
    print(
        f"\n{args.config}: empirical study {logs} attack logs x {images} images: {copies:.3g} attack copies "
        f"(forward+backward) + {predict:.3g} PREDICT samples"
    )
    print(f"certification: {n_grid} logs x {cert_images} images x {certify['n0'] + certify['n']} samples")
    print(f"measured work ratio, empirical study / certification: {attack_seconds / cert_seconds:.3f}")
    gpu_forward = 100_100 / REFERENCE_CERTIFY_SECONDS
    scale = gpu_forward / forward  # the GPU's forward rate over this device's
    print(
        f"GPU-hours at the references' {REFERENCE_CERTIFY_SECONDS:.0f} s per CERTIFY image: empirical study "
        f"{attack_seconds / scale / 3600:,.0f}, certification {cert_seconds / scale / 3600:,.0f}"
    )


if __name__ == "__main__":
    main()
