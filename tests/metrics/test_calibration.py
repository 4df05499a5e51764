"""Tests for csst_photoz.metrics.calibration against independent implementations."""

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from csst_photoz.metrics import (
    calibration_metrics,
    coverage_scale,
    crps_gaussian,
    expected_coverage,
    interval_coverage,
    pit_histogram,
    pit_ks_statistic,
    pit_values,
)


def _gaussian_model(seed, size, *, claimed_over_true=1.0, shift=0.0):
    """Galaxies with true scatter sigma_true, a model that claims claimed_over_true * sigma_true."""
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.0, 3.0, size)
    sigma_true = 0.03 * (1.0 + z_true) * rng.uniform(0.5, 2.0, size)
    z_pred = z_true + shift * sigma_true + sigma_true * rng.standard_normal(size)
    return z_true, z_pred, claimed_over_true * sigma_true


# ---------------------------------------------------------------- per-galaxy values


@pytest.mark.parametrize("seed", [11, 12])
def test_pit_equals_scipy_normal_cdf(seed):
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0, 4, 500)
    z_pred = z_true + rng.normal(0, 0.2, 500)
    sigma = rng.uniform(0.01, 0.5, 500)
    expected = stats.norm.cdf(z_true, loc=z_pred, scale=sigma)
    np.testing.assert_allclose(pit_values(z_true, z_pred, sigma), expected, rtol=1e-12, atol=1e-15)


def test_pit_hand_values():
    # (z_true - z_pred) / sigma = 0, 1, -2  ->  Phi = 0.5, 0.8413..., 0.0227...
    result = pit_values([1.0, 1.1, 0.6], [1.0, 1.0, 1.0], [0.1, 0.1, 0.2])
    expected = [
        0.5,
        0.5 * (1 + math.erf(1 / math.sqrt(2))),
        0.5 * (1 + math.erf(-2 / math.sqrt(2))),
    ]
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_crps_hand_values():
    # z_pred = z_true: sigma * (2 phi(0) - 1/sqrt(pi)) = sigma * (sqrt 2 - 1) / sqrt(pi)
    sigma = np.array([0.01, 0.1, 1.0])
    expected = sigma * (math.sqrt(2.0) - 1.0) / math.sqrt(math.pi)
    np.testing.assert_allclose(crps_gaussian([0.5] * 3, [0.5] * 3, sigma), expected, rtol=1e-12)
    # tiny sigma: CRPS -> |z_true - z_pred|
    np.testing.assert_allclose(crps_gaussian([1.0, 0.2], [1.3, 0.0], [1e-9, 1e-9]), [0.3, 0.2])


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_crps_equals_numerical_integral(seed):
    """Closed form == integral of (F(x) - 1[x >= y])^2 over x, done by quadrature."""
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0, 3, 6)
    z_pred = z_true + rng.normal(0, 0.3, 6)
    sigma = rng.uniform(0.02, 0.4, 6)
    result = crps_gaussian(z_true, z_pred, sigma)
    for y, mu, s, value in zip(z_true, z_pred, sigma, result, strict=True):
        below, _ = integrate.quad(lambda x, mu=mu, s=s: stats.norm.cdf(x, mu, s) ** 2, -np.inf, y)
        above, _ = integrate.quad(lambda x, mu=mu, s=s: stats.norm.sf(x, mu, s) ** 2, y, np.inf)
        assert value == pytest.approx(below + above, rel=1e-7, abs=1e-12)


def test_crps_equals_monte_carlo_energy_form():
    """CRPS = E|X - y| - E|X - X'| / 2 with X, X' drawn from the Gaussian."""
    rng = np.random.default_rng(31)
    y, mu, s = 0.9, 1.05, 0.12
    x = rng.normal(mu, s, 400_000)
    x_prime = rng.normal(mu, s, 400_000)
    monte_carlo = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x_prime))
    assert crps_gaussian([y], [mu], [s])[0] == pytest.approx(monte_carlo, rel=5e-3)


def test_elementwise_functions_propagate_nan():
    z_true = [0.5, np.nan, 1.0, 1.0]
    z_pred = [0.5, 0.5, np.nan, 1.0]
    sigma = [0.1, 0.1, 0.1, np.nan]
    for function in (pit_values, crps_gaussian):
        result = function(z_true, z_pred, sigma)
        assert np.isfinite(result[0])
        assert np.isnan(result[1:]).all()


# ---------------------------------------------------------------- summaries


def test_expected_coverage_values():
    assert expected_coverage(1) == pytest.approx(0.682689492, abs=1e-9)
    assert expected_coverage(2) == pytest.approx(0.954499736, abs=1e-9)
    assert expected_coverage(1.5) == pytest.approx(stats.norm.cdf(1.5) - stats.norm.cdf(-1.5))


def test_coverage_hand_values():
    # |dz| / sigma = 0.5, 1.0 (on the edge: inside), 1.5, 3.0
    z_true = [1.0, 1.0, 1.0, 1.0]
    z_pred = [1.05, 0.875, 1.15, 0.7]
    sigma = [0.1, 0.125, 0.1, 0.1]
    assert interval_coverage(z_true, z_pred, sigma) == 0.5
    assert interval_coverage(z_true, z_pred, sigma, n_sigma=2) == 0.75
    assert interval_coverage(z_true, z_pred, sigma, n_sigma=3.5) == 1.0


