"""Batched inference over a catalogue: equal to each model's own predict, whatever the batches."""

import numpy as np
import pytest

from csst_photoz.models import CNN, MLP, Hybrid
from csst_photoz.models.inference import predict_catalog, select_bands


@pytest.fixture
def models(make):
    mlp, cnn = MLP(make.mlp()), CNN(make.cnn())
    return {"mlp": mlp, "cnn": cnn, "hybrid": Hybrid.from_pretrained(mlp, cnn)}


def test_equals_each_models_own_prediction_for_any_batch_size(models, make_inputs):
    fluxes, errors, stamps = (t.numpy() for t in make_inputs(23, size=40, seed=4))
    bands = models["mlp"].bands
    calls = []

    def cut(rows):
        calls.append(len(rows))
        return stamps[rows]

    for batch_size in (1, 5, 23, 100):
        calls.clear()
        out = predict_catalog(models, bands, fluxes, errors, cut, batch_size=batch_size)
        assert calls == [min(batch_size, 23 - s) for s in range(0, 23, batch_size)]
        for name, model in models.items():
            own = model.predict(fluxes, errors, stamps, batch_size=7, seed=0)
            np.testing.assert_allclose(out[name].z, own.z, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out[name].z_err, own.z_err, rtol=1e-5, atol=1e-6)


def test_bands_are_picked_by_name_from_a_wider_catalogue(models, make_inputs):
    fluxes, errors, stamps = (t.numpy() for t in make_inputs(9, seed=2))
    bands = models["mlp"].bands
    order = [6, 0, 5, 1, 4, 2, 3]
    extra = np.ones((9, 1), np.float32)
    shuffled = [bands[k] for k in order] + ["extra"]
    wide_f = np.concatenate([fluxes[:, order], extra], axis=1)
    wide_e = np.concatenate([errors[:, order], extra], axis=1)
    wide_s = np.concatenate([stamps[:, order], stamps[:, :1]], axis=1)
    direct = predict_catalog(models, bands, fluxes, errors, lambda r: stamps[r])
    picked = predict_catalog(models, shuffled, wide_f, wide_e, lambda r: wide_s[r])
    for name in models:
        np.testing.assert_allclose(picked[name].z, direct[name].z, rtol=1e-5, atol=1e-6)
    assert select_bands(models["mlp"], shuffled) == [1, 3, 5, 6, 4, 2, 0]


def test_missing_band_and_missing_stamps_are_refused(models, make_inputs):
    fluxes, errors, _ = (t.numpy() for t in make_inputs(4))
    bands = list(models["mlp"].bands)
    with pytest.raises(ValueError, match="lacks \\['y'\\]"):
        predict_catalog({"mlp": models["mlp"]}, bands[:-1], fluxes[:, :-1], errors[:, :-1], None)
    with pytest.raises(ValueError, match="no stamp cutter"):
        predict_catalog({"cnn": models["cnn"]}, bands, fluxes, errors, None)
    with pytest.raises(ValueError, match="must both be"):
        predict_catalog({"mlp": models["mlp"]}, bands, fluxes, errors[:2], None)


def test_no_rows_give_empty_predictions(models, make_inputs):
    fluxes, errors, stamps = (t.numpy()[:0] for t in make_inputs(1))
    out = predict_catalog(models, models["mlp"].bands, fluxes, errors, lambda r: stamps[r])
    assert all(len(e.z) == 0 and e.z.dtype == np.float32 for e in out.values())
