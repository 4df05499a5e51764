"""SyntheticPhotometer against GalSim's independent SED/Bandpass machinery."""

import dataclasses
from pathlib import Path

import extinction
import galsim
import numpy as np
import pytest

from csst_photoz.sim import TEMPLATE_NAMES, madau_transmission

REFERENCE_BAND = "i"
COLOUR_TOLERANCE_MAG = 0.01
# Bands start at ~2385 A (NUV); Ly alpha at z = 0.9 is at 2310 A, so the IGM is invisible here.
LOW_Z = (0.0, 0.3, 0.6, 0.9)
HIGH_Z = (2.0, 3.0, 3.5, 3.9)


def _cww(name):
    wave, flux = np.loadtxt(
        Path(galsim.meta_data.share_dir) / "SEDs" / f"CWW_{name}_ext.sed", unpack=True
    )
    return wave, flux


def _galsim_sed(name):
    wave, flux = _cww(name)
    table = galsim.LookupTable(wave / 10.0, flux, interpolant="linear")
    return galsim.SED(table, wave_type="nm", flux_type="flambda")


@pytest.fixture(scope="module")
def galsim_bands(instrument):
    bands = {}
    for name in instrument.band_names:
        curve = instrument.bandpasses[name]
        table = galsim.LookupTable(
            curve.wavelength_angstrom / 10.0, curve.throughput, interpolant="linear"
        )
        bands[name] = galsim.Bandpass(table, wave_type="nm")
    return bands


def _colours(counts, band_names):
    ref = band_names.index(REFERENCE_BAND)
    return -2.5 * np.log10(counts / counts[ref])


def _galsim_colours(sed, galsim_bands, band_names):
    photons = np.array([sed.calculateFlux(galsim_bands[b]) for b in band_names])
    return _colours(photons, band_names)


def test_low_redshift_premise_no_igm_in_bands(instrument):
    blue_edge = instrument.bandpasses["NUV"].wavelength_angstrom[
        instrument.bandpasses["NUV"].throughput > 0
    ][0]
    assert 1215.67 * (1.0 + max(LOW_Z)) < blue_edge
    assert madau_transmission(blue_edge, max(LOW_Z)) == 1.0


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_colours_match_galsim_without_dust(name, photometer, galsim_bands):
    bands = photometer.band_names
    z = np.array(LOW_Z)
    counts = photometer.template_counts(z, np.zeros_like(z))[:, TEMPLATE_NAMES.index(name)]
    sed = _galsim_sed(name)
    for j, zj in enumerate(z):
        expected = _galsim_colours(sed.atRedshift(zj), galsim_bands, bands)
        np.testing.assert_allclose(
            _colours(counts[j], bands), expected, atol=COLOUR_TOLERANCE_MAG, err_msg=f"z={zj}"
        )


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_colours_match_galsim_with_calzetti_dust(name, photometer, galsim_bands):
    """Dust applied in the rest frame with the ``extinction`` package (valid >= 1200 A)."""
    ebv = 0.3
    bands = photometer.band_names
    z = np.array(LOW_Z)
    counts = photometer.template_counts(z, np.full_like(z, ebv))[:, TEMPLATE_NAMES.index(name)]
    fine = np.arange(1200.0, 22000.0, 0.5)
    dust = galsim.LookupTable(
        fine / 10.0,
        10.0 ** (-0.4 * extinction.calzetti00(fine, 4.05 * ebv, 4.05)),
        interpolant="linear",
    )
    sed = _galsim_sed(name) * dust
    for j, zj in enumerate(z):
        expected = _galsim_colours(sed.atRedshift(zj), galsim_bands, bands)
        np.testing.assert_allclose(
            _colours(counts[j], bands), expected, atol=COLOUR_TOLERANCE_MAG, err_msg=f"z={zj}"
        )


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_colours_match_galsim_with_igm_at_high_redshift(name, photometer, galsim_bands):
    """The tabulated-in-z IGM agrees with Madau evaluated exactly on a fine observed grid."""
    bands = photometer.band_names
    z = np.array(HIGH_Z)
    counts = photometer.template_counts(z, np.zeros_like(z))[:, TEMPLATE_NAMES.index(name)]
    fine = np.arange(2300.0, 11000.0, 0.5)
    sed = _galsim_sed(name)
    for j, zj in enumerate(z):
        igm = galsim.LookupTable(fine / 10.0, madau_transmission(fine, zj), interpolant="linear")
        expected = _galsim_colours(sed.atRedshift(zj) * igm, galsim_bands, bands)
        np.testing.assert_allclose(
            _colours(counts[j], bands), expected, atol=COLOUR_TOLERANCE_MAG, err_msg=f"z={zj}"
        )


