"""Mean intergalactic-medium transmission of Madau (1995)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["LYMAN_LIMIT_ANGSTROM", "madau_transmission"]

#: Lyman series lines alpha..delta [Angstrom] and their blanketing coefficients (Madau 1995,
#: Table 2 / eq. 15).
LYMAN_SERIES_ANGSTROM = np.array([1215.67, 1025.72, 972.537, 949.743])
LYMAN_SERIES_COEFF = np.array([3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4])
LYMAN_LIMIT_ANGSTROM = 911.75


def madau_transmission(
    wavelength_obs_angstrom: ArrayLike, redshift: ArrayLike
) -> NDArray[np.float64]:
    """Mean IGM transmission exp(-tau_eff) towards a source at ``redshift``.

    Lyman-series line blanketing (Ly alpha to Ly delta, Madau 1995 eq. 15) plus photoelectric
    absorption by Lyman-limit systems in the approximation of Madau (1995), footnote 3.
    Arguments broadcast against each other.

    Parameters
    ----------
    wavelength_obs_angstrom
        Observed-frame wavelengths [Angstrom].
    redshift
        Source redshifts (>= 0).

    Returns
    -------
    numpy.ndarray
        Transmission in [0, 1]; exactly 1 redward of Ly alpha at the source.

    """
    wave = np.asarray(wavelength_obs_angstrom, dtype=np.float64)
    z_em = np.asarray(redshift, dtype=np.float64)
    if np.any(~np.isfinite(z_em)) or np.any(z_em < 0):
        raise ValueError("redshift must be finite and >= 0")
    one_plus_z = 1.0 + z_em
    tau = np.zeros(np.broadcast_shapes(wave.shape, z_em.shape))
    for line, coeff in zip(LYMAN_SERIES_ANGSTROM, LYMAN_SERIES_COEFF, strict=True):
        absorbed = (wave < line * one_plus_z) & (wave > line)
        tau = tau + np.where(absorbed, coeff * (wave / line) ** 3.46, 0.0)
    x_c = np.maximum(wave / LYMAN_LIMIT_ANGSTROM, 1.0)
    photoelectric = (
        0.25 * x_c**3 * (one_plus_z**0.46 - x_c**0.46)
        + 9.4 * x_c**1.5 * (one_plus_z**0.18 - x_c**0.18)
        - 0.7 * x_c**3 * (x_c**-1.32 - one_plus_z**-1.32)
        - 0.023 * (one_plus_z**1.68 - x_c**1.68)
    )
    below_limit = wave < LYMAN_LIMIT_ANGSTROM * one_plus_z
    tau = tau + np.where(below_limit, np.clip(photoelectric, 0.0, None), 0.0)
    return np.exp(-tau)
