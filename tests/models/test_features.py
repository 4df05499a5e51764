import numpy as np
import pytest
import torch

from csst_photoz.models import FluxFeatures, estimate_limiting_flux, flux_features, signed_log10
from csst_photoz.models.features import DEFAULT_LOG_FLOOR, n_flux_features


def np_signed_log10(x: np.ndarray, floor: float = DEFAULT_LOG_FLOOR) -> np.ndarray:
    magnitude = np.log10(np.clip(np.abs(x), floor, 1.0 / floor))
    return np.where(x < 0, -magnitude, magnitude)


def np_features(f: np.ndarray, e: np.ndarray, limits: np.ndarray) -> np.ndarray:
    raw = np.concatenate([f / limits, f[:, :-1] / f[:, 1:], np.abs(e / f)], axis=1)
    return np_signed_log10(raw)


def test_signed_log10_matches_numpy_on_random_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(10_000) * 10.0 ** rng.uniform(-9, 9, 10_000)
    got = signed_log10(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np_signed_log10(x), rtol=0, atol=1e-12)


def test_signed_log10_definition_and_edge_cases():
    x = torch.tensor([100.0, -100.0, 0.001, -0.001, 0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf])
    expected = [2.0, -2.0, -3.0, 3.0, -6.0, -6.0, -6.0, 6.0, 6.0, -6.0]
    torch.testing.assert_close(signed_log10(x.double()), torch.tensor(expected).double())
    assert torch.isnan(signed_log10(torch.tensor([np.nan]))).all()
    with pytest.raises(ValueError, match="floor"):
        signed_log10(x, floor=0.0)


@pytest.mark.parametrize("n_bands", [1, 2, 5, 7])
def test_features_match_numpy_reimplementation(n_bands):
    rng = np.random.default_rng(n_bands)
    f = rng.normal(200, 300, (500, n_bands))
    e = rng.uniform(1, 50, (500, n_bands))
    limits = rng.uniform(50, 150, n_bands)
    got = flux_features(torch.from_numpy(f), torch.from_numpy(e), torch.from_numpy(limits))
    assert got.shape == (500, n_flux_features(n_bands)) == (500, 3 * n_bands - 1)
    np.testing.assert_allclose(got.numpy(), np_features(f, e, limits), rtol=0, atol=1e-12)


def test_seven_bands_give_the_papers_twenty_features():
    assert n_flux_features(7) == 20


def test_feature_order_is_scaled_fluxes_then_ratios_then_relative_errors():
    f = torch.tensor([[10.0, 100.0, 1000.0]], dtype=torch.float64)
    e = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    got = flux_features(f, e, torch.tensor([1.0, 10.0, 10.0], dtype=torch.float64))
    torch.testing.assert_close(got[0], torch.tensor([1, 1, 2, -1, -1, -1, -2, -3.0]).double())


def test_standardisation_is_fitted_and_saved_in_state_dict():
    rng = np.random.default_rng(0)
    f = rng.lognormal(6, 1, (2000, 5))
    e = rng.uniform(1, 30, (2000, 5))
    limits = [100.0, 90.0, 80.0, 70.0, 60.0]
    features = FluxFeatures(limits)
    assert not bool(features.fitted)
    features.fit(torch.from_numpy(f), torch.from_numpy(e))
    raw = np_features(f, e, np.asarray(limits))
    np.testing.assert_allclose(features.mean.numpy(), raw.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features.std.numpy(), raw.std(axis=0), rtol=1e-5, atol=1e-6)
    standardised = features(torch.from_numpy(f).float(), torch.from_numpy(e).float())
    torch.testing.assert_close(standardised.mean(0), torch.zeros(14), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        standardised.std(0, unbiased=False), torch.ones(14), atol=1e-4, rtol=0
    )
    state = features.state_dict()
    assert set(state) == {"mean", "std", "fitted"}
    fresh = FluxFeatures(limits)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.std, features.std)


def test_fit_ignores_nan_rows_and_constant_features():
    f = torch.tensor([[1.0, 2.0], [np.nan, 2.0], [3.0, 2.0]])
    e = torch.ones(3, 2)
    features = FluxFeatures([1.0, 1.0]).fit(f, e)
    assert torch.isfinite(features.mean).all()
    assert features.std[1] == 1.0  # constant second flux keeps std = 1


def test_feature_module_rejects_bad_constants():
    with pytest.raises(ValueError, match="positive and finite"):
        FluxFeatures([1.0, 0.0])
    with pytest.raises(ValueError, match="limiting_flux has shape"):
        flux_features(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2))


def test_estimate_limiting_flux_is_n_sigma_median_error():
    errors = np.array([[1.0, 10.0], [3.0, np.nan], [2.0, 20.0]])
    np.testing.assert_allclose(estimate_limiting_flux(errors), [10.0, 75.0])
    with pytest.raises(ValueError, match="no positive finite error"):
        estimate_limiting_flux(np.array([[1.0, np.nan]]))
