"""Tests for csst_photoz.instrument.camera: zero points, noise, PSFs and depths."""

import astropy.constants as const
import astropy.units as u
import galsim
import numpy as np
import pytest
from astropy.table import QTable
from scipy.integrate import simpson
from scipy.optimize import brentq
from scipy.special import j0, j1

from csst_photoz.instrument import (
    PAPER_BACKGROUND_NOISE,
    PAPER_DEPTHS_5SIGMA,
    Instrument,
    encircled_energy,
    encircled_energy_radius,
)

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
# Zhou et al. 2022, Table 1 (shared/PAPER.md), NUV..y
PAPER_NOISE = dict(zip(BANDS, (10.65, 7.84, 9.93, 10.59, 10.59, 9.56, 11.53), strict=True))
PAPER_DEPTH = dict(zip(BANDS, (25.4, 25.4, 26.3, 26.0, 25.9, 25.2, 24.4), strict=True))
EXPOSURE_S = dict(zip(BANDS, (600.0, 300.0, 300.0, 300.0, 300.0, 300.0, 600.0), strict=True))
RAD_TO_ARCSEC = 180.0 / np.pi * 3600.0


@pytest.fixture(scope="module")
def inst():
    return Instrument.default()


@pytest.fixture(scope="module")
def airy_inst():
    return Instrument.default(psf_jitter_fwhm_arcsec=0.0)


def _airy_ee(x):
    return 1.0 - j0(x) ** 2 - j1(x) ** 2


def _airy_r80_arcsec(wavelength_angstrom, diameter_m):
    x80 = brentq(lambda x: _airy_ee(x) - 0.8, 0.5, 3.8)
    return x80 * wavelength_angstrom * 1e-10 / (np.pi * diameter_m) * RAD_TO_ARCSEC


# -- bands and calibration -------------------------------------------------------------------


def test_band_names_and_exposure_times(inst):
    assert inst.band_names == BANDS
    for band in BANDS:
        assert inst.exposure_time(band) == EXPOSURE_S[band]


def test_collecting_area():
    assert Instrument.default().collecting_area_cm2 == pytest.approx(np.pi * 100.0**2, rel=1e-12)
    obscured = Instrument.default(central_obscuration=0.3)
    assert obscured.collecting_area_cm2 == pytest.approx(0.91 * np.pi * 100.0**2, rel=1e-12)


@pytest.mark.parametrize("band", BANDS)
def test_zero_point_rate_matches_independent_ab_integral(inst, band):
    curve = inst.bandpasses[band]
    lam = curve.wavelength_angstrom
    integral = simpson(curve.throughput / lam, x=lam)
    area = np.pi * (1.0 * u.m) ** 2
    expected = (area * (3631.0 * u.Jy) / const.h * integral).to_value(1 / u.s)
    assert inst.zero_point_rate(band) == pytest.approx(expected, rel=1e-3)
    assert inst.zero_point_mag(band) == pytest.approx(2.5 * np.log10(expected), abs=1e-3)


def test_zero_point_scales_with_area_and_ignores_exposures(inst):
    small = Instrument.default(aperture_diameter_m=1.0, bands={"g": {"n_exposures": 8}})
    assert small.zero_point_rate("g") == pytest.approx(0.25 * inst.zero_point_rate("g"), rel=1e-9)


@pytest.mark.parametrize("band", BANDS)
def test_mag_electrons_round_trip(inst, band):
    rng = np.random.default_rng(7)
    mags = rng.uniform(14.0, 32.0, size=200)
    electrons = inst.mag_to_electrons(mags, band)
    assert electrons.shape == mags.shape
    np.testing.assert_allclose(inst.electrons_to_mag(electrons, band), mags, rtol=0, atol=1e-10)
    # 5 magnitudes are a factor 100, and AB 0 is the zero-point rate times the exposure
    np.testing.assert_allclose(
        inst.mag_to_electrons([20.0, 25.0], band) * [1.0, 100.0],
        inst.mag_to_electrons(20.0, band),
        rtol=1e-12,
    )
    assert float(inst.mag_to_electrons(0.0, band)) == pytest.approx(
        inst.zero_point_rate(band) * EXPOSURE_S[band], rel=1e-12
    )


def test_electrons_to_mag_of_zero_or_negative_is_nan(inst):
    got = inst.electrons_to_mag([0.0, -1.0, -1e6, 1.0, np.nan], "g")
    assert np.isnan(got[:3]).all()
    assert np.isfinite(got[3])
    assert np.isnan(got[4])
    assert np.isnan(inst.electrons_to_mag(0.0, "r"))