def test_dust_reddens(photometer):
    g, i = photometer.band_names.index("g"), photometer.band_names.index("i")
    ebv = np.array([0.0, 0.05, 0.1, 0.3, 0.6])
    for z in (0.2, 1.0, 2.5):
        counts = photometer.template_counts(np.full(ebv.size, z), ebv)
        g_minus_i = -2.5 * np.log10(counts[:, :, g] / counts[:, :, i])
        assert np.all(np.diff(g_minus_i, axis=0) > 0), f"z={z}"
        # and dust only removes light
        assert np.all(np.diff(counts, axis=0) < 0)


def test_igm_suppresses_only_bands_blueward_of_lyman_alpha(photometer):
    no_igm = dataclasses.replace(photometer, igm_table=np.ones_like(photometer.igm_table))
    bands = photometer.band_names
    z = np.array([0.5, 3.5])
    with_igm = photometer.template_counts(z, np.zeros(2))
    without = no_igm.template_counts(z, np.zeros(2))
    # z = 0.5: Ly alpha at 1824 A, bluer than every band
    np.testing.assert_array_equal(with_igm[0], without[0])
    # z = 3.5: Ly alpha at 5471 A and the Lyman limit at 4103 A
    ratio = with_igm[1] / without[1]
    assert np.all(ratio[:, bands.index("NUV")] < 0.02)  # wholly below the Lyman limit
    assert np.all(ratio[:, bands.index("u")] < 0.1)  # mostly below it
    assert np.all(ratio[:, bands.index("g")] < 0.8)  # in the Ly alpha/beta forest
    assert np.all(ratio[:, bands.index("r")] < 1.0)  # its blue wing only
    for band in ("i", "z", "y"):
        np.testing.assert_array_equal(ratio[:, bands.index(band)], 1.0)


def test_lyman_break_galaxy_is_a_nuv_dropout(photometer):
    bands = photometer.band_names
    im = TEMPLATE_NAMES.index("Im")
    counts = photometer.template_counts([0.5, 3.5], [0.0, 0.0])[:, im]
    nuv_minus_u = -2.5 * np.log10(counts[:, bands.index("NUV")] / counts[:, bands.index("u")])
    assert nuv_minus_u[1] > 1.5
    assert nuv_minus_u[1] > nuv_minus_u[0] + 1.0


def test_result_independent_of_chunk_size(photometer):
    rng = np.random.default_rng(11)
    z = rng.uniform(0.0, photometer.z_max, size=301)
    ebv = rng.uniform(0.0, 0.5, size=301)
    reference = photometer.template_counts(z, ebv, chunk_size=1000)
    for chunk in (1, 7, 256):
        np.testing.assert_allclose(
            photometer.template_counts(z, ebv, chunk_size=chunk), reference, rtol=1e-13
        )
    assert reference.shape == (301, 4, len(photometer.band_names))
    assert np.all(reference >= 0)


def test_z_max_is_the_requested_limit(photometer):
    assert photometer.z_max == pytest.approx(4.0, abs=1e-12)
    photometer.template_counts([photometer.z_max], [0.0])  # the edge itself is allowed


# -- emission lines ------------------------------------------------------------------------

