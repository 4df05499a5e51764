"""Photo-z point metrics in bins of a chosen quantity (redshift, magnitude, ...)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from csst_photoz.metrics.point import (
    OUTLIER_THRESHOLD,
    _as_1d_float,
    _metrics_of_valid,
    _validate_redshifts,
    _validate_threshold,
)

__all__ = ["binned_metrics"]

_METRIC_NAMES = ("sigma_nmad", "outlier_fraction", "bias")


def _validate_edges(bins: npt.ArrayLike) -> np.ndarray:
    edges = _as_1d_float("bins", bins)
    if edges.size < 2:
        raise ValueError(f"bins must hold at least 2 edges, got {edges.size}")
    if not np.isfinite(edges).all():
        raise ValueError("bins must be finite (no NaN or infinite edges)")
    if not (np.diff(edges) > 0).all():
        raise ValueError("bins must be strictly increasing")
    return edges


def binned_metrics(
    z_true: npt.ArrayLike,
    z_pred: npt.ArrayLike,
    *,
    by: npt.ArrayLike,
    bins: npt.ArrayLike,
    threshold: float = OUTLIER_THRESHOLD,
) -> Table:
    """Point metrics of the galaxies falling in each bin of `by`.

    Bins follow `numpy.histogram`: each bin is ``[low, high)`` except the last,
    which is ``[low, high]``. Galaxies whose `by` value lies outside the edges
    (including ``±inf``) are not counted.

    Parameters
    ----------
    z_true : array_like
        True (spectroscopic) redshifts, 1-D, finite, all > -1.
    z_pred : array_like
        Predicted (photometric) redshifts, 1-D, finite, same shape as `z_true`.
    by : array_like
        Quantity to bin on (e.g. `z_true` or a magnitude), 1-D, same shape as
        `z_true`, without NaN.
    bins : array_like
        Bin edges: 1-D, finite, strictly increasing, at least 2 edges.
    threshold : float, optional
        Outlier threshold, see `csst_photoz.metrics.outlier_fraction`. Default 0.15.

    Returns
    -------
    astropy.table.Table
        One row per bin with columns ``bin_low``, ``bin_high``, ``n`` (int),
        ``sigma_nmad``, ``outlier_fraction`` and ``bias``. Empty bins have
        ``n = 0`` and NaN metrics. ``meta["threshold"]`` records the threshold.

    Raises
    ------
    ValueError
        If the redshifts are invalid (see `csst_photoz.metrics.sigma_nmad`;
        an empty sample is allowed), `by` has another shape or contains NaN,
        `bins` is not a valid edge array, or `threshold` is negative or not finite.

    """
    limit = _validate_threshold(threshold)
    true, pred = _validate_redshifts(z_true, z_pred, allow_empty=True)
    values = _as_1d_float("by", by)
    if values.shape != true.shape:
        raise ValueError(
            f"by must have the same shape as z_true, got {values.shape} and {true.shape}"
        )
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        raise ValueError(f"by contains {n_nan} NaN value(s)")
    edges = _validate_edges(bins)

    n_bins = edges.size - 1
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = n_bins - 1

    counts = np.zeros(n_bins, dtype=np.int64)
    columns = {name: np.full(n_bins, math.nan) for name in _METRIC_NAMES}
    for i in range(n_bins):
        members = index == i
        if not members.any():
            continue
        row = _metrics_of_valid(true[members], pred[members], limit)
        counts[i] = row["n"]
        for name in _METRIC_NAMES:
            columns[name][i] = row[name]

    return Table(
        {"bin_low": edges[:-1], "bin_high": edges[1:], "n": counts, **columns},
        meta={"threshold": limit},
    )
