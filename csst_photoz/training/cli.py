"""The ``train`` command: ``csst-photoz train`` and ``python -m csst_photoz.training``.

::

    csst-photoz train {mlp,cnn,hybrid,hybrid-transfer} --data DIR --out CKPT
        [--config project.toml] [--set training.KEY=VALUE ...] [--epochs N] [--seed S]
        [--threads N] [--no-resume]
        [--mlp-checkpoint CKPT] [--cnn-checkpoint CKPT] [--device DEV] [--quiet]

``python -m csst_photoz.training`` takes the same arguments without the word ``train``, so
that ``torchrun --nproc-per-node N -m csst_photoz.training cnn --data ... --out ...`` trains
data-parallel.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli_options import add_config_options, positive_int
from .recipes import KINDS

__all__ = [
    "add_predict_parser",
    "add_train_arguments",
    "add_train_parser",
    "build_parser",
    "main",
    "run",
]


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` arguments to ``parser`` (and make `main` its handler)."""
    parser.add_argument("kind", choices=KINDS, help="network to train")
    parser.add_argument(
        "--data", type=Path, required=True,
        help="training-set folder (stamps.parquet + stamps.zarr), or a Parquet file (mlp)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True,
        help="best-model checkpoint; <stem>.last.pt and <stem>.log.jsonl go beside it",
    )  # fmt: skip
    add_config_options(parser, sections="[training]")
    parser.add_argument("--epochs", type=positive_int, help="maximum epochs (training.max_epochs)")
    parser.add_argument(
        "--seed", type=int, help="seed of split, weights, order, augmentation (training.seed)"
    )
    parser.add_argument(
        "--threads", type=positive_int, help="torch threads per process (default: torch's)"
    )
    parser.add_argument("--mlp-checkpoint", type=Path, help="trained MLP (hybrid-transfer)")
    parser.add_argument("--cnn-checkpoint", type=Path, help="trained CNN (hybrid-transfer)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--no-resume", action="store_true", help="start afresh even if a training state exists"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip fitting the uncertainty scale on the validation split after training",
    )
    parser.set_defaults(func=main)
    return parser


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to the parsers of ``ArgumentParser.add_subparsers``; returns its parser."""
    parser = subparsers.add_parser(
        "train", help="train a photo-z network (MLP, CNN, hybrid, hybrid transfer)"
    )
    return add_train_arguments(parser)


def add_calibrate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``calibrate`` (:mod:`.calibrate`) to the sub-command parsers; returns its parser."""
    from .calibrate import add_calibrate_arguments

    parser = subparsers.add_parser(
        "calibrate",
        help="fit a checkpoint's uncertainty scale on its validation split",
        description=(
            "Fit one factor on a trained checkpoint's sigma so that 68.27% of its validation "
            "galaxies lie within +-sigma, and save it in the checkpoint's metadata (the batch "
            "processor, predict and evaluate then use it)."
        ),
    )
    return add_calibrate_arguments(parser)


def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``predict`` (:mod:`.predict`) to the sub-command parsers; returns its parser."""
    from .predict import add_predict_arguments

    parser = subparsers.add_parser(
        "predict",
        help="predictions of trained checkpoints (+ baselines) on their test split, for evaluate",
        description=(
            "Predict the test (or validation) split of a training set with checkpoints trained "
            "on it, and the kNN / gradient-boosting baselines fitted on its training split; "
            "writes the Parquet table that 'csst-photoz evaluate' reads."
        ),
    )
    return add_predict_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m csst_photoz.training``."""
    parser = argparse.ArgumentParser(
        prog="python -m csst_photoz.training",
        description="Train a photo-z network (Zhou et al. 2022 recipe); torchrun-ready.",
    )
    return add_train_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the ``train`` command for parsed ``args``; returns the exit status.

    Errors (missing files, invalid data or settings) propagate as exceptions, for the caller
    to report (`run` prints them).
    """
    import torch

    from ..project_config import load_project_config
    from .loop import train_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = load_project_config(args.config, overrides=args.set).training
    config = config.with_updates(
        max_epochs=args.epochs,
        seed=args.seed,
        mlp_checkpoint=args.mlp_checkpoint,
        cnn_checkpoint=args.cnn_checkpoint,
        progress=False if args.quiet else None,
    )
    result = train_model(
        args.kind, args.data, config, args.out, resume=not args.no_resume, device=args.device,
        calibrate=not args.no_calibrate,
    )  # fmt: skip
    if result.history:  # rank 0
        metrics = result.best_metrics
        print(
            f"{args.kind}: {result.epochs_completed} epochs"
            f"{' (stopped early)' if result.stopped_early else ''}; best epoch "
            f"{result.best_epoch}: val MAE {metrics.get('loss', float('nan')):.4f}, "
            f"sigma_NMAD {metrics.get('sigma_nmad', float('nan')):.4f}, "
            f"outliers {metrics.get('outlier_fraction', float('nan')):.2%} -> {result.paths.best}"
            f" (log {result.paths.log})"
        )
        record = result.sigma_calibration
        if record is not None:
            print(
                f"{args.kind}: sigma x {record['scale']:.3f} fitted on the validation split "
                f"(68% coverage {record['coverage_68_before']:.3f} -> "
                f"{record['coverage_68_after']:.3f}) -> {result.paths.best}"
            )
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m csst_photoz.training``: parse, train, report errors."""
    args = build_parser().parse_args(argv)
    try:
        return main(args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"csst-photoz train: error: {error}", file=sys.stderr)
        return 2
