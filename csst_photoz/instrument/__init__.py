"""The CSST survey camera: bands, zero points, noise, PSFs and depths.

The one source of truth for the telescope. ``Instrument.default()`` reproduces the setup of
Zhou et al. 2022; every value can be overridden from a TOML file or by keyword.
"""

from .bandpass import Bandpass
from .camera import DEFAULT_DEPTH_APERTURE_ARCSEC, Instrument
from .config import (
    CSST_BAND_ORDER,
    BandConfig,
    InstrumentConfig,
    ThroughputFigures,
    default_config_path,
    load_config,
)
from .noise import aperture_snr, background_noise_per_pixel, limiting_signal
from .psf import csst_psf, encircled_energy, encircled_energy_radius
from .throughput_model import band_from_figures, smooth_throughput

#: 5-sigma point-source depths quoted by Zhou et al. 2022 (Table 1), NUV..y [AB].
PAPER_DEPTHS_5SIGMA: dict[str, float] = {
    "NUV": 25.4,
    "u": 25.4,
    "g": 26.3,
    "r": 26.0,
    "i": 25.9,
    "z": 25.2,
    "y": 24.4,
}
#: Background noise per pixel quoted by Zhou et al. 2022 (Table 1), NUV..y [e-].
PAPER_BACKGROUND_NOISE: dict[str, float] = {
    "NUV": 10.65,
    "u": 7.84,
    "g": 9.93,
    "r": 10.59,
    "i": 10.59,
    "z": 9.56,
    "y": 11.53,
}

__all__ = [
    "CSST_BAND_ORDER",
    "DEFAULT_DEPTH_APERTURE_ARCSEC",
    "PAPER_BACKGROUND_NOISE",
    "PAPER_DEPTHS_5SIGMA",
    "BandConfig",
    "Bandpass",
    "Instrument",
    "InstrumentConfig",
    "ThroughputFigures",
    "aperture_snr",
    "background_noise_per_pixel",
    "band_from_figures",
    "csst_psf",
    "default_config_path",
    "encircled_energy",
    "encircled_energy_radius",
    "limiting_signal",
    "load_config",
    "smooth_throughput",
]
