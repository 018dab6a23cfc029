#!/usr/bin/env python
"""Attack a smoothed classifier (SmoothAdv-PGD, DDN, gradient-free PGD, or vanilla PGD on the base
classifier), then PREDICT (Cohen et al. 2019) on each adversarial example with fresh noise.

Writes the reference predict.py's log, header ``idx label predict basePredict correct time``; reruns resume
from ``<outfile>.partial`` and the final file appears only when complete (as scripts/certify.py).

Example (SmoothAdv Figure 3: Cohen's sigma-0.25 model, eps 0.5, m_test 128, N 10,000, every 20th image):
    python scripts/attack.py results/attack.tsv --checkpoint model.pt --dataset cifar10 --sigma 0.25 \
        --attack pgd --eps 0.5 --steps 20 --num-noise-vec 128 --N 10000 --skip 20 --batch 1000
"""

from __future__ import annotations

import argparse
import sys

from rsmooth import cli
from rsmooth.empirical import ATTACKS, attack_dataset, check_attack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_model_and_data_arguments(parser)
    parser.add_argument(
        "--attack", default="pgd", choices=ATTACKS, help="the attack on the smoothed classifier"
    )
    parser.add_argument("--eps", type=float, required=True, help="L2 budget in [0,1] pixel units")
    parser.add_argument("--steps", type=int, default=20, help="attack steps (T)")
    parser.add_argument("--num-noise-vec", type=int, default=1, help="m_test: noise draws the attack uses")
    parser.add_argument("--base-attack", action="store_true", help="attack the base classifier, no noise")
    args = parser.parse_args(argv)
    cli.check_model_and_data_arguments(parser, args)
    try:
        check_attack(
            args.attack,
            eps=args.eps,
            steps=args.steps,
            num_noise=args.num_noise_vec,
            base_attack=args.base_attack,
        )
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.outfile.exists():
        print(f"{args.outfile} exists and is complete; nothing to do", file=sys.stderr)
        return
    smooth, dataset, indices = cli.load_smoothed(args, "attack.py")
    options = cli.log_options(args)
    attack_dataset(
        smooth, dataset, indices, args.outfile, attack=args.attack, eps=args.eps, steps=args.steps,
        num_noise=args.num_noise_vec, base_attack=args.base_attack, n=args.N, alpha=args.alpha,
        batch_size=args.batch, seed=args.seed,
        images_per_call=args.images_per_call or max(1, args.batch // max(args.N, args.num_noise_vec)),
        **options,
    )  # fmt: skip
    # Beside the finished log, not in it: the reference readers and old logs read as before.
    cli.write_run_record(args, options["meta"], __file__, argv)


if __name__ == "__main__":
    main()
