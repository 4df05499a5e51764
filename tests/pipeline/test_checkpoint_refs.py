"""The batch processor checks its checkpoints before any tile, reads the columns they declare,
and pins each checkpoint's tensors and calibration; bad tile data alone is a failed tile."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from csst_photoz.checkpoints import shipped_checkpoints
from csst_photoz.io.checkpoint_metadata import FluxInput, InputDeclaration, StampInput
from csst_photoz.io.run_store import RunStore
from csst_photoz.io.tile_sources import TileSource
from csst_photoz.models import (
    CNN,
    MLP,
    CheckpointError,
    CNNConfig,
    MLPConfig,
    load_model,
    save_model,
)
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline import PipelineConfig
from csst_photoz.pipeline import tile_task as task
from csst_photoz.pipeline.batch import resolve_checkpoints, run
from csst_photoz.pipeline.tile_task import TileJob, _models, process_tile

V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1"
TILE = V0_1 / "tiles" / "tile_00000000.zarr"
BANDS = ("NUV", "u", "g", "r", "i", "z", "y")


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
    save_model(model, path)  # everything else kept from the loaded metadata


def _job(out: Path, refs) -> TileJob:
    config = PipelineConfig(device="cpu")
    return TileJob(str(out), config.model_dump_json(), tuple(refs), BANDS)


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


def test_flux_networks_read_the_catalogue_columns_their_inputs_declare(tmp_path):
    (ref,) = resolve_checkpoints([V0_1 / "mlp.pt"], bands=BANDS)
    assert ref.flux_columns == tuple(f"counts_{b}" for b in BANDS)  # electrons, 1 x Kron
    assert ref.error_columns == tuple(f"counts_err_{b}" for b in BANDS)
    model = MLP(MLPConfig(bands=BANDS[2:5], limiting_flux=[1.0, 1.0, 1.0]))
    circle = InputDeclaration(
        fluxes=tuple(
            FluxInput(band=b, flux=f"ap_{b}", flux_err=f"ap_err_{b}", unit="nJy",
                      aperture="circle_0.5")
            for b in model.bands
        )
    )  # fmt: skip
    (ref,) = resolve_checkpoints([save_model(model, tmp_path / "c.pt", inputs=circle)])
    assert ref.flux_columns == ("flux_ap0p50_g", "flux_ap0p50_r", "flux_ap0p50_i")
    one_band = MLP(MLPConfig(bands=("g",), limiting_flux=[1.0]))
    (ref,) = resolve_checkpoints([save_model(one_band, tmp_path / "g.pt")], bands=BANDS)
    assert ref.flux_columns == ("counts_g",)


def test_inputs_the_photometry_does_not_measure_are_refused_naming_the_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"mlp\.pt: declares input 'kron_flux_NUV' "
                       r"\(electron, kron_1\).*measures kron_2\.5"):  # fmt: skip
        resolve_checkpoints([V0_1 / "mlp.pt"], photometry=PhotometryConfig(kron_factor=2.5))
    model = MLP(MLPConfig(bands=("g",), limiting_flux=[1.0]))
    odd = InputDeclaration(fluxes=(FluxInput(band="g", flux="f", flux_err="e", unit="ADU"),))
    with pytest.raises(CheckpointError, match=r"adu\.pt: declares input 'f' \(ADU, kron_1\)"):
        resolve_checkpoints([save_model(model, tmp_path / "adu.pt", inputs=odd)])
    cnn = CNN(CNNConfig(bands=("g",), background_rms=[1.0]))
    odd = InputDeclaration(stamps=StampInput(bands=("g",), size=32, unit="ADU"))
    with pytest.raises(CheckpointError, match=r"cnn\.pt: declares stamps in 'ADU'"):
        resolve_checkpoints([save_model(cnn, tmp_path / "cnn.pt", inputs=odd)])


def test_a_checkpoint_for_other_bands_stops_the_run_before_any_tile(tmp_path, monkeypatch):
    model = MLP(MLPConfig(bands=("g", "r", "J"), limiting_flux=[1.0, 1.0, 1.0]))
    path = save_model(model, tmp_path / "nir.pt")

    def no_cluster(**_):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr("csst_photoz.pipeline.batch.connect", no_cluster)
    message = r"nir\.pt: the mlp network needs bands .*without \['J'\]"
    with pytest.raises(CheckpointError, match=message):
        run([TILE], tmp_path / "run", models=[V0_1 / "mlp.pt", path], progress=False)
    assert not list((tmp_path / "run").glob("tiles/*"))  # no tile was processed


def test_bad_tile_data_is_a_failed_tile_and_other_errors_propagate(tmp_path, monkeypatch):
    job = _job(tmp_path / "run", ())
    missing = process_tile(TileSource("zarr", str(tmp_path / "absent.zarr")), job)
    assert missing.status == "failed" and "does not exist" in missing.reason

    def refuses(*_, **__):
        from csst_photoz.tile import TileDataError

        raise TileDataError("tile 0: every pixel is masked")

    monkeypatch.setattr(task, "measure_tile", refuses)
    refused = process_tile(TileSource("zarr", str(TILE)), job)
    assert refused.status == "failed" and "every pixel is masked" in refused.reason

    def bug(*_, **__):
        raise ValueError("a bug, not bad data")

    monkeypatch.setattr(task, "measure_tile", bug)
    with pytest.raises(ValueError, match="a bug"):  # Dask retries it; the run records an error
        process_tile(TileSource("zarr", str(TILE)), _job(tmp_path / "run2", ()))


def test_checkpoint_written_by_v0_1_predicts_the_v0_1_catalogue(tmp_path):
    refs = resolve_checkpoints([V0_1 / "mlp.pt"], bands=BANDS)
    result = process_tile(TileSource("zarr", str(TILE.resolve())), _job(tmp_path, refs))
    _models.cache_clear()
    assert result.status == "done"
    new = pq.read_table(RunStore(tmp_path).partition_path(0))
    old = pq.read_table(V0_1 / "run" / "tiles" / "tile_00000000.parquet")
    assert new.num_rows == old.num_rows == 2
    # float32 rounding: since issue 18's photometry commit one z moved by 4.8e-7 (1.01e-6
    # relative); the tile's photometry columns themselves are unchanged (tests/photometry)
    for column in ("z_mlp", "z_mlp_err"):
        np.testing.assert_allclose(new[column].to_numpy(), old[column].to_numpy(), rtol=1e-5)