@pytest.mark.parametrize("seed", [41, 42])
def test_pit_ks_equals_scipy_kstest(seed):
    pit = np.random.default_rng(seed).beta(1.3, 1.1, 300)
    expected = stats.kstest(pit, "uniform").statistic
    assert pit_ks_statistic(pit) == pytest.approx(expected, abs=1e-14)


def test_pit_ks_hand_value():
    # Sorted u = 0.1, 0.2, 0.9: D+ = max(1/3 - 0.1, 2/3 - 0.2, 1 - 0.9) = 0.4667
    assert pit_ks_statistic([0.9, 0.1, 0.2]) == pytest.approx(2 / 3 - 0.2)


@pytest.mark.parametrize("seed", [51, 52, 53])
def test_calibrated_model_has_nominal_coverage_and_flat_pit(seed):
    n = 40_000
    z_true, z_pred, sigma = _gaussian_model(seed, n)
    result = calibration_metrics(z_true, z_pred, sigma)
    assert result["n"] == n
    # binomial standard errors: 0.0023 and 0.0010
    assert result["coverage_68"] == pytest.approx(0.6827, abs=0.01)
    assert result["coverage_95"] == pytest.approx(0.9545, abs=0.005)
    assert result["pit_ks"] < 1.63 / math.sqrt(n)  # 99% critical value
    density, _ = pit_histogram(pit_values(z_true, z_pred, sigma), bins=10)
    np.testing.assert_allclose(density, 1.0, atol=0.06)
    # a calibrated Gaussian's expected CRPS is sigma / sqrt(pi) (E|X - y| - E|X - X'| / 2
    # with X, X', y independent draws of the same Gaussian)
    assert result["crps"] == pytest.approx(np.mean(sigma) / math.sqrt(math.pi), rel=0.02)


@pytest.mark.parametrize(
    ("claimed", "shift", "what"),
    [(0.5, 0.0, "over-confident"), (2.0, 0.0, "under-confident"), (1.0, 1.0, "biased")],
)
def test_miscalibrated_models_are_detected(claimed, shift, what):
    n = 20_000
    z_true, z_pred, sigma = _gaussian_model(60, n, claimed_over_true=claimed, shift=shift)
    calibrated = calibration_metrics(*_gaussian_model(60, n))
    result = calibration_metrics(z_true, z_pred, sigma)
    assert result["pit_ks"] > 0.1, what
    if what == "over-confident":
        assert result["coverage_68"] == pytest.approx(expected_coverage(0.5), abs=0.01)
        assert result["coverage_95"] < 0.75
        density, _ = pit_histogram(pit_values(z_true, z_pred, sigma), bins=10)
        assert density[0] > 2 and density[-1] > 2 and density[5] < 0.6  # U shape
    elif what == "under-confident":
        assert result["coverage_68"] > 0.9
        assert result["coverage_95"] > 0.99
    else:
        assert result["coverage_68"] < 0.6
        assert result["crps"] > 1.1 * calibrated["crps"]


def test_crps_prefers_the_calibrated_sigma():
    z_true, z_pred, sigma = _gaussian_model(70, 20_000)
    scores = [calibration_metrics(z_true, z_pred, f * sigma)["crps"] for f in (0.5, 1.0, 2.0)]
    assert scores[1] < scores[0] and scores[1] < scores[2]


def test_pit_histogram_layout_and_nan():
    density, edges = pit_histogram([0.05, 0.1, 0.6, np.nan], bins=4)
    np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(density, [8 / 3, 0, 4 / 3, 0])
    assert np.isnan(pit_histogram([np.nan], bins=3)[0]).all()


def test_nan_policy_omit_drops_rows_jointly():
    z_true, z_pred, sigma = _gaussian_model(80, 200)
    z_true_nan, z_pred_nan, sigma_nan = z_true.copy(), z_pred.copy(), sigma.copy()
    z_true_nan[3] = np.nan
    z_pred_nan[10] = np.nan
    sigma_nan[50] = np.nan
    keep = np.ones(200, dtype=bool)
    keep[[3, 10, 50]] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = calibration_metrics(z_true_nan, z_pred_nan, sigma_nan, nan_policy="omit")
        coverage = interval_coverage(
            z_true_nan, z_pred_nan, sigma_nan, n_sigma=2, nan_policy="omit"
        )
    assert result == calibration_metrics(z_true[keep], z_pred[keep], sigma[keep])
    assert result["n"] == 197
    assert coverage == result["coverage_95"]
    pit = pit_values(z_true_nan, z_pred_nan, sigma_nan)
    assert pit_ks_statistic(pit, nan_policy="omit") == result["pit_ks"]


