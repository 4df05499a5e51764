"""p(z) metrics against independent implementations: qp's histogram ensembles, scipy, float64."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, ndimage, stats

from csst_photoz.metrics import pit_ks_statistic
from csst_photoz.metrics.pz import (
    cde_loss,
    count_modes,
    crps_pz,
    multimodal_fraction,
    pz_interval_coverage,
    pz_metrics,
    pz_pit,
)
from csst_photoz.pz import PzGrid

qp = pytest.importorskip("qp")

GRID = PzGrid(0.0, 4.0, 80)


def _sample(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Random two-peak p(z) (some sparse bins) and truths on and off the grid."""
    rng = np.random.default_rng(seed)
    centres = GRID.centres
    mu = rng.uniform(0.2, 3.5, (n, 2))
    width = rng.uniform(0.05, 0.4, (n, 2))
    weight = rng.uniform(0.1, 1.0, (n, 2))
    density = (
        weight[:, :, None] * np.exp(-0.5 * ((centres - mu[:, :, None]) / width[:, :, None]) ** 2)
    ).sum(1)
    density[rng.random(density.shape) < 0.1] = 0.0
    probabilities = density / density.sum(axis=1, keepdims=True)
    z_true = rng.uniform(-0.2, 4.2, n)
    return probabilities, z_true


def _ensemble(probabilities: np.ndarray):
    return qp.Ensemble(qp.hist, data={"bins": GRID.edges, "pdfs": probabilities / GRID.width})


@pytest.mark.parametrize("seed", [0, 1])
def test_pit_is_qps_cdf_at_the_truth(seed):
    probabilities, z_true = _sample(seed)
    expected = _ensemble(probabilities).cdf(z_true[:, None])[:, 0]
    np.testing.assert_allclose(pz_pit(probabilities, GRID, z_true), expected, atol=1e-9)


@pytest.mark.parametrize("level", [0.6827, 0.9545])
def test_interval_coverage_uses_qps_quantiles(level):
    probabilities, _ = _sample(2, n=200)
    ensemble = _ensemble(probabilities)
    rng = np.random.default_rng(3)
    z_true = rng.uniform(0, 4, 200)
    lo = ensemble.ppf(np.full((200, 1), (1 - level) / 2))[:, 0]
    hi = ensemble.ppf(np.full((200, 1), (1 + level) / 2))[:, 0]
    expected = np.mean((z_true >= lo) & (z_true <= hi))
    assert pz_interval_coverage(probabilities, GRID, z_true, level) == pytest.approx(
        expected, abs=0.011
    )


def test_crps_is_the_integral_of_the_squared_cdf_difference():
    """Against a fine float64 trapezoid of qp's CDF (truths on a bin edge included)."""
    probabilities, z_true = _sample(4, n=8)
    z_true[:3] = GRID.edges[[0, 17, 80]]
    z = np.linspace(-1.0, 5.0, 240_001)
    cdf = np.clip(_ensemble(probabilities).cdf(z), 0.0, 1.0)
    step = (z[None, :] >= z_true[:, None]).astype(float)
    expected = integrate.trapezoid((cdf - step) ** 2, z, axis=1)
    np.testing.assert_allclose(crps_pz(probabilities, GRID, z_true), expected, rtol=1e-4, atol=1e-5)


def test_crps_of_a_narrow_pz_tends_to_the_absolute_error():
    grid = PzGrid(0.0, 4.0, 4000)
    probabilities = np.zeros((1, 4000))
    probabilities[0, 1000] = 1.0  # z in [1.000, 1.001]
    assert crps_pz(probabilities, grid, [2.0])[0] == pytest.approx(0.9995, abs=1e-3)


def test_crps_beats_gaussian_of_the_same_sigma_only_when_narrower():
    """Sanity against scipy: a gridded Gaussian's CRPS is the closed-form Gaussian CRPS."""
    from csst_photoz.metrics import crps_gaussian

    grid = PzGrid(0.0, 4.0, 4000)
    cdf = stats.norm(1.5, 0.1).cdf(grid.edges)
    probabilities = np.diff(cdf)[None, :]
    for z in (1.3, 1.5, 1.8):
        assert crps_pz(probabilities, grid, [z])[0] == pytest.approx(
            crps_gaussian([z], [1.5], [0.1])[0], rel=1e-4
        )


def test_cde_loss_matches_qps_metric():
    from qp.metrics.concrete_metric_classes import CDELossMetric

    probabilities, z_true = _sample(5, n=60)
    z_true = np.clip(z_true, 0.01, 3.99)
    metric = CDELossMetric(eval_grid=np.linspace(0, 4, 40001))
    expected = metric.evaluate(_ensemble(probabilities), z_true)
    assert cde_loss(probabilities, GRID, z_true) == pytest.approx(expected, rel=2e-3)


def test_modes_match_a_labelling_loop():
    probabilities, _ = _sample(6, n=100)
    expected = []
    for row in probabilities:
        labels, n = ndimage.label(row >= 0.2 * row.max())
        masses = ndimage.sum(row, labels, index=np.arange(1, n + 1))
        expected.append(int(np.sum(np.asarray(masses) >= 0.05)))
    np.testing.assert_array_equal(count_modes(probabilities), expected)
    assert multimodal_fraction(probabilities) == pytest.approx(np.mean(np.array(expected) > 1))


def test_calibrated_pz_has_uniform_pit_and_nominal_coverage():
    """Truths drawn from their own p(z): PIT uniform, coverage nominal (can fail if wrong)."""
    rng = np.random.default_rng(7)
    probabilities, _ = _sample(7, n=4000)
    cdf = np.concatenate([np.zeros((4000, 1)), np.cumsum(probabilities, axis=1)], axis=1)
    u = rng.random(4000)
    z_true = np.array([np.interp(ui, c, GRID.edges) for ui, c in zip(u, cdf, strict=True)])
    metrics = pz_metrics(probabilities, GRID, z_true)
    assert metrics["pit_ks"] < 0.03
    assert metrics["coverage_68"] == pytest.approx(0.6827, abs=0.025)
    assert metrics["coverage_95"] == pytest.approx(0.9545, abs=0.015)
    assert pit_ks_statistic(pz_pit(probabilities, GRID, rng.uniform(0, 4, 4000))) > 0.05


@pytest.mark.parametrize(
    ("probabilities", "z_true", "message"),
    [
        (np.ones((2, 79)), [1.0, 2.0], "bin probabilities"),
        (-np.ones((2, 80)), [1.0, 2.0], "negative"),
        (np.ones((2, 80)), [1.0], "true redshifts"),
        (np.ones((2, 80)), [1.0, np.nan], "true redshifts"),
    ],
)
def test_bad_input_is_refused_with_its_problem(probabilities, z_true, message):
    with pytest.raises(ValueError, match=message):
        pz_metrics(probabilities, GRID, z_true)
