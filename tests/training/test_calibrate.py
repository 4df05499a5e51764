"""Uncertainty calibration: fitted on the validation split, saved in the checkpoint, applied by
predict, refused when invalid, absent in old checkpoints."""

import argparse
import json

import numpy as np
import pytest

from csst_photoz.metrics import coverage_scale
from csst_photoz.models import CheckpointError, load_model, read_metadata, save_model
from csst_photoz.training import calibrate_checkpoint, train_model
from csst_photoz.training.cli import add_calibrate_parser
from csst_photoz.training.predict import predict_split

_TRAINED: dict[str, tuple] = {}


@pytest.fixture
def trained(tmp_path_factory, write_folder, fast_config):
    """A 60-galaxy folder and an MLP trained on it for two epochs (once per module)."""
    if "v" not in _TRAINED:
        root = tmp_path_factory.mktemp("calibrate")
        folder = write_folder(root / "set", n=60, size=40)
        config = fast_config.with_updates(max_epochs=2)
        mlp = train_model("mlp", folder, config, root / "mlp.pt").paths.best
        _TRAINED["v"] = (folder, mlp)
    return _TRAINED["v"]


def test_factor_fits_the_validation_split_and_scales_predictions(trained, tmp_path):
    folder, mlp = trained
    raw = predict_split([mlp], folder, split="validation", baselines=())
    z_true, z, sigma = (raw[c].to_numpy() for c in ("redshift", "z_mlp", "z_mlp_err"))
    out = tmp_path / "calibrated.pt"
    record = calibrate_checkpoint(mlp, folder, out=out)
    # an independent fit on the same predictions: the 68.27% quantile of |dz| / sigma
    assert record["scale"] == pytest.approx(coverage_scale(z_true, z, sigma), rel=1e-6)
    assert record["galaxies"] == len(z_true) and record["split"] == "validation"
    assert record["coverage_68_after"] == pytest.approx(0.6827, abs=1.0 / len(z_true))

    before, after = load_model(mlp), load_model(out)
    assert before.sigma_scale == 1.0 and after.sigma_scale == record["scale"]
    assert after.checkpoint_metadata["state_dict_sha256"] == read_metadata(mlp)["state_dict_sha256"]
    assert (
        after.checkpoint_metadata["validation_metrics"] == read_metadata(mlp)["validation_metrics"]
    )
    fluxes = np.abs(np.random.default_rng(0).normal(1e3, 300, (5, len(before.bands))))
    errors = np.full_like(fluxes, 30.0)
    one, two = before.predict(fluxes, errors), after.predict(fluxes, errors)
    np.testing.assert_array_equal(one.z, two.z)  # point estimates untouched
    np.testing.assert_allclose(two.z_err, record["scale"] * one.z_err, rtol=1e-6)
    # predict (and so evaluate) now reports calibrated sigmas
    table = predict_split([out], folder, split="validation", baselines=())
    np.testing.assert_allclose(table["z_mlp_err"].to_numpy(), record["scale"] * sigma, rtol=1e-6)


def test_recalibrating_replaces_the_factor_instead_of_compounding(trained, tmp_path):
    folder, mlp = trained
    first = calibrate_checkpoint(mlp, folder, out=tmp_path / "a.pt")
    second = calibrate_checkpoint(tmp_path / "a.pt", folder, out=tmp_path / "b.pt")
    assert second["scale"] == pytest.approx(first["scale"], rel=1e-6)


def test_cli_writes_in_place(trained, tmp_path, capsys):
    folder, mlp = trained
    copy = tmp_path / "mlp.pt"
    copy.write_bytes(mlp.read_bytes())
    parser = argparse.ArgumentParser()
    add_calibrate_parser(parser.add_subparsers())
    args = parser.parse_args(["calibrate", "--checkpoint", str(copy), "--data", str(folder)])
    assert args.func(args) == 0
    assert "68% coverage" in capsys.readouterr().out
    assert read_metadata(copy)["sigma_calibration"]["scale"] > 0


def test_uncalibrated_and_invalid_calibrations(trained, tmp_path):
    _, mlp = trained
    model = load_model(mlp)
    assert read_metadata(mlp)["sigma_calibration"] is None and model.sigma_scale == 1.0
    with pytest.raises(ValueError, match="finite and > 0"):
        model.set_sigma_calibration({"scale": -1.0})
    with pytest.raises(ValueError, match="numeric 'scale'"):
        model.set_sigma_calibration({"factor": 2.0})
    # a checkpoint written before calibration existed has no key at all: uncalibrated
    for value, expected in ((None, 1.0), ({"scale": 0.5, "split": "validation"}, 0.5)):
        model.set_sigma_calibration(value)
        path = save_model(model, tmp_path / "m.pt", file_format="torch")
        assert load_model(path).sigma_scale == expected
    import torch

    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["csst_photoz"])
    for broken, message in ((None, None), ({"scale": float("nan")}, "finite and > 0")):
        if broken is None:
            metadata.pop("sigma_calibration")
        else:
            metadata["sigma_calibration"] = broken
        payload["csst_photoz"] = json.dumps(metadata)
        torch.save(payload, tmp_path / "edited.pt")
        if message is None:
            assert load_model(tmp_path / "edited.pt").sigma_scale == 1.0
        else:
            with pytest.raises(CheckpointError, match=message):
                load_model(tmp_path / "edited.pt")