# Kennicutt (1998): L([OII]) = 17.6 A x L_lambda(2300 A); Ilbert et al. (2009) ratios to [OII].
LINES = {
    "Lya": (1215.67, 2.0),
    "OII": (3727.4, 1.0),
    "Hbeta": (4862.7, 0.28),
    "OIII": (5008.2, 0.36),
    "Halpha": (6564.6, 1.77),
}


def _pure(name, n=1):
    w = np.zeros((n, 4))
    w[:, TEMPLATE_NAMES.index(name)] = 1.0
    return w


def _halpha_mid_i_redshift(instrument):
    blue, red = instrument.bandpasses["i"].half_max_edges
    return 0.5 * (blue + red) / LINES["Halpha"][0] - 1.0


def test_no_lines_without_star_formation(photometer):
    z = np.array([0.1, 0.5, 1.5, 3.0])
    weights = np.tile([0.2, 0.3, 0.1, 0.4], (4, 1))
    counts = photometer.line_counts(z, np.full(4, 0.1), weights, np.zeros(4))
    np.testing.assert_array_equal(counts, 0.0)


def test_line_counts_linear_in_star_forming_weight(photometer):
    z = np.full(3, 0.7)
    sfw = np.array([0.25, 0.5, 1.0])
    counts = photometer.line_counts(z, np.full(3, 0.1), _pure("Scd", 3), sfw)
    assert np.any(counts[2] > 0)
    np.testing.assert_allclose(counts[0] * 4.0, counts[2], rtol=1e-12)
    np.testing.assert_allclose(counts[1] * 2.0, counts[2], rtol=1e-12)


def test_halpha_lands_in_i_and_not_in_g(photometer, instrument):
    """Per-line counts computed independently: only H alpha reaches i at this redshift."""
    z = _halpha_mid_i_redshift(instrument)
    assert 0.1 < z < 0.25
    ebv = 0.1
    counts = photometer.line_counts([z], [ebv], _pure("Im"), [1.0])[0]
    wave, flux = _cww("Im")
    uv = np.interp(2300.0, wave, flux) / np.interp(5500.0, wave, flux)
    per_band_per_line = {}
    for line, (rest, ratio) in LINES.items():
        if line == "Lya":  # at 1418 A, far bluer than g and i
            continue
        gas_ebv = ebv / 0.44  # Calzetti et al. (2000): nebular E(B-V)
        a_line = extinction.calzetti00(np.array([rest]), 4.05 * gas_ebv, 4.05)[0]
        line_flux = 17.6 * uv * ratio * 10.0 ** (-0.4 * a_line)
        obs = rest * (1.0 + z)
        per_band_per_line[line] = {
            b: line_flux * instrument.bandpasses[b](obs) * obs for b in ("g", "i")
        }
    bands = photometer.band_names
    halpha_i = per_band_per_line["Halpha"]["i"]
    assert halpha_i > 0
    assert per_band_per_line["Halpha"]["g"] == 0.0
    assert counts[bands.index("i")] == pytest.approx(halpha_i, rel=1e-3)
    others_g = sum(v["g"] for k, v in per_band_per_line.items() if k != "Halpha")
    assert counts[bands.index("g")] == pytest.approx(others_g, rel=1e-3)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
