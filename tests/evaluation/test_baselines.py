"""Tests for csst_photoz.evaluation.baselines on a synthetic colour-redshift relation."""

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from csst_photoz.evaluation import (
    GradientBoostingBaseline,
    KNNBaseline,
    baseline_features,
    fit_predict_baselines,
)
from csst_photoz.metrics import calibration_metrics, point_metrics
from csst_photoz.models.features import estimate_limiting_flux, flux_features
from csst_photoz.threads import limit_threads

N_BANDS = 7
#: A small grid keeps the default run fast; the search itself is what is tested.
GRID = {
    "learning_rate": (0.3,),
    "max_leaf_nodes": (7, 31),
    "min_samples_leaf": (20,),
    "l2_regularization": (0.0,),
}


def _galaxies(rng, size):
    """Seven-band fluxes of a bump that moves redward with z (a Balmer/4000 A-like break).

    The colours are a smooth function of z; the amplitudes span two decades, the depth varies
    from galaxy to galaxy (as across a survey), and the faint bands of faint galaxies fall below
    their errors.
    """
    z = rng.uniform(0.05, 3.0, size)
    band = np.arange(N_BANDS, dtype=float)
    amplitude = 10 ** rng.uniform(0.0, 2.0, size)
    shape = 0.2 + np.exp(-0.5 * ((band[None, :] - 2.0 * z[:, None]) / 1.5) ** 2)
    true_flux = amplitude[:, None] * shape
    depth = 10 ** rng.uniform(-0.3, 0.5, size)[:, None]
    error = depth * (0.03 * true_flux + 0.05)
    flux = true_flux + error * rng.standard_normal(true_flux.shape)
    return flux, error, z


def _trees(grid=GRID):
    return GradientBoostingBaseline(param_grid=grid, max_iter=300, n_iter_no_change=10, n_threads=1)


def _signed_log_baselines(flux, error, z, test_flux, test_error):
    """The previous baselines: the MLP's signed-log features, default k-NN and L1 trees."""
    limits = torch.as_tensor(estimate_limiting_flux(error))

    def features(f, e):
        return flux_features(torch.as_tensor(f), torch.as_tensor(e), limits).numpy()

    train, test = features(flux, error), features(test_flux, test_error)
    kept, known = np.isfinite(train).all(axis=1), np.isfinite(test).all(axis=1)
    models = {
        "knn": make_pipeline(StandardScaler(), KNeighborsRegressor(20)),
        "gbr": HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=300, early_stopping=True, random_state=0
        ),
    }
    predictions = {}
    with limit_threads(1):
        for name, model in models.items():
            predictions[name] = np.full(test.shape[0], np.nan)  # NaN features: NaN redshift
            predictions[name][known] = model.fit(train[kept], z[kept]).predict(test[known])
    return predictions


def _outliers(z_true, z_pred):
    """Share of ``|dz| / (1 + z) > 0.15``, a NaN prediction counting as an outlier."""
    return float(np.mean(~(np.abs(z_pred - z_true) / (1 + z_true) <= 0.15)))


def _mean_abs(z_true, z_pred):
    return float(np.mean(np.abs(z_pred - z_true) / (1 + z_true)))


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(2024)
    return _galaxies(rng, 1000), _galaxies(rng, 600)


@pytest.fixture(scope="module")
def fitted(split):
    (flux, error, z), _ = split
    return {
        "knn": KNNBaseline(n_threads=1).fit(flux, error, z),
        "gbr": _trees().fit(flux, error, z),
    }


@pytest.fixture(scope="module")
def predictions(split, fitted):
    _, (test_flux, test_error, _) = split
    return {name: model.predict(test_flux, test_error) for name, model in fitted.items()}


def test_features_are_one_magnitude_and_adjacent_colours():
    flux = np.array([[10.0, 100.0, 1000.0], [10.0, np.nan, 1.0], [-3.0, 100.0, 0.0]])
    error = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 10.0]])
    features = baseline_features(flux, error, 1)
    expected = np.array(
        [
            [-5.0, 2.5, 2.5],
            [np.nan, np.nan, np.nan],  # band 1 is missing (NaN flux), band 2 too (zero error)
            [-5.0, 5.0, -2.5],  # non-detections enter at their 1-sigma error
        ]
    )
    np.testing.assert_allclose(features, expected, atol=1e-12)
    # colours are unit-free: one magnitude moves by the zero-point offset, the colours do not
    shifted = baseline_features(1e3 * flux, 1e3 * error, 1)
    np.testing.assert_allclose(shifted[:, 1:], expected[:, 1:], atol=1e-12)
    np.testing.assert_allclose(shifted[[0, 2], 0], expected[[0, 2], 0] - 7.5, atol=1e-12)


