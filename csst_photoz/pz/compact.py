"""The catalogue's compact p(z): 100 quantiles as uint16, 200 bytes per galaxy per model.

Each galaxy's p(z) is kept as its redshifts at the fixed cumulative levels `QUANTILE_LEVELS`
(0.005, 0.015, ..., 0.995), each stored as ``round(z / Z_STEP)`` in a uint16 (`Z_STEP` = 1e-4:
0 <= z <= 6.5535 at a resolution far below any photo-z width): 100 x 2 = 200 bytes. The form
does not depend on the network's grid. `dense_pz` turns it back into bin probabilities on
*any* grid: the CDF is piecewise linear through the quantiles, and each tail (0.5 % of the
probability) continues the density of its neighbouring interval until it is used up.
:func:`csst_photoz.pz.qp_io.to_qp_ensemble` makes a ``qp.Ensemble`` of it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .grid import PzGrid, check_probabilities, quantiles

__all__ = [
    "BYTES_PER_GALAXY",
    "CODE_DTYPE",
    "QUANTILE_LEVELS",
    "Z_STEP",
    "decode_quantiles",
    "dense_pz",
    "encode_pz",
]

#: Cumulative levels of the stored quantiles: 0.005, 0.015, ..., 0.995.
QUANTILE_LEVELS = (np.arange(100) + 0.5) / 100.0
#: Redshift of one code unit.
Z_STEP = 1e-4
#: Storage type of one quantile.
CODE_DTYPE = np.uint16
#: Bytes of the compact p(z) of one galaxy.
BYTES_PER_GALAXY = QUANTILE_LEVELS.size * np.dtype(CODE_DTYPE).itemsize
_MAX_CODE = np.iinfo(CODE_DTYPE).max


def encode_pz(probabilities: npt.ArrayLike, grid: PzGrid) -> npt.NDArray[np.uint16]:
    """(n, 100) uint16 codes of the quantiles of bin probabilities on ``grid``.

    Raises
    ------
    ValueError
        If the grid reaches beyond ``65535 x Z_STEP``, or the probabilities are invalid.
    """
    if grid.z_min < 0 or grid.z_max > _MAX_CODE * Z_STEP:
        raise ValueError(
            f"the compact p(z) holds 0 <= z <= {_MAX_CODE * Z_STEP}; the grid spans "
            f"[{grid.z_min}, {grid.z_max}]"
        )
    values = check_probabilities(probabilities, grid)
    z = quantiles(values, grid, QUANTILE_LEVELS)
    return np.clip(np.rint(z / Z_STEP), 0, _MAX_CODE).astype(CODE_DTYPE)


def decode_quantiles(codes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(n, 100) quantile redshifts of (n, 100) codes (refused if another shape)."""
    values = np.asarray(codes)
    if values.ndim != 2 or values.shape[1] != QUANTILE_LEVELS.size:
        raise ValueError(
            f"a compact p(z) column holds {QUANTILE_LEVELS.size} quantile codes per galaxy, "
            f"got shape {values.shape}"
        )
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"compact p(z) codes must be integers, got {values.dtype}")
    return values.astype(np.float64) * Z_STEP


def _knots(z: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """CDF knots of each row: the quantiles (ties spread by 1e-9) and the two tail ends."""
    levels = QUANTILE_LEVELS
    z = np.maximum.accumulate(z, axis=1) + 1e-9 * np.arange(levels.size)
    first = z[:, 1] - z[:, 0]
    last = z[:, -1] - z[:, -2]
    tail = levels[0] / (levels[1] - levels[0])  # the tail's width in neighbouring intervals
    low = z[:, :1] - tail * first[:, None]
    high = z[:, -1:] + tail * last[:, None]
    knots = np.concatenate([low, z, high], axis=1)
    cdf = np.concatenate([[0.0], levels, [1.0]])
    return knots, cdf


def dense_pz(codes: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bin probabilities on the bins between ``edges`` from compact codes.

    Parameters
    ----------
    codes
        (n, 100) compact p(z) (`encode_pz`).
    edges
        Increasing bin edges of any grid (>= 2).

    Returns
    -------
    numpy.ndarray
        (n, len(edges) - 1) probabilities; probability outside the edges is dropped and each
        row renormalised (a row with none inside is all zero).
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be an increasing 1-d array of at least 2 values")
    knots, cdf = _knots(decode_quantiles(codes))
    mass = np.empty((knots.shape[0], edges.size - 1))
    for row, x in enumerate(knots):
        mass[row] = np.diff(np.interp(edges, x, cdf))
    total = mass.sum(axis=1, keepdims=True)
    return np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
