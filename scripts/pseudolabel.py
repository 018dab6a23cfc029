#!/usr/bin/env python
"""Write the self-training manifest: CIFAR-10 train (ground truth) + 500K TinyImages with pseudo-labels.

``--labels shipped`` keeps the pickle's own pseudo-labels (Carmon et al.'s ``extrapolated_targets``);
``--labels model`` relabels the clean TinyImages with the argmax of a standard CIFAR-10 classifier
(``--checkpoint``). The manifest (see rsmooth.data.manifest) holds indices and labels, not pixels, and is written
atomically. Prints one summary line.

Example:
    python scripts/pseudolabel.py resources/selftrain_model.npz --data-root resources/data \
        --labels model --checkpoint models/cifar10_standard/checkpoint.pth.tar --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rsmooth.data.manifest import LABEL_MODES, read_manifest
from rsmooth.data.pseudolabel import check_merge_inputs, write_merged_trainset
from rsmooth.errors import SettingError
from rsmooth.validation import check_positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outfile", type=Path, help="the manifest to write (.npz)")
    parser.add_argument("--data-root", type=Path, default=Path("resources/data"), help="data set root folder")
    parser.add_argument("--labels", required=True, choices=LABEL_MODES, help="where pseudo-labels come from")
    parser.add_argument("--checkpoint", type=Path, default=None, help="classifier for --labels model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=512, help="images per forward pass (--labels model)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a checkpoint that needs the full unpickler (it can run code: trusted files only)",
    )
    args = parser.parse_args(argv)
    try:
        check_positive_int(args.batch, "--batch")
    except SettingError as err:
        parser.error(str(err))
    if args.outfile.is_dir():
        parser.error(f"outfile {args.outfile} is a directory")
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        parser.error(f"--device {args.device!r}: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available")
    if args.labels == "model" and args.checkpoint is None:
        parser.error("--labels model needs --checkpoint (a standard CIFAR-10 classifier)")
    if args.labels != "model" and args.checkpoint is not None:
        parser.error(f"--checkpoint is only used with --labels model, not --labels {args.labels}")
    try:
        # The checks write_merged_trainset does first (files present), reported before any loading.
        check_merge_inputs(args.data_root, args.labels, args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    path = write_merged_trainset(
        args.outfile,
        data_root=args.data_root,
        labels=args.labels,
        checkpoint=args.checkpoint,
        device=args.device,
        batch_size=args.batch,
        trust_checkpoint=args.trust_checkpoint,
    )
    _, meta = read_manifest(path)
    counts = meta["counts"]
    agreement = meta["agreement_with_shipped"]
    summary = (
        f"wrote {path}: {counts['cifar10']} CIFAR-10 (ground truth) + {counts['tinyimages']} TinyImages "
        f"({args.labels} labels)"
    )
    if agreement is not None:
        summary += f", agreement with shipped labels {agreement:.2%}"
    print(summary)


if __name__ == "__main__":
    main()
