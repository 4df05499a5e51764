"""Detector effects on rendered images: noise, cosmic rays, hot pixels and saturation.

Pure functions of arrays and a random generator.

Images are background-subtracted electrons summed over a band's exposures (the paper's unit):
the expected sky + dark level is added, the total is Poisson-sampled, read noise of every
exposure is added as a Gaussian, and the expected level is subtracted again. The variance plane
is the model's expectation, ``sky_dark + n_exp * read_noise^2 + max(signal, 0)``, so that its
background part equals the paper's noise per pixel squared.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..instrument import Instrument
from ..tile import MaskBit

__all__ = ["add_cosmic_rays", "add_hot_pixels", "add_noise", "apply_saturation", "noise_figures"]

_ROWS_PER_BLOCK = 512  # bounds the float64 temporaries of a 9k-wide band to ~40 MB


def noise_figures(instrument: Instrument) -> list[dict[str, float]]:
    """Per band, the keyword arguments of :func:`add_noise` from the instrument model."""
    figures = []
    for band in instrument.band_names:
        spec = instrument.config.bands[band]
        figures.append(
            {
                "sky_dark_e": (spec.sky_e_per_s + instrument.config.dark_current_e_per_s)
                * instrument.exposure_time(band),
                "read_noise_e": instrument.config.read_noise_e,
                "n_exposures": spec.n_exposures,
            }
        )
    return figures


def add_noise(
    signal: NDArray[np.float32],
    rng: np.random.Generator | None,
    *,
    sky_dark_e: float,
    read_noise_e: float,
    n_exposures: int,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Noisy background-subtracted image and its variance for one band.

    Parameters
    ----------
    signal
        Noiseless source electrons, 2-D float32.
    rng
        Random generator; ``None`` returns the noiseless signal with its expected variance.
    sky_dark_e
        Expected sky + dark electrons per pixel over all exposures.
    read_noise_e
        Read noise per pixel per exposure [e-].
    n_exposures
        Number of exposures summed.

    Returns
    -------
    image, variance
        float32 arrays of ``signal``'s shape.
    """
    if signal.ndim != 2:
        raise ValueError(f"signal must be 2-D, got shape {signal.shape}")
    read_variance = n_exposures * read_noise_e**2
    variance = (np.clip(signal, 0.0, None) + np.float32(sky_dark_e + read_variance)).astype(
        np.float32
    )
    if rng is None:
        return signal.astype(np.float32, copy=True), variance
    image = np.empty_like(signal, dtype=np.float32)
    for start in range(0, signal.shape[0], _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        expected = np.clip(signal[rows].astype(np.float64), 0.0, None) + sky_dark_e
        counts = rng.poisson(expected).astype(np.float64)
        counts += rng.normal(0.0, np.sqrt(read_variance), size=counts.shape)
        image[rows] = counts - sky_dark_e + np.minimum(signal[rows], 0.0)
    return image, variance


def add_cosmic_rays(
    image: NDArray[np.float32],
    mask: NDArray[np.uint16],
    rng: np.random.Generator,
    *,
    hits: int,
    electrons_range: tuple[float, float] = (500.0, 5000.0),
    max_length: int = 8,
) -> int:
    """Add ``hits`` cosmic-ray tracks (short random lines of pixels) in place and flag them.

    Returns
    -------
    int
        The number of pixels hit.
    """
    ny, nx = image.shape
    hit_pixels = 0
    for _ in range(hits):
        length = int(rng.integers(1, max_length + 1))
        angle = rng.uniform(0.0, np.pi)
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        steps = np.arange(length)
        xs = np.clip((x0 + steps * np.cos(angle)).astype(int), 0, nx - 1)
        ys = np.clip((y0 + steps * np.sin(angle)).astype(int), 0, ny - 1)
        image[ys, xs] += np.float32(rng.uniform(*electrons_range))
        mask[ys, xs] |= np.uint16(MaskBit.COSMIC_RAY)
        hit_pixels += length
    return hit_pixels


def add_hot_pixels(
    image: NDArray[np.float32],
    mask: NDArray[np.uint16],
    rng: np.random.Generator,
    *,
    fraction: float,
    electrons: float = 2000.0,
) -> int:
    """Make a random ``fraction`` of pixels hot (``electrons`` added) in place and flag them."""
    n_hot = int(rng.binomial(image.size, fraction))
    flat = rng.choice(image.size, size=n_hot, replace=False)
    ys, xs = np.unravel_index(flat, image.shape)
    image[ys, xs] += np.float32(electrons)
    mask[ys, xs] |= np.uint16(MaskBit.HOT_PIXEL)
    return n_hot


def apply_saturation(
    image: NDArray[np.float32], mask: NDArray[np.uint16], *, full_well_e: float
) -> int:
    """Clip pixels above ``full_well_e`` in place and flag them ``SATURATED``."""
    saturated = image > full_well_e
    image[saturated] = np.float32(full_well_e)
    mask[saturated] |= np.uint16(MaskBit.SATURATED)
    return int(saturated.sum())