def test_electrons_per_njy_is_consistent_with_magnitudes(inst):
    for band in BANDS:
        per_njy = inst.electrons_per_njy(band)
        # a 3631e9 nJy (3631 Jy) source is AB 0
        assert per_njy * 3631e9 == pytest.approx(float(inst.mag_to_electrons(0.0, band)), rel=1e-12)
        # a 1 nJy source is AB 31.4
        assert float(inst.electrons_to_mag(per_njy, band)) == pytest.approx(31.4, abs=1e-4)


def test_electron_counts_are_plausible(inst):
    # an AB 25 galaxy in g: 3.2e10 e-/s * 1e-10 * 300 s, about 1000 e-
    assert float(inst.mag_to_electrons(25.0, "g")) == pytest.approx(950.0, rel=0.1)


# -- noise -----------------------------------------------------------------------------------


def test_package_paper_tables_match_the_paper():
    assert PAPER_BACKGROUND_NOISE == PAPER_NOISE
    assert PAPER_DEPTHS_5SIGMA == PAPER_DEPTH


@pytest.mark.parametrize("band", BANDS)
def test_background_noise_equals_paper(inst, band):
    assert inst.background_noise(band) == pytest.approx(PAPER_NOISE[band], abs=0.01)


def test_background_noise_follows_overrides():
    # no sky, no dark: read noise only, 5 e- x sqrt(4 exposures) in y
    dark = Instrument.default(dark_current_e_per_s=0.0, bands={"y": {"sky_e_per_s": 0.0}})
    assert dark.background_noise("y") == pytest.approx(10.0, rel=1e-12)


# -- PSF -------------------------------------------------------------------------------------


def test_psf_meets_the_csst_requirement_and_grows_with_wavelength(inst):
    r80 = inst.per_band(inst.psf_ee_radius)
    assert np.all(r80 <= 0.15)
    assert np.all(np.diff(r80) > 0)
    pivots = inst.per_band(lambda band: inst.bandpasses[band].pivot_wavelength)
    assert np.all(np.diff(pivots) > 0)


def test_psf_is_a_unit_flux_galsim_profile(inst):
    psf = inst.psf("g")
    assert isinstance(psf, galsim.GSObject)
    assert psf.flux == pytest.approx(1.0)


def test_airy_encircled_energy_formula_sanity():
    # the reference formula: 83.8% inside the first dark ring (x = 3.8317)
    assert _airy_ee(3.8317) == pytest.approx(0.838, abs=1e-3)


@pytest.mark.parametrize("band", ["g", "NUV", "y"])
def test_pure_airy_r80_matches_analytic(airy_inst, band):
    pivot = airy_inst.bandpasses[band].pivot_wavelength
    expected = _airy_r80_arcsec(pivot, 2.0)
    assert airy_inst.psf_ee_radius(band) == pytest.approx(expected, rel=0.05)


def test_jitter_widens_the_psf(inst, airy_inst):
    for band in BANDS:
        assert inst.psf_ee_radius(band) > airy_inst.psf_ee_radius(band) + 0.03


def test_encircled_energy_of_a_gaussian():
    # a Gaussian seen through 0.075" pixels: sigma^2 + pixel^2 / 12
    sigma = 0.3
    seen_sigma = np.sqrt(sigma**2 + 0.075**2 / 12.0)
    profile = galsim.Gaussian(sigma=sigma)
    for radius in (0.2, 0.3, 0.6):
        expected = 1.0 - np.exp(-(radius**2) / (2 * seen_sigma**2))
        got = encircled_energy(profile, radius, pixel_scale_arcsec=0.075)
        assert got == pytest.approx(expected, abs=5e-3)


def test_encircled_energy_radius_of_a_gaussian():
    profile = galsim.Gaussian(sigma=0.1)
    expected = 0.1 * np.sqrt(2.0 * np.log(5.0))
    got = encircled_energy_radius(profile, 0.8, pixel_scale_arcsec=0.075)
    assert got == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.2, -0.1])
def test_encircled_energy_radius_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        encircled_energy_radius(galsim.Gaussian(sigma=0.1), fraction, pixel_scale_arcsec=0.075)


# -- depth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("band", BANDS)
def test_depth_close_to_paper(inst, band):
    assert inst.point_source_depth(band) == pytest.approx(PAPER_DEPTH[band], abs=0.3)


