"""Reduced precision, memory format, compilation and batch size: the knobs of the fast path, in one place.

Certification (:class:`rsmooth.smoothing.Smooth`), the attacks and training read these helpers; the command
lines and the config check their options with :func:`check_fast_path`, so an option that cannot work on the
device stops the run before any data is read, with a message naming the option and what to use instead.

Guarantee kept. The default (``fp32``, contiguous, eager) is exactly the code path the papers' numbers come
from: every helper here is then the identity. With ``bf16`` or ``fp16`` the noise is still drawn
and added in float32 (Voráček & Hein, ICLR 2023, show that float arithmetic can already make smoothing
unsound; drawing the Gaussian in 8 mantissa bits would make the sampled distribution visibly non-Gaussian);
only the network's own operations run in reduced precision, by autocast, so the first layer that autocast
handles (the first convolution, after the normalization layer) casts the float32 noisy input. A certificate
obtained that way is a certificate of the reduced-precision network, which is why every log, table caption
and the scorecard name the precision when it is not fp32.

Decisions:

- ``fp32`` is float32 on CUDA too: PyTorch lets cuDNN run float32 convolutions in TF32 (10 mantissa bits) on
  Ampere and later GPUs by default, which would certify a reduced-precision network under the name fp32.
  :class:`rsmooth.smoothing.Smooth` in fp32 turns TF32 off for the process (:func:`float32_arithmetic`); the
  papers' GPUs (GTX 1080 Ti, V100) had no TF32. Training keeps PyTorch's default.
- ``tf32`` is that TF32 arithmetic by name, for certification and the attacks: float32 tensors throughout, with
  cuDNN's convolutions and cuBLAS's matrix products in TF32 (what Cohen et al.'s code does on such GPUs under
  PyTorch's defaults, convolutions only). Like bf16 it certifies a reduced-precision network and is named
  wherever a precision is. It is refused off CUDA and on GPUs before compute capability 8.0, where the
  setting would silently do nothing. Training has no ``tf32``: its ``fp32`` is PyTorch's default.
- ``fp16`` is refused on a CPU without half-precision kernels (oneDNN reports none on AVX-512 BF16 parts):
  autocast would run but emulate every convolution. ``bf16`` is refused on a CUDA device without bf16.
- Training in ``bf16`` needs no gradient scaler (bf16 has float32's exponent range); ``fp16`` keeps the
  GradScaler of ``amp``.
- ``torch.compile`` is refused where it cannot work (no C++ compiler for the CPU backend, Python or platform
  without dynamo); where compiling fails at the first call, the eager module is used with a warning.
- ``--batch auto`` (:func:`auto_batch_size`) times the forward pass at doubling batch sizes and keeps the
  fastest (the largest among those within 3% of it); a batch that does not fit ends the search.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # certification and the attacks
TRAINING_PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT_PRECISION = "fp32"
# Compute capability from which CUDA GPUs have TF32 (Ampere).
TF32_CAPABILITY = (8, 0)
# Noisy samples per forward pass tried by --batch auto (doubling); the search stops at the first that fails.
AUTO_BATCH_START = 64
AUTO_BATCH_LIMIT = {"cpu": 4096, "cuda": 65536}
AUTO_BATCH_TIE = 0.03


def dtype(precision: str) -> Any:
    """The autocast dtype of ``precision`` (``None`` for fp32)."""
    import torch

    return {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def check_fast_path(
    device: str, *, precision: str = DEFAULT_PRECISION, channels_last: bool = False, compile: bool = False
) -> None:
    """Raise ``ValueError`` naming the first option that cannot work on ``device`` (``cpu``, ``cuda[:i]``)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda") and (precision != "fp32" or channels_last or compile):
        raise ValueError(
            f"precision, channels-last and compile apply to cpu and cuda devices only, not {kind!r}"
        )
    if precision == "fp16" and kind == "cpu" and not _cpu_fp16_supported():
        raise ValueError(
            "precision fp16 is not supported on this CPU (no half-precision convolution kernels; autocast "
            "would emulate them): use precision bf16 or fp32, or fp16 on a CUDA device"
        )
    if precision == "tf32" and (kind != "cuda" or _capability(device) < TF32_CAPABILITY):
        where = (
            "a CPU"
            if kind == "cpu"
            else f"{device} (compute capability {'.'.join(map(str, _capability(device)))})"
        )
        raise ValueError(
            f"precision tf32 needs a CUDA GPU of compute capability {'.'.join(map(str, TF32_CAPABILITY))} or "
            f"later (Ampere on), not {where}: use fp32 or bf16"
        )
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision bf16 is not supported on this CUDA device: use fp16 or fp32")
    if compile:
        reason = compile_unavailable(kind)
        if reason:
            raise ValueError(f"compile is unavailable here ({reason}); run without it")


def _capability(device: str) -> tuple[int, int]:
    import torch

    kind = torch.device(device)
    return torch.cuda.get_device_capability(kind) if kind.type == "cuda" else (0, 0)


def _cpu_fp16_supported() -> bool:
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", None)
    return bool(probe and probe())


def compile_unavailable(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot work for ``device_type``, or ``None`` when it can."""
    import torch

    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if sys.platform == "win32":
        return "torch.compile's inductor backend does not support Windows"
    if device_type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++", "cc")):
        return "no C++ compiler on PATH for the CPU inductor backend"
    if device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed for the CUDA inductor backend"
    return None


def float32_matmul_settings() -> dict[str, str]:
    """How CUDA computes float32 convolutions and matrix products in this process: ``"ieee"`` (float32) or
    ``"tf32"``, read through torch's public settings (``fp32_precision`` since torch 2.9, ``allow_tf32`` before)."""
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return {"conv": conv.fp32_precision, "matmul": torch.backends.cuda.matmul.fp32_precision}
    as_name = {True: "tf32", False: "ieee"}
    return {
        "conv": as_name[bool(torch.backends.cudnn.allow_tf32)],
        "matmul": as_name[bool(torch.backends.cuda.matmul.allow_tf32)],
    }


def set_float32_matmul(conv: str, matmul: str) -> None:
    """Set both through torch's public setters (values as :func:`float32_matmul_settings` returns them)."""
    import torch

    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):
        cudnn_conv.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = matmul
    else:
        torch.backends.cudnn.allow_tf32 = conv == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"


