"""Issue 19, item 1: a tile whose detection inputs are unusable is a failure, never "done"."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from csst_photoz.constants import CSST_BANDS
from csst_photoz.io.run_store import RunStore
from csst_photoz.io.tile_sources import TileSource
from csst_photoz.io.tile_zarr import read_tile_zarr, write_tile_zarr
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline import PipelineConfig, run
from csst_photoz.pipeline.tile_task import TileJob, process_tile
from csst_photoz.tile import MaskBit, Tile

QUIET = {"progress": False}


def _job(out: Path) -> TileJob:
    """Photometry only (no models): the task's refusal comes before any inference."""
    config = PipelineConfig(device="cpu")
    return TileJob(str(out), config.model_dump_json(), (), CSST_BANDS)


def _spoiled(tile: Tile, what: str) -> Tile:
    image, variance, mask = tile.image.copy(), tile.variance.copy(), tile.mask.copy()
    detection = [tile.band_index(b) for b in PhotometryConfig().detection_bands]
    if what == "r image NaN":
        image[tile.band_index("r")] = np.nan
    elif what == "detection bands NaN":
        image[detection] = np.nan
    elif what == "detection variances NaN":
        variance[detection] = np.nan
    elif what == "detection bands masked":
        mask[detection] |= int(MaskBit.BAD)
    elif what == "whole tile NaN":
        image[:] = np.nan
    return Tile(**{**tile.__dict__, "image": image, "variance": variance, "mask": mask})


@pytest.mark.parametrize(
    "what", ["detection bands NaN", "detection variances NaN", "detection bands masked"]
)
def test_a_tile_without_a_usable_detection_pixel_fails_naming_it(tmp_path, field, what):
    """The photometry's own rule (issue 18) refuses it; the task records a failure, no marker."""
    tile = _spoiled(read_tile_zarr(field[0]), what)
    bad = write_tile_zarr(tile, tmp_path / "in" / Path(field[0]).name)
    result = process_tile(TileSource("zarr", str(bad)), _job(tmp_path / "run"))
    assert result.status == "failed"
    assert f"tile {tile.tile_id}" in result.reason and "no usable pixel" in result.reason
    assert RunStore(tmp_path / "run").read_marker(tile.tile_id) is None


def test_one_unusable_detection_band_still_detects_on_the_others(tmp_path, field):
    """Issue 18: a band missing over the tile lowers the depth; the tile is done, with rows."""
    bad = write_tile_zarr(
        _spoiled(read_tile_zarr(field[0]), "r image NaN"), tmp_path / "in" / Path(field[0]).name
    )
    result = process_tile(TileSource("zarr", str(bad)), _job(tmp_path / "run"))
    assert result.status == "done" and result.rows > 0


def test_a_tile_without_detection_pixels_fails_and_reruns_after_repair(
    tmp_path, field, checkpoints, client
):
    good = read_tile_zarr(field[1])
    bad = write_tile_zarr(_spoiled(good, "detection bands NaN"), tmp_path / "in" / field[1].name)
    out = tmp_path / "run"
    summary = run([field[0], bad], out, models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (1, 1)
    assert "no usable pixel" in summary.failures[0].reason
    assert str(bad) in summary.failures[0].reason
    store = RunStore(out)
    assert store.read_marker(good.tile_id) is None
    assert not store.partition_path(good.tile_id).exists()
    assert pq.read_table(out / "manifest.parquet")["tile_id"].to_pylist() == [0]
    # the input repaired: the rerun measures it (no marker blocks it) and forgets the failure
    shutil.rmtree(bad)
    shutil.copytree(field[1], bad)
    again = run([field[0], bad], out, models=checkpoints, client=client, **QUIET)
    assert (again.tiles_done, again.tiles_skipped, again.tiles_failed) == (1, 1, 0)
    assert pq.read_table(out / "failures.parquet").num_rows == 0
    assert pq.read_table(store.partition_path(good.tile_id)).num_rows > 0


def test_a_whole_nan_tile_is_a_failure_not_an_empty_partition(tmp_path, field, checkpoints, client):
    tile = read_tile_zarr(field[2])
    bad = write_tile_zarr(_spoiled(tile, "whole tile NaN"), tmp_path / "in" / Path(field[2]).name)
    summary = run([bad], tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (0, 1)
    assert not RunStore(tmp_path / "run").partition_path(tile.tile_id).exists()
