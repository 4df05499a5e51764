"""p(z) on a grid of equal bins: CDF, PIT, quantiles and recalibration, as pure NumPy functions.

A network's p(z) is the probability of each of ``bins`` equal bins over ``[z_min, z_max]``
(``(n, bins)``, rows summing to 1), uniform within a bin: its cumulative distribution is
piecewise linear through the bin edges. Everything here is float64 arithmetic on that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "PzGrid",
    "cdf_at_edges",
    "cdf_values",
    "check_probabilities",
    "quantiles",
    "recalibrate",
]


class _Calibration(Protocol):
    levels: tuple[float, ...]
    pit_cdf: tuple[float, ...]


@dataclass(frozen=True)
class PzGrid:
    """Equal bins over ``[z_min, z_max]``.

    Attributes
    ----------
    z_min, z_max
        Range.
    bins
        Number of bins.
    """

    z_min: float
    z_max: float
    bins: int

    def __post_init__(self) -> None:
        """Check the range and the number of bins."""
        if not (np.isfinite(self.z_min) and np.isfinite(self.z_max)) or self.z_max <= self.z_min:
            raise ValueError(f"p(z) grid needs z_min < z_max, got {self.z_min}, {self.z_max}")
        if int(self.bins) < 1:
            raise ValueError(f"p(z) grid needs >= 1 bin, got {self.bins}")

    @property
    def edges(self) -> npt.NDArray[np.float64]:
        """(bins + 1,) bin edges."""
        return np.linspace(self.z_min, self.z_max, self.bins + 1)

    @property
    def centres(self) -> npt.NDArray[np.float64]:
        """(bins,) bin centres."""
        edges = self.edges
        return 0.5 * (edges[:-1] + edges[1:])

    @property
    def width(self) -> float:
        """Width of a bin."""
        return (self.z_max - self.z_min) / self.bins


def check_probabilities(
    probabilities: npt.ArrayLike, grid: PzGrid, *, name: str = "p(z)"
) -> npt.NDArray[np.float64]:
    """``probabilities`` as (n, bins) float64, refused unless finite, >= 0 and on ``grid``.

    Raises
    ------
    ValueError
        Naming ``name`` and the problem.
    """
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != grid.bins:
        raise ValueError(f"{name} must be (n, {grid.bins}) bin probabilities, got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} has negative or non-finite bin probabilities")
    return values


def cdf_at_edges(probabilities: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(n, bins + 1) cumulative probability at the bin edges (0 first, normalised to end at 1).

    Rows that sum to 0 are refused.
    """
    values = np.asarray(probabilities, dtype=np.float64)
    total = values.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError(f"{int(np.sum(total <= 0))} p(z) rows have no probability")
    cdf = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)
    cdf /= total
    cdf[:, -1] = 1.0
    return np.clip(cdf, 0.0, 1.0)  # sequential sums may pass the total by rounding


def cdf_values(
    probabilities: npt.ArrayLike, grid: PzGrid, z: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Each galaxy's CDF at its own redshift ``z`` (n,): the PIT when ``z`` is the truth.

    The CDF is piecewise linear between bin edges, 0 below ``z_min`` and 1 above ``z_max``.
    """
    cdf = cdf_at_edges(check_probabilities(probabilities, grid))
    z = np.asarray(z, dtype=np.float64)
    if z.shape != (cdf.shape[0],):
        raise ValueError(f"need one redshift per p(z) row ({cdf.shape[0]}), got {z.shape}")
    position = np.clip((z - grid.z_min) / grid.width, 0.0, grid.bins)
    index = np.minimum(np.floor(position).astype(np.int64), grid.bins - 1)
    rows = np.arange(cdf.shape[0])
    low, high = cdf[rows, index], cdf[rows, index + 1]
    return low + (position - index) * (high - low)


def quantiles(
    probabilities: npt.ArrayLike, grid: PzGrid, levels: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """(n, len(levels)) redshifts where each galaxy's CDF reaches ``levels`` (in (0, 1)).

    The inverse of the piecewise-linear CDF: within the first bin whose upper edge reaches the
    level; monotonic in the level.
    """
    cdf = cdf_at_edges(check_probabilities(probabilities, grid))
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim != 1 or np.any((levels <= 0) | (levels >= 1)) or np.any(np.diff(levels) < 0):
        raise ValueError("quantile levels must be a sorted 1-d array inside (0, 1)")
    # index of the bin holding each level: the number of interior edges below it
    index = (cdf[:, None, 1:-1] < levels[None, :, None]).sum(axis=2)
    rows = np.arange(cdf.shape[0])[:, None]
    low, high = cdf[rows, index], cdf[rows, index + 1]
    fraction = np.where(
        high > low, (levels[None, :] - low) / np.where(high > low, high - low, 1), 0
    )
    return grid.z_min + (index + np.clip(fraction, 0.0, 1.0)) * grid.width


def recalibrate(probabilities: npt.ArrayLike, calibration: _Calibration) -> npt.NDArray[np.float64]:
    """Bin probabilities after the map ``C -> G(C)`` of their CDF at the bin edges.

    ``G`` is piecewise linear through ``(calibration.levels, calibration.pit_cdf)``
    (a :class:`~csst_photoz.io.checkpoint_metadata.PzCalibration`); it is monotonic with
    ``G(0) = 0`` and ``G(1) = 1``, so the result is again a p(z) on the same grid.
    """
    cdf = cdf_at_edges(probabilities)
    mapped = np.interp(cdf, calibration.levels, calibration.pit_cdf)
    return np.clip(np.diff(mapped, axis=1), 0.0, None)
