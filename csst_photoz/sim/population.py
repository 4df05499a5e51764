"""A COSMOS-like galaxy population: magnitudes, types, redshifts, dust and morphology.

Joint distribution of i-band magnitude, spectral class and redshift from the Bayesian
photo-z priors of Benitez (2000, ApJ 536, 571; Table 1): p(T|m) and
p(z|T,m) ∝ z^alpha exp(-(z / z_m(m))^alpha), z_m = z_0 + k_m (m - 20), truncated at z_max.
Number counts dN/dm ∝ 10^(slope m) (slope 0.30, about the faint i-band slope of deep counts).
Sizes: R_e = R_0 (L/L*)^beta (1+z)^-gamma with lognormal scatter (disk: R_0 = 6.5 kpc, beta =
0.25, gamma = 0.75; bulge: 3 kpc, 0.5, 1.0), set so the median half-light radius of the sample
falls from about 0.5" at i = 21-22 to 0.2" at i = 25-26, the trend of HST/ACS sizes in COSMOS.
Within a class the continuous type is uniform over the class's templates; bulge and disk each
get their own type (the bulge older), so galaxies have real colour gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.cosmology import Planck18
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import gammainc, gammaincinv

__all__ = [
    "BPZ_CLASSES",
    "Population",
    "PopulationConfig",
    "bpz_class_probabilities",
    "sample_population",
    "surface_density",
]

#: Benitez (2000) classes and their prior parameters (m0 = 20, Table 1 of the paper).
BPZ_CLASSES: tuple[str, ...] = ("E/S0", "Sbc/Scd", "Irr")
_BPZ_FRACTION_AT_20 = np.array([0.35, 0.50])
_BPZ_FRACTION_SLOPE = np.array([0.147, 0.450])
_BPZ_ALPHA = np.array([2.46, 1.81, 0.91])
_BPZ_Z0 = np.array([0.431, 0.390, 0.063])
_BPZ_KM = np.array([0.091, 0.0636, 0.123])
_BPZ_M0 = 20.0

#: Range of the continuous type t (0 = E, 1 = Sbc, 2 = Scd, 3 = Im) of each class.
_CLASS_TYPE_RANGE = np.array([[0.0, 0.5], [0.5, 2.5], [2.5, 3.0]])


class PopulationConfig(BaseModel):
    """Parameters of the mock population; the defaults give a COSMOS-like sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mag_min: float = Field(18.0, description="brightest reference-band AB magnitude")
    mag_max: float = Field(27.5, description="faintest reference-band AB magnitude")
    counts_slope: float = Field(0.30, gt=0, description="d log10 N / d m of the counts")
    counts_at_24: float = Field(
        6.3e4, gt=0, description="dN/dm at m = 24 [deg^-2 mag^-1] (about 1.8e5 deg^-2 to 25)"
    )
    z_max: float = Field(4.0, gt=0, description="redshift truncation")
    ebv_scale: tuple[float, float, float] = Field(
        (0.02, 0.10, 0.08), description="half-normal width of E(B-V) per BPZ class"
    )
    bulge_type_offset: float = Field(1.0, ge=0, description="bulge type = t - offset")
    disk_type_offset: float = Field(0.5, ge=0, description="disk type = t + offset x B/T")
    l_star_abs_mag: float = Field(-21.5, description="M* in the reference band (AB)")
    disk_re_kpc: float = Field(6.5, gt=0, description="disk half-light radius of L* at z=0")
    bulge_re_kpc: float = Field(3.0, gt=0, description="bulge half-light radius of L* at z=0")
    size_scatter_dex: float = Field(0.2, ge=0)
    disk_thickness: float = Field(0.15, gt=0, lt=1, description="intrinsic edge-on axis ratio")


@dataclass(frozen=True)
class Population:
    """Intrinsic properties of a galaxy sample, one array entry per galaxy."""

    mag_ref: NDArray[np.float64]
    bpz_class: NDArray[np.int8]
    spectral_type: NDArray[np.float64]
    redshift: NDArray[np.float64]
    ebv: NDArray[np.float64]
    bulge_fraction: NDArray[np.float64]
    bulge_type: NDArray[np.float64]
    disk_type: NDArray[np.float64]
    disk_star_forming: NDArray[np.float64]
    bulge_hlr_arcsec: NDArray[np.float64]
    disk_hlr_arcsec: NDArray[np.float64]
    bulge_axis_ratio: NDArray[np.float64]
    disk_axis_ratio: NDArray[np.float64]
    position_angle_deg: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.redshift.size)


def surface_density(config: PopulationConfig) -> float:
    """Galaxies per square degree between ``mag_min`` and ``mag_max``."""
    a = config.counts_slope * np.log(10.0)
    scale = config.counts_at_24 / a
    return float(
        scale * (np.exp(a * (config.mag_max - 24.0)) - np.exp(a * (config.mag_min - 24.0)))
    )


def bpz_class_probabilities(mag: NDArray[np.float64]) -> NDArray[np.float64]:
    """p(T|m) of Benitez (2000) for the classes E/S0, Sbc/Scd, Irr; shape (n, 3).

    Magnitudes brighter than m0 = 20 use the m0 fractions.
    """
    dm = np.clip(np.asarray(mag, dtype=np.float64) - _BPZ_M0, 0.0, None)
    early = _BPZ_FRACTION_AT_20[None, :] * np.exp(-_BPZ_FRACTION_SLOPE[None, :] * dm[:, None])
    return np.column_stack([early, 1.0 - early.sum(axis=1)])


