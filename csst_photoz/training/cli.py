"""The ``train`` command: ``csst-photoz train`` and ``python -m csst_photoz.training``.

::

    csst-photoz train {mlp,cnn,hybrid,hybrid-transfer} --data DIR --out CKPT
        [--config project.toml] [--set training.KEY=VALUE ...] [--epochs N] [--seed S]
        [--threads N] [--no-resume]
        [--mlp-checkpoint CKPT] [--cnn-checkpoint CKPT] [--device DEV] [--quiet]
    csst-photoz train mlp --table FILE --bands u,g,r,i,z --flux-columns flux_{band}
        --error-columns flux_err_{band} --redshift-column zspec [--flux-unit nJy|electron|ABmag]
        [--id-column ID] [--test-fraction F] [--validation-fraction F] [--no-augment]
        [--recipe paper|early-stopping] --out CKPT

``--table`` reads a Parquet, FITS or CSV file (any bands, columns and flux unit; the MLP
alone). Its defaults differ from ``--data`` in two ways: no test rows are held back
(``test_fraction = 0``: the test set is the user's other file, and every labelled row is
worth training on) and the MLP stops early (``--recipe early-stopping``: after
`~csst_photoz.training.config.EARLY_STOPPING_PATIENCE` epochs without improvement, as the
paper's other networks); a ``test_fraction`` or ``[training.mlp]`` table in the configuration,
or the flags, win. ``--recipe paper`` is the paper's MLP schedule (150 epochs, keep the best).
When training ends, the command prints the rows of each split and the flux unit.

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
from .config import EARLY_STOPPING_PATIENCE, TrainingConfig
from .recipes import KINDS

__all__ = [
    "RECIPES",
    "add_predict_parser",
    "add_train_arguments",
    "add_train_parser",
    "build_parser",
    "main",
    "run",
]


#: The MLP schedules ``--recipe`` chooses from.
RECIPES = ("paper", "early-stopping")


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` arguments to ``parser`` (and make `main` its handler)."""
    parser.add_argument("kind", choices=KINDS, help="network to train")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=Path,
        help="training-set folder (stamps.parquet + stamps.zarr), or a Parquet file (mlp)",
    )  # fmt: skip
    source.add_argument(
        "--table", type=Path,
        help="any Parquet, FITS or CSV table of fluxes (or magnitudes) and redshifts (mlp)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True,
        help="best-model checkpoint; <stem>.last.pt and <stem>.log.jsonl go beside it",
    )  # fmt: skip
    columns = parser.add_argument_group("table columns (training.columns.*)")
    columns.add_argument("--bands", help="band names in input order, comma-separated")
    columns.add_argument(
        "--flux-columns",
        help="flux (or magnitude) columns: a template such as 'flux_{band}' or one name per band",
    )
    columns.add_argument("--error-columns", help="their 1-sigma errors: template or names")
    columns.add_argument("--redshift-column", help="true (spectroscopic) redshift column")
    columns.add_argument(
        "--flux-unit",
        help="unit of the flux columns: electron, nJy (or uJy, ...), ABmag "
        "(default: the column's unit metadata, else electron)",
    )
    columns.add_argument("--id-column", help="identifier column (recorded for predict)")
    parser.add_argument(
        "--test-fraction", type=float,
        help="share of the rows held back as a test set (default 0.25; 0 with --table)",
    )  # fmt: skip
    parser.add_argument(
        "--validation-fraction", type=float, help="validation share of the rest (default 0.1)"
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="no flux noise or rotations (augment = false)"
    )
    parser.add_argument(
        "--recipe", choices=RECIPES,
        help="MLP schedule: paper (150 epochs, keep the best) or early-stopping (stop after "
        f"{EARLY_STOPPING_PATIENCE} epochs without improvement); default paper with --data, "
        "early-stopping with --table",
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
        help="predictions of trained checkpoints: their test split (+ baselines), or any table",
        description=(
            "With --data, predict the test (or validation) split of a training set with "
            "checkpoints trained on it, and the kNN / gradient-boosting baselines fitted on its "
            "training split; writes the Parquet table that 'csst-photoz evaluate' reads. With "
            "--table, predict every row of any Parquet, FITS or CSV table that has the flux "
            "columns the checkpoints declare (or --flux-columns / --error-columns in another "
            "unit it converts, --flux-unit), writing its id column beside z and z_err."
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


def configure(config: TrainingConfig, args: argparse.Namespace) -> TrainingConfig:
    """``config`` (from the project file and ``--set``) with the ``train`` flags applied.

    With ``--table``, a ``test_fraction`` and an ``[training.mlp]`` table the configuration
    does not give default to 0 and to early stopping; explicit flags always win.
    """
    given = config.model_fields_set
    columns = {
        "bands": args.bands, "flux": args.flux_columns, "flux_err": args.error_columns,
        "redshift": args.redshift_column, "unit": args.flux_unit, "id": args.id_column,
    }  # fmt: skip
    columns = {key: value for key, value in columns.items() if value is not None}
    test_fraction = args.test_fraction
    if test_fraction is None and args.table is not None and "test_fraction" not in given:
        test_fraction = 0.0
    schedule = args.recipe
    if schedule is None and args.table is not None and "mlp" not in given:
        schedule = "early-stopping"
    mlp = None
    if schedule == "paper":
        mlp = {"max_epochs": 150, "lr_patience": None, "early_stopping_patience": None}
    elif schedule == "early-stopping":
        mlp = {**config.mlp.model_dump(), "early_stopping_patience": EARLY_STOPPING_PATIENCE}
    return config.with_updates(
        max_epochs=args.epochs,
        seed=args.seed,
        mlp_checkpoint=args.mlp_checkpoint,
        cnn_checkpoint=args.cnn_checkpoint,
        progress=False if args.quiet else None,
        columns={**config.columns.model_dump(), **columns} if columns else None,
        test_fraction=test_fraction,
        validation_fraction=args.validation_fraction,
        augment=False if args.no_augment else None,
        mlp=mlp,
    )


def _rows_used(kind: str, checkpoint: Path) -> str:
    """The rows a checkpoint was trained, validated and tested on, and its flux unit."""
    from ..models.checkpoint import read_metadata
    from .split import split_rows

    metadata = read_metadata(checkpoint)
    record = metadata.training
    fractions = {k: record.config[k] for k in ("test_fraction", "validation_fraction")}
    split = split_rows(record.split.n_rows, seed=record.split.seed, **fractions)
    units = sorted({entry.unit for entry in metadata.inputs.fluxes})
    return (
        f"{kind}: {record.n_selected} of {record.split.n_rows} rows of {record.data_source} "
        f"selected{', fluxes in ' + ', '.join(units) if units else ''}; {split.summary()}"
    )


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
    config = configure(load_project_config(args.config, overrides=args.set).training, args)
    source = args.table if args.table is not None else args.data
    result = train_model(
        args.kind, source, config, args.out, resume=not args.no_resume, device=args.device,
        calibrate=not args.no_calibrate,
    )  # fmt: skip
    if result.history:  # rank 0
        print(_rows_used(args.kind, result.paths.best))
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