def float32_arithmetic(precision: str, device_type: str) -> None:
    """Set this process's float32 convolutions and matrix products on CUDA for a certification in
    ``precision``: exact float32 for fp32 (no TF32), TF32 for tf32; the autocast precisions leave them as
    they are (their float32 operations are not the network's convolutions)."""
    if device_type == "cuda" and precision in ("fp32", "tf32"):
        mode = "ieee" if precision == "fp32" else "tf32"
        set_float32_matmul(mode, mode)


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device_type`` (a null context for fp32 and tf32)."""
    import torch

    if dtype(precision) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype(precision))


def memory_format(channels_last: bool) -> Any:
    import torch

    return torch.channels_last if channels_last else torch.contiguous_format


def to_memory_format(batch: Any, channels_last: bool) -> Any:
    """``batch`` in channels-last layout when asked (it must then be ``[B, C, H, W]``), else unchanged."""
    import torch

    if not channels_last:
        return batch
    if batch.dim() != 4:
        raise ValueError(
            f"channels_last needs image batches [B, C, H, W], got shape {tuple(batch.shape)}; "
            "run without channels_last for this model"
        )
    return batch.contiguous(memory_format=torch.channels_last)


class CompiledForward:
    """``module`` compiled by ``torch.compile`` at the first call; if compiling fails, the eager module with a
    warning that says why (the results of a run never depend on whether compilation worked)."""

    def __init__(self, module: Any) -> None:
        import torch

        self.module = module
        self._compiled: Callable[..., Any] | None = torch.compile(module, dynamic=False)
        self._failed = False

    def __call__(self, batch: Any) -> Any:
        if self._compiled is not None:
            try:
                return self._compiled(batch)
            except Exception as err:  # any backend failure falls back to eager
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running the eager model",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._compiled = None
        return self.module(batch)


def auto_batch_size(
    forward: Callable[[int], None],
    device_type: str,
    *,
    limit: int | None = None,
    start: int = AUTO_BATCH_START,
    repeats: int = 2,
) -> tuple[int, dict[int, float]]:
    """The batch size that gives the most samples per second, and the samples/s measured at each size tried.

    ``forward(b)`` runs one forward pass of ``b`` noisy samples (it must synchronize a GPU itself). Sizes
    double from ``start`` up to ``limit`` (default :data:`AUTO_BATCH_LIMIT`); a size that runs out of memory
    ends the search, as does a size slower than the best by more than a third. Among sizes within
    :data:`AUTO_BATCH_TIE` of the fastest, the largest wins (fewer calls, same speed).
    """
    import torch

    limit = limit or AUTO_BATCH_LIMIT.get(device_type, AUTO_BATCH_LIMIT["cpu"])
    measured: dict[int, float] = {}
    size = max(1, min(start, limit))
    while size <= limit:
        try:
            forward(size)  # warm-up: kernel selection, allocator, compilation
            began = time.perf_counter()
            for _ in range(repeats):
                forward(size)
            measured[size] = size * repeats / (time.perf_counter() - began)
        except torch.OutOfMemoryError:
            if device_type == "cuda":
                torch.cuda.empty_cache()
            break
        if measured[size] < 0.67 * max(measured.values()):
            break
        if size == limit:
            break
        size = min(2 * size, limit)
    if not measured:
        raise RuntimeError(f"--batch auto: even a batch of {start} samples does not fit on the device")
    best = max(measured.values())
    chosen = max(b for b, rate in measured.items() if rate >= (1 - AUTO_BATCH_TIE) * best)
    return chosen, measured


def describe(precision: str, channels_last: bool, compile: bool) -> str:
    """``fp32``, ``bf16 + channels_last + compile``, ...: the fast-path settings as the benchmarks print them."""
    return " + ".join(
        [precision, *(["channels_last"] if channels_last else []), *(["compile"] if compile else [])]
    )


def precision_note(precision: str) -> str:
    """The caption note of a run certified in reduced precision ("" for fp32)."""
    if precision == DEFAULT_PRECISION:
        return ""
    if precision == "tf32":
        return (
            "base classifier's float32 convolutions and matrix products in TF32 (noise added in fp32): "
            "a certificate of the tf32 network"
        )
    return f"base classifier in {precision} autocast (noise added in fp32): a certificate of the {precision} network"


def fast_path_arguments(section: dict[str, Any]) -> list[str]:
    """The command-line options of a config section's fast-path keys, only those that are not the defaults
    (so that a default config gives exactly the command it gave before these options existed)."""
    arguments = []
    precision = section.get("precision", DEFAULT_PRECISION)
    if precision != DEFAULT_PRECISION:
        arguments.append(f"--precision {precision}")
    if section.get("channels_last"):
        arguments.append("--channels-last")
    if section.get("compile"):
        arguments.append("--compile")
    return arguments


__all__: Sequence[str] = (
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "TRAINING_PRECISIONS",
    "CompiledForward",
    "auto_batch_size",
    "autocast",
    "check_fast_path",
    "compile_unavailable",
    "describe",
    "fast_path_arguments",
    "float32_arithmetic",
    "memory_format",
    "precision_note",
    "to_memory_format",
)