@pytest.mark.parametrize("name", ["knn", "gbr"])
def test_tuned_baselines_beat_a_constant(split, predictions, name):
    (_, _, z_train), (_, _, z_test) = split
    constant = point_metrics(z_test, np.full(z_test.size, np.median(z_train)))
    z_pred, sigma = predictions[name]
    result = point_metrics(z_test, z_pred)
    assert result["sigma_nmad"] < 0.1 * constant["sigma_nmad"]
    assert result["outlier_fraction"] < 0.05 < 0.5 < constant["outlier_fraction"]
    assert np.all(sigma >= 1e-3) and np.isfinite(sigma).all()


def test_knn_on_colours_beats_the_signed_log_knn(split, predictions):
    (flux, error, z_train), (test_flux, test_error, z_test) = split
    old = _signed_log_baselines(flux, error, z_train, test_flux, test_error)["knn"]
    assert _mean_abs(z_test, predictions["knn"][0]) < 0.9 * _mean_abs(z_test, old)


def test_trees_beat_the_signed_log_trees_where_bands_are_missing(split):
    (flux, error, z_train), (test_flux, test_error, z_test) = split
    flux, test_flux = flux.copy(), test_flux.copy()
    rng = np.random.default_rng(11)
    flux[rng.random(z_train.size) < 0.2, 2] = np.nan
    test_flux[rng.random(z_test.size) < 0.2, 2] = np.nan
    old = _signed_log_baselines(flux, error, z_train, test_flux, test_error)["gbr"]
    z_pred, _ = (
        _trees({**GRID, "max_leaf_nodes": (15,)})
        .fit(flux, error, z_train)
        .predict(test_flux, test_error)
    )
    assert np.isfinite(z_pred).all() and np.isnan(old).mean() > 0.15
    assert _outliers(z_test, z_pred) < 0.1 < 0.15 < _outliers(z_test, old)


@pytest.mark.parametrize("name", ["knn", "gbr"])
def test_calibrated_sigma_covers_68_percent_of_held_out_rows(predictions, split, name):
    _, (_, _, z_test) = split
    z_pred, sigma = predictions[name]
    assert 0.6 < calibration_metrics(z_test, z_pred, sigma)["coverage_68"] < 0.76


def test_tuning_records_the_search_and_stops_early(fitted):
    trees, knn = fitted["gbr"], fitted["knn"]
    assert [entry["max_leaf_nodes"] for entry in trees.search_] == [7, 31]
    best = min(trees.search_, key=lambda entry: entry["score"])
    assert trees.params_["max_leaf_nodes"] == best["max_leaf_nodes"]
    assert 0 < trees.n_iter_ < trees.max_iter  # early stopping ended the easy problem
    assert trees.describe()["n_iter"] == trees.n_iter_
    assert knn.n_neighbors_ == min(knn.validation_scores_, key=knn.validation_scores_.get)
    assert knn.reference_band_ == trees.reference_band_


def test_candidates_are_drawn_from_the_grid_by_the_seed():
    grid = {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63)}
    first = GradientBoostingBaseline(param_grid=grid, n_candidates=4, seed=1)._candidates()
    again = GradientBoostingBaseline(param_grid=grid, n_candidates=4, seed=1)._candidates()
    whole = GradientBoostingBaseline(param_grid=grid, n_candidates=20)._candidates()
    assert first == again and len(first) == 4 and len(whole) == 9
    assert all(candidate in whole for candidate in first)


def test_missing_bands_are_predicted_from_the_other_bands(split):
    (flux, error, z), (test_flux, test_error, z_test) = split
    rng = np.random.default_rng(5)
    flux, test_flux, test_error = flux.copy(), test_flux.copy(), test_error.copy()
    flux[rng.random(z.size) < 0.2, 1] = np.nan
    gone = rng.random(z_test.size) < 0.3
    half = rng.random(z_test.size) < 0.5
    test_flux[gone & half, 1] = np.nan  # missing by a NaN flux ...
    test_error[gone & ~half, 5] = 0.0  # ... or by a non-positive error
    test_flux[0] = np.nan  # no band at all
    for model in (KNNBaseline(n_threads=1), _trees({**GRID, "max_leaf_nodes": (15,)})):
        z_pred, sigma = model.fit(flux, error, z).predict(test_flux, test_error)
        assert np.isnan(z_pred[0]) and np.isnan(sigma[0])
        rows = np.flatnonzero(gone)[1:]
        assert np.isfinite(z_pred[1:]).all() and np.isfinite(sigma[1:]).all()
        result = point_metrics(z_test[rows], z_pred[rows])
        assert result["sigma_nmad"] < 0.05 and result["outlier_fraction"] < 0.1, model.name


