"""Point-spread functions of the CSST survey camera as GalSim objects."""

from __future__ import annotations

import galsim
import numpy as np

__all__ = ["csst_psf", "encircled_energy", "encircled_energy_radius"]

_OVERSAMPLING = 8
_STAMP_ARCSEC = 6.0


def csst_psf(
    *,
    wavelength_angstrom: float,
    aperture_diameter_m: float,
    central_obscuration: float,
    jitter_fwhm_arcsec: float,
) -> galsim.GSObject:
    """Optical PSF of one band: the Airy pattern of the aperture convolved with a jitter term.

    Parameters
    ----------
    wavelength_angstrom
        Effective wavelength of the band (the pivot) [Angstrom].
    aperture_diameter_m
        Primary mirror diameter [m].
    central_obscuration
        Linear obscuration fraction (0 for CSST's off-axis design).
    jitter_fwhm_arcsec
        FWHM of the Gaussian that stands for pointing jitter and optical aberrations [arcsec];
        0 gives the pure diffraction limit.

    Returns
    -------
    galsim.GSObject
        Unit flux, angular units of arcsec; the detector pixel is not included.

    """
    airy = galsim.Airy(
        lam=wavelength_angstrom / 10.0,
        diam=aperture_diameter_m,
        obscuration=central_obscuration,
        scale_unit=galsim.arcsec,
    )
    if jitter_fwhm_arcsec == 0:
        return airy
    return galsim.Convolve(airy, galsim.Gaussian(fwhm=jitter_fwhm_arcsec))


def _fine_image(profile: galsim.GSObject, pixel_scale_arcsec: float) -> galsim.Image:
    scale = pixel_scale_arcsec / _OVERSAMPLING
    size = int(np.ceil(_STAMP_ARCSEC / scale)) // 2 * 2
    return profile.drawImage(nx=size, ny=size, scale=scale, method="no_pixel")


def encircled_energy(
    profile: galsim.GSObject, radius_arcsec: float, *, pixel_scale_arcsec: float
) -> float:
    """Share of a unit-flux profile, seen through square pixels, inside a circle of a radius.

    The profile is convolved with the detector pixel and sampled 8 times finer than a pixel;
    flux falling outside the 6" sampling box counts as outside the circle.
    """
    seen = galsim.Convolve(profile, galsim.Pixel(pixel_scale_arcsec))
    image = _fine_image(seen, pixel_scale_arcsec)
    scale = image.scale
    half = image.array.shape[0] / 2.0
    coords = (np.arange(image.array.shape[0]) - half + 0.5) * scale
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    return float(image.array[r2 <= radius_arcsec**2].sum() / profile.flux)


def encircled_energy_radius(
    profile: galsim.GSObject, fraction: float, *, pixel_scale_arcsec: float
) -> float:
    """Radius [arcsec] enclosing ``fraction`` of the optical PSF's flux (no pixel)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    image = _fine_image(profile, pixel_scale_arcsec)
    return float(image.calculateHLR(flux=profile.flux, flux_frac=fraction))
