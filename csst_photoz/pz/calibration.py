"""Recalibration of p(z) on a validation split (Bordoloi, Lilly & Amara 2010).

If the PIT values ``u = C(z_true)`` of held-out galaxies are not uniform, their empirical
cumulative distribution ``G`` maps every galaxy's CDF to a calibrated one, ``C' = G(C)``: the
PIT of the validation galaxies becomes uniform, and, for galaxies like them, the PIT of any
other sample too. `fit_pz_calibration` fits ``G`` at fixed levels (the record a checkpoint
stores); :func:`csst_photoz.pz.grid.recalibrate` applies it. Fit it on the validation split
only: the test split then measures it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import __version__
from ..io.checkpoint_metadata import PzCalibration
from .grid import PzGrid, cdf_values, recalibrate

__all__ = ["DEFAULT_LEVELS", "METHOD", "fit_pz_calibration"]

#: Knots of the map: the validation PIT's quantiles at 0, 0.005, ..., 1.
DEFAULT_LEVELS = 201
#: How the map is fitted (recorded in the checkpoint).
METHOD = "empirical CDF of the validation PIT at its quantiles (Bordoloi et al. 2010)"


def _ks(pit: npt.NDArray[np.float64]) -> float:
    from scipy import stats

    return float(stats.kstest(pit, "uniform").statistic)


def fit_pz_calibration(
    probabilities: npt.ArrayLike,
    grid: PzGrid,
    z_true: npt.ArrayLike,
    *,
    levels: int = DEFAULT_LEVELS,
    split: str = "validation",
    data: str | None = None,
) -> PzCalibration:
    """The map ``G`` that makes the PIT of these galaxies uniform, as a checkpoint record.

    Parameters
    ----------
    probabilities
        (n, bins) uncalibrated bin probabilities on ``grid`` of the validation galaxies.
    grid
        The p(z) grid.
    z_true
        (n,) their true redshifts.
    levels
        Knots of ``G`` (>= 2): the PIT's quantiles at equally spaced probabilities (ties
        merged), so ``G`` follows the PIT where it piles up (the tails of too narrow p(z)).
    split, data
        Recorded with the map.

    Returns
    -------
    PzCalibration
        Knots, values, and the validation PIT's KS distance to uniform before and after.

    Raises
    ------
    ValueError
        With fewer than 10 galaxies, non-finite redshifts, or fewer than 2 levels.
    """
    z_true = np.asarray(z_true, dtype=np.float64)
    if z_true.ndim != 1 or z_true.size < 10 or not np.all(np.isfinite(z_true)):
        raise ValueError(
            f"p(z) calibration needs >= 10 finite true redshifts, got {z_true.size} "
            f"({int(np.sum(~np.isfinite(z_true)))} not finite)"
        )
    if levels < 2:
        raise ValueError(f"p(z) calibration needs >= 2 levels, got {levels}")
    pit = cdf_values(probabilities, grid, z_true)
    # knots at the PIT's own quantiles: G is exact there, wherever the PIT piles up
    cdf = np.linspace(0.0, 1.0, levels)
    knots = np.concatenate([[0.0], np.quantile(pit, cdf[1:-1]), [1.0]])
    keep = np.concatenate([[True], np.diff(knots) > 0])  # ties: the lowest value
    keep[-1] = True
    knots, cdf = knots[keep], cdf[keep]
    if knots[-2] >= 1.0:  # every PIT is 1: drop the tie with the end
        knots, cdf = np.delete(knots, -2), np.delete(cdf, -2)
    record = PzCalibration(
        levels=tuple(knots.tolist()),
        pit_cdf=tuple(cdf.tolist()),
        method=METHOD,
        split=split,
        galaxies=int(z_true.size),
        data=data,
        pit_ks_before=_ks(pit),
        package_version=__version__,
    )
    after = cdf_values(recalibrate(probabilities, record), grid, z_true)
    return record.model_copy(update={"pit_ks_after": _ks(after)})
