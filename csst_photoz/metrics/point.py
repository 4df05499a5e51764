"""Point-estimate photo-z quality metrics (Zhou et al. 2022).

With ``dz = z_pred - z_true``:

* ``sigma_NMAD = 1.48 * median(|dz - median(dz)| / (1 + z_true))``
* outlier fraction ``eta``: share of galaxies with ``|dz| / (1 + z_true) > threshold``
* ``bias = median(dz / (1 + z_true))``
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "OUTLIER_THRESHOLD",
    "bias",
    "outlier_fraction",
    "point_metrics",
    "sigma_nmad",
]

#: Default catastrophic-outlier threshold on ``|dz| / (1 + z_true)``.
OUTLIER_THRESHOLD = 0.15

_NMAD_SCALE = 1.48
_MAX_LISTED = 5


def _as_1d_float(name: str, values: npt.ArrayLike) -> np.ndarray:
    """Convert ``values`` to a 1-D float64 array, rejecting masked entries and other ranks."""
    if np.ma.is_masked(values):
        raise ValueError(f"{name} contains masked values; fill or drop them first")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got a {array.ndim}-D array of shape {array.shape}")
    return array


def _describe(mask: np.ndarray) -> str:
    """Return ``"N value(s) (at indices [...])"`` for the set entries of ``mask``."""
    indices = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in indices[:_MAX_LISTED])
    more = ", ..." if indices.size > _MAX_LISTED else ""
    return f"{indices.size} value(s) (at indices [{shown}{more}])"


def _validate_redshifts(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, *, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a pair of redshift arrays to 1-D float64 arrays of equal length."""
    true = _as_1d_float("z_true", z_true)
    pred = _as_1d_float("z_pred", z_pred)
    if true.shape != pred.shape:
        raise ValueError(
            f"z_true and z_pred must have the same shape, got {true.shape} and {pred.shape}"
        )
    if true.size == 0 and not allow_empty:
        raise ValueError("the sample is empty: metrics of zero galaxies are undefined")
    for name, array in (("z_true", true), ("z_pred", pred)):
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(f"{name} contains {_describe(bad)} that are NaN or infinite")
    below = true <= -1.0
    if below.any():
        raise ValueError(
            f"z_true must be > -1 so that 1 + z_true > 0; {_describe(below)} are <= -1"
        )
    return true, pred


def _validate_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float after checking it is finite and non-negative."""
    value = float(threshold)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return value


def _sigma_nmad(z_true: np.ndarray, z_pred: np.ndarray) -> float:
    dz = z_pred - z_true
    return _NMAD_SCALE * float(np.median(np.abs(dz - np.median(dz)) / (1.0 + z_true)))


def _outlier_fraction(z_true: np.ndarray, z_pred: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.abs(z_pred - z_true) / (1.0 + z_true) > threshold))


def _bias(z_true: np.ndarray, z_pred: np.ndarray) -> float:
    return float(np.median((z_pred - z_true) / (1.0 + z_true)))


def _metrics_of_valid(z_true: np.ndarray, z_pred: np.ndarray, threshold: float) -> dict[str, float]:
    """Compute all point metrics on already validated, non-empty arrays."""
    return {
        "n": int(z_true.size),
        "sigma_nmad": _sigma_nmad(z_true, z_pred),
        "outlier_fraction": _outlier_fraction(z_true, z_pred, threshold),
        "bias": _bias(z_true, z_pred),
    }


def sigma_nmad(z_true: npt.ArrayLike, z_pred: npt.ArrayLike) -> float:
    """Normalised median absolute deviation of the redshift errors.

    Parameters
    ----------
    z_true : array_like
        True (spectroscopic) redshifts, 1-D, finite, all > -1.
    z_pred : array_like
        Predicted (photometric) redshifts, 1-D, finite, same shape as `z_true`.

    Returns
    -------
    float
        ``1.48 * median(|dz - median(dz)| / (1 + z_true))`` with ``dz = z_pred - z_true``.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, differ in shape, are empty, contain NaN or
        infinite values, or if any ``z_true <= -1``.

    """
    true, pred = _validate_redshifts(z_true, z_pred)
    return _sigma_nmad(true, pred)


def outlier_fraction(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, *, threshold: float = OUTLIER_THRESHOLD
) -> float:
    """Fraction of catastrophic outliers.

    Parameters
    ----------
    z_true : array_like
        True (spectroscopic) redshifts, 1-D, finite, all > -1.
    z_pred : array_like
        Predicted (photometric) redshifts, 1-D, finite, same shape as `z_true`.
    threshold : float, optional
        A galaxy is an outlier when ``|dz| / (1 + z_true)`` is strictly greater
        than this value. Must be finite and >= 0. Default 0.15.

    Returns
    -------
    float
        Share of galaxies that are outliers, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the inputs are invalid (see `sigma_nmad`) or `threshold` is negative or not finite.

    """
    limit = _validate_threshold(threshold)
    true, pred = _validate_redshifts(z_true, z_pred)
    return _outlier_fraction(true, pred, limit)


def bias(z_true: npt.ArrayLike, z_pred: npt.ArrayLike) -> float:
    """Median normalised redshift error.

    Parameters
    ----------
    z_true : array_like
        True (spectroscopic) redshifts, 1-D, finite, all > -1.
    z_pred : array_like
        Predicted (photometric) redshifts, 1-D, finite, same shape as `z_true`.

    Returns
    -------
    float
        ``median((z_pred - z_true) / (1 + z_true))``; positive when redshifts are
        overestimated.

    Raises
    ------
    ValueError
        If the inputs are invalid (see `sigma_nmad`).

    """
    true, pred = _validate_redshifts(z_true, z_pred)
    return _bias(true, pred)


def point_metrics(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, *, threshold: float = OUTLIER_THRESHOLD
) -> dict[str, float]:
    """All point-estimate metrics of one sample.

    Parameters
    ----------
    z_true : array_like
        True (spectroscopic) redshifts, 1-D, finite, all > -1.
    z_pred : array_like
        Predicted (photometric) redshifts, 1-D, finite, same shape as `z_true`.
    threshold : float, optional
        Outlier threshold passed to `outlier_fraction`. Default 0.15.

    Returns
    -------
    dict
        ``{"n": int, "sigma_nmad": float, "outlier_fraction": float, "bias": float}``.

    Raises
    ------
    ValueError
        If the inputs are invalid (see `sigma_nmad`) or `threshold` is negative or not finite.

    """
    limit = _validate_threshold(threshold)
    true, pred = _validate_redshifts(z_true, z_pred)
    return _metrics_of_valid(true, pred, limit)
