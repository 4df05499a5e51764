"""Calibration of Gaussian per-galaxy photo-z uncertainties.

A model that predicts ``z_pred`` with a 1-sigma uncertainty ``sigma`` states the predictive
distribution ``N(z_pred, sigma**2)`` for each galaxy. Its calibration is judged by:

* the probability integral transform ``PIT = Phi((z_true - z_pred) / sigma)``, uniform on
  ``[0, 1]`` for a calibrated model (U-shaped when over-confident, peaked when under-confident,
  tilted when biased), summarised by its Kolmogorov-Smirnov distance to the uniform law;
* the coverage of the ``±k sigma`` intervals, the share of galaxies with
  ``|z_true - z_pred| <= k sigma``: ``erf(k / sqrt 2)`` for a calibrated model, 0.6827 for
  ``k = 1`` (``coverage_68``) and 0.9545 for ``k = 2`` (``coverage_95``);
* the continuous ranked probability score of the Gaussian (closed form, Gneiting & Raftery
  2007), in units of redshift, lower is better; it rewards sharpness and calibration together.

Missing values
--------------
Per-galaxy functions (`pit_values`, `crps_gaussian`) work elementwise and return NaN where any
input is NaN. Summaries (`interval_coverage`, `pit_ks_statistic`, `calibration_metrics`) take
``nan_policy``: ``"raise"`` (default, as the point metrics do) or ``"omit"``, which drops every
galaxy with a NaN in any input before computing. Infinite values and non-positive ``sigma``
are always errors.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from csst_photoz.metrics.point import _as_1d_float, _describe

__all__ = [
    "calibration_metrics",
    "coverage_scale",
    "crps_gaussian",
    "expected_coverage",
    "interval_coverage",
    "pit_histogram",
    "pit_ks_statistic",
    "pit_values",
]

NanPolicy = Literal["raise", "omit"]

_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_TWO_PI = 1.0 / math.sqrt(2.0 * math.pi)


def _validate_gaussian(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and convert the inputs: NaN is allowed, infinity and ``sigma <= 0`` are not."""
    arrays = {
        "z_true": _as_1d_float("z_true", z_true),
        "z_pred": _as_1d_float("z_pred", z_pred),
        "sigma": _as_1d_float("sigma", sigma),
    }
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"z_true, z_pred and sigma must have the same shape, got {shapes}")
    for name, array in arrays.items():
        infinite = np.isinf(array)
        if infinite.any():
            raise ValueError(f"{name} contains {_describe(infinite)} that are infinite")
    sigma_values = arrays["sigma"]
    not_positive = sigma_values <= 0.0  # False for NaN
    if not_positive.any():
        raise ValueError(f"sigma must be > 0; {_describe(not_positive)} are <= 0")
    return arrays["z_true"], arrays["z_pred"], sigma_values


def _validate_nan_policy(nan_policy: str) -> str:
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    return nan_policy


def _drop_nan(nan_policy: str, **arrays: np.ndarray) -> list[np.ndarray]:
    """Apply ``nan_policy`` jointly to equal-length arrays; reject an empty result."""
    _validate_nan_policy(nan_policy)
    missing = np.zeros(next(iter(arrays.values())).shape, dtype=bool)
    for name, array in arrays.items():
        nan = np.isnan(array)
        if nan.any() and nan_policy == "raise":
            raise ValueError(
                f"{name} contains {_describe(nan)} that are NaN; "
                "drop them or pass nan_policy='omit'"
            )
        missing |= nan
    kept = [array[~missing] for array in arrays.values()]
    if kept[0].size == 0:
        dropped = f" ({int(missing.sum())} dropped as NaN)" if missing.any() else ""
        raise ValueError(f"the sample is empty{dropped}: calibration of zero galaxies is undefined")
    return kept


def _sample(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike, nan_policy: str
) -> list[np.ndarray]:
    """Validated ``[z_true, z_pred, sigma]`` after applying ``nan_policy``."""
    _validate_nan_policy(nan_policy)
    true, pred, scale = _validate_gaussian(z_true, z_pred, sigma)
    return _drop_nan(nan_policy, z_true=true, z_pred=pred, sigma=scale)


