"""The gridded p(z): normalisation, PIT, quantiles, summaries and recalibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from csst_photoz.pz import (
    PzGrid,
    cdf_at_edges,
    cdf_values,
    fit_pz_calibration,
    pz_summaries,
    quantiles,
    recalibrate,
)

GRID = PzGrid(0.0, 4.0, 200)


def _gaussians(seed: int, n: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p(z) = N(mu, sigma) on the grid, truths drawn from N(mu, scale x sigma)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.5, 3.0, n)
    sigma = rng.uniform(0.03, 0.2, n)
    probabilities = np.diff(
        stats.norm.cdf(GRID.edges[None, :], mu[:, None], sigma[:, None]), axis=1
    )
    z_true = mu + scale * sigma * rng.standard_normal(n)
    return probabilities / probabilities.sum(1, keepdims=True), z_true, mu


def test_a_pz_integrates_to_one_on_its_grid():
    probabilities, _, _ = _gaussians(0, 50)
    density = probabilities / GRID.width
    np.testing.assert_allclose(
        np.trapezoid(np.repeat(density, 2, axis=1), np.repeat(GRID.edges, 2)[1:-1], axis=1),
        1.0,
        atol=1e-12,
    )
    np.testing.assert_allclose(cdf_at_edges(probabilities)[:, -1], 1.0)


def test_quantiles_are_monotonic_and_invert_the_cdf():
    probabilities, _, _ = _gaussians(1, 30)
    levels = np.linspace(0.01, 0.99, 99)
    q = quantiles(probabilities, GRID, levels)
    assert np.all(np.diff(q, axis=1) >= 0)
    for j in (0, 49, 98):
        np.testing.assert_allclose(cdf_values(probabilities, GRID, q[:, j]), levels[j], atol=1e-9)


def test_summaries_match_float64_sampling_of_the_density():
    probabilities, _, mu = _gaussians(2, 20)
    got = pz_summaries(probabilities, GRID)
    rng = np.random.default_rng(3)
    for i in range(3):  # draw from the piecewise-uniform density
        k = rng.choice(GRID.bins, size=400_000, p=probabilities[i])
        z = GRID.edges[k] + GRID.width * rng.random(k.size)
        assert got["mean"][i] == pytest.approx(z.mean(), abs=2e-3)
        assert got["std"][i] == pytest.approx(z.std(), rel=1e-2)
        assert got["median"][i] == pytest.approx(np.median(z), abs=2e-3)
        assert got["mode"][i] == pytest.approx(mu[i], abs=GRID.width)
        centre = got["mode"][i]
        inside = np.abs(z - centre) < 0.06 * (1 + centre)
        assert got["odds"][i] == pytest.approx(inside.mean(), abs=3e-3)


def test_recalibration_fitted_on_one_half_calibrates_the_other():
    """Too narrow p(z) (truth spread 1.6 x sigma): PIT KS drops on galaxies not fitted on."""
    probabilities, z_true, _ = _gaussians(4, 6000, scale=1.6)
    fit, held = slice(0, 3000), slice(3000, None)
    record = fit_pz_calibration(probabilities[fit], GRID, z_true[fit])
    before = stats.kstest(cdf_values(probabilities[held], GRID, z_true[held]), "uniform").statistic
    after_pz = recalibrate(probabilities[held], record)
    after = stats.kstest(cdf_values(after_pz, GRID, z_true[held]), "uniform").statistic
    assert before > 0.08 and after < 0.03
    assert record.pit_ks_before > 0.08 and record.pit_ks_after < 0.02
    np.testing.assert_allclose(after_pz.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PzGrid(1.0, 1.0, 10), "z_min < z_max"),
        (lambda: cdf_values(np.ones((2, 5)), GRID, [1.0, 2.0]), r"\(n, 200\)"),
        (lambda: cdf_at_edges(np.zeros((1, 200))), "no probability"),
        (lambda: quantiles(np.ones((1, 200)), GRID, [0.0, 0.5]), "inside \\(0, 1\\)"),
        (lambda: fit_pz_calibration(np.ones((5, 200)), GRID, np.ones(5)), ">= 10"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
