"""A smooth parametric model of a band's total throughput, pinned to published band figures.

The default CSST bands are not tabulated curves: each is this model, solved so that its
half-maximum edges, pivot wavelength and peak throughput equal the figures published for the
CSST design curves. The shape is

    T(lambda) = A * s((lambda - lambda_b) / w_b) * s((lambda_r - lambda) / w_r)
                  * exp(tilt * (lambda - lambda_c) / lambda_c)

with ``s`` the logistic function, ``w = edge_softness * lambda`` at each edge and
``lambda_c = (lambda_b + lambda_r) / 2``. The four free numbers (lambda_b, lambda_r, A, tilt)
are solved from the four figures (A directly from the peak, the other three numerically); the
tilt absorbs the slope of the detector QE, which moves
the pivot of the red bands redwards.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares
from scipy.special import expit

from .bandpass import Bandpass

__all__ = ["band_from_figures", "smooth_throughput"]

_SAMPLING_ANGSTROM = 5.0
_WINGS_IN_WIDTHS = 12.0


def smooth_throughput(
    wavelength_angstrom: NDArray[np.float64],
    *,
    blue_angstrom: float,
    red_angstrom: float,
    amplitude: float,
    tilt: float,
    edge_softness: float,
) -> NDArray[np.float64]:
    """Evaluate the parametric throughput model.

    Parameters
    ----------
    wavelength_angstrom
        Wavelengths [Angstrom].
    blue_angstrom, red_angstrom
        Centres of the blue and red logistic edges [Angstrom].
    amplitude
        Overall scale A.
    tilt
        Exponential slope across the band, per unit fractional wavelength.
    edge_softness
        Logistic width of each edge as a fraction of its wavelength.

    Returns
    -------
    numpy.ndarray
        Throughput at each wavelength.

    """
    wave = np.asarray(wavelength_angstrom, dtype=np.float64)
    centre = 0.5 * (blue_angstrom + red_angstrom)
    blue_edge = expit((wave - blue_angstrom) / (edge_softness * blue_angstrom))
    red_edge = expit((red_angstrom - wave) / (edge_softness * red_angstrom))
    return amplitude * blue_edge * red_edge * np.exp(tilt * (wave - centre) / centre)


def _sample(
    blue: float, red: float, tilt: float, peak: float, edge_softness: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sample the model every 5 A over the band and its wings, scaled to the given peak."""
    lo = blue * (1.0 - _WINGS_IN_WIDTHS * edge_softness)
    hi = red * (1.0 + _WINGS_IN_WIDTHS * edge_softness)
    wave = np.arange(lo, hi + _SAMPLING_ANGSTROM, _SAMPLING_ANGSTROM)
    shape = smooth_throughput(
        wave,
        blue_angstrom=blue,
        red_angstrom=red,
        amplitude=1.0,
        tilt=tilt,
        edge_softness=edge_softness,
    )
    return wave, peak * shape / shape.max()


@lru_cache(maxsize=64)
def _solve(
    blue_half_max: float, red_half_max: float, pivot: float, peak: float, edge_softness: float
) -> tuple[float, float, float]:
    """Solve (blue edge, red edge, tilt) so that the sampled model meets the figures."""

    def residuals(params: NDArray[np.float64]) -> NDArray[np.float64]:
        wave, thr = _sample(*params, peak, edge_softness)
        band = Bandpass("fit", wave, thr, source="model fit")
        blue, red = band.half_max_edges
        return np.array(
            [
                (blue - blue_half_max) / blue_half_max,
                (red - red_half_max) / red_half_max,
                (band.pivot_wavelength - pivot) / pivot,
            ]
        )

    # The red side of the QE-limited bands is a slope, not an edge: start from the best point
    # of a coarse grid over (red edge, tilt) so the solver does not stall on a flat-top guess.
    grid = [
        np.array([blue_half_max, red_half_max * (1.0 + offset), tilt])
        for offset in np.linspace(0.0, 0.12, 13)
        for tilt in np.linspace(-20.0, 5.0, 26)
    ]
    start = min(grid, key=lambda params: float(np.sum(residuals(params) ** 2)))
    fit = least_squares(
        residuals,
        start,
        x_scale=np.array([blue_half_max * 0.01, red_half_max * 0.01, 0.5]),
        bounds=(
            [0.5 * blue_half_max, 0.5 * red_half_max, -40.0],
            [2.0 * blue_half_max, 2.0 * red_half_max, 40.0],
        ),
        xtol=1e-12,
        ftol=1e-12,
    )
    worst = float(np.max(np.abs(fit.fun)))
    if worst > 5e-4:
        raise ValueError(
            "cannot find a smooth throughput with half-max edges "
            f"{blue_half_max}-{red_half_max} A, pivot {pivot} A and peak {peak}: "
            f"worst relative mismatch {worst:.2e}; the model (logistic edges x exponential "
            "tilt) reaches pivots from about 0.6% bluer than a flat band's upwards; give a "
            "throughput_file for other shapes"
        )
    blue, red, tilt = (float(v) for v in fit.x)
    return blue, red, tilt


def band_from_figures(
    name: str,
    *,
    blue_half_max_angstrom: float,
    red_half_max_angstrom: float,
    pivot_angstrom: float,
    peak_throughput: float,
    edge_softness: float = 0.005,
) -> Bandpass:
    """Build a smooth band whose edges, pivot and peak equal the given figures.

    Parameters
    ----------
    name
        Band name.
    blue_half_max_angstrom, red_half_max_angstrom
        Wavelengths [Angstrom] where the throughput crosses half its peak.
    pivot_angstrom
        Pivot wavelength [Angstrom].
    peak_throughput
        Maximum throughput, in (0, 1].
    edge_softness
        Logistic width of the edges as a fraction of wavelength (0.005: about 25 A at 5000 A;
        at most 0.01, beyond which the half-maximum edges cannot be met).

    Returns
    -------
    Bandpass
        Sampled every 5 A over the band and its wings.

    """
    if not 0 < blue_half_max_angstrom < pivot_angstrom < red_half_max_angstrom:
        raise ValueError(
            f"band {name!r}: need 0 < blue edge < pivot < red edge, got "
            f"{blue_half_max_angstrom}, {pivot_angstrom}, {red_half_max_angstrom}"
        )
    if not 0 < edge_softness <= 0.01:
        raise ValueError(f"band {name!r}: edge_softness must be in (0, 0.01], got {edge_softness}")
    if not 0 < peak_throughput <= 1:
        raise ValueError(f"band {name!r}: peak throughput must be in (0, 1], got {peak_throughput}")
    params = _solve(
        float(blue_half_max_angstrom),
        float(red_half_max_angstrom),
        float(pivot_angstrom),
        float(peak_throughput),
        float(edge_softness),
    )
    wave, thr = _sample(*params, float(peak_throughput), edge_softness)
    keep = thr > 1e-5 * thr.max()
    description = (
        f"smooth model: half-max {blue_half_max_angstrom:g}-{red_half_max_angstrom:g} A, "
        f"pivot {pivot_angstrom:g} A, peak {peak_throughput:g}"
    )
    return Bandpass(name, wave[keep], thr[keep], source=description)
