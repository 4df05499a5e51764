"""Uncertainty calibration: fitted on the validation split (in memory at the end of training, or
from a checkpoint's files), saved in the checkpoint, applied by predict, refused when invalid,
absent in old checkpoints."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from csst_photoz import __version__
from csst_photoz.metrics import coverage_scale
from csst_photoz.models import CheckpointError, load_model, read_metadata, save_model
from csst_photoz.training import (
    calibrate_checkpoint,
    load_training_set,
    split_rows,
    train_model,
)
from csst_photoz.training.batches import TensorSet
from csst_photoz.training.calibrate import calibrate_model
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
        mlp = train_model("mlp", folder, config, root / "mlp.pt", calibrate=False).paths.best
        _TRAINED["v"] = (folder, mlp)
    return _TRAINED["v"]


def test_factor_fits_the_validation_split_and_scales_predictions(trained, tmp_path):
    folder, mlp = trained
    # the factor is fitted on the network's own predictions, before the domain's clamping
    unclamped = load_model(mlp)
    unclamped.set_domain(None)
    save_model(unclamped, tmp_path / "raw" / "mlp.pt")
    raw = predict_split([tmp_path / "raw" / "mlp.pt"], folder, split="validation", baselines=())
    z_true, z, sigma = (raw[c].to_numpy() for c in ("redshift", "z_mlp", "z_mlp_err"))
    out = tmp_path / "calibrated.pt"
    record = calibrate_checkpoint(mlp, folder, out=out)
    # an independent fit on the same predictions: the 68.27% quantile of |dz| / sigma
    assert record["scale"] == pytest.approx(coverage_scale(z_true, z, sigma), rel=1e-6)
    assert record["galaxies"] == len(z_true) and record["split"] == "validation"
    assert record["coverage_68_after"] == pytest.approx(0.6827, abs=1.0 / len(z_true))

    before, after = load_model(mlp), load_model(out)
    assert before.sigma_scale == 1.0 and after.sigma_scale == record["scale"]
    assert after.checkpoint_metadata.state_dict_sha256 == read_metadata(mlp).state_dict_sha256
    assert after.checkpoint_metadata.validation_metrics == read_metadata(mlp).validation_metrics
    fluxes = np.abs(np.random.default_rng(0).normal(1e3, 300, (5, len(before.bands))))
    errors = np.full_like(fluxes, 30.0)
    one, two = before.predict(fluxes, errors), after.predict(fluxes, errors)
    np.testing.assert_array_equal(one.z, two.z)  # point estimates untouched
    np.testing.assert_allclose(two.z_err, record["scale"] * one.z_err, rtol=1e-6)
    # predict (and so evaluate) now reports calibrated sigmas
    table = predict_split([out], folder, split="validation", baselines=())
    capped = np.minimum(record["scale"] * sigma, after.domain.sigma_max)
    np.testing.assert_allclose(table["z_mlp_err"].to_numpy(), capped, rtol=1e-6)


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
    assert read_metadata(copy).sigma_calibration.scale > 0


def test_uncalibrated_and_invalid_calibrations(trained, tmp_path):
    _, mlp = trained
    model = load_model(mlp)
    assert read_metadata(mlp).sigma_calibration is None and model.sigma_scale == 1.0
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


def _plain(record) -> dict:
    """A calibration record as a dict (a model's is a typed record or a dict)."""
    return record.model_dump() if hasattr(record, "model_dump") else dict(record)


def _records_agree(one, two) -> None:
    one, two = _plain(one), _plain(two)
    assert one.keys() == two.keys()
    for key, value in one.items():
        if isinstance(value, float):
            assert two[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
        else:
            assert two[key] == value, key


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_calibrates_in_memory_as_calibrate_checkpoint_does(
    kind, tmp_path, write_folder, fast_config
):
    folder = write_folder(tmp_path / "set", n=60, size=40)
    result = train_model(kind, folder, fast_config, tmp_path / f"{kind}.pt")
    record = result.sigma_calibration
    assert record is not None and record["split"] == "validation"
    _records_agree(load_model(result.paths.best).sigma_calibration, record)
    # refitted from the files (the split redrawn, the data reloaded, the checkpoint reloaded)
    again = calibrate_checkpoint(result.paths.best, folder, out=tmp_path / "again.pt")
    _records_agree(record, again)
    assert again["galaxies"] == len(split_rows(60, seed=fast_config.seed).validation)


def test_in_memory_fit_on_a_checkpoint_equals_calibrate_checkpoint(trained, tmp_path):
    folder, mlp = trained
    model = load_model(mlp)
    data = load_training_set(folder)
    rows = data.positions(split_rows(data.n_table_rows, seed=1).validation)
    record = calibrate_model(model, TensorSet.from_training_set(data, rows), data=str(folder))
    assert model.sigma_scale == record["scale"]
    _records_agree(record, calibrate_checkpoint(mlp, folder, out=tmp_path / "files.pt"))


def test_calibration_of_the_v0_1_checkpoint_is_reproduced(tmp_path):
    """The record of a checkpoint written and calibrated by csst-photoz 0.1.0 (before issue 15)
    comes out of both calibration paths of today's code."""
    fixtures = Path(__file__).parents[1] / "fixtures" / "v0_1"
    folder, checkpoint = fixtures / "training_set", fixtures / "mlp.pt"
    recorded = _plain(load_model(checkpoint).sigma_calibration)
    assert recorded["package_version"] == "0.1.0" and recorded["galaxies"] == 4
    expected = {**recorded, "data": str(folder), "package_version": __version__}
    _records_agree(expected, calibrate_checkpoint(checkpoint, folder, out=tmp_path / "re.pt"))
    model = load_model(checkpoint)
    data = load_training_set(folder, stamps=False)
    split = split_rows(data.n_table_rows, seed=3, test_fraction=0.25, validation_fraction=0.2)
    validation = TensorSet.from_training_set(data, data.positions(split.validation))
    _records_agree(expected, calibrate_model(model, validation, data=str(folder)))
