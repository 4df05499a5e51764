import json
import os
import stat

import numpy as np
import pytest
import torch

import csst_photoz.models.checkpoint as checkpoint
from csst_photoz.models import (
    CNN,
    MLP,
    CheckpointError,
    Hybrid,
    load_model,
    read_metadata,
    save_model,
)
from csst_photoz.models.checkpoint import CheckpointMetadata

BANDS = ["NUV", "u", "g", "r", "i", "z", "y"]


def _predict(model, inputs):
    fluxes, errors, stamps = inputs
    return model.predict(fluxes, errors, stamps)


@pytest.fixture
def inputs(make_inputs):
    return make_inputs(5, size=24)  # small stamps: padding goes through the saved constants


@pytest.fixture
def saved_mlp(tmp_path, trained_like_models):
    mlp, _ = trained_like_models
    return mlp, save_model(mlp, tmp_path / "mlp.ckpt")


@pytest.mark.parametrize("which", ["mlp", "cnn", "hybrid", "hybrid-transfer"])
def test_round_trip_gives_identical_predictions(which, tmp_path, trained_like_models, inputs):
    mlp, cnn = trained_like_models
    model = {
        "mlp": mlp,
        "cnn": cnn,
        "hybrid": Hybrid.from_pretrained(mlp, cnn, freeze=False),
        "hybrid-transfer": Hybrid.from_pretrained(mlp, cnn),
    }[which]
    path = save_model(
        model,
        tmp_path / f"{which}.ckpt",
        training_data_hash="sha256:abc",
        validation_metrics={"sigma_nmad": 0.02, "outlier_fraction": 0.01},
    )
    loaded = load_model(path, bands=BANDS)
    assert type(loaded) is type(model)
    assert read_metadata(path).variant == loaded.variant == which
    assert loaded.config == model.config
    before, after = _predict(model, inputs), _predict(loaded, inputs)
    np.testing.assert_array_equal(before.z, after.z)
    np.testing.assert_array_equal(before.z_err, after.z_err)
    if which == "hybrid-transfer":
        frozen = {n for n, p in loaded.named_parameters() if not p.requires_grad}
        assert frozen == {n for n, p in model.named_parameters() if not p.requires_grad}
        assert frozen


def test_metadata_records_the_model_and_its_provenance(saved_mlp):
    mlp, path = saved_mlp
    metadata = read_metadata(path)
    assert isinstance(metadata, CheckpointMetadata) and metadata.format_version == 2
    assert metadata.architecture == "mlp"
    assert list(metadata.bands) == BANDS
    assert metadata.config["width"] == 40
    assert metadata.config["limiting_flux"] == list(mlp.config.limiting_flux)
    assert len(metadata.input_transform["feature_mean"]) == 20
    assert metadata.package_version == checkpoint._package_version()
    assert len(metadata.state_dict_sha256) == 64
    # nothing declared: the simulator's 1 x Kron fluxes in electrons
    assert metadata.inputs.flux_columns == [f"kron_flux_{b}" for b in BANDS]
    assert {(f.unit, f.aperture) for f in metadata.inputs.fluxes} == {("electron", "kron_1")}
    assert metadata.inputs.stamps is None
    assert metadata.training is None and metadata.sigma_calibration is None
    json.loads(metadata.to_json())  # plain JSON all through


def test_mlp_for_another_band_set_round_trips(tmp_path, make, make_inputs):
    model = MLP(make.mlp(5))
    fluxes, errors, _ = make_inputs(4, 5)
    loaded = load_model(save_model(model, tmp_path / "m5.ckpt"), bands=model.bands)
    np.testing.assert_array_equal(loaded.predict(fluxes, errors).z, model.predict(fluxes, errors).z)


def test_refuses_other_bands(saved_mlp):
    _, path = saved_mlp
    with pytest.raises(CheckpointError, match=r"mlp\.ckpt.*bands .*differ.*requested"):
        load_model(path, bands=["g", "r", "i"])
    with pytest.raises(CheckpointError, match="differ"):
        load_model(path, bands=list(reversed(BANDS)))  # order matters


def test_refuses_another_major_version(tmp_path, monkeypatch, trained_like_models):
    mlp, _ = trained_like_models
    monkeypatch.setattr(checkpoint, "_package_version", lambda: "1.4.2")
    path = save_model(mlp, tmp_path / "future.ckpt")
    monkeypatch.setattr(checkpoint, "_package_version", lambda: "1.9.0")
    assert load_model(path).architecture == "mlp"  # same major version loads
    monkeypatch.setattr(checkpoint, "_package_version", lambda: "0.1.0")
    with pytest.raises(CheckpointError, match=r"future\.ckpt.*1\.4\.2.*major versions differ"):
        load_model(path)


@pytest.mark.parametrize("keep", [0.5, 0.95, 0.0])
def test_refuses_a_truncated_file_naming_it(saved_mlp, keep):
    _, path = saved_mlp
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"mlp\.ckpt.*unreadable"):
        load_model(path)


def test_refuses_changed_tensor_bytes(saved_mlp):
    mlp, path = saved_mlp
    data = bytearray(path.read_bytes())
    # find the head weights' bytes in the file and flip one of them
    needle = mlp.head.weight.detach().numpy().tobytes()
    at = bytes(data).find(needle)
    assert at > 0
    data[at + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"mlp\.ckpt.*(digest mismatch|unreadable)"):
        load_model(path)


def test_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"csst_photoz": "{}", "tensors": {"x": torch.ones(1)}, "obj": _Sneaky()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused.*nothing was executed") as info:
        load_model(path)
    assert not _Sneaky.called
    assert "weights_only" not in str(info.value)  # no advice to load it unsafely


def test_refuses_files_that_are_not_checkpoints(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.ones(2)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt.*not a csst_photoz checkpoint"):
        load_model(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt"):
        load_model(text)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_model(tmp_path / "missing.ckpt")


def test_refuses_unknown_configuration_keys(tmp_path, saved_mlp, monkeypatch):
    mlp, _ = saved_mlp
    original = checkpoint.config_to_dict
    monkeypatch.setattr(checkpoint, "config_to_dict", lambda c: {**original(c), "depth": 3})
    path = save_model(mlp, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match=r"odd\.ckpt.*unknown MLPConfig keys \['depth'\]"):
        load_model(path)


def test_safetensors_format_when_installed(tmp_path, trained_like_models, inputs):
    pytest.importorskip("safetensors")
    _, cnn = trained_like_models
    path = save_model(cnn, tmp_path / "cnn.safetensors", file_format="safetensors")
    assert path.read_bytes()[:4] != b"PK\x03\x04"
    loaded = load_model(path, bands=BANDS)
    assert isinstance(loaded, CNN)
    np.testing.assert_array_equal(_predict(loaded, inputs).z, _predict(cnn, inputs).z)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cnn\.safetensors.*unreadable"):
        load_model(path)


class _Sneaky:
    called = False

    def __reduce__(self):
        return (_Sneaky._trigger, ())

    @staticmethod
    def _trigger():
        _Sneaky.called = True
        return None


def test_saved_files_are_readable_by_others_under_the_umask(saved_mlp):
    _, path = saved_mlp
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
