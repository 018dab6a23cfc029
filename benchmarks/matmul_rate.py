#!/usr/bin/env python
"""The bf16 matrix-product rate of this device, measured: the yardstick for the CERTIFY tables' FLOP/s.

Times square bf16 matrix products (``--size``, 8192 on a GPU) and prints and writes (``--json``) the best rate in
FLOP/s. On a CPU it runs at toy size, only so that ``gpu.sh --smoke`` exercises the same steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import timed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="matrix side (8192 on CUDA, 512 on a CPU)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or (8192 if device.type == "cuda" else 512)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):  # warm-up
        a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(args.repeats))
    rate = 2 * size**3 / best
    print(f"bf16 matmul {size}x{size}: {rate / 1e12:.1f} TFLOP/s (best of {args.repeats})")
    if args.json:
        args.json.write_text(json.dumps({"bf16_matmul_flops": rate, "size": size}))


if __name__ == "__main__":
    main()
