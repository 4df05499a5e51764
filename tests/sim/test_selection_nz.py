"""The paper's selection (SNR > 10 in g or i) and the selected n(z) against the paper."""

import math

import numpy as np
import pyarrow.compute as pc
import pytest
from scipy import integrate, optimize

from csst_photoz.sim import (
    PAPER_SELECTED_NZ,
    catalog_summary,
    format_summary,
    kron_like_snr,
    plot_catalog,
    select_snr,
    simulate_catalog,
)
from csst_photoz.sim.selection import KRON_ENCLOSED_FRACTION, KRON_RADIUS_PER_HLR

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def paper_catalog(instrument):
    return simulate_catalog(40_000, seed=2022, instrument=instrument)


@pytest.fixture(scope="module")
def paper_summary(paper_catalog):
    return catalog_summary(paper_catalog)


# -- the paper check -----------------------------------------------------------------------


def test_selected_redshift_distribution_matches_paper(paper_summary):
    """Zhou et al. (2022): selected z in 0-4, median about 0.8, mean about 0.9."""
    sel = paper_summary["selected"]
    assert abs(sel["z_median"] - 0.8) <= 0.1
    assert abs(sel["z_mean"] - 0.9) <= 0.15
    assert sel["z_max"] > 3.5
    assert sel["z_max"] <= 4.0


def test_selected_redshift_peak_in_paper_window(paper_summary):
    assert 0.5 <= paper_summary["selected"]["z_peak"] <= 0.8


def test_selection_keeps_bright_low_redshift_galaxies(paper_summary):
    all_, sel = paper_summary["all"], paper_summary["selected"]
    assert all_["n"] == 40_000
    assert 0.05 < sel["n"] / all_["n"] < 0.5
    assert sel["z_median"] < all_["z_median"]
    assert sel["mag_percentiles"][95] < all_["mag_percentiles"][95]
    assert sel["mag_percentiles"][95] < 26.0  # SNR > 10 needs i brighter than ~25.5
    z_pct = list(sel["z_percentiles"].values())
    assert z_pct == sorted(z_pct)
    assert z_pct[2] == pytest.approx(sel["z_median"])


@pytest.mark.slow
def test_selected_redshift_peak_large_sample(instrument):
    """With ~30k selected galaxies the mode is well defined and in the paper's window."""
    table = simulate_catalog(200_000, seed=7, instrument=instrument)
    sel = catalog_summary(table)["selected"]
    assert 0.5 <= sel["z_peak"] <= 0.8
    assert abs(sel["z_median"] - 0.8) <= 0.1
    assert abs(sel["z_mean"] - 0.9) <= 0.15


# -- SNR model -----------------------------------------------------------------------------


def test_kron_constants_from_exponential_profile():
    """Kron (first-moment) radius of an exponential is 2 r_s; its half-light radius 1.678 r_s."""

    def enclosed(x):
        return 1.0 - (1.0 + x) * math.exp(-x)

    hlr = optimize.brentq(lambda x: enclosed(x) - 0.5, 0.1, 10.0)
    norm = integrate.quad(lambda r: r * math.exp(-r), 0, np.inf)[0]
    kron = integrate.quad(lambda r: r * r * math.exp(-r), 0, np.inf)[0] / norm
    assert kron == pytest.approx(2.0, rel=1e-8)
    assert KRON_RADIUS_PER_HLR == pytest.approx(kron / hlr, abs=0.005)
    assert KRON_ENCLOSED_FRACTION == pytest.approx(enclosed(kron), rel=1e-12)


def test_kron_like_snr_hand_computed():
    """r_obs = hypot(0.4, 0.3) = 0.5"; radius = 1.19 x 0.5 / 0.0595 = 10 px; 100 pi pixels.

    With sigma^2 = 1/pi per pixel the background variance is 100 e-^2. A flux whose aperture
    share is 300 e- gives 300 / sqrt(300 + 100) = 15; -300 e- gives -300 / sqrt(100) = -30.
    """
    share = 1.0 - 3.0 * math.exp(-2.0)
    flux = np.array([300.0, -300.0, 0.0, 2100.0]) / share
    snr = kron_like_snr(
        flux,
        galaxy_hlr_arcsec=0.4,
        psf_hlr_arcsec=0.3,
        pixel_scale_arcsec=0.0595,
        background_noise_e=1.0 / math.sqrt(math.pi),
    )
    # 2100 / sqrt(2100 + 100) = 44.7702...
    np.testing.assert_allclose(snr, [15.0, -30.0, 0.0, 2100.0 / math.sqrt(2200.0)], rtol=1e-12)


def test_kron_like_snr_per_galaxy_sizes():
    snr = kron_like_snr(
        np.full(3, 1000.0),
        galaxy_hlr_arcsec=np.array([0.0, 0.2, 1.0]),
        psf_hlr_arcsec=0.1,
        pixel_scale_arcsec=0.075,
        background_noise_e=10.0,
    )
    assert np.all(np.diff(snr) < 0)  # bigger aperture, more background


def test_select_snr_is_or_with_strict_threshold():
    snr = {
        "g": np.array([11.0, 5.0, 11.0, 5.0, 10.0, np.nan]),
        "i": np.array([5.0, 11.0, 11.0, 5.0, 10.0, 12.0]),
        "r": np.array([50.0, 50.0, 50.0, 50.0, 50.0, 50.0]),
    }
    np.testing.assert_array_equal(select_snr(snr), [True, True, True, False, False, True])
    np.testing.assert_array_equal(
        select_snr(snr, bands=("g",), threshold=4.0), [True, True, True, True, True, False]
    )
    np.testing.assert_array_equal(select_snr(snr, bands=("r",)), [True] * 6)


def test_select_snr_missing_band_raises():
    with pytest.raises(KeyError, match="i"):
        select_snr({"g": np.array([20.0])})


# -- report --------------------------------------------------------------------------------


def test_format_summary_mentions_paper_numbers(paper_summary):
    text = format_summary(paper_summary)
    assert "selected: " in text
    assert f"{paper_summary['selected']['n']} galaxies" in text
    assert "0.6-0.7" in text
    assert "median ~0.8" in text
    assert "mean ~0.9" in text
    assert "z = 4.0" in text
    assert PAPER_SELECTED_NZ["peak"] == (0.6, 0.7)


def test_summary_of_catalog_without_selected_galaxies(paper_catalog):
    faint = paper_catalog.filter(pc.invert(paper_catalog["selected"]))
    summary = catalog_summary(faint)
    assert summary["selected"] == {"n": 0}
    assert summary["all"]["n"] == faint.num_rows
    assert "selected: 0 galaxies" in format_summary(summary)


def test_plot_catalog_writes_png(tmp_path, instrument):
    table = simulate_catalog(400, seed=9, instrument=instrument)
    path = plot_catalog(table, tmp_path / "plots" / "catalog.png", instrument=instrument)
    assert path == tmp_path / "plots" / "catalog.png"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
