#!/usr/bin/env python
"""Certify a smoothed classifier on a data set with CERTIFY (Cohen et al. 2019) or sequentially.

Writes a TSV log with header ``idx label predict radius correct time``. Rerunning after a kill resumes from
``<outfile>.partial``; the final file appears only when complete.

``--procedure sequential`` answers "correct and certified at radius r?" for the grid ``--radii`` with an
anytime-valid test (``rsmooth.sequential``): each image stops as soon as its answer is settled, with at most
``--N`` draws, and the log gains a final column ``samples``. Its radius is the largest certified grid radius.
By default the test is on the true label (certified accuracy); ``--select-class`` selects the class with
``--N0`` draws first, as CERTIFY does.

Example (the paper's CIFAR-10 setting on every 20th test image):
    python scripts/certify.py --checkpoint model.pt --dataset cifar10 --sigma 0.25 \
        --skip 20 --batch 400 results/certify.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import warnings
from pathlib import Path

import torch

from rsmooth import __version__
from rsmooth.certification import certify_dataset, certify_dataset_sequential, select_indices
from rsmooth.data import DATASETS, get_dataset, num_classes
from rsmooth.errors import FileFormatError
from rsmooth.models import NORMALIZATIONS, load_checkpoint
from rsmooth.models.architectures import classifier_name, default_num_classes
from rsmooth.sequential import DEFAULT_TEST, TESTS, check_radii
from rsmooth.smoothing import Smooth

PROCEDURES = ("cohen", "sequential")
DEFAULT_RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]  # the analysis radii (CIFAR-10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outfile", type=Path, help="the TSV log to write")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (.pt / .pth.tar)")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", type=Path, default=Path("resources/data"), help="data set root folder")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--sigma", type=float, required=True, help="noise level in [0,1] pixel units")
    parser.add_argument("--N0", type=int, default=100, help="selection samples")
    parser.add_argument("--N", type=int, default=100_000, help="estimation samples")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    parser.add_argument("--batch", type=int, default=1000, help="noisy samples per forward pass")
    parser.add_argument("--skip", type=int, default=1, help="certify every skip-th index (reference --skip)")
    parser.add_argument("--max", type=int, default=-1, help="stop at this data set index (reference --max)")
    parser.add_argument("--start", type=int, default=0, help="first data set index of this shard")
    parser.add_argument("--stop", type=int, default=None, help="data set index after this shard's last")
    parser.add_argument("--seed", type=int, default=0, help="noise seed; every image derives its own")
    parser.add_argument("--arch", default=None, help="architecture, if the checkpoint does not name one")
    parser.add_argument(
        "--normalization",
        default=None,
        help=f"normalization for checkpoints that store none (released models): {', '.join(NORMALIZATIONS)}",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a checkpoint that needs the full unpickler (it can run code: trusted files only)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="float16 autocast on CUDA")
    parser.add_argument("--images-per-call", type=int, default=None, help="images per batched call")
    parser.add_argument("--partial", type=Path, default=None, help="resume file (default <outfile>.partial)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--procedure", default="cohen", choices=PROCEDURES, help="cohen: CERTIFY (default); sequential"
    )
    parser.add_argument(
        "--radii", type=float, nargs="+", default=None, help="sequential: the radius grid (default 0 to 2.25)"
    )
    parser.add_argument(
        "--test", default=DEFAULT_TEST, choices=TESTS, help="sequential: the anytime-valid test"
    )
    parser.add_argument(
        "--select-class",
        action="store_true",
        help="sequential: select the class with N0 draws, not the label",
    )
    args = parser.parse_args(argv)
    if args.procedure == "cohen" and (args.radii is not None or args.select_class):
        parser.error("--radii and --select-class apply only to --procedure sequential")
    if args.procedure == "sequential":
        try:
            args.radii = check_radii(DEFAULT_RADII if args.radii is None else args.radii).tolist()
        except ValueError as error:
            parser.error(f"--radii: {error}")
    for name in ("N0", "N", "batch", "skip"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.sigma <= 0:
        parser.error(f"--sigma must be positive, got {args.sigma}")
    if not 0 < args.alpha < 0.5:
        parser.error(f"--alpha must lie in (0, 0.5), got {args.alpha}")
    for name in ("max", "start"):
        if getattr(args, name) < (-1 if name == "max" else 0):
            parser.error(f"--{name} must be >= {-1 if name == 'max' else 0}, got {getattr(args, name)}")
    if args.stop is not None and args.stop <= args.start:
        parser.error(f"--stop must be greater than --start ({args.start}), got {args.stop}")
    if args.arch is not None:
        try:
            default_num_classes(args.arch)
        except ValueError as err:
            parser.error(f"--arch: {err}")
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint} does not exist")
    return args


def check_checkpoint_fits(
    checkpoint: dict, model: torch.nn.Module, arch: str, args: argparse.Namespace
) -> int:
    """The model's number of classes, after refusing a checkpoint made for another data set (before any data
    is read) and warning when it was trained at another sigma than the one certified."""
    stored = checkpoint.get("dataset")
    if stored is not None and stored != args.dataset:
        raise SystemExit(
            f"certify.py: error: --checkpoint {args.checkpoint} was trained on {stored!r}, not on the "
            f"--dataset {args.dataset!r} asked for; certify it on {stored!r} or pass the checkpoint for "
            f"{args.dataset!r}"
        )
    classes = int(model[1].get_submodule(classifier_name(arch)).out_features)
    if classes != num_classes(args.dataset):
        raise SystemExit(
            f"certify.py: error: --checkpoint {args.checkpoint} has {classes} output classes but --dataset "
            f"{args.dataset!r} has {num_classes(args.dataset)}"
        )
    trained_sigma = checkpoint.get("sigma")
    if trained_sigma is not None and not math.isclose(float(trained_sigma), args.sigma):
        # Legitimate (the papers certify vanilla-PGD models at every sigma), but usually a slip.
        warnings.warn(
            f"--checkpoint {args.checkpoint} was trained at sigma {float(trained_sigma):g}; "
            f"certifying at --sigma {args.sigma:g}",
            stacklevel=2,
        )
    return classes


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.outfile.exists():
        print(f"{args.outfile} exists and is complete; nothing to do", file=sys.stderr)
        return
    # The checkpoint first: a wrong or untrusted file fails before any data is read.
    try:
        model, checkpoint = load_checkpoint(
            args.checkpoint,
            arch=args.arch,
            normalization=args.normalization,
            map_location=args.device,
            trust=args.trust_checkpoint,
        )
    except (FileFormatError, ValueError) as err:
        raise SystemExit(f"certify.py: error: {err}") from None
    classes = check_checkpoint_fits(checkpoint, model, args.arch or str(checkpoint.get("arch")), args)
    dataset = get_dataset(args.dataset, args.split, args.data_root, augment=False)
    smooth = Smooth(model.to(args.device), classes, args.sigma, amp=args.amp)
    indices = select_indices(
        len(dataset), skip=args.skip, max_index=args.max, start=args.start, stop=args.stop
    )
    # Whole images share a forward pass only when N is below the batch size (as in small PREDICT runs).
    images_per_call = args.images_per_call or max(1, args.batch // args.N)
    meta = {
        "checkpoint_sha256": file_sha256(args.checkpoint),
        "dataset": args.dataset,
        "split": args.split,
        "device": torch.device(args.device).type,
        "amp": args.amp,
        "rsmooth": __version__,
    }
    if args.procedure == "sequential":
        certify_dataset_sequential(
            smooth,
            dataset,
            indices,
            args.outfile,
            radii=args.radii,
            alpha=args.alpha,
            n_max=args.N,
            batch_size=args.batch,
            seed=args.seed,
            n0=args.N0,
            use_labels=not args.select_class,
            test=args.test,
            images_per_call=args.images_per_call or 64,
            partial_path=args.partial,
            meta=meta,
            progress=False if args.no_progress else None,
        )
        return
    certify_dataset(
        smooth,
        dataset,
        indices,
        args.outfile,
        n0=args.N0,
        n=args.N,
        alpha=args.alpha,
        batch_size=args.batch,
        seed=args.seed,
        images_per_call=images_per_call,
        partial_path=args.partial,
        meta=meta,
        progress=False if args.no_progress else None,
    )


if __name__ == "__main__":
    main()
