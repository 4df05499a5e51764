"""``csst-photoz evaluate``: the evaluation report of a Parquet table of predictions.

`add_evaluate_parser` adds the sub-command to the ``csst-photoz`` parser and `main` runs it.
Heavy modules (matplotlib, astropy) are imported only when the command runs, so ``--help``
stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_evaluate_parser", "main"]

_TRAINING_SIZES = ("30000", "20000", "10000", "none")


def _edges(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if len(values) < 2:
        raise argparse.ArgumentTypeError(f"need at least two bin edges, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated model names")
    return names


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to a parser's sub-parsers.

    Parameters
    ----------
    subparsers
        The object returned by `argparse.ArgumentParser.add_subparsers`.

    Returns
    -------
    argparse.ArgumentParser
        The new sub-parser; its ``func`` default is `main`.

    """
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics, figures and a Markdown/HTML report of photo-z predictions",
        description=(
            "Evaluate photo-z predictions against true redshifts. The Parquet file holds the "
            "truth column and, per model, z_<model> and optionally z_<model>_err (Gaussian "
            "1-sigma). Writes metrics.json, report.md, report.html and PNG figures into --out."
        ),
    )
    parser.add_argument(
        "--predictions", type=Path, required=True, help="Parquet file of predictions"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder of the report")
    parser.add_argument(
        "--truth-column",
        help="true-redshift column (default: z_true, else redshift)",
    )
    parser.add_argument(
        "--magnitude-column", help="magnitude column for metrics in magnitude bins (e.g. mag_i)"
    )
    parser.add_argument(
        "--models", type=_names, help="comma-separated models to evaluate (default: all z_*)"
    )
    parser.add_argument("--z-bins", type=_edges, help="comma-separated redshift bin edges")
    parser.add_argument("--magnitude-bins", type=_edges, help="comma-separated magnitude edges")
    parser.add_argument(
        "--threshold", type=float, default=0.15, help="outlier threshold on |dz|/(1+z)"
    )
    parser.add_argument(
        "--paper-training-size",
        choices=_TRAINING_SIZES,
        default="30000",
        help="row of the paper's results table to compare with (default 30000)",
    )
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``csst-photoz evaluate`` with parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        Arguments from the parser of `add_evaluate_parser`.

    Returns
    -------
    int
        0 on success (errors are raised: `FileNotFoundError`, `ValueError`).

    """
    from .columns import read_predictions
    from .report import evaluate, overall_markdown

    table = read_predictions(
        args.predictions,
        truth_column=args.truth_column,
        magnitude_column=args.magnitude_column,
        models=args.models,
    )
    size = None if args.paper_training_size == "none" else int(args.paper_training_size)
    report = evaluate(
        table.z_true,
        table.predictions,
        out=args.out,
        magnitude=table.magnitude,
        magnitude_label=args.magnitude_column or "magnitude",
        z_bins=args.z_bins,
        magnitude_bins=args.magnitude_bins,
        threshold=args.threshold,
        paper_training_size=size,
        pz=table.pz,
    )
    dropped = ""
    if table.n_dropped:
        dropped = f" ({table.n_dropped} rows without a true redshift dropped)"
    print(
        f"evaluated {len(table.predictions)} model(s) on {table.z_true.size} galaxies "
        f"(truth: {table.truth_column}){dropped}"
    )
    print(overall_markdown(report.metrics))
    print(f"report: {report.paths['markdown']}, {report.paths['html']}, {report.paths['json']}")
    return 0
