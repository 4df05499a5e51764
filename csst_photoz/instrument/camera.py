"""The CSST survey camera: one immutable object with every figure the project derives from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import astropy.units as u
import galsim
import numpy as np
from astropy.constants import h as planck_h
from astropy.table import QTable
from numpy.typing import ArrayLike, NDArray

from ..constants import AB_ZERO_POINT_NJY
from .bandpass import Bandpass
from .config import InstrumentConfig, load_config
from .noise import background_noise_per_pixel, limiting_signal
from .psf import csst_psf, encircled_energy, encircled_energy_radius
from .throughput_model import band_from_figures

__all__ = ["DEFAULT_DEPTH_APERTURE_ARCSEC", "Instrument"]

#: Radius of the circular aperture used for point-source depths: 3 pixels of 0.075", i.e.
#: 1.5 x the 0.15" 80%-encircled-energy radius of the CSST requirement.
DEFAULT_DEPTH_APERTURE_ARCSEC = 0.225

_AB_ZERO_FLUX = (AB_ZERO_POINT_NJY * u.nJy).to(u.erg / u.s / u.cm**2 / u.Hz)


@dataclass(frozen=True, eq=False)
class Instrument:
    """The CSST survey camera.

    Build it with :meth:`default` (the paper's values), :meth:`from_toml` or from an
    :class:`~csst_photoz.instrument.config.InstrumentConfig`. All per-band figures are methods
    taking a band name; :meth:`per_band` turns any of them into an array in band order, and
    :meth:`summary_table` lists them all with units.

    Parameters
    ----------
    config
        The validated configuration.

    """

    config: InstrumentConfig

    @classmethod
    def default(cls, **overrides: Any) -> Instrument:
        """The CSST camera with the paper's values, optionally overriding keys."""
        return cls(load_config(None, **overrides))

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Instrument:
        """Defaults, overridden by a TOML file, overridden by keywords.

        The file is a project file (its ``[instrument]`` section is read; see
        ``docs/configuration.md``) or an instrument file with the packaged ``csst.toml``'s
        layout (keys at the top level); see :func:`~csst_photoz.instrument.load_config`.
        """
        return cls(load_config(path, **overrides))

    # -- bands -------------------------------------------------------------------------------

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band names in the configured (CSST) order."""
        return tuple(self.config.bands)

    @cached_property
    def bandpasses(self) -> dict[str, Bandpass]:
        """Total-throughput curve of every band."""
        curves = {}
        for name, band in self.config.bands.items():
            if band.throughput_file is not None:
                curves[name] = Bandpass.from_file(band.throughput_file, name=name)
            else:
                assert band.throughput is not None
                curves[name] = band_from_figures(name, **band.throughput.model_dump())
        return curves

    def bandpass(self, band: str) -> Bandpass:
        """Total-throughput curve of one band."""
        self._band(band)
        return self.bandpasses[band]

    def _band(self, band: str) -> Any:
        try:
            return self.config.bands[band]
        except KeyError:
            raise KeyError(
                f"unknown band {band!r}; this instrument has {self.band_names}"
            ) from None

    def per_band(self, figure: Callable[[str], float]) -> NDArray[np.float64]:
        """Evaluate a per-band figure (e.g. ``inst.zero_point_rate``) for every band, in order."""
        return np.array([figure(name) for name in self.band_names], dtype=np.float64)

    # -- photometric calibration --------------------------------------------------------------

    @property
    def collecting_area_cm2(self) -> float:
        """Unobstructed collecting area of the primary [cm^2]."""
        radius = 0.5 * self.config.aperture_diameter_m * u.m
        area = np.pi * radius**2 * (1.0 - self.config.central_obscuration**2)
        return float(area.to_value(u.cm**2))

    def exposure_time(self, band: str) -> float:
        """Total exposure time of the band's summed image [s]."""
        return self.config.exposure_time_s * self._band(band).n_exposures

    def zero_point_rate(self, band: str) -> float:
        """Count rate [e-/s] of an AB = 0 source: the band's AB zero point in e-/s."""
        area = self.collecting_area_cm2 * u.cm**2
        rate = area * _AB_ZERO_FLUX / planck_h * self.bandpass(band).photon_integral
        return float(rate.to_value(1 / u.s))

    def zero_point_mag(self, band: str) -> float:
        """AB magnitude giving 1 e-/s."""
        return float(2.5 * np.log10(self.zero_point_rate(band)))

    def electrons_per_njy(self, band: str) -> float:
        """Electrons in the band's summed image per nJy of source flux density."""
        return self.zero_point_rate(band) * self.exposure_time(band) / AB_ZERO_POINT_NJY

    def mag_to_electrons(self, mag: ArrayLike, band: str) -> NDArray[np.float64]:
        """Electrons in the summed image of a source of AB magnitude ``mag``."""
        rate = self.zero_point_rate(band) * 10.0 ** (-0.4 * np.asarray(mag, dtype=np.float64))
        return rate * self.exposure_time(band)

    def electrons_to_mag(self, electrons: ArrayLike, band: str) -> NDArray[np.float64]:
        """AB magnitude of a source giving ``electrons`` in the summed image (NaN if <= 0)."""
        counts = np.asarray(electrons, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = -2.5 * np.log10(counts / (self.zero_point_rate(band) * self.exposure_time(band)))
        return np.where(counts > 0, mag, np.nan)

    # -- noise -------------------------------------------------------------------------------

    def background_noise(self, band: str) -> float:
        """Background noise per pixel [e-] of the band's summed image (sky, dark, read)."""
        spec = self._band(band)
        return float(
            background_noise_per_pixel(
                sky_e_per_s=spec.sky_e_per_s,
                dark_e_per_s=self.config.dark_current_e_per_s,
                exposure_time_s=self.config.exposure_time_s,
                n_exposures=spec.n_exposures,
                read_noise_e=self.config.read_noise_e,
            )
        )

    # -- PSF and depth -----------------------------------------------------------------------

    def psf(self, band: str) -> galsim.GSObject:
        """The band's optical PSF (Airy at the pivot wavelength convolved with jitter)."""
        return csst_psf(
            wavelength_angstrom=self.bandpass(band).pivot_wavelength,
            aperture_diameter_m=self.config.aperture_diameter_m,
            central_obscuration=self.config.central_obscuration,
            jitter_fwhm_arcsec=self.config.psf_jitter_fwhm_arcsec,
        )

    def psf_ee_radius(self, band: str, fraction: float = 0.8) -> float:
        """Radius [arcsec] enclosing ``fraction`` of the band's optical PSF."""
        return encircled_energy_radius(
            self.psf(band), fraction, pixel_scale_arcsec=self.config.pixel_scale_arcsec
        )

    def point_source_depth(
        self,
        band: str,
        *,
        nsigma: float = 5.0,
        aperture_radius_arcsec: float = DEFAULT_DEPTH_APERTURE_ARCSEC,
    ) -> float:
        """AB magnitude of a point source detected at ``nsigma`` in a circular aperture.

        The aperture holds the PSF's (pixel-convolved) encircled energy at that radius; its
        noise is the source's Poisson noise plus ``pi r^2 / pixel^2`` pixels of background.
        """
        scale = self.config.pixel_scale_arcsec
        n_pixels = np.pi * aperture_radius_arcsec**2 / scale**2
        fraction = encircled_energy(
            self.psf(band), aperture_radius_arcsec, pixel_scale_arcsec=scale
        )
        signal = limiting_signal(
            nsigma, n_pixels=n_pixels, background_noise_e=self.background_noise(band)
        )
        return float(self.electrons_to_mag(signal / fraction, band))

    # -- report ------------------------------------------------------------------------------

    def summary_table(self) -> QTable:
        """Every derived per-band figure, one row per band, with units."""
        table = QTable()
        table["band"] = list(self.band_names)
        table["pivot"] = self.per_band(lambda b: self.bandpasses[b].pivot_wavelength) * u.AA
        table["peak_throughput"] = self.per_band(lambda b: self.bandpasses[b].peak_throughput)
        table["exposure_time"] = self.per_band(self.exposure_time) * u.s
        table["zero_point_rate"] = self.per_band(self.zero_point_rate) * u.electron / u.s
        table["zero_point_mag"] = self.per_band(self.zero_point_mag) * u.ABmag
        table["background_noise"] = self.per_band(self.background_noise) * u.electron
        table["psf_r80"] = self.per_band(self.psf_ee_radius) * u.arcsec
        table["depth_5sigma"] = self.per_band(self.point_source_depth) * u.ABmag
        return table
