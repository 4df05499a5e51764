"""Post-hoc calibration of a trained network's uncertainties on its validation split.

The uncertainty head is trained with a Gaussian likelihood on all residuals, outliers included,
so its sigma comes out too wide for the bulk (68 % intervals covering 80 to 93 % of galaxies).
One factor on ``exp(log_sigma)`` is fitted on the network's *validation* split (its own
predictions, before the clamping to the trained range of :mod:`csst_photoz.models.domain`) so
that 68.27 % of those galaxies fall within ``±sigma``
(:func:`csst_photoz.metrics.coverage_scale`), and stored in the checkpoint's metadata
(``sigma_calibration``: the factor, the split, the galaxies, and the 68 % / 95 % coverage
before and after). `PhotoZModel.predict`, the batch
processor and ``csst-photoz predict`` then apply it. The point estimates and the tensors are
unchanged; the test split stays untouched, so ``csst-photoz evaluate`` measures the
calibration on galaxies it was not fitted on.

`fit_sigma_calibration` makes the record from predictions; it has two callers:

* `calibrate_model`: `~csst_photoz.training.train_model` calibrates its best model on the
  validation tensors it holds before it writes the checkpoint (``calibrate=True``);
* `calibrate_checkpoint` (``csst-photoz calibrate``): an existing checkpoint, on its validation
  split redrawn from the seed and fractions recorded in it and checked as ``csst-photoz
  predict`` does; a network with a p(z) head gets its p(z) recalibration refitted too.

::

    csst-photoz calibrate --checkpoint mlp.pt --data DIR [--out calibrated.pt]
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import __version__
from ..cli_options import positive_int
from ..metrics import calibration_metrics, coverage_scale
from ..pz import PzGrid, fit_pz_calibration
from ..threads import limit_threads

if TYPE_CHECKING:  # torch is imported on first use (``csst-photoz --help``)
    from ..models import PhotoZModel
    from .batches import TensorSet

__all__ = [
    "METHOD",
    "MIN_PZ_GALAXIES",
    "add_calibrate_arguments",
    "calibrate_checkpoint",
    "calibrate_model",
    "fit_sigma_calibration",
    "main",
]

#: Fewest validation galaxies the p(z) recalibration is fitted on.
MIN_PZ_GALAXIES = 100
#: How the factor is fitted (recorded in the checkpoint).
METHOD = "68.27% quantile of |z - z_true| / sigma on the validation split"


def fit_sigma_calibration(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike, *, data: str
) -> dict[str, Any]:
    """The calibration record of a network's predictions on its validation split.

    Parameters
    ----------
    z_true, z_pred
        (n,) true redshifts and point estimates of the validation galaxies.
    sigma
        (n,) the network's *uncalibrated* 1-sigma, ``exp(log_sigma)``.
    data
        The training set they come from (recorded).

    Returns
    -------
    dict
        ``scale`` (`~csst_photoz.metrics.coverage_scale`), ``method`` (`METHOD`), ``split``,
        ``galaxies``, ``data``, ``coverage_68_before`` / ``coverage_95_before``,
        ``coverage_68_after`` / ``coverage_95_after`` and ``package_version``: what
        `PhotoZModel.set_sigma_calibration` takes.

    Raises
    ------
    ValueError
        If no galaxy is usable (finite values, sigma > 0) or the residuals are all zero.
    """
    z_true, z_pred, sigma = (np.asarray(v, dtype=np.float64) for v in (z_true, z_pred, sigma))
    scale = coverage_scale(z_true, z_pred, sigma)
    before = calibration_metrics(z_true, z_pred, sigma, nan_policy="omit")
    after = calibration_metrics(z_true, z_pred, scale * sigma, nan_policy="omit")
    return {
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


def calibrate_model(
    model: PhotoZModel, validation: TensorSet, *, data: str, batch_size: int = 4096
) -> dict[str, Any]:
    """Fit ``model``'s uncertainty factor (and p(z) recalibration) on validation tensors.

    The predictions are those of `PhotoZModel.predict` (evaluation mode, float32, the model's
    device), as in `calibrate_checkpoint`; a previous factor is replaced, not compounded. Both
    fit the network's own predictions: the domain reference (and so the clamping) is left out
    while predicting, and kept on the model. A model with a p(z) head also gets its p(z)
    recalibration (:func:`csst_photoz.pz.fit_pz_calibration`, on its uncalibrated p(z) of the
    same galaxies), set as ``model.pz_calibration`` and saved in its checkpoint's ``pz``
    (with fewer than `MIN_PZ_GALAXIES` galaxies it is left uncalibrated, with a warning).

    Parameters
    ----------
    model
        A trained network.
    validation
        Its validation galaxies (the inputs it reads, and the true redshifts).
    data
        The training set they come from (recorded).
    batch_size
        Rows per forward pass.

    Returns
    -------
    dict
        The record (`fit_sigma_calibration`), now ``model.sigma_calibration``.
    """
    domain = model.domain
    model.set_domain(None)  # the network's own predictions, unclamped
    model.set_pz_calibration(None)  # and its own p(z)
    try:
        estimate = model.predict(
            validation.fluxes, validation.flux_errors, validation.stamps, batch_size=batch_size
        )
    finally:
        model.set_domain(domain)
    truth = validation.redshift.double().cpu().numpy()
    record = fit_sigma_calibration(truth, estimate.z, estimate.z_err / model.sigma_scale, data=data)
    model.set_sigma_calibration(record)
    pz = model.pz_config
    if pz is not None and estimate.pz is not None:
        if truth.size < MIN_PZ_GALAXIES:
            warnings.warn(
                f"{data}: {truth.size} validation galaxies, fewer than {MIN_PZ_GALAXIES}: the "
                "p(z) is left uncalibrated",
                stacklevel=2,
            )
        else:
            grid = PzGrid(pz.z_min, pz.z_max, pz.bins)
            model.set_pz_calibration(fit_pz_calibration(estimate.pz, grid, truth, data=data))
    return record


def calibrate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 4096,
    n_threads: int | None = 1,
) -> dict[str, Any]:
    """Refit ``checkpoint``'s uncertainty factor and p(z) recalibration; save the model.

    `calibrate_model` on the galaxies of its validation split.

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
    csst_photoz.training.checkpoint_data.PredictionError
        If the checkpoint does not fit the data (other data hash or split).
    ValueError
        If the validation split has no usable galaxy.
    """
    from ..models import save_model
    from .batches import TensorSet
    from .checkpoint_data import checkpoint_training_set

    model, dataset, split = checkpoint_training_set(checkpoint, data)
    reads = set(model.input_names)
    validation = TensorSet.from_training_set(
        dataset, dataset.positions(split.validation),
        fluxes="fluxes" in reads, stamps="stamps" in reads,
    )  # fmt: skip
    if len(validation) == 0:
        raise ValueError(f"{dataset.source}: no selected galaxy in the validation split")
    with limit_threads(n_threads):
        record = calibrate_model(model, validation, data=str(data), batch_size=batch_size)
    save_model(model, checkpoint if out is None else out)  # keeps the loaded metadata
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
