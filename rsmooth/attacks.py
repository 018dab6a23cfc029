"""L2 attacks on smoothed classifiers: SmoothAdv (Salman et al. 2019), SmoothMix (Jeong et al. 2021) and the
SmoothAdv attack of Consistency regularization (Jeong & Shin 2020).

Conventions shared by every attack here:

- ``model`` maps a ``[N, C, H, W]`` batch in [0, 1] pixel space to logits (normalization is its first layer).
- ``x`` is ``[B, C, H, W]`` in [0, 1], ``y`` is ``[B]`` (int64), ``noise`` is ``[B, m, C, H, W]`` and already scaled by
  sigma. Row ``b * m + i`` of the flattened ``[B * m, C, H, W]`` batch is ``x[b] + delta[b] + noise[b, i]``: each image's
  m copies are consecutive, the reference's interleaved layout (``inputs[::m]`` recovers the originals). The m noise
  draws are the caller's, fixed for all steps; no fresh noise is drawn and noisy inputs are never clamped.
- The perturbation ``delta`` is shared by the m copies, and the attacks return ``x + delta`` *without* noise.
- Each step is one forward/backward pass over all ``B * m`` noisy copies as a single batch.
- The model runs in eval mode (BatchNorm running statistics, as the reference sets ``model.eval()`` before attacking),
  and every submodule's train/eval flag is restored afterwards. Gradients are taken with respect to the perturbation
  only (``torch.autograd.grad``), so parameters, their ``.grad`` and their ``requires_grad`` are never touched. The
  attacks work under an outer ``torch.no_grad()`` (or ``inference_mode``) and return detached tensors.

Decisions where the reference code leaves room:

- Zero gradient (SmoothAdv PGD, DDN, Stein): the reference replaces an all-zero per-example gradient by an
  *unnormalized* ``randn`` draw, only to avoid dividing by zero. That makes that example's step about
  ``sqrt(C*H*W)`` times longer than ``2 * eps / steps`` (a jump to the eps-sphere in a random direction). Here the
  random direction is normalized, so every step has length exactly ``2 * eps / steps``; random numbers are drawn (from
  the global generator) only when some example has a zero gradient, as in the reference, so the caller's RNG stream is
  otherwise untouched.
- DDN learning rate: the reference builds ``SGD(lr=1)`` + ``CosineAnnealingLR(T_max=steps, eta_min=0.01)`` and calls
  ``scheduler.step()`` at the *start* of every iteration. We follow the PyTorch >= 1.1 semantics of that code (the
  SmoothAdv README installs an unpinned PyTorch with CUDA 10.0 and its jobs date from May 2019 on, after 1.1 was
  released): step ``i`` (0-based) uses ``0.01 + 0.99 * (1 + cos(pi * (i + 1) / steps)) / 2``, so the last step uses
  0.01. (Under PyTorch <= 1.0, step i would use the value for ``i`` instead, starting at 1.) The first step's lr does
  not matter in either case: delta starts at 0 and is rescaled to ``norm`` right after the step.
- DDN final quantization: as in the reference, the final ``best_delta`` is renormed to ``eps`` and then *delta itself*
  is rounded to multiples of ``1 / (levels - 1)``. This can push ``||delta||_2`` above ``eps`` by at most
  ``0.5 / (levels - 1) * sqrt(#nonzero coordinates)``; we keep it for fidelity. For x on the 8-bit grid
  (CIFAR-10 after ToTensor / crop / flip) the result stays on the grid and inside [0, 1]; for other x we clamp
  ``x + delta`` to [0, 1] (a no-op on the grid), which can only shrink delta.
- SmoothMix: the iterate kept as ``x_init`` is the one *before* step ``mix_step`` (i.e. after ``mix_step`` steps), as
  the official code does; when ``mix_step >= steps`` the official loop never reassigns it, so ``x_init`` is ``x``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rsmooth.validation import check_int, check_non_negative, check_positive_int

__all__ = [
    "consistency_pgd",
    "mean_softmax",
    "pgd_base",
    "smoothadv_ddn",
    "smoothadv_pgd",
    "smoothadv_pgd_stein",
    "smoothed_soft_nll",
    "smoothmix_pgd",
]

# Both reference implementations clamp the averaged probability before the log.
_PROB_FLOOR = 1e-20


# -- public helpers ----------------------------------------------------------------------------------------------


def mean_softmax(logits: torch.Tensor, m: int) -> torch.Tensor:
    """The smoothed soft prediction: ``[B * m, K]`` logits (interleaved layout) -> ``[B, K]`` mean of softmaxes.

    This is F̂ of SmoothMix and the soft smoothed classifier of SmoothAdv. It stays differentiable, so a trainer can
    use it on the logits of its own training forward pass.
    """
    m = check_positive_int(m, "m")
    if logits.dim() != 2 or logits.shape[0] % m:
        raise ValueError(f"logits must have shape [B * m, K] with m = {m}, got {tuple(logits.shape)}")
    return F.softmax(logits, dim=1).view(-1, m, logits.shape[1]).mean(dim=1)


def smoothed_soft_nll(logits: torch.Tensor, y: torch.Tensor, m: int, reduction: str = "sum") -> torch.Tensor:
    """``-log(max(mean_i softmax(logits_i)_y, 1e-20))``: the loss both references ascend in the attack.

    ``logits`` is ``[B * m, K]`` in the interleaved layout (row ``b * m + i`` is copy i of image b), ``y`` is ``[B]``.
    ``reduction`` is passed to ``nll_loss`` (``"sum"``, ``"mean"`` or ``"none"``).
    """
    return F.nll_loss(torch.log(mean_softmax(logits, m).clamp(min=_PROB_FLOOR)), y, reduction=reduction)


# -- SmoothAdv ---------------------------------------------------------------------------------------------------


def smoothadv_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, noise: torch.Tensor
) -> torch.Tensor:
    """SmoothAdv PGD-L2 against the soft smoothed classifier; returns ``x + delta`` with ``||delta||_2 <= eps``.

    Ascends ``-log((1/m) sum_i softmax(f(x + delta + n_i))_y)`` (for m = 1: the cross-entropy of the one noisy copy,
    as the reference's single-noise attack). delta starts at 0; each step moves it by exactly ``2 * eps / steps``
    along the per-example L2-normalized gradient, then clamps ``x + delta`` to [0, 1] and projects delta onto the
    L2 ball of radius ``eps``.
    """
    eps = check_non_negative(eps, "eps")
    steps = check_positive_int(steps, "steps")
    _check_inputs(x, y)
    _check_noise(noise, x)
    return _pgd(model, x, y, eps=eps, steps=steps, noise=noise)


def pgd_base(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int) -> torch.Tensor:
    """PGD-L2 on the base classifier, no noise: the "vanilla PGD" baselines of SmoothAdv (appendix C.1).

    Same step rule and projection as :func:`smoothadv_pgd` with m = 1 and zero noise (loss: cross-entropy).
    """
    eps = check_non_negative(eps, "eps")
    steps = check_positive_int(steps, "steps")
    _check_inputs(x, y)
    return _pgd(model, x, y, eps=eps, steps=steps, noise=None)


def smoothadv_pgd_stein(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, noise: torch.Tensor
) -> torch.Tensor:
    """Gradient-free SmoothAdv PGD (reference ``--no-grad-attack``), for m >= 2 noise draws.

    The gradient of the smoothed probability is estimated without backpropagation through Stein's identity
    ``grad E[p_y(x + n)] = E[p_y(x + n) n] / sigma^2``: ``g = mean_i[-softmax(f(x + delta + n_i))_y * n_i]`` (the
    probability itself, not its log; ``1/sigma^2`` drops out in the normalization). Then the step, box clamp and
    projection of :func:`smoothadv_pgd`. The reference silently runs the gradient attack for m = 1; we refuse.
    """
    eps = check_non_negative(eps, "eps")
    steps = check_positive_int(steps, "steps")
    _check_inputs(x, y)
    _check_noise(noise, x)
    if noise.shape[1] < 2:
        raise ValueError(
            f"smoothadv_pgd_stein needs m >= 2 noise draws per example, got m = {noise.shape[1]} "
            f"(noise shape {tuple(noise.shape)})"
        )
    if eps == 0:
        return x.detach().clone()
    step = 2 * eps / steps
    batch, m = noise.shape[:2]
    with _attack_mode(model), torch.no_grad():
        x, noise = _plain(x), _plain(noise)
        weights = noise.flatten(2)  # [B, m, D]
        delta = torch.zeros_like(x)
        for _ in range(steps):
            logits = _noisy_logits(model, x + delta, noise)
            probs = F.softmax(logits.float(), dim=1).view(batch, m, logits.shape[1])
            p_y = probs.gather(2, y.view(-1, 1, 1).expand(-1, m, 1))  # [B, m, 1]
            grad = -(p_y.to(weights.dtype) * weights).mean(dim=1).view_as(x)
            delta = _project_box_ball(x, delta + step * _unit_per_example(grad), eps)
        return (x + delta).clamp(0, 1)


def smoothadv_ddn(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    noise: torch.Tensor,
    gamma: float = 0.05,
    init_norm: float = 1.0,
    levels: int = 256,
) -> torch.Tensor:
    """SmoothAdv DDN (Rony et al.'s decoupled direction and norm, as modified by Salman et al.).

    Returns ``x + best_delta``, where ``best_delta`` is the smallest-L2 perturbation found adversarial (measured
    before each update), renormed to at most ``eps`` and quantized to ``levels`` levels; it is the *clean* input
    where nothing adversarial was found. "Adversarial" means the prediction differs from ``y``; with m > 1 the
    prediction is the majority vote (``torch.mode``) of the m noisy copies; as in the reference, a tie goes to
    whichever label ``torch.mode`` picks (the smallest one on CPU), so with m = 2 and one wrong copy the example
    counts as adversarial iff the wrong label is smaller than ``y``. ``init_norm`` is the starting norm
    (SmoothAdv training passes the current warm-up eps). See the module docstring for the lr schedule and the
    final quantization, which can exceed ``eps`` by up to half a level per changed coordinate.
    """
    eps = check_non_negative(eps, "eps")
    steps = check_positive_int(steps, "steps")
    _check_inputs(x, y)
    _check_noise(noise, x)
    gamma = check_non_negative(gamma, "gamma")
    if gamma >= 1:
        raise ValueError(f"gamma must be a number in [0, 1), got {gamma!r}")
    init_norm = check_non_negative(init_norm, "init_norm")
    levels = check_int(levels, "levels", 2)
    if eps == 0:
        return x.detach().clone()
    scale = levels - 1
    batch, m = noise.shape[:2]
    with _attack_mode(model):
        x, noise = _plain(x), _plain(noise)
        delta = torch.zeros_like(x)
        norm = torch.full((batch,), float(init_norm), device=x.device, dtype=x.dtype)
        worst_norm = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)
        best_l2 = worst_norm.clone()
        best_delta = torch.zeros_like(x)
        for lr in _ddn_learning_rates(steps):
            l2 = delta.flatten(1).norm(dim=1)
            delta.requires_grad_(True)
            logits = _noisy_logits(model, x + delta, noise)
            loss = _smoothadv_loss(logits, y, m)
            votes = logits.argmax(dim=1).view(batch, m)
            prediction = votes[:, 0] if m == 1 else votes.mode(dim=1).values
            is_adv = prediction != y
            # Best adversarial delta so far, measured before this step's update (strictly smaller norm wins).
            improved = is_adv & (l2 < best_l2)
            best_l2 = torch.where(improved, l2, best_l2)
            best_delta = torch.where(_per_example(improved, x), delta.detach(), best_delta)

            grad = _input_grad(loss, delta)
            # SGD on -loss with a normalized gradient is ascent on the loss by lr.
            delta = delta.detach() + lr * _unit_per_example(grad)
            norm = norm * _ddn_norm_factor(is_adv, gamma, norm.dtype)
            norm = torch.minimum(norm, worst_norm)
            delta = delta * _per_example(norm / delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
            x_new = ((x + delta) * scale).round().div(scale).clamp(0, 1)
            delta = x_new - x
        best_delta = best_delta.renorm(p=2, dim=0, maxnorm=eps)
        best_delta = (best_delta * scale).round() / scale
        return (x + best_delta).clamp(0, 1)


# -- SmoothMix ---------------------------------------------------------------------------------------------------


def smoothmix_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float,
    steps: int,
    noise: torch.Tensor,
    mix_step: int = 0,
    maxnorm_s: float | None = None,
    maxnorm: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SmoothMix's adversary (``SmoothMix_PGD`` of the official code): returns ``(x_init, x_adv)``.

    ``x^0 = x``; for t < steps: ``x^{t+1} = clamp(P(x^t + alpha * g / (||g|| + 1e-8)), 0, 1)`` with ``g`` the
    gradient of ``sum_b -log F̂_y(x^t)`` (F̂: mean softmax over the fixed noise draws, clamped at 1e-20) and ``P``
    the projection onto the L2 ball of radius ``maxnorm`` around ``x`` (``None``: no eps constraint, only the box).
    ``x_adv = x^T``. ``x_init`` is ``x^{mix_step}`` (``x`` when ``mix_step == 0`` or ``mix_step >= steps``), projected
    onto the L2 ball of radius ``maxnorm_s`` around ``x`` (default ``alpha * mix_step``; the trainer scales it by the
    warm-up factor) and clamped to [0, 1]. A zero gradient gives a zero step, as in the official code.
    """
    alpha = check_non_negative(alpha, "alpha")
    steps = check_positive_int(steps, "steps")
    mix_step = check_int(mix_step, "mix_step", 0)
    maxnorm_s = None if maxnorm_s is None else check_non_negative(maxnorm_s, "maxnorm_s")
    maxnorm = None if maxnorm is None else check_non_negative(maxnorm, "maxnorm")
    _check_inputs(x, y)
    _check_noise(noise, x)
    if maxnorm_s is None:
        maxnorm_s = alpha * mix_step
    if alpha == 0:  # Every iterate is x; skip the forward passes.
        return x.detach().clone(), x.detach().clone()
    m = noise.shape[1]
    with _attack_mode(model):
        x, noise = _plain(x), _plain(noise)
        adv = x
        init = x
        for t in range(steps):
            if t == mix_step:
                init = adv
            adv = adv.detach().requires_grad_(True)
            loss = smoothed_soft_nll(_noisy_logits(model, adv, noise), y, m, reduction="sum")
            grad = _input_grad(loss, adv)
            grad = grad / _per_example(grad.flatten(1).norm(dim=1) + 1e-8, grad)
            adv = _project_ball_box(adv.detach() + alpha * grad, x, maxnorm)
        init = _project_ball_box(init, x, maxnorm_s)
    return init.detach(), adv.detach()


# -- Consistency regularization on SmoothAdv ----------------------------------------------------------------------


def consistency_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, noise: torch.Tensor
) -> torch.Tensor:
    """The SmoothAdv PGD of the Consistency code (``SmoothAdv_PGD`` of ``train_consistency.py``).

    From ``x`` (no random start), ``steps`` steps of ``adv += (2 * eps / steps) * g / (||g|| + 1e-8)`` with ``g``
    the gradient of ``mean_b -log(max(mean_i softmax(f(adv + n_i))_y, 1e-20))``, each followed by scaling
    ``adv - x`` down to ``eps`` and *then* clamping to [0, 1] (ball, then box: the opposite order of
    :func:`smoothadv_pgd`). A zero gradient gives a zero step, as in that code.
    """
    eps = check_non_negative(eps, "eps")
    steps = check_positive_int(steps, "steps")
    _check_inputs(x, y)
    _check_noise(noise, x)
    if eps == 0:
        return x.detach().clone()
    step = 2 * eps / steps
    m = noise.shape[1]
    with _attack_mode(model):
        x, noise = _plain(x), _plain(noise)
        adv = x
        for _ in range(steps):
            adv = adv.detach().requires_grad_(True)
            loss = smoothed_soft_nll(_noisy_logits(model, adv, noise), y, m, reduction="mean")
            grad = _input_grad(loss, adv)
            grad = grad / _per_example(grad.flatten(1).norm(dim=1) + 1e-8, grad)
            adv = _project_ball_box(adv.detach() + step * grad, x, eps)
    return adv.detach()


# -- internals ---------------------------------------------------------------------------------------------------


def _pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, noise: torch.Tensor | None
) -> torch.Tensor:
    if eps == 0:
        return x.detach().clone()
    step = 2 * eps / steps
    m = 1 if noise is None else noise.shape[1]
    with _attack_mode(model):
        x = _plain(x)
        noise = None if noise is None else _plain(noise)
        delta = torch.zeros_like(x)
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = _smoothadv_loss(_noisy_logits(model, x + delta, noise), y, m)
            grad = _input_grad(loss, delta)
            delta = _project_box_ball(x, delta.detach() + step * _unit_per_example(grad), eps)
        # The clamp only absorbs float rounding of x + (clamp(x + delta) - x); it never lengthens delta.
        return (x + delta).clamp(0, 1)


