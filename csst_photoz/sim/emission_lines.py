"""Nebular emission lines scaled with star formation.

The [OII] 3727 luminosity follows the star-formation rate through the (dust-free) 2300 A
continuum: Kennicutt (1998) gives SFR = 1.4e-28 L_nu(UV) = 1.4e-41 L([OII]) (cgs), i.e.
L([OII]) = 1e13 Hz x L_nu(2300 A) = 17.6 A x L_lambda(2300 A). The other lines follow [OII]
with the ratios of Ilbert et al. (2009, ApJ 690, 1236, sect. 2.3): Ly alpha 2, H beta 0.28,
[OIII] 5007 0.36, H alpha 1.77. Lines are attenuated by nebular dust,
E(B-V)_gas = E(B-V)_star / 0.44 (Calzetti et al. 2000).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .dust import dust_transmission

__all__ = [
    "LINE_NAMES",
    "LINE_RATIOS_TO_OII",
    "LINE_WAVELENGTHS_ANGSTROM",
    "OII_PER_UV_CONTINUUM_ANGSTROM",
    "UV_REFERENCE_ANGSTROM",
    "line_fluxes",
]

LINE_NAMES: tuple[str, ...] = ("Lya", "OII", "Hbeta", "OIII", "Halpha")
LINE_WAVELENGTHS_ANGSTROM = np.array([1215.67, 3727.4, 4862.7, 5008.2, 6564.6])
LINE_RATIOS_TO_OII = np.array([2.0, 1.0, 0.28, 0.36, 1.77])
OII_PER_UV_CONTINUUM_ANGSTROM = 17.6
UV_REFERENCE_ANGSTROM = 2300.0
NEBULAR_TO_STELLAR_EBV = 1.0 / 0.44


def line_fluxes(
    uv_continuum: ArrayLike, star_forming_weight: ArrayLike, ebv: ArrayLike
) -> NDArray[np.float64]:
    """Rest-frame integrated line fluxes, in the units of ``uv_continuum`` x Angstrom.

    Parameters
    ----------
    uv_continuum
        Dust-free rest-frame f_lambda at 2300 A, shape (n,).
    star_forming_weight
        Share of the UV continuum that comes from star formation, in [0, 1], shape (n,).
    ebv
        Stellar E(B-V), shape (n,).

    Returns
    -------
    numpy.ndarray
        Shape (n, n_lines), lines in the order of ``LINE_WAVELENGTHS_ANGSTROM``.

    """
    oii = (
        OII_PER_UV_CONTINUUM_ANGSTROM
        * np.asarray(uv_continuum, dtype=np.float64)
        * np.asarray(star_forming_weight, dtype=np.float64)
    )
    gas_ebv = np.asarray(ebv, dtype=np.float64)[:, None] * NEBULAR_TO_STELLAR_EBV
    attenuation = dust_transmission(LINE_WAVELENGTHS_ANGSTROM[None, :], gas_ebv)
    return oii[:, None] * LINE_RATIOS_TO_OII[None, :] * attenuation
