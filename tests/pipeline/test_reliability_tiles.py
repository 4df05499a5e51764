"""Issue 19, item 1: a tile whose detection inputs are unusable is a failure, never "done"."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from csst_photoz.io.run_store import RunStore
from csst_photoz.io.tile_zarr import read_tile_zarr, write_tile_zarr
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline import run
from csst_photoz.pipeline.tile_task import detection_problem
from csst_photoz.tile import MaskBit, Tile

QUIET = {"progress": False}


def _spoiled(tile: Tile, what: str) -> Tile:
    image, variance, mask = tile.image.copy(), tile.variance.copy(), tile.mask.copy()
    r, i = tile.band_index("r"), tile.band_index("i")
    if what == "r image NaN":
        image[r] = np.nan
    elif what == "i variance NaN":
        variance[i] = np.nan
    elif what == "whole tile NaN":
        image[:] = np.nan
    elif what == "z masked":
        mask[tile.band_index("z")] |= int(MaskBit.BAD)
    elif what == "g negative variance":
        variance[tile.band_index("g")] = -1.0
    return Tile(**{**tile.__dict__, "image": image, "variance": variance, "mask": mask})


@pytest.mark.parametrize(
    "what, band",
    [("r image NaN", "r"), ("i variance NaN", "i"), ("whole tile NaN", "g"), ("z masked", "z"),
     ("g negative variance", "g")],
)  # fmt: skip
def test_detection_problem_names_the_unusable_band(field, what, band):
    tile = _spoiled(read_tile_zarr(field[0]), what)
    problem = detection_problem(tile, PhotometryConfig())
    assert problem is not None and f"band {band}" in problem and "no usable" in problem


def test_detection_problem_is_none_for_a_good_tile_or_a_partly_bad_one(field):
    tile = read_tile_zarr(field[0])
    assert detection_problem(tile, PhotometryConfig()) is None
    image = tile.image.copy()
    image[tile.band_index("r"), :100] = np.nan  # a part of one band: measurable
    image[tile.band_index("NUV")] = np.nan  # a non-detection band: measurable
    partly = Tile(**{**tile.__dict__, "image": image})
    assert detection_problem(partly, PhotometryConfig()) is None
    # bands that do not overlap in usable pixels leave no detection pixel either
    image = tile.image.copy()
    image[tile.band_index("g"), :, : tile.shape[1] // 2] = np.nan
    image[tile.band_index("z"), :, tile.shape[1] // 2 :] = np.nan
    disjoint = Tile(**{**tile.__dict__, "image": image})
    assert "no pixel usable in every detection band" in detection_problem(
        disjoint, PhotometryConfig()
    )


def test_a_tile_with_a_nan_detection_band_fails_and_reruns_after_repair(
    tmp_path, field, checkpoints, client
):
    good = read_tile_zarr(field[1])
    bad = write_tile_zarr(_spoiled(good, "r image NaN"), tmp_path / "in" / field[1].name)
    out = tmp_path / "run"
    summary = run([field[0], bad], out, models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (1, 1)
    assert "band r" in summary.failures[0].reason and str(bad) in summary.failures[0].reason
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