def _smoothadv_loss(logits: torch.Tensor, y: torch.Tensor, m: int) -> torch.Tensor:
    # The reference's single-noise attack uses plain cross-entropy, its multi-noise attack the clamped log of the
    # averaged softmax; the scale (sum vs mean) is irrelevant because the gradient is normalized per example.
    if m == 1:
        return F.cross_entropy(logits, y, reduction="sum")
    return smoothed_soft_nll(logits, y, m, reduction="sum")


def _noisy_logits(model: nn.Module, x_adv: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Logits of all noisy copies in one forward pass: ``[B * m, K]``, row ``b * m + i`` = copy i of image b."""
    if noise is None:
        return model(x_adv)
    batch, m = noise.shape[:2]
    return model((x_adv.unsqueeze(1) + noise).reshape(batch * m, *x_adv.shape[1:]))


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``[B]`` values to broadcast over a ``[B, ...]`` tensor."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _unit_per_example(grad: torch.Tensor) -> torch.Tensor:
    """Per-example L2-normalized gradient; an all-zero example gets a random unit direction (see module doc)."""
    norms = grad.flatten(1).norm(dim=1)
    zero = norms == 0
    if zero.any():  # A host sync, but it keeps the RNG untouched unless needed, as the reference does.
        grad = torch.where(_per_example(zero, grad), torch.randn_like(grad), grad)
        norms = grad.flatten(1).norm(dim=1)
    return grad / _per_example(norms, grad)


def _project_box_ball(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """SmoothAdv order: clamp ``x + delta`` to [0, 1] first, then scale delta down to ``||delta||_2 <= eps``."""
    delta = (x + delta).clamp(0, 1) - x
    return delta.renorm(p=2, dim=0, maxnorm=eps)


def _project_ball_box(point: torch.Tensor, center: torch.Tensor, maxnorm: float | None) -> torch.Tensor:
    """SmoothMix order: scale ``point - center`` down to ``maxnorm`` (if given), then clamp to [0, 1]."""
    if maxnorm is not None:
        point = center + (point - center).renorm(p=2, dim=0, maxnorm=maxnorm)
    return point.clamp(0, 1).detach()


def _input_grad(loss: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """Gradient of ``loss`` with respect to ``wrt`` only (parameters' ``.grad`` untouched); zeros if unused."""
    if not loss.requires_grad:
        return torch.zeros_like(wrt)
    (grad,) = torch.autograd.grad(loss, [wrt], allow_unused=True)
    return torch.zeros_like(wrt) if grad is None else grad


def _ddn_norm_factor(is_adv: torch.Tensor, gamma: float, dtype: torch.dtype) -> torch.Tensor:
    """``1 - gamma`` where adversarial, else ``1 + gamma``, evaluated as the reference does, op for op in the
    tensor's dtype: ``1 - (2 * adv - 1) * gamma``. Rounding ``1 -/+ gamma`` once from float64 instead differs by
    an ulp for about half of all gammas (not 0.05, the training default; often the predict-time
    ``1 - (3 / 510 / eps) ** (1 / T)``), and one ulp can flip a later 8-bit quantisation step."""
    return 1 - (2 * is_adv.to(dtype) - 1) * gamma


def _ddn_learning_rates(steps: int) -> list[float]:
    """Per-step lr of the reference's DDN under PyTorch >= 1.1: ``CosineAnnealingLR`` stepped before each step."""
    return [0.01 + 0.99 * (1 + math.cos(math.pi * (i + 1) / steps)) / 2 for i in range(steps)]


@contextlib.contextmanager
def _attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with gradients enabled; restores each submodule's own train/eval flag afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    # Inference tensors (from an outer inference_mode) cannot join an autograd graph; copy them out.
    return tensor.clone() if tensor.is_inference() else tensor.detach()


def _check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point [B, C, H, W] tensor, got {shape}")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.is_floating_point() or y.is_complex():
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be an integer tensor of shape [{x.shape[0]}], got {shape}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must lie in [0, 1] (pixel space), got values in [{x.min().item()}, {x.max().item()}]"
        )


def _check_noise(noise: torch.Tensor, x: torch.Tensor) -> None:
    if (
        not isinstance(noise, torch.Tensor)
        or noise.dim() != 5
        or noise.shape[0] != x.shape[0]
        or noise.shape[1] < 1
        or noise.shape[2:] != x.shape[1:]
    ):
        shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(
            f"noise must have shape [B, m, C, H, W] = [{x.shape[0]}, m >= 1, {', '.join(map(str, x.shape[1:]))}] "
            f"for x of shape {tuple(x.shape)}, got {shape}"
        )
