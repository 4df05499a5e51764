"""Dust attenuation: the Calzetti et al. (2000) starburst law."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["CALZETTI_RV", "calzetti_k", "dust_transmission"]

#: Total-to-selective attenuation R_V of the Calzetti et al. (2000) law.
CALZETTI_RV = 4.05

_BLUE_LIMIT_UM = 0.12
_BREAK_UM = 0.63


def _uv_optical(inv_um: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2.659 * (-2.156 + 1.509 * inv_um - 0.198 * inv_um**2 + 0.011 * inv_um**3) + CALZETTI_RV


def _near_ir(inv_um: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2.659 * (-1.857 + 1.040 * inv_um) + CALZETTI_RV


def calzetti_k(wavelength_angstrom: ArrayLike) -> NDArray[np.float64]:
    """Calzetti et al. (2000) attenuation curve k(lambda) = A(lambda) / E(B-V)_star.

    Eq. (4) of Calzetti et al. (2000) between 0.12 and 2.2 um. Blueward of 0.12 um (reached
    by the NUV band at z > 1) the curve continues linearly in 1/lambda with the slope it has
    at 0.12 um; redward of 2.2 um it continues its own linear form, clipped at zero.

    Parameters
    ----------
    wavelength_angstrom
        Rest-frame wavelengths [Angstrom].

    Returns
    -------
    numpy.ndarray
        k(lambda), dimensionless.

    """
    wave_um = np.asarray(wavelength_angstrom, dtype=np.float64) * 1e-4
    inv = 1.0 / wave_um
    inv_limit = 1.0 / _BLUE_LIMIT_UM
    slope = 2.659 * (1.509 - 2 * 0.198 * inv_limit + 3 * 0.011 * inv_limit**2)
    far_uv = _uv_optical(np.asarray(inv_limit)) + slope * (inv - inv_limit)
    k = np.where(
        wave_um < _BLUE_LIMIT_UM,
        far_uv,
        np.where(wave_um < _BREAK_UM, _uv_optical(inv), _near_ir(inv)),
    )
    return np.clip(k, 0.0, None)


def dust_transmission(wavelength_angstrom: ArrayLike, ebv: ArrayLike) -> NDArray[np.float64]:
    """Fraction of light transmitted, ``10**(-0.4 k(lambda) E(B-V))`` (broadcasting)."""
    return 10.0 ** (-0.4 * calzetti_k(wavelength_angstrom) * np.asarray(ebv, dtype=np.float64))