@pytest.mark.parametrize("band", ["NUV", "g", "y"])
def test_doubling_exposures_deepens_by_a_bit_more_than_sqrt2(inst, band):
    """Background variance and signal both scale with the number of exposures N.

    Background-limited, the limiting flux goes as 1/sqrt(N): 2.5 log10(sqrt 2) = 0.376 mag per
    doubling. The source's own Poisson term (nsigma^2 = 25 e-) does not grow with N, so the gain
    is larger, up to 0.753 mag when source-limited. With ~2800 e-^2 of background variance in
    the aperture the extra is about 2.5 log10(1.047 / 1.033) = 0.015 mag.
    """
    n = inst.config.bands[band].n_exposures
    doubled = Instrument.default(bands={band: {"n_exposures": 2 * n}})
    gain = doubled.point_source_depth(band) - inst.point_source_depth(band)
    assert 2.5 * np.log10(np.sqrt(2.0)) < gain < 0.42


@pytest.mark.parametrize("band", ["g", "z"])
def test_ten_sigma_is_shallower_than_background_limited_scaling(inst, band):
    # background-limited: 2.5 log10(2) = 0.753 mag; source-limited: 2.5 log10(4) = 1.505.
    # With ~2800 e-^2 of background in the aperture the source term adds about 0.05 mag
    # (g: limiting signals 276.9 and 580.4 e-, 0.803 mag), so 0.9 bounds it from above.
    difference = inst.point_source_depth(band) - inst.point_source_depth(band, nsigma=10.0)
    assert 2.5 * np.log10(2.0) < difference < 0.9


@pytest.mark.parametrize("band", ["u", "i"])
def test_apertures_larger_than_optimal_are_shallower(inst, band):
    radii = np.arange(0.04, 0.5, 0.02)
    depths = np.array([inst.point_source_depth(band, aperture_radius_arcsec=r) for r in radii])
    best = int(np.argmax(depths))
    assert 0 < best < len(radii) - 1  # the optimum is inside the scanned range
    assert radii[best] < 0.15
    assert np.all(np.diff(depths[best:]) < 0)
    assert inst.point_source_depth(band) < depths[best] - 0.1  # the default 0.225" is larger


def test_depth_is_shallower_with_smaller_pixels(inst):
    # the same aperture holds more pixels, each with the same background noise
    finer = Instrument.default(pixel_scale_arcsec=0.05)
    assert finer.point_source_depth("r") < inst.point_source_depth("r") - 0.2


# -- reporting -------------------------------------------------------------------------------


def test_summary_table_layout_and_units(inst):
    table = inst.summary_table()
    assert isinstance(table, QTable)
    assert len(table) == 7
    assert list(table["band"]) == list(BANDS)
    assert table["pivot"].unit == u.AA
    assert table["exposure_time"].unit == u.s
    assert table["zero_point_rate"].unit == u.electron / u.s
    assert table["zero_point_mag"].unit == u.ABmag
    assert table["background_noise"].unit == u.electron
    assert table["psf_r80"].unit == u.arcsec
    assert table["depth_5sigma"].unit == u.ABmag
    np.testing.assert_allclose(table["exposure_time"].to_value(u.min), [10, 5, 5, 5, 5, 5, 10])
    np.testing.assert_allclose(
        table["background_noise"].value, [PAPER_NOISE[b] for b in BANDS], atol=0.01
    )
    np.testing.assert_allclose(
        table["depth_5sigma"].value, [PAPER_DEPTH[b] for b in BANDS], atol=0.3
    )
    assert np.all(table["psf_r80"] <= 0.15 * u.arcsec)
    assert np.all((table["peak_throughput"] > 0.15) & (table["peak_throughput"] < 0.7))


def test_per_band_returns_float_arrays_in_band_order(inst):
    got = inst.per_band(inst.exposure_time)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [EXPOSURE_S[b] for b in BANDS])
    np.testing.assert_array_equal(inst.per_band(lambda band: BANDS.index(band)), np.arange(7))


@pytest.mark.parametrize(
    "method",
    [
        "bandpass",
        "exposure_time",
        "background_noise",
        "zero_point_rate",
        "zero_point_mag",
        "electrons_per_njy",
        "psf",
        "psf_ee_radius",
        "point_source_depth",
    ],
)
def test_unknown_band_is_a_key_error_naming_it_and_the_bands(inst, method):
    with pytest.raises(KeyError, match=r"unknown band 'Y'.*'NUV', 'u', 'g'"):
        getattr(inst, method)("Y")


@pytest.mark.parametrize("method", ["mag_to_electrons", "electrons_to_mag"])
def test_unknown_band_in_conversions(inst, method):
    with pytest.raises(KeyError, match="unknown band 'w'"):
        getattr(inst, method)(20.0, "w")


def test_bandpass_is_the_band_curve(inst):
    for band in BANDS:
        assert inst.bandpass(band) is inst.bandpasses[band]
        assert inst.bandpass(band).name == band
