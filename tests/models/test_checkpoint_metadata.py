"""Models and their typed checkpoint metadata: declared, kept on re-saving, read from old files."""

from pathlib import Path

import numpy as np
import pytest

from csst_photoz.checkpoints import shipped_checkpoints
from csst_photoz.io.checkpoint_metadata import (
    CheckpointMetadata,
    FluxInput,
    InputDeclaration,
    SigmaCalibration,
    TrainingRecord,
)
from csst_photoz.models import MLP, Hybrid, load_model, read_metadata, save_model

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0_1" / "mlp.pt"
# predictions of the shipped checkpoints by the loader before format version 2 (commit
# eb89b6b), on `_shipped_inputs()`: (z, z_err)
BEFORE = {
    "mlp.pt": (
        [0.927959680557251, 0.8038238286972046, 1.301524043083191],
        [0.26482126116752625, 0.10039927065372467, 0.40917298197746277],
    ),
    "cnn.pt": (
        [0.7165910005569458, 0.9361605644226074, 0.8575944900512695],
        [0.6204845309257507, 0.5494948625564575, 0.5405333042144775],
    ),
    "hybrid.pt": (
        [0.7842997312545776, 1.2826573848724365, 0.6736449003219604],
        [0.057446274906396866, 0.11402434855699539, 0.34560883045196533],
    ),
    "hybrid-transfer.pt": (
        [0.7631534934043884, 0.8909106254577637, 0.7487164735794067],
        [0.048650313168764114, 0.041338734328746796, 0.03290887922048569],
    ),
}


def _training(bands) -> dict:
    return {
        "kind": "mlp", "config": {"seed": 1}, "data_source": "set", "data_hash": "ab" * 32,
        "split": {"seed": 1, "n_rows": 9, "n_train": 5, "n_validation": 1, "n_test": 3,
                  "sha256": "cd" * 32},
        "columns": {"flux": [f"f_{b}" for b in bands], "flux_err": [f"e_{b}" for b in bands],
                    "redshift": "z"},
        "n_selected": 9,
    }  # fmt: skip


def _shipped_inputs():
    rng = np.random.default_rng(15)
    fluxes = np.exp(rng.normal(6, 2, (3, 7))).astype(np.float32)
    errors = (rng.random((3, 7)) * 20 + 1).astype(np.float32)
    stamps = rng.normal(0, 10, (3, 7, 32, 32)).astype(np.float32)
    return fluxes, errors, stamps


def test_declared_inputs_training_and_calibration_round_trip(tmp_path, trained_like_models):
    mlp, _ = trained_like_models
    inputs = InputDeclaration(
        fluxes=tuple(
            FluxInput(band=b, flux=f"flux_{b}", flux_err=f"flux_err_{b}", unit="nJy")
            for b in mlp.bands
        )
    )
    mlp.set_sigma_calibration({"scale": 0.7, "split": "validation"})
    training = TrainingRecord.model_validate(_training(mlp.bands))
    save_model(mlp, tmp_path / "m.pt", inputs=inputs, training=training, extra={"k": 1})
    metadata = read_metadata(tmp_path / "m.pt")
    assert metadata.inputs == inputs and metadata.training == training
    assert metadata.sigma_calibration == SigmaCalibration(scale=0.7, split="validation")
    assert metadata.training_data_hash == training.data_hash and metadata.extra == {"k": 1}
    assert mlp.checkpoint_metadata == metadata  # the model knows what it was saved as
    assert load_model(tmp_path / "m.pt").sigma_scale == 0.7


def test_resaving_a_loaded_model_keeps_all_its_metadata(tmp_path):
    model = load_model(FIXTURE)
    model.set_sigma_calibration({"scale": 2.0})
    save_model(model, tmp_path / "again.pt")
    before, after = read_metadata(FIXTURE), read_metadata(tmp_path / "again.pt")
    for field in ("training", "inputs", "validation_metrics", "training_data_hash", "extra"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.sigma_calibration == SigmaCalibration(scale=2.0)
    assert after.state_dict_sha256 == before.state_dict_sha256


def test_old_keywords_still_give_typed_metadata(tmp_path, make):
    model = MLP(make.mlp())
    record = _training(model.bands)
    save_model(
        model, tmp_path / "old.pt", validation_metrics={"loss": 0.5, "epoch": 2},
        extra={"training": record, "note": "kept"},
    )  # fmt: skip
    metadata = read_metadata(tmp_path / "old.pt")
    assert metadata.training == TrainingRecord.model_validate(record)
    assert metadata.training_data_hash == record["data_hash"] and metadata.extra == {"note": "kept"}
    # nothing declared: the recorded training columns, in electrons in the 1 x Kron aperture
    assert metadata.inputs.flux_columns == record["columns"]["flux"]
    assert {(f.unit, f.aperture) for f in metadata.inputs.fluxes} == {("electron", "kron_1")}
    assert metadata.validation_metrics == {"loss": 0.5, "epoch": 2}


def test_stamp_networks_declare_their_stamps(tmp_path, trained_like_models):
    mlp, cnn = trained_like_models
    for model in (cnn, Hybrid.from_pretrained(mlp, cnn)):
        path = save_model(model, tmp_path / f"{model.variant}.pt")
        stamps = read_metadata(path).inputs.stamps
        assert stamps.size == model.stamp_transform.size and stamps.bands == model.bands
        assert bool(read_metadata(path).inputs.fluxes) == ("fluxes" in model.input_names)


def test_indexing_the_metadata_still_works_but_warns(tmp_path):
    metadata = read_metadata(FIXTURE)
    with pytest.warns(DeprecationWarning, match="use its attributes"):
        assert metadata["extra"]["training"]["kind"] == "mlp"  # where version 1 kept it
    with pytest.warns(DeprecationWarning):
        assert metadata["sigma_calibration"]["scale"] == metadata.sigma_scale


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_shipped_checkpoints_predict_as_before(name):
    (path,) = [p for p in shipped_checkpoints() if p.name == name]
    model = load_model(path)
    assert isinstance(model.checkpoint_metadata, CheckpointMetadata)
    estimate = model.predict(*_shipped_inputs())
    z, z_err = BEFORE[name]
    np.testing.assert_allclose(estimate.z, z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(estimate.z_err, z_err, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"levels": [0.0], "pit_cdf": [0.0]}, ">= 2 levels"),
        ({"levels": [0.0, 0.5, 1.0], "pit_cdf": [0.0, 1.0]}, "as many"),
        (
            {"levels": [0.0, 0.5, 0.9], "pit_cdf": [0.0, 0.5, 1.0]},
            "levels must be finite, from 0 to 1",
        ),
        (
            {"levels": [0.0, 0.5, 0.5, 1.0], "pit_cdf": [0.0, 0.2, 0.3, 1.0]},
            "levels must be increasing",
        ),
        (
            {"levels": [0.0, 0.5, 1.0], "pit_cdf": [0.0, 0.7, 0.6]},
            "pit_cdf must be finite, from 0 to 1",
        ),
        ({"levels": [0.0, 0.4, 0.6, 1.0], "pit_cdf": [0.0, 0.7, 0.6, 1.0]}, "non-decreasing"),
    ],
)
def test_pz_calibration_is_a_monotonic_map_of_the_unit_interval(record, message):
    from csst_photoz.io.checkpoint_metadata import PzCalibration

    with pytest.raises(ValueError, match=message):
        PzCalibration.model_validate(record)
