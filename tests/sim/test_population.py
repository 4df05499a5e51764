"""The Benitez (2000) prior population: class fractions, n(z|T, m), counts, determinism."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from csst_photoz.sim import BPZ_CLASSES, PopulationConfig, bpz_class_probabilities
from csst_photoz.sim import sample_population as sample

# Benitez (2000), Table 1 (HDF-N prior), typed from the paper: m0 = 20.
FRACTION_AT_M0 = {"E/S0": 0.35, "Sbc/Scd": 0.50}
FRACTION_SLOPE = {"E/S0": 0.147, "Sbc/Scd": 0.450}
ALPHA = {"E/S0": 2.46, "Sbc/Scd": 1.81, "Irr": 0.91}
Z0 = {"E/S0": 0.431, "Sbc/Scd": 0.390, "Irr": 0.063}
KM = {"E/S0": 0.091, "Sbc/Scd": 0.0636, "Irr": 0.123}
Z_MAX = 4.0
KS_P_MIN = 1e-3


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("m", [20.0, 22.0, 25.0])
def test_class_probabilities_equal_benitez(m):
    early = 0.35 * math.exp(-0.147 * (m - 20.0))
    spiral = 0.50 * math.exp(-0.450 * (m - 20.0))
    expected = [early, spiral, 1.0 - early - spiral]
    np.testing.assert_allclose(bpz_class_probabilities(np.array([m]))[0], expected, rtol=1e-12)


def test_class_probabilities_hand_values():
    """Typed-out numbers (0.35 e^-0.294 = 0.260847, 0.5 e^-0.9 = 0.203285, ... at m = 22)."""
    p = bpz_class_probabilities(np.array([22.0, 25.0]))
    np.testing.assert_allclose(p[0], [0.260847, 0.203285, 0.535868], atol=2e-6)
    np.testing.assert_allclose(p[1], [0.167827, 0.052700, 0.779473], atol=2e-6)


def test_class_probabilities_rows_sum_to_one():
    mag = np.linspace(14.0, 30.0, 321)
    p = bpz_class_probabilities(mag)
    assert p.shape == (321, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(p >= 0)
    # brighter than m0: the m0 fractions
    np.testing.assert_allclose(p[mag <= 20.0], np.tile(p[mag == 20.0], ((mag <= 20.0).sum(), 1)))
    # fainter: irregulars take over
    assert np.all(np.diff(p[mag >= 20.0, 2]) > 0)


def _benitez_cdf(cls: str, m: float):
    """CDF of p(z) ∝ z^a exp(-(z/z_m)^a) on [0, 4], by quad on a fine grid (interpolated)."""
    alpha = ALPHA[cls]
    z_m = Z0[cls] + KM[cls] * (m - 20.0)

    def density(z):
        return z**alpha * math.exp(-((z / z_m) ** alpha))

    nodes = np.linspace(0.0, Z_MAX, 4001)
    pieces = [integrate.quad(density, a, b)[0] for a, b in itertools.pairwise(nodes)]
    cdf = np.concatenate([[0.0], np.cumsum(pieces)])
    cdf /= cdf[-1]
    return lambda z: np.interp(z, nodes, cdf)


@pytest.fixture(scope="module")
def population_at_m24():
    """About 48k E/S0, 21k Sbc/Scd and 181k Irr galaxies, all at m = 24."""
    config = PopulationConfig(mag_min=24.0, mag_max=24.0 + 1e-9)
    return sample(250_000, _rng(2000), config)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_redshifts_follow_benitez_prior(population_at_m24, k):
    z = population_at_m24.redshift[population_at_m24.bpz_class == k][:20_000]
    assert z.size == 20_000
    result = stats.kstest(z, _benitez_cdf(BPZ_CLASSES[k], 24.0))
    assert result.pvalue > KS_P_MIN, result


def test_ks_test_rejects_a_wrong_prior(population_at_m24):
    """The KS test above has power: E/S0 redshifts are not drawn from the m = 22 prior."""
    z = population_at_m24.redshift[population_at_m24.bpz_class == 0][:20_000]
    assert stats.kstest(z, _benitez_cdf("E/S0", 22.0)).pvalue < 1e-6


def test_class_frequencies_follow_probabilities(population_at_m24):
    observed = np.bincount(population_at_m24.bpz_class, minlength=3)
    expected = bpz_class_probabilities(np.array([24.0]))[0] * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > KS_P_MIN


def test_magnitudes_follow_power_law_counts():
    config = PopulationConfig()
    mag = sample(20_000, _rng(31), config).mag_ref
    assert np.all((mag >= config.mag_min) & (mag <= config.mag_max))
    lo, hi = 10.0 ** (0.3 * config.mag_min), 10.0 ** (0.3 * config.mag_max)

    def cdf(m):
        return (10.0 ** (0.3 * m) - lo) / (hi - lo)

    assert stats.kstest(mag, cdf).pvalue > KS_P_MIN
    # and not uniform (power check)
    assert (
        stats.kstest(mag, stats.uniform(config.mag_min, config.mag_max - config.mag_min).cdf).pvalue
        < 1e-6
    )


def test_same_seed_same_population_different_seed_differs():
    a = sample(500, _rng(42))
    b = sample(500, _rng(42))
    c = sample(500, _rng(43))
    for field in a.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert not np.array_equal(a.redshift, c.redshift)
    assert not np.array_equal(a.mag_ref, c.mag_ref)


@pytest.fixture(scope="module")
def population():
    return sample(20_000, _rng(7))


def test_values_in_documented_ranges(population):
    p = population
    n = 20_000
    assert len(p) == n
    for field in p.__dataclass_fields__:
        values = getattr(p, field)
        assert values.shape == (n,), field
        assert np.all(np.isfinite(values)), field
    assert np.all((p.redshift >= 0) & (p.redshift <= 4.0))
    assert p.redshift.max() > 3.5
    assert set(np.unique(p.bpz_class)) == {0, 1, 2}
    assert np.all((p.spectral_type >= 0) & (p.spectral_type <= 3))
    assert np.all((p.bulge_type >= 0) & (p.bulge_type <= 3))
    assert np.all((p.disk_type >= 0) & (p.disk_type <= 3))
    assert np.all((p.bulge_fraction >= 0) & (p.bulge_fraction <= 1))
    assert np.all((p.disk_star_forming >= 0) & (p.disk_star_forming <= 1))
    assert np.all(p.ebv >= 0)
    for q in (p.bulge_axis_ratio, p.disk_axis_ratio):
        assert np.all((q > 0) & (q <= 1))
    assert np.all(p.bulge_hlr_arcsec > 0)
    assert np.all(p.disk_hlr_arcsec > 0)
    assert np.all((p.position_angle_deg >= 0) & (p.position_angle_deg < 180))


def test_bulge_older_than_disk(population):
    assert np.all(population.bulge_type <= population.disk_type)
    assert np.mean(population.bulge_type < population.disk_type) > 0.9


def test_types_ordered_by_class(population):
    t, c = population.spectral_type, population.bpz_class
    assert t[c == 0].max() <= t[c == 1].min()
    assert t[c == 1].max() <= t[c == 2].min()


def test_fainter_galaxies_lie_further(population):
    bright = population.redshift[population.mag_ref < 22.0]
    faint = population.redshift[population.mag_ref > 26.0]
    assert np.median(faint) > np.median(bright) + 0.3


def test_empty_population():
    p = sample(0, _rng(1))
    assert len(p) == 0
    for field in p.__dataclass_fields__:
        assert getattr(p, field).shape == (0,), field


def test_negative_count_raises():
    with pytest.raises(ValueError):
        sample(-1, _rng(1))


@pytest.mark.parametrize(("lo", "hi"), [(24.0, 24.0), (25.0, 24.0)])
def test_empty_magnitude_range_raises(lo, hi):
    with pytest.raises(ValueError):
        sample(10, _rng(1), PopulationConfig(mag_min=lo, mag_max=hi))
