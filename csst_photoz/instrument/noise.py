"""Detector and sky noise figures: pure functions of the instrument's numbers."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["aperture_snr", "background_noise_per_pixel", "limiting_signal"]


def background_noise_per_pixel(
    *,
    sky_e_per_s: ArrayLike,
    dark_e_per_s: ArrayLike,
    exposure_time_s: ArrayLike,
    n_exposures: ArrayLike,
    read_noise_e: ArrayLike,
) -> NDArray[np.float64]:
    """Background noise per pixel [e-] of an image summed over ``n_exposures`` exposures.

    ``sqrt((B_sky + dark) * t * N + RN**2 * N)`` (Zhou et al. 2022, eq. 1): Poisson noise of
    sky and dark current plus the read noise of every exposure.
    """
    sky = np.asarray(sky_e_per_s, dtype=np.float64)
    n_exp = np.asarray(n_exposures, dtype=np.float64)
    return np.sqrt(
        (sky + np.asarray(dark_e_per_s)) * np.asarray(exposure_time_s) * n_exp
        + np.asarray(read_noise_e, dtype=np.float64) ** 2 * n_exp
    )


def aperture_snr(
    signal_e: ArrayLike, *, n_pixels: ArrayLike, background_noise_e: ArrayLike
) -> NDArray[np.float64]:
    """Signal-to-noise of ``signal_e`` electrons in an aperture of ``n_pixels`` pixels.

    ``S / sqrt(S + n_pix * sigma_bg**2)``: source Poisson noise plus the background of every
    pixel in the aperture. Negative signals give negative SNRs (the source term is clipped at 0).
    """
    signal = np.asarray(signal_e, dtype=np.float64)
    variance = (
        np.clip(signal, 0.0, None)
        + np.asarray(n_pixels) * np.asarray(background_noise_e, dtype=np.float64) ** 2
    )
    return signal / np.sqrt(variance)


def limiting_signal(
    nsigma: ArrayLike, *, n_pixels: ArrayLike, background_noise_e: ArrayLike
) -> NDArray[np.float64]:
    """Signal [e-] in the aperture that reaches ``nsigma``: the root of ``aperture_snr = nsigma``.

    Solves ``S**2 = n**2 (S + n_pix sigma**2)`` for the positive S.
    """
    n2 = np.asarray(nsigma, dtype=np.float64) ** 2
    background_variance = np.asarray(n_pixels) * np.asarray(background_noise_e) ** 2
    return 0.5 * (n2 + np.sqrt(n2 * n2 + 4.0 * n2 * background_variance))