@pytest.mark.parametrize("ebv", [0.0, 0.2])
def test_line_to_continuum_ratio_matches_galsim(name, ebv, photometer, instrument, galsim_bands):
    """Lines and continuum share one scale: a Gaussian H alpha line through GalSim agrees."""
    z = _halpha_mid_i_redshift(instrument)
    k = TEMPLATE_NAMES.index(name)
    wave, flux = _cww(name)
    flux = flux / np.interp(5500.0, wave, flux)
    rest, ratio = LINES["Halpha"]
    gas = 10.0 ** (-0.4 * extinction.calzetti00(np.array([rest]), 4.05 * ebv / 0.44, 4.05)[0])
    line_flux = 17.6 * np.interp(2300.0, wave, flux) * ratio * gas
    sigma = 2.0
    lw = np.arange(rest - 60.0, rest + 60.0, 0.1)
    profile = line_flux * np.exp(-0.5 * ((lw - rest) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    line_sed = galsim.SED(
        galsim.LookupTable(np.r_[9.1, lw / 10.0, 2205.0], np.r_[0.0, profile, 0.0]),
        wave_type="nm",
        flux_type="flambda",
    )
    fine = np.arange(1200.0, 22000.0, 0.5)
    dust = galsim.LookupTable(
        fine / 10.0, 10.0 ** (-0.4 * extinction.calzetti00(fine, 4.05 * ebv, 4.05))
    )
    cont_sed = (
        galsim.SED(
            galsim.LookupTable(wave / 10.0, flux, interpolant="linear"),
            wave_type="nm",
            flux_type="flambda",
        )
        * dust
    )
    band = galsim_bands["i"]
    expected = line_sed.atRedshift(z).calculateFlux(band) / cont_sed.atRedshift(z).calculateFlux(
        band
    )
    i = photometer.band_names.index("i")
    lines = photometer.line_counts([z], [ebv], _pure(name), [1.0])[0, i]
    continuum = photometer.template_counts([z], [ebv])[0, k, i]
    assert lines / continuum == pytest.approx(expected, rel=2e-3)


# -- input validation ----------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param([4.01], [0.0], id="z-above-zmax"),
    pytest.param([-0.01], [0.0], id="negative-z"),
    pytest.param([0.5], [-0.01], id="negative-ebv"),
    pytest.param([np.nan], [0.0], id="nan-z"),
    pytest.param([0.5], [np.nan], id="nan-ebv"),
    pytest.param([np.inf], [0.0], id="inf-z"),
    pytest.param([0.5, 1.0], [0.0], id="mismatched-shapes"),
    pytest.param([[0.5]], [[0.0]], id="two-dimensional"),
    pytest.param(0.5, 0.0, id="scalar"),
]


@pytest.mark.parametrize(("z", "ebv"), BAD_INPUTS)
def test_template_counts_rejects_bad_input(photometer, z, ebv):
    with pytest.raises(ValueError):
        photometer.template_counts(z, ebv)


@pytest.mark.parametrize(("z", "ebv"), BAD_INPUTS)
def test_line_counts_rejects_bad_input(photometer, z, ebv):
    n = np.size(z)
    with pytest.raises(ValueError):
        photometer.line_counts(z, ebv, _pure("Im", n), np.ones(n))


def test_for_instrument_rejects_too_short_template_grid(instrument):
    from csst_photoz.sim import SyntheticPhotometer, load_cww_templates

    with pytest.raises(ValueError, match="z_max"):
        SyntheticPhotometer.for_instrument(
            instrument, z_max=4.0, templates=load_cww_templates(min_angstrom=600.0)
        )
    with pytest.raises(ValueError, match="redder"):
        SyntheticPhotometer.for_instrument(
            instrument, templates=load_cww_templates(max_angstrom=9000.0)
        )


@pytest.mark.parametrize(
    ("weights", "sf_weight", "match"),
    [
        ([[0.0, 0.0, 0.0, 5.0]], [1.0], "rows summing to 1"),
        ([[-0.5, 0.0, 0.5, 1.0]], [1.0], "non-negative"),
        ([[0.0, 0.0, 1.0]], [1.0], "shape"),
        ([[0.0, 0.0, 0.0, 1.0]], [-1.0], "star_forming_weight"),
        ([[0.0, 0.0, 0.0, 1.0]], [np.nan], "star_forming_weight"),
        ([[0.0, 0.0, 0.0, 1.0]], [1.0, 1.0], "star_forming_weight"),
    ],
)
def test_line_counts_rejects_bad_weights(photometer, weights, sf_weight, match):
    with pytest.raises(ValueError, match=match):
        photometer.line_counts([0.2], [0.0], weights, sf_weight)
