"""The command-line edge shared by ``scripts/certify.py`` and ``scripts/attack.py``.

Both take a checkpoint, a data set, a sigma, the sample counts and a selection of indices; both check every
value before any work (ranges at argument parsing, the checkpoint against ``--dataset`` and ``--sigma``
before any data is read) and end a bad input with ``prog: error: message`` and exit status 2. Both record
the same settings (:func:`log_meta`) in their partial log, so that a resume with another model, data set or
device is refused.

The fast-path options (``--precision``, ``--channels-last``, ``--compile``, ``--batch auto``;
:mod:`rsmooth.fastpath`) are recorded in the settings only when they are not the defaults, so a default run
writes the settings, and therefore resumes from the partial files, exactly as before they existed. ``--batch
auto`` is measured once per run on a GPU (off a GPU, CERTIFY and PREDICT take the fixed :data:`CPU_BATCH`) and
recorded (``"batch": "auto"`` beside the ``batch_size`` chosen); a resume reuses the recorded size instead of
measuring again. The noise does not depend on the batch (:mod:`rsmooth.smoothing`), so the size changes the
speed, not the results (up to batch-dependent rounding in the model's kernels).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from rsmooth import __version__
from rsmooth.certification import select_indices
from rsmooth.data import DATASETS, get_dataset, num_classes
from rsmooth.errors import FileFormatError, SettingError
from rsmooth.fastpath import AUTO_BATCH_START, DEFAULT_PRECISION, PRECISIONS, check_fast_path
from rsmooth.logformat import read_partial_settings
from rsmooth.models import NORMALIZATIONS, load_checkpoint
from rsmooth.models.architectures import classifier_name, default_num_classes
from rsmooth.pipeline import DEFAULT_ANALYSIS_RADII
from rsmooth.sequential import DEFAULT_TEST, TESTS, check_radii
from rsmooth.smoothing import Smooth
from rsmooth.validation import check_alpha, check_int, check_positive_int, check_sigma

PROCEDURES = ("cohen", "sequential")
AUTO = "auto"


def add_model_and_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options naming what is smoothed and on which images, and the PREDICT/CERTIFY sample counts."""
    parser.add_argument("outfile", type=Path, help="the TSV log to write")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (.pt / .pth.tar)")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", type=Path, default=Path("resources/data"), help="data set root folder")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--sigma", type=float, required=True, help="noise level in [0,1] pixel units")
    parser.add_argument("--N", type=int, default=100_000, help="samples of the estimate (PREDICT / CERTIFY)")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    parser.add_argument(
        "--batch",
        type=_batch,
        default=1000,
        help="noisy samples per forward pass, or auto: the fastest that fits, measured once per run",
    )
    parser.add_argument("--skip", type=int, default=1, help="every skip-th index (reference --skip)")
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
    parser.add_argument("--amp", action="store_true", help="float16 autocast on CUDA (= --precision fp16)")
    parser.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISIONS,
        help="precision of the base classifier: fp32, tf32 (CUDA, compute capability 8.0+), bf16 or fp16 "
        "autocast; the noise is added in fp32 (default fp32)",
    )
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the base classifier")
    parser.add_argument("--images-per-call", type=int, default=None, help="images per batched call")
    parser.add_argument("--partial", type=Path, default=None, help="resume file (default <outfile>.partial)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_model_and_data_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Ranges of the options above (:mod:`rsmooth.validation`'s rules); ``parser.error`` (exit 2) naming the
    first bad one."""
    counts = [
        "N",
        "skip",
        *(() if args.batch == AUTO else ("batch",)),
        *(("N0",) if hasattr(args, "N0") else ()),
    ]
    try:
        for name in counts:
            check_positive_int(getattr(args, name), f"--{name}")
        if args.images_per_call is not None:
            check_positive_int(args.images_per_call, "--images-per-call")
        check_sigma(args.sigma, "--sigma")
        check_alpha(args.alpha, "--alpha")
        check_int(args.start, "--start", 0)
    except SettingError as err:
        parser.error(str(err))
    if args.max < -1:  # -1: no limit, as in the reference
        parser.error(f"--max must be >= -1, got {args.max}")
    if args.stop is not None and args.stop <= args.start:
        parser.error(f"--stop must be greater than --start ({args.start}), got {args.stop}")
    if args.arch is not None:
        try:
            default_num_classes(args.arch)
        except ValueError as err:
            parser.error(f"--arch: {err}")
    if args.amp and args.precision != DEFAULT_PRECISION:
        parser.error(f"--amp is --precision fp16 on CUDA: give one of --amp and --precision {args.precision}")
    try:
        check_fast_path(
            args.device, precision=args.precision, channels_last=args.channels_last, compile=args.compile
        )
    except ValueError as err:
        parser.error(f"--{err}")
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint} does not exist")


def _batch(text: str) -> int | str:
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None


def load_model(args: argparse.Namespace, prog: str) -> tuple[torch.nn.Module, dict, int]:
    """``(model, raw checkpoint, number of classes)``, after refusing an unreadable or untrusted file and one
    made for another data set or number of classes, and warning when its training sigma is not ``--sigma``
    (legitimate: the papers certify vanilla-PGD models at every sigma, but usually a slip). Reads no data."""
    try:
        model, checkpoint = load_checkpoint(
            args.checkpoint,
            arch=args.arch,
            normalization=args.normalization,
            map_location=args.device,
            trust=args.trust_checkpoint,
        )
    except (FileFormatError, ValueError) as err:
        raise SystemExit(f"{prog}: error: {err}") from None
    stored = checkpoint.get("dataset")
    if stored is not None and stored != args.dataset:
        raise SystemExit(
            f"{prog}: error: --checkpoint {args.checkpoint} was trained on {stored!r}, not on the --dataset "
            f"{args.dataset!r} asked for; use it on {stored!r} or pass the checkpoint for {args.dataset!r}"
        )
    arch = args.arch or str(checkpoint.get("arch"))
    classes = int(model[1].get_submodule(classifier_name(arch)).out_features)
    if classes != num_classes(args.dataset):
        raise SystemExit(
            f"{prog}: error: --checkpoint {args.checkpoint} has {classes} output classes but --dataset "
            f"{args.dataset!r} has {num_classes(args.dataset)}"
        )
    trained_sigma = checkpoint.get("sigma")
    if trained_sigma is not None and not math.isclose(float(trained_sigma), args.sigma):
        warnings.warn(
            f"--checkpoint {args.checkpoint} was trained at sigma {float(trained_sigma):g}; "
            f"smoothing at --sigma {args.sigma:g}",
            stacklevel=2,
        )
    return model, checkpoint, classes


def add_certify_arguments(parser: argparse.ArgumentParser) -> None:
    """``scripts/certify.py``'s own options: the procedure and, for the sequential one, its radius grid."""
    parser.add_argument("--N0", type=int, default=100, help="selection samples")
    # CERTIFY's batch default is the workflow's (the schema's certify.batch); attacks keep the fixed 1000.
    parser.set_defaults(batch=AUTO)
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


def check_certify_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options above together (``--radii`` becomes the checked grid), then the shared ones."""
    if args.procedure == "cohen" and (args.radii is not None or args.select_class):
        parser.error("--radii and --select-class apply only to --procedure sequential")
    if args.procedure == "sequential":
        try:
            args.radii = check_radii(DEFAULT_ANALYSIS_RADII if args.radii is None else args.radii).tolist()
        except ValueError as error:
            parser.error(f"--radii: {error}")
    check_model_and_data_arguments(parser, args)


def load_smoothed(args: argparse.Namespace, prog: str) -> tuple[Smooth, Any, list[int]]:
    """The smoothed classifier, the data set and the indices selected by ``--skip --max --start --stop``;
    the checkpoint is checked first (:func:`load_model`), so a wrong or untrusted file fails before any data
    is read."""
    model, _, classes = load_model(args, prog)
    dataset = get_dataset(args.dataset, args.split, args.data_root, augment=False)
    try:
        indices = select_indices(
            len(dataset), skip=args.skip, max_index=args.max, start=args.start, stop=args.stop
        )
    except ValueError as err:
        raise SystemExit(f"{prog}: error: --start/--stop: {err} ({args.dataset} {args.split})") from None
    shape = tuple(dataset[indices[0] if indices else 0][0].shape)
    if args.channels_last and len(shape) != 3:
        raise SystemExit(f"{prog}: error: --channels-last needs images [C, H, W], got shape {shape}")
    try:
        smooth = Smooth(
            model.to(args.device), classes, args.sigma, amp=args.amp, precision=args.precision,
            channels_last=args.channels_last, compile=args.compile,
        )  # fmt: skip
    except ValueError as err:
        raise SystemExit(f"{prog}: error: {err}") from None
    args.batch_auto = args.batch == AUTO
    if args.batch_auto:
        args.batch = resolve_auto_batch(smooth, args, shape, gradients=prog.startswith("attack"))
    return smooth, dataset, indices


# What ``--batch auto`` (the workflow's default) resolves to for CERTIFY and PREDICT off a GPU.
CPU_BATCH = 400


def resolve_auto_batch(
    smooth: Smooth, args: argparse.Namespace, shape: tuple[int, ...], *, gradients: bool
) -> int:
    """``--batch auto``: the size recorded by the partial log being resumed, else the fastest measured now
    (printed to stderr, so the job's log shows the figures the choice came from)."""
    partial = args.partial or args.outfile.with_name(args.outfile.name + ".partial")
    recorded = read_partial_settings(partial) if partial.exists() else None
    if recorded and recorded.get("batch") == AUTO and isinstance(recorded.get("batch_size"), int):
        print(f"--batch auto: {recorded['batch_size']}, as recorded in {partial}", file=sys.stderr)
        return recorded["batch_size"]
    if smooth.device.type != "cuda" and not gradients:
        # On a CPU a larger batch is not faster per sample, and the noise does not depend on the batch (blocks of
        # NOISE_BLOCK draws): CERTIFY and PREDICT keep the fixed CPU batch, without measuring.
        print(f"--batch auto: {CPU_BATCH}, the fixed batch on a {smooth.device.type} device", file=sys.stderr)
        return CPU_BATCH
    # On a CPU images never share a forward pass, so a batch above the draws per image is never used.
    limit = None if smooth.device.type == "cuda" else max(args.N, getattr(args, "N0", 1), AUTO_BATCH_START)
    chosen, measured = smooth.auto_batch_size(shape, limit, gradients=gradients)
    figures = ", ".join(f"{b}: {rate:.0f}/s" for b, rate in measured.items())
    print(f"--batch auto: {chosen} ({figures} noisy samples per second)", file=sys.stderr)
    return chosen


def log_meta(args: argparse.Namespace) -> dict[str, Any]:
    """What a partial log records besides the procedure's settings: the model, the data and the device."""
    return {
        "checkpoint_sha256": file_sha256(args.checkpoint),
        "dataset": args.dataset,
        "split": args.split,
        "device": torch.device(args.device).type,
        "amp": args.amp,
        "rsmooth": __version__,
        **fast_path_meta(args),
    }


def fast_path_meta(args: argparse.Namespace) -> dict[str, Any]:
    """The fast-path settings that differ from the defaults (none for a default run: its settings line, and
    so its resume, stay what they were)."""
    meta: dict[str, Any] = {}
    if args.precision != DEFAULT_PRECISION:
        meta["precision"] = args.precision
    if args.channels_last:
        meta["channels_last"] = True
    if args.compile:
        meta["compile"] = True
    if getattr(args, "batch_auto", False):
        meta["batch"] = AUTO
    return meta


def log_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every log writer takes from the shared options."""
    return {
        "partial_path": args.partial,
        "meta": log_meta(args),
        "progress": False if args.no_progress else None,
    }


def write_run_record(
    args: argparse.Namespace, meta: dict[str, Any], script: str, argv: list[str] | None
) -> Path:
    """Write ``<outfile>.provenance.json`` beside the finished log (``rsmooth.analysis.provenance.run_record``:
    the command line, date, host, checkpoint and data checksums), paths relative to the working directory.
    The log itself is not touched, so every reader reads it as before."""
    from rsmooth.analysis.provenance import run_record, write_provenance_sidecar

    command = sys.argv if argv is None else [script, *argv]
    record = run_record(
        command,
        checkpoint=args.checkpoint,
        checkpoint_sha256=meta.get("checkpoint_sha256"),
        data_stamp=args.data_root / ".ready" / f"{args.dataset}.json",
        device=meta.get("device"),
    )
    return write_provenance_sidecar(args.outfile, record)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
