"""Calzetti et al. (2000) attenuation against Barbary's independent ``extinction`` package."""

import extinction
import numpy as np
import pytest

from csst_photoz.sim import calzetti_k, dust_transmission

RV = 4.05


def test_calzetti_k_matches_extinction_package():
    """k(lambda) = A_lambda / E(B-V) = calzetti00(w, A_V=1, R_V) * R_V on 1200-22000 A."""
    rng = np.random.default_rng(20000)
    wave = np.sort(rng.uniform(1200.0, 22000.0, size=5000))
    expected = extinction.calzetti00(wave, 1.0, RV) * RV
    np.testing.assert_allclose(calzetti_k(wave), expected, rtol=1e-6)


def test_calzetti_k_known_values():
    """Spot values of eq. (4) of Calzetti et al. (2000), worked out by hand.

    At 0.5 um (1/lambda = 2): 2.659 (-2.156 + 3.018 - 0.792 + 0.088) + 4.05 = 4.4062.
    At 1.0 um (1/lambda = 1): 2.659 (-1.857 + 1.040) + 4.05 = 1.877597.
    """
    np.testing.assert_allclose(
        calzetti_k([5000.0, 10000.0]), [2.659 * 0.158 + 4.05, 2.659 * -0.817 + 4.05], rtol=1e-12
    )


def test_continuous_at_far_uv_junction():
    """The far-UV extension joins eq. (4) at 1200 A in value and in slope."""
    eps = 1e-4
    below, at, above = calzetti_k([1200.0 - eps, 1200.0, 1200.0 + eps])
    assert below == pytest.approx(at, abs=1e-5)
    assert above == pytest.approx(at, abs=1e-5)
    h = 1.0
    slope_blue = (calzetti_k(1200.0 - h) - calzetti_k(1200.0 - 2 * h)) / h
    slope_red = (calzetti_k(1200.0 + 2 * h) - calzetti_k(1200.0 + h)) / h
    assert slope_blue == pytest.approx(slope_red, rel=0.02)


def test_optical_junction_has_only_the_published_mismatch():
    """At 0.63 um the two branches of eq. (4) differ by ~0.025 in the paper itself.

    The package must reproduce exactly that (tiny, < 1%) jump, not a larger one.
    """
    eps = 1e-3
    wave = np.array([6300.0 - eps, 6300.0 + eps])
    jump = np.diff(calzetti_k(wave))[0]
    reference_jump = np.diff(extinction.calzetti00(wave, 1.0, RV) * RV)[0]
    assert jump == pytest.approx(reference_jump, abs=1e-4)
    assert abs(jump) < 0.01 * calzetti_k(6300.0)


def test_far_uv_extension_rises_blueward():
    wave = np.linspace(300.0, 1199.0, 2000)
    k = calzetti_k(wave)
    assert np.all(np.diff(k) < 0)  # wavelength increasing -> k strictly decreasing
    assert np.all(k > calzetti_k(1200.0))


def test_red_tail_is_clipped_at_zero_and_monotonic():
    wave = np.linspace(6300.0, 60000.0, 3000)
    k = calzetti_k(wave)
    assert np.all(k >= 0.0)
    assert np.all(np.diff(k) <= 0.0)
    assert k[-1] == 0.0


def test_dust_transmission_broadcasts_and_matches_reference():
    wave = np.linspace(1300.0, 20000.0, 7)
    ebv = np.array([0.0, 0.05, 0.3, 1.0])
    trans = dust_transmission(wave[None, :], ebv[:, None])
    assert trans.shape == (4, 7)
    trans_t = dust_transmission(wave[:, None], ebv[None, :])
    assert trans_t.shape == (7, 4)
    np.testing.assert_array_equal(trans_t, trans.T)
    for row, e in zip(trans, ebv, strict=True):
        expected = 10.0 ** (-0.4 * extinction.calzetti00(wave, RV * e, RV))
        np.testing.assert_allclose(row, expected, rtol=1e-6)


def test_dust_transmission_is_one_without_dust():
    wave = np.geomspace(300.0, 30000.0, 500)
    np.testing.assert_array_equal(dust_transmission(wave, 0.0), np.ones_like(wave))


def test_dust_transmission_falls_with_ebv_and_towards_blue():
    wave = np.array([1500.0, 3000.0, 6000.0, 12000.0])
    trans = dust_transmission(wave[None, :], np.array([[0.1], [0.2], [0.4]]))
    assert np.all((trans > 0) & (trans < 1))
    assert np.all(np.diff(trans, axis=0) < 0)  # more dust, less light
    assert np.all(np.diff(trans, axis=1) > 0)  # redder, more light