def test_knn_is_the_median_of_a_brute_force_neighbour_search(split):
    (flux, error, z), (test_flux, test_error, _) = split
    k = 7
    model = KNNBaseline(n_neighbors=[k], n_threads=1).fit(flux, error, z)
    train = baseline_features(flux, error, model.reference_band_)
    test = baseline_features(test_flux[:50], test_error[:50], model.reference_band_)
    mean, std = train.mean(axis=0), train.std(axis=0)
    distance = np.linalg.norm((test - mean)[:, None, :] / std - (train - mean)[None] / std, axis=2)
    nearest = z[np.argsort(distance, axis=1)[:, :k]]
    z_pred, sigma = model.predict(test_flux[:50], test_error[:50])
    np.testing.assert_allclose(z_pred, np.median(nearest, axis=1), rtol=1e-12)
    low, high = np.quantile(nearest, (0.16, 0.84), axis=1)
    raw = 0.5 * (high - low)
    np.testing.assert_allclose(sigma, np.maximum(model.sigma_scale_ * raw, 1e-3), rtol=1e-12)


def test_seeds_make_results_reproducible(split):
    (flux, error, z), (test_flux, test_error, _) = split
    small = slice(0, 400)
    first, second = (
        fit_predict_baselines(
            flux[small], error[small], z[small], test_flux, test_error, names=["knn"], seed=3
        )["knn"]
        for _ in range(2)
    )
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    trees = [_trees().fit(flux[small], error[small], z[small]) for _ in range(2)]
    for a, b in zip(*(model.predict(test_flux, test_error) for model in trees), strict=True):
        np.testing.assert_array_equal(a, b)
    assert trees[0].search_ == trees[1].search_
    other = KNNBaseline(seed=4, n_threads=1).fit(flux[small], error[small], z[small])
    assert (
        other.validation_scores_
        != KNNBaseline(seed=3).fit(flux[small], error[small], z[small]).validation_scores_
    )


def test_errors(split):
    (flux, error, z), _ = split
    with pytest.raises(RuntimeError, match=r"not fitted"):
        KNNBaseline().predict(flux, error)
    model = KNNBaseline(n_neighbors=[5], n_threads=1).fit(flux[:300], error[:300], z[:300])
    with pytest.raises(ValueError, match=r"fitted on 7 bands, got fluxes in 6"):
        model.predict(flux[:, :6], error[:, :6])
    with pytest.raises(ValueError, match=r"must both be \(n_galaxies, n_bands\)"):
        model.predict(flux, error[:, :6])
    with pytest.raises(ValueError, match=r"redshift must have shape"):
        KNNBaseline().fit(flux, error, z[:-1])
    with pytest.raises(ValueError, match=r"need more than k = 40"):
        KNNBaseline(n_neighbors=[40, 50]).fit(flux[:40], error[:40], z[:40])
    assert set(KNNBaseline().fit(flux[:40], error[:40], z[:40]).validation_scores_) == {
        3,
        5,
        8,
        12,
        20,
    }
    with pytest.raises(ValueError, match=r"need at least 10"):
        KNNBaseline().fit(flux[:9], error[:9], z[:9])
    with pytest.raises(ValueError, match=r"reference_band 7 is not one of 7 bands"):
        KNNBaseline(reference_band=7).fit(flux, error, z)
    with pytest.raises(ValueError, match=r"unknown baseline"):
        fit_predict_baselines(flux, error, z, flux, error, names=["rf"])


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: KNNBaseline(n_neighbors=[1, 5]), r"n_neighbors must be integers >= 2"),
        (lambda: KNNBaseline(min_sigma=0.0), r"min_sigma must be > 0"),
        (lambda: KNNBaseline(n_threads=0), r"n_threads must be >= 1"),
        (lambda: KNNBaseline(validation_fraction=1.0), r"validation_fraction must be in"),
        (lambda: GradientBoostingBaseline(max_iter=0), r"max_iter and n_iter_no_change >= 1"),
    ],
)
def test_invalid_parameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
