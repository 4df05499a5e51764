"""The checkpoint file format: typed metadata, version 2 strict, version 1 upgraded on reading."""

import json
from pathlib import Path

import pytest
import torch

from csst_photoz.io.checkpoint_file import read_checkpoint, write_checkpoint
from csst_photoz.io.checkpoint_metadata import (
    CheckpointError,
    CheckpointMetadata,
    FluxInput,
    InputDeclaration,
    SigmaCalibration,
    StampInput,
    TrainingRecord,
    upgrade_v1,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0_1" / "mlp.pt"
BANDS = ("g", "r", "i")
TRAINING = {
    "kind": "mlp",
    "config": {"seed": 3, "test_fraction": 0.25},
    "data_source": "runs/set",
    "data_hash": "ab" * 32,
    "split": {"seed": 3, "n_rows": 10, "n_train": 6, "n_validation": 1, "n_test": 3,
              "sha256": "cd" * 32},
    "columns": {"flux": ["f_g", "f_r", "f_i"], "flux_err": ["e_g", "e_r", "e_i"],
                "redshift": "z"},
    "n_selected": 10,
    "epoch": 4,
}  # fmt: skip


def _metadata(**changes) -> CheckpointMetadata:
    fields = {
        "architecture": "hybrid",
        "variant": "hybrid",
        "config": {"width": 8},
        "bands": BANDS,
        "inputs": InputDeclaration(
            fluxes=tuple(
                FluxInput(band=b, flux=f"flux_{b}", flux_err=f"flux_err_{b}", unit="nJy")
                for b in BANDS
            ),
            stamps=StampInput(bands=BANDS, size=24),
        ),
        "sigma_calibration": SigmaCalibration(scale=0.5, split="validation", galaxies=7),
        "training": TrainingRecord.model_validate(TRAINING),
        "training_data_hash": "ab" * 32,
        "validation_metrics": {"sigma_nmad": 0.02, "epoch": 4},
        "package_version": "0.1.0",
        "extra": {"note": [1, 2]},
    }
    return CheckpointMetadata(**{**fields, **changes})


def _rewrite(path: Path, edit) -> None:
    """Edit the metadata JSON of a torch-format checkpoint in place (tensors untouched)."""
    payload = torch.load(path, weights_only=True)
    data = json.loads(payload["csst_photoz"])
    edit(data)
    payload["csst_photoz"] = json.dumps(data)
    torch.save(payload, path)


@pytest.fixture
def written(tmp_path) -> Path:
    path = tmp_path / "net.pt"
    write_checkpoint(path, _metadata(), {"w": torch.arange(6.0)}, file_format="torch")
    return path


def test_metadata_round_trips_through_the_file(written):
    metadata, tensors = read_checkpoint(written)
    digest = metadata.state_dict_sha256
    assert metadata == _metadata().model_copy(update={"state_dict_sha256": digest})
    assert metadata.format_version == 2 and len(metadata.state_dict_sha256) == 64
    assert torch.equal(tensors["w"], torch.arange(6.0))
    assert metadata.inputs.flux_columns == ["flux_g", "flux_r", "flux_i"]
    assert metadata.sigma_scale == 0.5 and metadata.training.split.n_test == 3


def test_metadata_is_frozen():
    with pytest.raises(ValueError, match="frozen"):
        _metadata().variant = "cnn"


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d.update(surprise=1), "'surprise'"),
        (lambda d: d["inputs"]["fluxes"][0].update(colour="red"), "'inputs.fluxes.0.colour'"),
        (lambda d: d["training"].update(notes="x"), "'training.notes'"),
        (lambda d: d["sigma_calibration"].update(factor=2), "'sigma_calibration.factor'"),
    ],
)
def test_unknown_keys_in_version_2_are_errors_naming_the_file(written, edit, where):
    _rewrite(written, edit)
    message = rf"net\.pt: invalid checkpoint metadata: unknown key {where}"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(written)


def test_inputs_must_follow_the_network_bands(written):
    _rewrite(written, lambda d: d["inputs"]["fluxes"].reverse())
    message = r"net\.pt: .*flux inputs for bands \['i', 'r', 'g'\]"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(written)
    with pytest.raises(ValueError, match="needs fluxes, stamps or both"):
        InputDeclaration()