def _pit(z_true: np.ndarray, z_pred: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return ndtr((z_true - z_pred) / sigma)


def _crps(z_true: np.ndarray, z_pred: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    omega = (z_true - z_pred) / sigma
    pdf = _INV_SQRT_TWO_PI * np.exp(-0.5 * omega**2)
    return sigma * (omega * (2.0 * ndtr(omega) - 1.0) + 2.0 * pdf - _INV_SQRT_PI)


def _ks_uniform(pit: np.ndarray) -> float:
    u = np.sort(pit)
    n = u.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    d_plus = np.max(ranks / n - u)
    d_minus = np.max(u - (ranks - 1.0) / n)
    return float(max(d_plus, d_minus))


def _validate_n_sigma(n_sigma: float) -> float:
    value = float(n_sigma)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"n_sigma must be a finite number > 0, got {n_sigma!r}")
    return value


def pit_values(z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike) -> np.ndarray:
    """Probability integral transform of each galaxy under ``N(z_pred, sigma**2)``.

    Parameters
    ----------
    z_true : array_like
        True redshifts, 1-D.
    z_pred : array_like
        Predicted redshifts (means of the Gaussians), same shape.
    sigma : array_like
        1-sigma uncertainties, same shape, > 0.

    Returns
    -------
    numpy.ndarray
        ``Phi((z_true - z_pred) / sigma)`` in ``[0, 1]``, float64; NaN where any input is NaN.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, differ in shape, contain infinite values, or if any
        ``sigma <= 0``.

    """
    true, pred, scale = _validate_gaussian(z_true, z_pred, sigma)
    return _pit(true, pred, scale)


def crps_gaussian(z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike) -> np.ndarray:
    """Continuous ranked probability score of each galaxy's Gaussian, in closed form.

    ``CRPS = sigma * (w * (2 Phi(w) - 1) + 2 phi(w) - 1 / sqrt(pi))`` with
    ``w = (z_true - z_pred) / sigma`` (Gneiting & Raftery 2007, eq. 21). It equals
    ``integral (F(x) - 1[x >= z_true])**2 dx`` for the predictive CDF ``F``; it is
    ``sigma * (sqrt 2 - 1) / sqrt(pi)`` when ``z_pred = z_true`` and tends to
    ``|z_true - z_pred|`` as ``sigma -> 0``.

    Parameters
    ----------
    z_true : array_like
        True redshifts, 1-D.
    z_pred : array_like
        Predicted redshifts, same shape.
    sigma : array_like
        1-sigma uncertainties, same shape, > 0.

    Returns
    -------
    numpy.ndarray
        Per-galaxy CRPS (>= 0, redshift units), float64; NaN where any input is NaN.

    Raises
    ------
    ValueError
        As `pit_values`.

    """
    true, pred, scale = _validate_gaussian(z_true, z_pred, sigma)
    return _crps(true, pred, scale)


def expected_coverage(n_sigma: float) -> float:
    """Coverage of the ``±n_sigma`` interval for a calibrated Gaussian: ``erf(n_sigma / sqrt 2)``.

    Parameters
    ----------
    n_sigma : float
        Half-width of the interval in units of sigma, > 0.

    Returns
    -------
    float
        0.6827 for 1, 0.9545 for 2.

    """
    return math.erf(_validate_n_sigma(n_sigma) / math.sqrt(2.0))


def coverage_scale(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, sigma: npt.ArrayLike, *, n_sigma: float = 1.0
) -> float:
    """Factor on ``sigma`` that makes the ``±n_sigma`` interval cover its Gaussian share.

    The ``expected_coverage(n_sigma)`` quantile of ``|z_pred - z_true| / sigma``: after
    multiplying every ``sigma`` by it, exactly that share of these galaxies lies within
    ``±n_sigma * sigma`` (a post-hoc, one-parameter recalibration, robust to outliers).

    Parameters
    ----------
    z_true, z_pred, sigma : array_like
        (n,) truth, point estimates and 1-sigma uncertainties; rows with a non-finite value or
        ``sigma <= 0`` are left out.
    n_sigma : float
        Interval half-width to calibrate, in units of sigma (default 1: the 68.27 % interval).

    Returns
    -------
    float
        The factor (> 0).

    Raises
    ------
    ValueError
        If no row is usable, or the residuals of the usable rows are all zero.

    """
    z_true, z_pred, sigma = (np.asarray(v, dtype=np.float64) for v in (z_true, z_pred, sigma))
    if not z_true.shape == z_pred.shape == sigma.shape:
        raise ValueError(
            f"z_true {z_true.shape}, z_pred {z_pred.shape} and sigma {sigma.shape} differ"
        )
    usable = np.isfinite(z_true) & np.isfinite(z_pred) & np.isfinite(sigma) & (sigma > 0)
    if not usable.any():
        raise ValueError("no galaxy with finite values and sigma > 0 to calibrate on")
    ratio = np.abs(z_pred[usable] - z_true[usable]) / sigma[usable] / _validate_n_sigma(n_sigma)
    scale = float(np.quantile(ratio, expected_coverage(n_sigma)))
    if not scale > 0:
        raise ValueError("the residuals are all zero: nothing to calibrate the uncertainties on")
    return scale


def interval_coverage(
    z_true: npt.ArrayLike,
    z_pred: npt.ArrayLike,
    sigma: npt.ArrayLike,
    *,
    n_sigma: float = 1.0,
    nan_policy: NanPolicy = "raise",
) -> float:
    """Share of galaxies whose true redshift lies within ``z_pred ± n_sigma * sigma``.

    Parameters
    ----------
    z_true, z_pred, sigma : array_like
        As `pit_values`.
    n_sigma : float, optional
        Half-width of the interval in units of sigma, > 0. Default 1 (the 68% interval).
    nan_policy : {"raise", "omit"}, optional
        What to do with NaN inputs, see the module docstring. Default ``"raise"``.

    Returns
    -------
    float
        Share in ``[0, 1]`` of galaxies with ``|z_true - z_pred| <= n_sigma * sigma``;
        `expected_coverage` for a calibrated model.

    Raises
    ------
    ValueError
        If the inputs are invalid (see `pit_values`), contain NaN with
        ``nan_policy="raise"``, leave no galaxy, or `n_sigma` is not finite and > 0.

    """
    k = _validate_n_sigma(n_sigma)
    true, pred, scale = _sample(z_true, z_pred, sigma, nan_policy)
    return float(np.mean(np.abs(true - pred) <= k * scale))


def pit_ks_statistic(pit: npt.ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Kolmogorov-Smirnov distance between the PIT values' empirical CDF and the uniform law.

    ``D = sup_u |F_n(u) - u|``: 0 for a perfectly flat PIT histogram, close to 0.5 or more for
    badly over- or under-confident models; for a calibrated model of ``n`` galaxies it is
    about ``0.87 / sqrt(n)`` on average (below ``1.63 / sqrt(n)`` in 99% of samples).

    Parameters
    ----------
    pit : array_like
        PIT values (`pit_values`), 1-D, in ``[0, 1]``.
    nan_policy : {"raise", "omit"}, optional
        What to do with NaN values. Default ``"raise"``.

    Returns
    -------
    float
        The distance, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If `pit` is not 1-D, is empty (after dropping NaN), has NaN with
        ``nan_policy="raise"``, or has values outside ``[0, 1]``.

    """
    values = _as_1d_float("pit", pit)
    outside = (values < 0.0) | (values > 1.0) | np.isinf(values)
    if outside.any():
        raise ValueError(f"pit must lie in [0, 1]; {_describe(outside)} do not")
    (values,) = _drop_nan(nan_policy, pit=values)
    return _ks_uniform(values)


def pit_histogram(pit: npt.ArrayLike, *, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram of PIT values on ``[0, 1]`` (1 everywhere when flat).

    Parameters
    ----------
    pit : array_like
        PIT values, 1-D, in ``[0, 1]``; NaN values are ignored.
    bins : int, optional
        Number of equal-width bins, >= 1. Default 20.

    Returns
    -------
    density : numpy.ndarray
        (bins,) density per bin, integrating to 1 (all NaN if no finite value).
    edges : numpy.ndarray
        (bins + 1,) bin edges from 0 to 1.

    Raises
    ------
    ValueError
        If `pit` is not 1-D or has values outside ``[0, 1]``, or `bins` < 1.

    """
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    values = _as_1d_float("pit", pit)
    outside = (values < 0.0) | (values > 1.0) | np.isinf(values)
    if outside.any():
        raise ValueError(f"pit must lie in [0, 1]; {_describe(outside)} do not")
    values = values[~np.isnan(values)]
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    if values.size == 0:
        return np.full(int(bins), math.nan), edges
    counts, _ = np.histogram(values, bins=edges)
    return counts / (values.size * np.diff(edges)), edges


def calibration_metrics(
    z_true: npt.ArrayLike,
    z_pred: npt.ArrayLike,
    sigma: npt.ArrayLike,
    *,
    nan_policy: NanPolicy = "raise",
) -> dict[str, float]:
    """All calibration summaries of one sample.

    Parameters
    ----------
    z_true, z_pred, sigma : array_like
        As `pit_values`.
    nan_policy : {"raise", "omit"}, optional
        What to do with NaN inputs, see the module docstring. Default ``"raise"``.

    Returns
    -------
    dict
        ``n`` (galaxies used, int), ``coverage_68`` and ``coverage_95`` (coverage of the
        ``±1 sigma`` and ``±2 sigma`` intervals; 0.6827 and 0.9545 when calibrated), ``crps``
        (mean CRPS, redshift units), ``pit_ks`` (`pit_ks_statistic`) and ``median_sigma``.

    Raises
    ------
    ValueError
        As `interval_coverage`.

    """
    true, pred, scale = _sample(z_true, z_pred, sigma, nan_policy)
    distance = np.abs(true - pred)
    return {
        "n": int(true.size),
        "coverage_68": float(np.mean(distance <= scale)),
        "coverage_95": float(np.mean(distance <= 2.0 * scale)),
        "crps": float(np.mean(_crps(true, pred, scale))),
        "pit_ks": _ks_uniform(_pit(true, pred, scale)),
        "median_sigma": float(np.median(scale)),
    }
