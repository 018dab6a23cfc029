#!/usr/bin/env python
"""Train a base classifier for randomized smoothing (one grid cell of the pipeline).

Every field of ``rsmooth.train_config.TrainConfig`` is an option (``--lr-step-size``, ``--num-noise-vec``, ...),
generated from the method registry (``rsmooth.train.methods``);
``--config FILE.yaml`` loads them from a file and options given on the command line win. A rerun after a
kill resumes from ``<output>.resume``; the final checkpoint appears only when training is complete.

Examples:
    # SmoothAdv-PGD, CIFAR-10, sigma 0.25, eps 0.5, T=10, m=2 with the multi-noise update
    python scripts/train.py models/smoothadv.pt --method smoothadv --sigma 0.25 --eps 0.5 --steps 10 \
        --num-noise-vec 2 --multi-noise
    # Fine-tune an ImageNet32 model on CIFAR-10 (fresh 10-way head, constant lr 0.001, 30 epochs)
    python scripts/train.py models/ft.pt --pretrained models/imagenet32.pt --epochs 30 --lr 0.001 \
        --lr-step-size 0 --warmup 1 --method smoothadv --steps 2
    # Two GPUs (DistributedDataParallel)
    torchrun --nproc_per_node 2 scripts/train.py models/gaussian.pt --method gaussian
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from pathlib import Path

import torch

from rsmooth.analysis.provenance import run_record, write_provenance_sidecar
from rsmooth.data.manifest import file_sha256
from rsmooth.errors import ConfigFileError
from rsmooth.io import read_config_file
from rsmooth.train.loop import train
from rsmooth.train.methods import REGISTRY, Option
from rsmooth.train_config import OPTIONS, OWNER, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path, help="final checkpoint to write")
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    parser.add_argument("--data-root", type=Path, default=Path("resources/data"))
    parser.add_argument(
        "--resume-file", type=Path, default=None, help="per-epoch state (default <output>.resume)"
    )
    parser.add_argument("--log", type=Path, default=None, help="epoch log TSV (default <output>.log.tsv)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true")
    methods = parser.add_argument_group(
        "methods", "; ".join(f"{name}: {cls.summary}" for name, cls in REGISTRY.items())
    )
    for option in OPTIONS.values():
        flag = "--" + option.name.replace("_", "-")
        owner = OWNER.get(option.name)
        group = methods if owner else parser
        help_text = f"[{owner}] {option.help}" if owner else option.help
        if option.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(
                flag, type=_converter(option), default=None, metavar=option.name.upper(), help=help_text
            )
    return parser


def _converter(option: Option) -> typing.Callable[[str], typing.Any]:
    """The option's type; ``none`` / ``null`` / empty give None where None is allowed (the method's default
    for the shared options that a method may set)."""
    if not (option.nullable or option.default is None or option.name in OWNER):
        return option.kind
    return lambda text: None if text.lower() in ("none", "null", "") else option.kind(text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = read_config_file(args.config) if args.config else {}
    for name in OPTIONS:
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    try:
        return TrainConfig.from_dict(values).validate()
    except (ValueError, TypeError) as err:
        if args.config is None:
            raise
        # A file cut short can still be valid YAML (`epochs: 3` cut to `epochs:`); its values then fail here.
        raise ConfigFileError(f"{args.config} (with the command-line options): {err}", args.config) from err


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    train(
        config,
        args.output,
        data_root=args.data_root,
        resume_path=args.resume_file,
        log_path=args.log,
        device=args.device,
        progress=False if args.no_progress else None,
    )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 writes the checkpoint, and so its record
    # Beside the checkpoint: what trained it, where and when (shown in the report's provenance per result).
    record = run_record(
        sys.argv if argv is None else [__file__, *argv],
        checkpoint=args.output,
        checkpoint_sha256=file_sha256(args.output),
        data_stamp=Path(args.data_root) / ".ready" / f"{config.dataset}.json",
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),  # train()'s default
    )
    write_provenance_sidecar(args.output, record)


if __name__ == "__main__":
    main()
