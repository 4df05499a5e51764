"""Missing bands: one convention, features never NaN in the indicator layout, old layout kept."""

from pathlib import Path

import numpy as np
import pytest
import torch

from csst_photoz.models import (
    CNN,
    MLP,
    FluxFeatures,
    Hybrid,
    MLPConfig,
    flux_features,
    load_model,
)
from csst_photoz.models.base import config_from_dict
from csst_photoz.models.features import missing_bands, n_flux_features

V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1"
LIMITS = torch.tensor([100.0, 110.0, 120.0, 130.0])


def _inputs(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fluxes = torch.exp(torch.randn(n, 4, generator=g) + 6).double()
    errors = (torch.rand(n, 4, generator=g) * 20 + 1).double()
    return fluxes, errors


def test_missing_means_nan_flux_or_error_or_a_non_positive_error():
    fluxes = torch.tensor([[1.0, np.nan, 3.0, 0.0, 5.0, 6.0, 7.0]])
    errors = torch.tensor([[1.0, 1.0, np.nan, 1.0, 0.0, -1.0, np.inf]])
    assert missing_bands(fluxes, errors).tolist() == [[False, True, True, False, True, True, True]]


def test_indicator_features_are_finite_with_two_adjacent_bands_missing():
    fluxes, errors = _inputs()
    fluxes[:50, 0:2] = np.nan  # two adjacent bands missing
    fluxes[50:60, 1:3] = 0.0  # two adjacent zero fluxes with zero error: missing
    errors[50:60, 1:3] = 0.0
    fluxes[60:70, 2:4] = 0.0  # two adjacent zero fluxes with positive errors: present
    layer = FluxFeatures(LIMITS.tolist(), missing="indicator").double()
    layer.fit(fluxes, errors)
    features = layer(fluxes, errors)
    assert features.shape == (200, n_flux_features(4, "indicator")) == (200, 15)
    assert torch.isfinite(features).all()
    indicators = features[:, 11:] * layer.std[11:] + layer.mean[11:]
    torch.testing.assert_close(indicators, missing_bands(fluxes, errors).double())
    # the features a missing band enters take the neutral (standardised) value 0
    assert (features[:50, [0, 1, 4, 5, 7, 8]] == 0).all()
    raw = flux_features(fluxes, errors, LIMITS.double(), missing="indicator")
    assert (raw[60:70, 6] == 0).all()  # ratio of two present zero fluxes is 1 (log 0)


def test_present_rows_get_the_old_features_followed_by_zero_indicators():
    fluxes, errors = _inputs()
    old = flux_features(fluxes, errors, LIMITS.double())
    new = flux_features(fluxes, errors, LIMITS.double(), missing="indicator")
    torch.testing.assert_close(new[:, :11], old)
    assert (new[:, 11:] == 0).all()


def test_the_old_layout_still_propagates_nan():
    fluxes, errors = _inputs()
    fluxes[0, 1] = np.nan
    layer = FluxFeatures(LIMITS.tolist()).double()
    assert layer.n_features == 11
    features = layer(fluxes, errors)
    assert torch.isnan(features[0]).any() and torch.isfinite(features[1:]).all()


def test_the_layout_is_recorded_in_the_configuration_and_old_ones_rebuild_unchanged():
    old = {"bands": ["a", "b", "c", "d"], "limiting_flux": LIMITS.tolist()}
    assert config_from_dict(MLPConfig, old).missing == "propagate"
    new = MLP(MLPConfig(bands="abcd", limiting_flux=LIMITS.tolist(), missing="indicator"))
    assert new.trunk.input_layer[0].in_features == 15
    assert new.input_transform_constants()["feature_mean"] == [0.0] * 15
    with pytest.raises(ValueError, match="missing-band layout"):
        MLPConfig(bands="abcd", limiting_flux=LIMITS.tolist(), missing="nearest")


def test_new_networks_predict_finite_redshifts_for_rows_with_missing_bands(make, make_inputs):
    mlp = make.mlp()
    config = MLPConfig(bands=mlp.bands, limiting_flux=mlp.limiting_flux, missing="indicator")
    fluxes, errors, stamps = make_inputs(6, size=32)
    fluxes[:3, 1:3] = np.nan
    model = MLP(config)
    assert np.isfinite(model.predict(fluxes, errors).z).all()
    hybrid = Hybrid.from_pretrained(model, CNN(make.cnn()))
    assert hybrid.features.missing == "indicator"
    assert np.isfinite(hybrid.predict(fluxes, errors, stamps).z).all()


def test_the_v0_1_checkpoint_keeps_the_old_layout():
    model = load_model(V0_1 / "mlp.pt")
    assert model.config.missing == "propagate" and model.features.n_features == 20
    assert model.domain is None
