"""The one timer of the benchmarks: wall seconds of ``fn()``, with CUDA's queue drained before and after."""

from __future__ import annotations

import time

import torch


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began
