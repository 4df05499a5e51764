"""The batch processor pins each checkpoint's tensors and its uncertainty calibration."""

import shutil

import pytest

from csst_photoz.checkpoints import shipped_checkpoints
from csst_photoz.models import load_model, save_model
from csst_photoz.pipeline.batch import resolve_checkpoints
from csst_photoz.pipeline.tile_task import _models


@pytest.fixture
def mlp_copy(tmp_path):
    shipped = [path for path in shipped_checkpoints() if path.name == "mlp.pt"]
    if not shipped:
        pytest.skip("no shipped mlp.pt")
    copy = tmp_path / "mlp.pt"
    shutil.copy(shipped[0], copy)
    return copy


def _recalibrate(path, scale):
    model = load_model(path)
    model.set_sigma_calibration({"scale": scale})
    metadata = model.checkpoint_metadata
    save_model(
        model,
        path,
        training_data_hash=metadata["training_data_hash"],
        validation_metrics=metadata["validation_metrics"],
        extra=metadata["extra"],
    )


def test_reference_carries_the_calibration_and_a_changed_one_is_refused(mlp_copy):
    _recalibrate(mlp_copy, 0.25)
    (ref,) = resolve_checkpoints([mlp_copy])
    assert ref.sigma_scale == 0.25
    assert _models((ref,), "cpu")["mlp"].sigma_scale == 0.25
    _models.cache_clear()
    _recalibrate(mlp_copy, 0.5)  # same tensors, other factor: the run's z_err would change
    with pytest.raises(RuntimeError, match="recalibrated since the run started"):
        _models((ref,), "cpu")
    _models.cache_clear()
