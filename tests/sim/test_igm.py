"""Madau (1995) IGM transmission against an independent scalar implementation."""

import math

import numpy as np
import pytest

from csst_photoz.sim import madau_transmission

# Madau (1995), eq. (15) and Table 2: Lyman alpha..delta and their blanketing coefficients.
LYMAN_LINES = ((1215.67, 3.6e-3), (1025.72, 1.7e-3), (972.537, 1.2e-3), (949.743, 9.3e-4))
LYMAN_LIMIT = 911.75


def madau_reference(wave_obs: float, z: float) -> float:
    """exp(-tau_eff), one float at a time, written from the paper (not from the package)."""
    tau = 0.0
    for line, coeff in LYMAN_LINES:
        if line < wave_obs < line * (1.0 + z):
            tau += coeff * (wave_obs / line) ** 3.46
    if wave_obs < LYMAN_LIMIT * (1.0 + z):
        # footnote 3: photoelectric absorption by Lyman-limit systems
        x_c = wave_obs / LYMAN_LIMIT
        x_em = 1.0 + z
        tau += (
            0.25 * x_c**3 * (x_em**0.46 - x_c**0.46)
            + 9.4 * x_c**1.5 * (x_em**0.18 - x_c**0.18)
            - 0.7 * x_c**3 * (x_c**-1.32 - x_em**-1.32)
            - 0.023 * (x_em**1.68 - x_c**1.68)
        )
    return math.exp(-tau)


def test_matches_scalar_reference_on_random_points():
    rng = np.random.default_rng(1995)
    z = rng.uniform(0.0, 5.0, size=3000)
    wave = rng.uniform(LYMAN_LIMIT, 11000.0, size=3000)
    expected = np.array([madau_reference(w, zz) for w, zz in zip(wave, z, strict=True)])
    assert np.any(expected < 0.5)  # the points do probe absorption
    np.testing.assert_allclose(madau_transmission(wave, z), expected, rtol=1e-10, atol=1e-300)


def test_matches_reference_on_broadcast_grid():
    wave = np.linspace(1000.0, 7000.0, 61)
    z = np.array([0.5, 2.0, 3.0, 4.0])
    result = madau_transmission(wave[None, :], z[:, None])
    assert result.shape == (4, 61)
    expected = np.array([[madau_reference(w, zz) for w in wave] for zz in z])
    np.testing.assert_allclose(result, expected, rtol=1e-10)


def test_hand_value_lyman_alpha_forest():
    """At z = 3, lambda_obs = 4600 A only Ly alpha absorbs: tau = 3.6e-3 (4600/1215.67)^3.46."""
    tau = 3.6e-3 * (4600.0 / 1215.67) ** 3.46
    assert tau == pytest.approx(0.3598, abs=1e-3)
    assert madau_transmission(4600.0, 3.0) == pytest.approx(math.exp(-tau), rel=1e-12)


def test_transparent_redward_of_lyman_alpha():
    rng = np.random.default_rng(7)
    z = rng.uniform(0.0, 6.0, size=2000)
    wave = 1215.67 * (1.0 + z) * rng.uniform(1.0 + 1e-9, 3.0, size=2000)
    np.testing.assert_array_equal(madau_transmission(wave, z), 1.0)
    assert np.all(madau_transmission(1215.67 * (1.0 + z), z) == 1.0)
    assert madau_transmission(5000.0, 0.0) == 1.0


def test_decreases_with_redshift_at_fixed_observed_wavelength():
    z = np.linspace(0.0, 6.0, 1201)
    for wave in (1100.0, 2500.0, 3500.0, 4500.0, 6000.0):
        trans = madau_transmission(wave, z)
        assert np.all(np.diff(trans) <= 0.0)
        assert trans[0] == 1.0
        assert trans[-1] < 0.9


def test_in_unit_interval():
    wave = np.geomspace(912.0, 12000.0, 300)
    trans = madau_transmission(wave[:, None], np.linspace(0.0, 6.0, 50)[None, :])
    assert np.all((trans >= 0.0) & (trans <= 1.0))


def test_flux_decrement_da_at_z3_is_plausible():
    """D_A = 1 - <T> over rest 1050-1170 A (Oke & Korycansky 1982); Madau (1995): ~0.3 at z=3."""
    z = 3.0
    wave = np.linspace(1050.0, 1170.0, 4001) * (1.0 + z)
    d_a = 1.0 - float(np.mean(madau_transmission(wave, z)))
    assert 0.2 < d_a < 0.45
    # and it grows with redshift
    wave4 = np.linspace(1050.0, 1170.0, 4001) * 5.0
    assert 1.0 - float(np.mean(madau_transmission(wave4, 4.0))) > d_a


def test_negative_redshift_is_an_error():
    with pytest.raises(ValueError, match="redshift"):
        madau_transmission(3000.0, -0.01)
    with pytest.raises(ValueError):
        madau_transmission(np.array([3000.0, 4000.0]), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="finite"):
        madau_transmission(5000.0, np.nan)
