"""Tests for csst_photoz.evaluation.baselines on a synthetic colour-redshift relation."""

import numpy as np
import pytest
import torch

from csst_photoz.evaluation import (
    GradientBoostingBaseline,
    KNNBaseline,
    baseline_features,
    fit_predict_baselines,
)
from csst_photoz.metrics import calibration_metrics, point_metrics
from csst_photoz.models.features import estimate_limiting_flux, flux_features

N_BANDS = 7


def _galaxies(rng, size):
    """Seven-band fluxes of a bump that moves redward with z (a Balmer/4000 A-like break)."""
    z = rng.uniform(0.05, 3.0, size)
    band = np.arange(N_BANDS, dtype=float)
    amplitude = 10 ** rng.uniform(0.0, 1.5, size)
    shape = 0.2 + np.exp(-0.5 * ((band[None, :] - 2.0 * z[:, None]) / 1.5) ** 2)
    true_flux = amplitude[:, None] * shape
    error = 0.02 * true_flux + 0.02
    flux = true_flux + error * rng.standard_normal(true_flux.shape)
    return flux, error, z


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(2024)
    return _galaxies(rng, 1500), _galaxies(rng, 800)


@pytest.fixture(scope="module")
def predictions(split):
    (flux, error, z), (test_flux, test_error, _) = split
    return {
        "knn": KNNBaseline(n_threads=1).fit(flux, error, z).predict(test_flux, test_error),
        "gbr": GradientBoostingBaseline(max_iter=150, n_threads=1)
        .fit(flux, error, z)
        .predict(test_flux, test_error),
    }


def test_features_are_the_mlp_features(split):
    (flux, error, _), _ = split
    limits = estimate_limiting_flux(error)
    features = baseline_features(flux, error, limits)
    expected = flux_features(
        torch.as_tensor(flux), torch.as_tensor(error), torch.as_tensor(limits)
    ).numpy()
    assert features.shape == (flux.shape[0], 20)
    np.testing.assert_array_equal(features, expected)


@pytest.mark.parametrize("name", ["knn", "gbr"])
def test_baselines_beat_a_constant_predictor(split, predictions, name):
    (_, _, z_train), (_, _, z_test) = split
    constant = point_metrics(z_test, np.full(z_test.size, np.median(z_train)))
    z_pred, sigma = predictions[name]
    result = point_metrics(z_test, z_pred)
    assert constant["sigma_nmad"] > 0.3 and constant["outlier_fraction"] > 0.5
    assert result["sigma_nmad"] < 0.1 * constant["sigma_nmad"]
    assert result["outlier_fraction"] < 0.1 * constant["outlier_fraction"]
    assert np.mean(np.abs(z_pred - z_test)) < 0.2 * np.mean(np.abs(np.median(z_train) - z_test))
    assert np.all(sigma >= 1e-3) and np.isfinite(sigma).all()


@pytest.mark.parametrize("name", ["knn", "gbr"])
def test_recalibrated_sigma_covers_68_percent(split, predictions, name):
    _, (_, _, z_test) = split
    z_pred, sigma = predictions[name]
    calibration = calibration_metrics(z_test, z_pred, sigma)
    assert 0.58 < calibration["coverage_68"] < 0.78


def test_knn_equals_a_brute_force_neighbour_search(split):
    (flux, error, z), (test_flux, test_error, _) = split
    k = 7
    model = KNNBaseline(n_neighbors=k, recalibrate=False, n_threads=1).fit(flux, error, z)
    train = baseline_features(flux, error, model.limiting_flux_)
    test = baseline_features(test_flux[:50], test_error[:50], model.limiting_flux_)
    mean, std = train.mean(axis=0), train.std(axis=0)
    distance = np.linalg.norm((test - mean)[:, None, :] / std - (train - mean)[None] / std, axis=2)
    nearest = z[np.argsort(distance, axis=1)[:, :k]]
    z_pred, sigma = model.predict(test_flux[:50], test_error[:50])
    np.testing.assert_allclose(z_pred, nearest.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.maximum(nearest.std(axis=1, ddof=1), 1e-3), rtol=1e-12)