def _sample_magnitudes(n: int, rng: np.random.Generator, cfg: PopulationConfig) -> NDArray:
    # inverse CDF of dN/dm ∝ 10^(a m) on [m_min, m_max]
    a = cfg.counts_slope * np.log(10.0)
    lo, hi = np.exp(a * cfg.mag_min), np.exp(a * cfg.mag_max)
    return np.log(lo + rng.uniform(size=n) * (hi - lo)) / a


def _sample_redshifts(
    bpz_class: NDArray, mag: NDArray, rng: np.random.Generator, z_max: float
) -> NDArray:
    # y = (z / z_m)^alpha is Gamma(1 + 1/alpha)-distributed; truncate at z_max exactly.
    alpha = _BPZ_ALPHA[bpz_class]
    z_m = _BPZ_Z0[bpz_class] + _BPZ_KM[bpz_class] * (np.maximum(mag, _BPZ_M0) - _BPZ_M0)
    shape = 1.0 + 1.0 / alpha
    y_max = (z_max / z_m) ** alpha
    u = rng.uniform(size=mag.size) * gammainc(shape, y_max)
    return z_m * gammaincinv(shape, u) ** (1.0 / alpha)


def _sizes_arcsec(
    mag: NDArray, z: NDArray, rng: np.random.Generator, cfg: PopulationConfig
) -> tuple[NDArray, NDArray]:
    """Half-light radii from a luminosity-size-redshift relation, lognormal scatter."""
    z_grid = np.linspace(0.0, cfg.z_max, 801)
    z_grid[0] = 1e-3
    distmod = np.interp(z, z_grid, Planck18.distmod(z_grid).value)
    kpc_per_arcsec = np.interp(z, z_grid, Planck18.kpc_proper_per_arcmin(z_grid).value / 60.0)
    abs_mag = mag - distmod + 2.5 * np.log10(1.0 + z)  # flat-f_nu K-correction
    luminosity = np.clip(10.0 ** (-0.4 * (abs_mag - cfg.l_star_abs_mag)), 1e-3, 10.0)
    scatter = 10.0 ** (cfg.size_scatter_dex * rng.standard_normal((2, mag.size)))
    disk_kpc = cfg.disk_re_kpc * luminosity**0.25 * (1.0 + z) ** -0.75 * scatter[0]
    bulge_kpc = cfg.bulge_re_kpc * luminosity**0.5 * (1.0 + z) ** -1.0 * scatter[1]
    disk = np.clip(disk_kpc / kpc_per_arcsec, 0.02, 5.0)
    bulge = np.clip(bulge_kpc / kpc_per_arcsec, 0.01, 3.0)
    return bulge, disk


def sample_population(
    n: int, rng: np.random.Generator, config: PopulationConfig | None = None
) -> Population:
    """Draw ``n`` galaxies.

    Parameters
    ----------
    n
        Number of galaxies (>= 0).
    rng
        Source of randomness; the result depends only on its state and the config.
    config
        Population parameters (defaults: COSMOS-like, to i = 27.5 and z = 4).

    Returns
    -------
    Population

    """
    if n < 0:
        raise ValueError(f"number of galaxies must be >= 0, got {n}")
    cfg = config if config is not None else PopulationConfig()
    if cfg.mag_max <= cfg.mag_min:
        raise ValueError(f"mag_max ({cfg.mag_max}) must exceed mag_min ({cfg.mag_min})")
    mag = _sample_magnitudes(n, rng, cfg)
    cumulative = np.cumsum(bpz_class_probabilities(mag), axis=1)
    bpz_class = (rng.uniform(size=(n, 1)) > cumulative).sum(axis=1).astype(np.int8)
    type_lo, type_hi = _CLASS_TYPE_RANGE[bpz_class].T
    spectral_type = type_lo + rng.uniform(size=n) * (type_hi - type_lo)
    redshift = _sample_redshifts(bpz_class, mag, rng, cfg.z_max)
    ebv = np.abs(rng.standard_normal(n)) * np.asarray(cfg.ebv_scale)[bpz_class]

    bulge_fraction = np.clip(0.8 - 0.3 * spectral_type + 0.1 * rng.standard_normal(n), 0.0, 1.0)
    bulge_type = np.clip(spectral_type - cfg.bulge_type_offset, 0.0, 3.0)
    disk_type = np.clip(spectral_type + cfg.disk_type_offset * bulge_fraction, 0.0, 3.0)
    disk_star_forming = np.clip(disk_type - 0.5, 0.0, 1.0)

    bulge_hlr, disk_hlr = _sizes_arcsec(mag, redshift, rng, cfg)
    cos_incl = rng.uniform(size=n)
    q0 = cfg.disk_thickness
    disk_q = np.sqrt(cos_incl**2 * (1.0 - q0**2) + q0**2)
    bulge_q = np.clip(0.75 + 0.15 * rng.standard_normal(n), 0.4, 1.0)
    position_angle = rng.uniform(0.0, 180.0, size=n)
    return Population(
        mag_ref=mag,
        bpz_class=bpz_class,
        spectral_type=spectral_type,
        redshift=redshift,
        ebv=ebv,
        bulge_fraction=bulge_fraction,
        bulge_type=bulge_type,
        disk_type=disk_type,
        disk_star_forming=disk_star_forming,
        bulge_hlr_arcsec=bulge_hlr,
        disk_hlr_arcsec=disk_hlr,
        bulge_axis_ratio=bulge_q,
        disk_axis_ratio=disk_q,
        position_angle_deg=position_angle,
    )
