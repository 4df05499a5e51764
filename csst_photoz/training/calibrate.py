"""Post-hoc calibration of a trained network's uncertainties on its validation split.

The uncertainty head is trained with a Gaussian likelihood on all residuals, outliers included,
so its sigma comes out too wide for the bulk (68 % intervals covering 80 to 93 % of galaxies).
`calibrate_checkpoint` fits one factor on ``exp(log_sigma)`` on the checkpoint's *validation*
split (redrawn from the seed and fractions recorded in the checkpoint, as ``csst-photoz
predict`` does), so that 68.27 % of those galaxies fall within ``±sigma``
(:func:`csst_photoz.metrics.coverage_scale`), and writes it into the checkpoint's metadata
(``sigma_calibration``: the factor, the split, the galaxies, and the 68 % / 95 % coverage
before and after). `PhotoZModel.predict`, the batch processor and ``csst-photoz predict`` then
apply it. The point estimates and the tensors are unchanged; the test split stays untouched,
so ``csst-photoz evaluate`` measures the calibration on galaxies it was not fitted on.

::

    csst-photoz calibrate --checkpoint mlp.pt --data DIR [--out calibrated.pt]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..cli_options import positive_int
from ..metrics import calibration_metrics, coverage_scale

__all__ = ["add_calibrate_arguments", "calibrate_checkpoint", "main"]

#: How the factor is fitted (recorded in the checkpoint).
METHOD = "68.27% quantile of |z - z_true| / sigma on the validation split"


def calibrate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 4096,
    n_threads: int | None = 1,
) -> dict[str, Any]:
    """Fit the uncertainty factor of ``checkpoint`` on its validation split and save it.

    Parameters
    ----------
    checkpoint
        A checkpoint written by ``train_model`` on ``data`` (calibrated or not: a previous
        factor is replaced, not compounded).
    data
        The training-set folder (or Parquet file, for flux-only networks) it was trained on.
    out
        Where to write the calibrated checkpoint (default: replace ``checkpoint``, atomically).
    batch_size
        Rows per forward pass.
    n_threads
        torch threads for the predictions (None: leave torch's setting).

    Returns
    -------
    dict
        The calibration record saved as the checkpoint's ``sigma_calibration``.

    Raises
    ------
    csst_photoz.training.predict.PredictionError
        If the checkpoint does not fit the data (other data hash or split).
    ValueError
        If the validation split has no usable galaxy.
    """
    from ..models import load_model, save_model
    from .predict import predict_split

    table = predict_split(
        [checkpoint], data, split="validation", baselines=(), batch_size=batch_size,
        n_threads=n_threads,
    )  # fmt: skip
    model = load_model(checkpoint)
    (column,) = [
        name for name in table.column_names if name.startswith("z_") and not name.endswith("_err")
    ]
    z_true = table["redshift"].to_numpy().astype(np.float64)
    z_pred = table[column].to_numpy().astype(np.float64)
    raw_sigma = table[f"{column}_err"].to_numpy().astype(np.float64) / model.sigma_scale
    scale = coverage_scale(z_true, z_pred, raw_sigma)
    before = calibration_metrics(z_true, z_pred, raw_sigma, nan_policy="omit")
    after = calibration_metrics(z_true, z_pred, scale * raw_sigma, nan_policy="omit")
    record = {
        "scale": scale,
        "method": METHOD,
        "split": "validation",
        "galaxies": int(before["n"]),
        "data": str(data),
        "coverage_68_before": before["coverage_68"],
        "coverage_95_before": before["coverage_95"],
        "coverage_68_after": after["coverage_68"],
        "coverage_95_after": after["coverage_95"],
        "package_version": __version__,
    }
    model.set_sigma_calibration(record)
    metadata = model.checkpoint_metadata
    save_model(
        model,
        checkpoint if out is None else out,
        training_data_hash=metadata.get("training_data_hash"),
        validation_metrics=metadata.get("validation_metrics"),
        extra=metadata.get("extra"),
    )
    return record


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``csst-photoz calibrate``; sets ``func`` to `main`."""
    parser.add_argument("--checkpoint", required=True, type=Path, help="trained checkpoint")
    parser.add_argument("--data", required=True, type=Path, help="its training-set folder")
    parser.add_argument("--out", type=Path, help="write here instead of replacing --checkpoint")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per forward pass")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``calibrate`` for parsed ``args``; prints the factor and coverages, returns 0."""
    record = calibrate_checkpoint(
        args.checkpoint, args.data, out=args.out, batch_size=args.batch_size,
        n_threads=args.threads,
    )  # fmt: skip
    target = args.out or args.checkpoint
    print(
        f"sigma x {record['scale']:.3f} (validation split, {record['galaxies']} galaxies): "
        f"68% coverage {record['coverage_68_before']:.3f} -> {record['coverage_68_after']:.3f}, "
        f"95% {record['coverage_95_before']:.3f} -> {record['coverage_95_after']:.3f} -> {target}"
    )
    return 0
