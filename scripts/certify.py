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
import sys

import torch

from rsmooth import __version__
from rsmooth.certification import certify_dataset, certify_dataset_sequential, select_indices
from rsmooth.cli import add_model_and_data_arguments, check_model_and_data_arguments, file_sha256, load_model
from rsmooth.data import get_dataset
from rsmooth.sequential import DEFAULT_TEST, TESTS, check_radii
from rsmooth.smoothing import Smooth

PROCEDURES = ("cohen", "sequential")
DEFAULT_RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]  # the analysis radii (CIFAR-10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_and_data_arguments(parser)
    parser.add_argument("--N0", type=int, default=100, help="selection samples")
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
    check_model_and_data_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.outfile.exists():
        print(f"{args.outfile} exists and is complete; nothing to do", file=sys.stderr)
        return
    # The checkpoint first: a wrong or untrusted file fails before any data is read.
    model, _, classes = load_model(args, "certify.py")
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
