"""Per-galaxy summaries of a gridded p(z): mode, median, mean, standard deviation and odds.

The catalogue's ``z_<m>_mode``, ``_median``, ``_mean``, ``_std`` and ``_odds`` columns
(:mod:`csst_photoz.pz.columns`). The p(z) is the bin-probability form of
:mod:`csst_photoz.pz.grid` (uniform within a bin).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .grid import PzGrid, cdf_values, check_probabilities, quantiles

__all__ = ["ODDS_HALF_WIDTH", "pz_odds", "pz_summaries"]

#: Half-width of the odds window, in units of ``1 + z_mode`` (Benitez 2000's odds with the
#: outlier-like window of the issue: ``|z - z_mode| < 0.06 (1 + z_mode)``).
ODDS_HALF_WIDTH = 0.06


def pz_odds(
    probabilities: npt.ArrayLike,
    grid: PzGrid,
    *,
    centre: npt.ArrayLike,
    half_width: float = ODDS_HALF_WIDTH,
) -> npt.NDArray[np.float64]:
    """Probability within ``centre +- half_width x (1 + centre)`` of each galaxy.

    Parameters
    ----------
    probabilities
        (n, bins) bin probabilities on ``grid``.
    grid
        The p(z) grid.
    centre
        (n,) window centres (the mode for the catalogue's odds).
    half_width
        Half-width in units of ``1 + centre``.
    """
    centre = np.asarray(centre, dtype=np.float64)
    delta = half_width * (1.0 + centre)
    return cdf_values(probabilities, grid, centre + delta) - cdf_values(
        probabilities, grid, centre - delta
    )


def pz_summaries(probabilities: npt.ArrayLike, grid: PzGrid) -> dict[str, npt.NDArray[np.float64]]:
    """Mode, median, mean, standard deviation and odds of every galaxy's p(z).

    Parameters
    ----------
    probabilities
        (n, bins) bin probabilities on ``grid`` (rows are normalised here).
    grid
        The p(z) grid.

    Returns
    -------
    dict
        ``mode`` (centre of the most probable bin), ``median`` (CDF = 1/2), ``mean``, ``std``
        (of the piecewise-uniform density: bin variance ``width**2 / 12`` included) and ``odds``
        (`pz_odds` around the mode), each (n,) float64.
    """
    values = check_probabilities(probabilities, grid)
    total = values.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError(f"{int(np.sum(total <= 0))} p(z) rows have no probability")
    values = values / total
    centres = grid.centres
    mode = centres[np.argmax(values, axis=1)]
    mean = values @ centres
    variance = values @ centres**2 - mean**2 + grid.width**2 / 12.0
    return {
        "mode": mode,
        "median": quantiles(values, grid, [0.5])[:, 0],
        "mean": mean,
        "std": np.sqrt(np.clip(variance, 0.0, None)),
        "odds": pz_odds(values, grid, centre=mode),
    }