def test_nan_policy_raise_is_the_default():
    with pytest.raises(ValueError, match=r"sigma contains 1 value.*NaN.*nan_policy='omit'"):
        calibration_metrics([0.5, 0.6], [0.5, 0.6], [0.1, np.nan])
    with pytest.raises(ValueError, match=r"pit contains 1 value"):
        pit_ks_statistic([0.5, np.nan])


def test_all_nan_with_omit_is_an_empty_sample():
    with pytest.raises(ValueError, match=r"empty \(2 dropped as NaN\)"):
        interval_coverage([np.nan, 0.5], [0.5, np.nan], [0.1, 0.1], nan_policy="omit")


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        interval_coverage([0.5], [0.5], [0.1], 2.0)
    with pytest.raises(TypeError):
        pit_histogram([0.5], 10)


GOOD = [0.1, 0.5, 1.2]

INVALID = [
    pytest.param({"sigma": [0.1, 0.0, 0.1]}, r"sigma must be > 0; 1 value", id="sigma-zero"),
    pytest.param({"sigma": [0.1, -0.2, -0.1]}, r"sigma must be > 0; 2 value", id="sigma-neg"),
    pytest.param({"sigma": [0.1, np.inf, 0.1]}, r"sigma contains 1 value.*infinite", id="s-inf"),
    pytest.param({"z_pred": [0.1, -np.inf, 0.1]}, r"z_pred contains 1 value", id="z-inf"),
    pytest.param({"sigma": [0.1, 0.1]}, r"must have the same shape", id="shape"),
    pytest.param({"z_true": [[0.1, 0.5, 1.2]]}, r"z_true must be 1-D", id="2d"),
    pytest.param({"n_sigma": 0.0}, r"n_sigma must be a finite number > 0", id="n-sigma-0"),
    pytest.param({"n_sigma": np.nan}, r"n_sigma must be a finite number > 0", id="n-sigma-nan"),
    pytest.param({"nan_policy": "propagate"}, r"nan_policy must be", id="policy"),
    pytest.param({"z_true": [], "z_pred": [], "sigma": []}, r"the sample is empty", id="empty"),
]


@pytest.mark.parametrize(("override", "message"), INVALID)
def test_invalid_arguments_raise(override, message):
    kwargs = {"z_true": GOOD, "z_pred": GOOD, "sigma": [0.1, 0.1, 0.1], **override}
    with pytest.raises(ValueError, match=message):
        interval_coverage(**kwargs)


@pytest.mark.parametrize(
    ("pit", "message"),
    [([0.5, 1.2], r"pit must lie in \[0, 1\]"), ([-0.1], r"pit must lie"), ([], r"empty")],
)
def test_invalid_pit_raises(pit, message):
    with pytest.raises(ValueError, match=message):
        pit_ks_statistic(pit)


@pytest.mark.parametrize("bins", [0, 2.5, True])
def test_invalid_histogram_bins_raise(bins):
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1"):
        pit_histogram([0.5], bins=bins)


def test_elementwise_validation_matches_summaries():
    with pytest.raises(ValueError, match=r"sigma must be > 0"):
        pit_values([0.5], [0.5], [0.0])
    with pytest.raises(ValueError, match=r"same shape"):
        crps_gaussian([0.5], [0.5, 0.6], [0.1])
    assert pit_values([], [], []).shape == (0,)


@pytest.mark.parametrize("claimed_over_true", [0.5, 1.0, 2.5])
def test_coverage_scale_undoes_a_misstated_sigma(claimed_over_true):
    z_true, z_pred, sigma = _gaussian_model(7, 20_000, claimed_over_true=claimed_over_true)
    scale = coverage_scale(z_true, z_pred, sigma)
    assert scale == pytest.approx(1.0 / claimed_over_true, rel=0.03)
    # by construction the fitted sample's coverage is the Gaussian share (to one galaxy)
    inside = np.abs(z_pred - z_true) <= scale * sigma
    assert inside.mean() == pytest.approx(expected_coverage(1.0), abs=1.0 / z_true.size)
    # 2-sigma calibration of a Gaussian gives the same factor
    assert coverage_scale(z_true, z_pred, sigma, n_sigma=2.0) == pytest.approx(scale, rel=0.03)


def test_coverage_scale_leaves_out_unusable_rows_and_refuses_none():
    z_true, z_pred, sigma = _gaussian_model(8, 5_000, claimed_over_true=2.0)
    clean = coverage_scale(z_true, z_pred, sigma)
    z_pred_bad, sigma_bad = z_pred.copy(), sigma.copy()
    z_pred_bad[:10], sigma_bad[10:20] = np.nan, 0.0
    subset = coverage_scale(z_true[20:], z_pred[20:], sigma[20:])
    assert coverage_scale(z_true, z_pred_bad, sigma_bad) == subset
    assert subset == pytest.approx(clean, rel=0.02)
    with pytest.raises(ValueError, match="no galaxy"):
        coverage_scale(z_true[:3], [np.nan] * 3, sigma[:3])
    with pytest.raises(ValueError, match="all zero"):
        coverage_scale(z_true, z_true, sigma)
    with pytest.raises(ValueError, match="differ"):
        coverage_scale(z_true, z_pred[:-1], sigma)