def test_raw_knn_spread_is_not_rescaled(split):
    (flux, error, z), (test_flux, test_error, _) = split
    raw = KNNBaseline(recalibrate=False, n_threads=1).fit(flux, error, z)
    scaled = KNNBaseline(n_threads=1).fit(flux, error, z)
    assert raw.sigma_scale_ == 1.0
    assert scaled.sigma_scale_ != pytest.approx(1.0, abs=0.05)
    z_raw, sigma_raw = raw.predict(test_flux, test_error)
    z_scaled, sigma_scaled = scaled.predict(test_flux, test_error)
    np.testing.assert_array_equal(z_raw, z_scaled)
    np.testing.assert_allclose(
        sigma_scaled, np.maximum(scaled.sigma_scale_ * sigma_raw, 1e-3), rtol=1e-12
    )


def test_nan_fluxes_are_dropped_in_training_and_predicted_as_nan(split):
    (flux, error, z), (test_flux, test_error, _) = split
    flux, test_flux = flux.copy(), test_flux.copy()
    flux[:5, 2] = np.nan
    test_flux[[0, 7], 4] = np.nan
    model = KNNBaseline(n_neighbors=10, n_threads=1).fit(flux, error, z)
    z_pred, sigma = model.predict(test_flux, test_error)
    assert np.isnan(z_pred[[0, 7]]).all() and np.isnan(sigma[[0, 7]]).all()
    assert np.isfinite(np.delete(z_pred, [0, 7])).all()
    reference = KNNBaseline(n_neighbors=10, limiting_flux=model.limiting_flux_, n_threads=1)
    reference.fit(flux[5:], error[5:], z[5:])
    np.testing.assert_array_equal(reference.predict(test_flux, test_error)[0], z_pred)


def test_fit_predict_baselines_is_deterministic(split):
    (flux, error, z), (test_flux, test_error, _) = split
    small = slice(0, 200)
    first = fit_predict_baselines(
        flux[small], error[small], z[small], test_flux, test_error, seed=3, n_threads=1
    )
    second = fit_predict_baselines(
        flux[small], error[small], z[small], test_flux, test_error, seed=3, n_threads=1
    )
    assert list(first) == ["knn", "gbr"]
    for name in first:
        for a, b in zip(first[name], second[name], strict=True):
            np.testing.assert_array_equal(a, b)


def test_given_limiting_flux_is_used(split):
    (flux, error, z), _ = split
    limits = np.full(N_BANDS, 0.5)
    model = KNNBaseline(limiting_flux=limits, n_threads=1).fit(flux, error, z)
    np.testing.assert_array_equal(model.limiting_flux_, limits)


def test_errors(split):
    (flux, error, z), _ = split
    with pytest.raises(RuntimeError, match=r"not fitted"):
        KNNBaseline().predict(flux, error)
    model = KNNBaseline(n_threads=1).fit(flux, error, z)
    with pytest.raises(ValueError, match=r"fitted on 7 bands, got fluxes in 6"):
        model.predict(flux[:, :6], error[:, :6])
    with pytest.raises(ValueError, match=r"must both be \(n_galaxies, n_bands\)"):
        model.predict(flux, error[:, :6])
    with pytest.raises(ValueError, match=r"redshift must have shape"):
        KNNBaseline().fit(flux, error, z[:-1])
    with pytest.raises(ValueError, match=r"need more than n_neighbors"):
        KNNBaseline(n_neighbors=30).fit(flux[:20], error[:20], z[:20])
    with pytest.raises(ValueError, match=r"limiting_flux has 6 values for 7 bands"):
        KNNBaseline(limiting_flux=[1.0] * 6).fit(flux, error, z)
    with pytest.raises(ValueError, match=r"unknown baseline"):
        fit_predict_baselines(flux, error, z, flux, error, names=["rf"])


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: KNNBaseline(n_neighbors=1), r"n_neighbors must be an integer >= 2"),
        (lambda: KNNBaseline(min_sigma=0.0), r"min_sigma must be > 0"),
        (lambda: KNNBaseline(n_threads=0), r"n_threads must be >= 1"),
        (lambda: KNNBaseline(limiting_flux=[1.0, -1.0]), r"positive finite values"),
        (lambda: GradientBoostingBaseline(learning_rate=0.0), r"learning_rate > 0"),
        (lambda: GradientBoostingBaseline(max_iter=0), r"max_iter >= 1"),
    ],
)
def test_invalid_parameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
