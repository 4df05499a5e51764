"""The paper's sample selection: SNR > 10 in g or i in a Kron-like aperture.

Without images, the aperture is modelled from the truth: the PSF-convolved half-light radius
``r_obs = sqrt(r_gal^2 + r_psf^2)`` (circularised, quadrature approximation), a circular
aperture of radius ``KRON_RADIUS_PER_HLR * r_obs`` (1 x the first-moment radius of an
exponential profile, the paper's 1 x Kron aperture) holding ``KRON_ENCLOSED_FRACTION`` of the
flux (the share an exponential profile has inside its first-moment radius). The noise is the
source's Poisson noise plus the background of every pixel in the aperture.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..instrument import aperture_snr

__all__ = [
    "KRON_ENCLOSED_FRACTION",
    "KRON_RADIUS_PER_HLR",
    "kron_like_snr",
    "select_snr",
]

#: First-moment (Kron) radius of an exponential profile in units of its half-light radius.
KRON_RADIUS_PER_HLR = 1.19
#: Flux share of an exponential profile inside its first-moment radius: 1 - 3 exp(-2).
KRON_ENCLOSED_FRACTION = 1.0 - 3.0 * np.exp(-2.0)


def kron_like_snr(
    flux_e: ArrayLike,
    *,
    galaxy_hlr_arcsec: ArrayLike,
    psf_hlr_arcsec: float,
    pixel_scale_arcsec: float,
    background_noise_e: float,
) -> NDArray[np.float64]:
    """Expected SNR of a galaxy's flux in a 1 x Kron-like aperture (see module notes).

    Parameters
    ----------
    flux_e
        Total flux in the band's summed image [e-].
    galaxy_hlr_arcsec
        Circularised half-light radius of the galaxy before the PSF [arcsec].
    psf_hlr_arcsec
        Half-light radius of the band's PSF [arcsec].
    pixel_scale_arcsec
        Pixel size [arcsec].
    background_noise_e
        Background noise per pixel [e-].

    """
    r_obs = np.hypot(np.asarray(galaxy_hlr_arcsec, dtype=np.float64), psf_hlr_arcsec)
    radius_pix = KRON_RADIUS_PER_HLR * r_obs / pixel_scale_arcsec
    n_pixels = np.pi * radius_pix**2
    signal = KRON_ENCLOSED_FRACTION * np.asarray(flux_e, dtype=np.float64)
    return aperture_snr(signal, n_pixels=n_pixels, background_noise_e=background_noise_e)


def select_snr(
    snr_by_band: dict[str, NDArray[np.float64]],
    *,
    bands: tuple[str, ...] = ("g", "i"),
    threshold: float = 10.0,
) -> NDArray[np.bool_]:
    """Galaxies with SNR above ``threshold`` in any of ``bands`` (the paper: g or i, 10)."""
    missing = [band for band in bands if band not in snr_by_band]
    if missing:
        raise KeyError(f"no SNR for selection band(s) {missing}; have {sorted(snr_by_band)}")
    return np.logical_or.reduce([snr_by_band[band] > threshold for band in bands])