def test_a_newer_format_version_is_refused(written):
    _rewrite(written, lambda d: d.update(format_version=3))
    with pytest.raises(CheckpointError, match=r"net\.pt: checkpoint format version 3"):
        read_checkpoint(written)


def test_changed_metadata_digest_is_refused(written):
    _rewrite(written, lambda d: d.update(state_dict_sha256="0" * 64))
    with pytest.raises(CheckpointError, match=r"net\.pt: tensor digest mismatch"):
        read_checkpoint(written)


def test_checkpoint_written_by_v0_1_still_loads():
    metadata, _ = read_checkpoint(FIXTURE)
    assert metadata.format_version == 2  # upgraded in memory; the file is version 1
    assert json.loads(torch.load(FIXTURE, weights_only=True)["csst_photoz"])["format_version"] == 1
    assert metadata.architecture == metadata.variant == "mlp"
    assert metadata.training.kind == "mlp" and metadata.training.epoch == 1
    assert metadata.training.split.n_rows == 24 and len(metadata.training.split.sha256) == 64
    assert metadata.training_data_hash == metadata.training.data_hash
    assert metadata.sigma_calibration.scale == pytest.approx(11.235955063106598)
    assert metadata.inputs.flux_columns == [f"kron_flux_{b}" for b in metadata.bands]
    assert metadata.inputs.error_columns == [f"kron_flux_err_{b}" for b in metadata.bands]
    assert {(f.unit, f.aperture) for f in metadata.inputs.fluxes} == {("electron", "kron_1")}
    assert metadata.inputs.stamps is None and metadata.extra == {}


def test_version_1_keeps_unknown_keys_under_extra():
    data = json.loads(torch.load(FIXTURE, weights_only=True)["csst_photoz"])
    data["surprise"] = 1
    data["extra"]["training"]["notes"] = "by hand"
    data["sigma_calibration"]["fitted_by"] = "me"
    upgraded = CheckpointMetadata.model_validate(upgrade_v1(data))
    assert upgraded.extra == {
        "surprise": 1,
        "training": {"notes": "by hand"},
        "sigma_calibration": {"fitted_by": "me"},
    }
    assert upgraded.training.kind == "mlp"


@pytest.mark.parametrize(
    ("architecture", "config", "fluxes", "stamp_size"),
    [
        ("mlp", {"bands": list(BANDS)}, True, None),
        ("cnn", {"bands": list(BANDS), "stamp_size": 20}, False, 20),
        ("hybrid", {"mlp": {}, "cnn": {"stamp_size": 28}}, True, 28),
    ],
)
def test_version_1_without_training_reads_the_simulator_columns(
    architecture, config, fluxes, stamp_size
):
    data = {
        "format": "csst_photoz.checkpoint", "format_version": 1, "architecture": architecture,
        "variant": architecture, "config": config, "bands": list(BANDS), "input_transform": {},
        "training_data_hash": None, "validation_metrics": {}, "package_version": "0.1.0",
        "state_dict_sha256": "", "extra": {},
    }  # fmt: skip
    metadata = CheckpointMetadata.model_validate(upgrade_v1(data))
    assert metadata.training is None and metadata.sigma_calibration is None
    expected = [f"kron_flux_{b}" for b in BANDS] if fluxes else []
    assert metadata.inputs.flux_columns == expected
    assert (metadata.inputs.stamps.size if metadata.inputs.stamps else None) == stamp_size


@pytest.mark.parametrize(
    ("record", "message"),
    [({"scale": -1.0}, "finite and > 0"), ({"scale": float("nan")}, "finite and > 0"),
     ({"factor": 2.0}, "numeric 'scale'"), ({"scale": True}, "numeric 'scale'")],
)  # fmt: skip
def test_invalid_calibrations_are_refused(record, message):
    with pytest.raises(ValueError, match=message):
        SigmaCalibration.model_validate(record)


def test_a_training_state_given_as_a_checkpoint_names_the_model_file(tmp_path):
    state = tmp_path / "mlp.last.pt"
    torch.save({"epoch": 3}, state)
    with pytest.raises(CheckpointError, match=r"a training state.*mlp\.pt"):
        read_checkpoint(state)
