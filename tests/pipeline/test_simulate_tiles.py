"""Distributed tile simulation: same pixels whatever the worker count, resumable, errors named."""

import numpy as np
import pytest
from distributed import Client, LocalCluster

from csst_photoz.io.paths import tile_store_path, tile_truth_path
from csst_photoz.io.tile_zarr import read_tile_zarr
from csst_photoz.pipeline import connect, simulate_tiles
from csst_photoz.sim.tiles import TileSpec, tile_grid


@pytest.fixture(scope="module")
def two_worker_client():
    with connect(n_workers=2) as client:
        yield client


def test_result_does_not_depend_on_the_number_of_workers(tmp_path, two_worker_client, instrument):
    specs = tile_grid(3, nx=96, ny=80, seed=5)
    simulate_tiles(
        specs, tmp_path / "two", client=two_worker_client, instrument=instrument, progress=False
    )
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as one,
    ):
        simulate_tiles(specs, tmp_path / "one", client=one, instrument=instrument, progress=False)
    for spec in specs:
        a = read_tile_zarr(tile_store_path(tmp_path / "one", spec.tile_id))
        b = read_tile_zarr(tile_store_path(tmp_path / "two", spec.tile_id))
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.variance, b.variance)
        assert tile_truth_path(tmp_path / "one", spec.tile_id).read_bytes() != b""


def test_rerun_skips_finished_tiles_and_overwrite_redoes_them(
    tmp_path, two_worker_client, instrument
):
    specs = tile_grid(2, nx=64, ny=64, seed=1)
    first = simulate_tiles(
        specs, tmp_path, client=two_worker_client, instrument=instrument, progress=False
    )
    assert sorted(r.tile_id for r in first) == [0, 1] and not any(r.skipped for r in first)
    again = simulate_tiles(
        specs, tmp_path, client=two_worker_client, instrument=instrument, progress=False
    )
    assert all(r.skipped for r in again)
    redo = simulate_tiles(
        specs[:1],
        tmp_path,
        client=two_worker_client,
        instrument=instrument,
        overwrite=True,
        progress=False,
    )
    assert [r.skipped for r in redo] == [False]


def test_many_tiles_are_submitted_in_a_bounded_window(tmp_path, two_worker_client, instrument):
    specs = (TileSpec(tile_id, 32, 32, 2) for tile_id in range(7))  # a generator, consumed lazily
    results = simulate_tiles(
        specs,
        tmp_path,
        client=two_worker_client,
        instrument=instrument,
        max_in_flight=2,
        progress=False,
    )
    assert sorted(r.tile_id for r in results) == list(range(7))


def test_a_failing_tile_is_named(tmp_path, two_worker_client, instrument):
    blocker = tile_store_path(tmp_path, 3)
    tmp_path.mkdir(exist_ok=True)
    # a plain file where the tile's truth must go makes the write fail on the worker
    tile_truth_path(tmp_path, 3).mkdir(parents=True)
    with pytest.raises(RuntimeError, match="tile 3 failed"):
        simulate_tiles(
            [TileSpec(3, 32, 32, 2)],
            tmp_path,
            client=two_worker_client,
            instrument=instrument,
            retries=0,
            progress=False,
        )
    assert not blocker.exists()


def test_connect_rejects_two_cluster_sources():
    with (
        pytest.raises(ValueError, match="at most one"),
        connect(address="tcp://x:1", scheduler_file="f"),
    ):
        pass


def test_a_run_stopped_by_a_failing_tile_resumes_to_the_uninterrupted_result(
    tmp_path, two_worker_client, instrument
):
    specs = [TileSpec(tile_id, 32, 32, 4) for tile_id in range(3)]
    blocker = tile_truth_path(tmp_path / "resumed", 2)
    blocker.mkdir(parents=True)  # a folder where tile 2's truth must go: that tile fails
    with pytest.raises(RuntimeError, match="tile 2 failed after 0 retries"):
        simulate_tiles(
            specs, tmp_path / "resumed", client=two_worker_client, instrument=instrument,
            retries=0, max_in_flight=1, progress=False,
        )  # fmt: skip
    blocker.rmdir()
    resumed = simulate_tiles(
        specs, tmp_path / "resumed", client=two_worker_client, instrument=instrument,
        progress=False,
    )  # fmt: skip
    assert {r.tile_id: r.skipped for r in resumed} == {0: True, 1: True, 2: False}
    simulate_tiles(
        specs, tmp_path / "whole", client=two_worker_client, instrument=instrument, progress=False
    )
    for spec in specs:
        a = read_tile_zarr(tile_store_path(tmp_path / "resumed", spec.tile_id))
        b = read_tile_zarr(tile_store_path(tmp_path / "whole", spec.tile_id))
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
