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

from rsmooth import cli
from rsmooth.certification import certify_dataset, certify_dataset_sequential


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_model_and_data_arguments(parser)
    cli.add_certify_arguments(parser)
    args = parser.parse_args(argv)
    cli.check_certify_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.outfile.exists():
        print(f"{args.outfile} exists and is complete; nothing to do", file=sys.stderr)
        return
    smooth, dataset, indices = cli.load_smoothed(args, "certify.py")
    options = cli.log_options(args)
    common = dict(alpha=args.alpha, batch_size=args.batch, seed=args.seed, n0=args.N0, **options)
    if args.procedure == "sequential":
        certify_dataset_sequential(
            smooth, dataset, indices, args.outfile, radii=args.radii, n_max=args.N, use_labels=not args.select_class,
            test=args.test, images_per_call=args.images_per_call or 64, **common,
        )  # fmt: skip
    else:
        # Whole images share a forward pass only when N is below the batch size (as in small PREDICT runs).
        images_per_call = args.images_per_call or max(1, args.batch // args.N)
        certify_dataset(
            smooth, dataset, indices, args.outfile, n=args.N, images_per_call=images_per_call, **common
        )
    # Beside the finished log, not in it: the reference readers and old logs read as before.
    cli.write_run_record(args, options["meta"], __file__, argv)


if __name__ == "__main__":
    main()
