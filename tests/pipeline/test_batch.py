"""The batch processor end to end on a tiny field: partitions, resume, failures, a dying worker."""

import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csst_photoz.evaluation.field import evaluate_field
from csst_photoz.evaluation.match import match_positions
from csst_photoz.io.paths import tile_truth_path
from csst_photoz.io.run_store import RunStore
from csst_photoz.io.tile_fits import write_tile_fits
from csst_photoz.io.tile_sources import TileSource
from csst_photoz.io.tile_zarr import read_tile_zarr, write_tile_zarr
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline import PipelineConfig, run
from csst_photoz.tile import Tile

# the dying tile source below travels to the workers by value (this module is not importable)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FIELD_SIZE = 320  # the side of the conftest's tiles
QUIET = {"progress": False}


def test_each_tile_gets_one_partition_with_photoz_columns(tmp_path, field, checkpoints, client):
    summary = run(field, tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_skipped, summary.tiles_failed) == (4, 0, 0)
    store = RunStore(tmp_path / "run")
    manifest = pq.read_table(tmp_path / "run" / "manifest.parquet")
    assert sorted(manifest["tile_id"].to_pylist()) == [0, 1, 2, 3]
    total = 0
    for record in store.markers():
        store.verify_partition(record)
        table = pq.read_table(store.partition_path(record.tile_id))
        assert table.num_rows == record.rows
        total += table.num_rows
        assert set(table["tile_id"].to_pylist()) <= {record.tile_id}
        for name in ("z_mlp", "z_mlp_err", "z_cnn", "z_cnn_err"):
            assert table.schema.field(name).type == pa.float32()
        finite = np.isfinite(table["counts_g"].to_numpy())
        assert np.isfinite(table["z_cnn"].to_numpy()).all()
        assert np.isfinite(table["z_mlp"].to_numpy()[finite]).all()
        models = json.loads(table.schema.metadata[b"csst_photoz.models"])
        assert [m["name"] for m in models] == ["mlp", "cnn"]
        assert b"csst_photoz.pipeline" in table.schema.metadata
        column = pq.ParquetFile(store.partition_path(record.tile_id)).metadata.row_group(0)
        by_name = {
            column.column(k).path_in_schema: column.column(k) for k in range(column.num_columns)
        }
        assert by_name["z_mlp"].compression == "ZSTD"
        assert not by_name["flux_g"].has_dictionary_page
    assert total == summary.galaxies > 0


def test_every_selected_truth_galaxy_appears_once(tmp_path, field, checkpoints, client):
    run(field, tmp_path / "run", models=checkpoints, client=client, **QUIET)
    store = RunStore(tmp_path / "run")
    n_interior = 0
    for record in store.markers():
        catalogue = pq.read_table(store.partition_path(record.tile_id))
        truth = pq.read_table(tile_truth_path(field[0].parent, record.tile_id))
        x, y = truth["x"].to_numpy(), truth["y"].to_numpy()
        # the paper's sample (SNR > 10 in g or i), away from the edges (whose cut light moves
        # the centroid) and from other galaxies (a close pair may be one detection)
        gap = np.sort(np.hypot(x[:, None] - x, y[:, None] - y), axis=1)[:, 1]
        margin = np.minimum(np.minimum(x, y), np.minimum(FIELD_SIZE - 1 - x, FIELD_SIZE - 1 - y))
        interior = truth["selected"].to_numpy() & (margin > 8) & (gap > 6)
        match = match_positions(x, y, catalogue["x"].to_numpy(), catalogue["y"].to_numpy(),
                                radius=2.0)  # fmt: skip
        matched = np.zeros(len(x), bool)
        matched[match.truth] = True
        assert matched[interior].all(), np.flatnonzero(interior & ~matched)
        n_interior += int(interior.sum())
        # and each appears once: no second detection within the matching radius
        near = np.hypot(catalogue["x"].to_numpy()[:, None] - x[interior],
                        catalogue["y"].to_numpy()[:, None] - y[interior]) < 2.0  # fmt: skip
        assert (near.sum(axis=0) == 1).all()
    assert n_interior >= 10
    ids = np.concatenate([pq.read_table(p)["object_id"].to_numpy() for p in store.partitions()])
    assert len(np.unique(ids)) == len(ids)
    result = evaluate_field(store.partitions(), field[0].parent, tmp_path / "report")
    assert result.completeness > 0.8 and (tmp_path / "report" / "report.md").is_file()


def test_rerun_resumes_and_gives_the_uninterrupted_catalogue(
    tmp_path, field, checkpoints, client, read_catalogue, assert_same_table
):
    whole = run(field, tmp_path / "whole", models=checkpoints, client=client, **QUIET)
    first = run(field[:2], tmp_path / "parts", models=checkpoints, client=client, **QUIET)
    second = run(field, tmp_path / "parts", models=checkpoints, client=client, **QUIET)
    assert (first.tiles_done, second.tiles_done, second.tiles_skipped) == (2, 2, 2)
    assert whole.galaxies == first.galaxies + second.galaxies
    assert_same_table(read_catalogue(tmp_path / "whole"), read_catalogue(tmp_path / "parts"))
    again = run(field, tmp_path / "parts", models=checkpoints, client=client, **QUIET)
    assert (again.tiles_done, again.tiles_skipped) == (0, 4)


def test_two_runs_write_identical_partitions(tmp_path, field, checkpoints, client):
    """Byte for byte: the writer, the photometry and the networks are deterministic."""
    for name in ("a", "b"):
        run(field[:2], tmp_path / name, models=checkpoints, client=client, **QUIET)
    for a in sorted((tmp_path / "a" / "tiles").glob("*.parquet")):
        b = tmp_path / "b" / "tiles" / a.name
        assert a.read_bytes() == b.read_bytes()


def corrupt_copy(store: Path, destination: Path) -> Path:
    shutil.copytree(store, destination)
    chunk = next(p for p in sorted((destination / "image").rglob("*")) if p.is_file())
    chunk.write_bytes(b"not a blosc chunk")
    return destination


def test_a_corrupt_tile_is_reported_and_the_others_complete(tmp_path, field, checkpoints, client):
    bad = corrupt_copy(field[1], tmp_path / "bad" / "tile_00000099.zarr")
    summary = run([field[0], bad, field[2]], tmp_path / "run", models=checkpoints, client=client,
                  **QUIET)  # fmt: skip
    assert (summary.tiles_done, summary.tiles_failed) == (2, 1)
    failures = pq.read_table(tmp_path / "run" / "failures.parquet").to_pylist()
    assert len(failures) == 1 and failures[0]["kind"] == "data"
    assert str(bad) in failures[0]["reason"] and "cannot be read" in failures[0]["reason"]
    # repaired input: the rerun processes it and forgets the failure
    shutil.rmtree(bad)
    shutil.copytree(field[1], bad)
    again = run([field[0], bad, field[2]], tmp_path / "run", models=checkpoints, client=client,
                **QUIET)  # fmt: skip
    assert (again.tiles_done, again.tiles_skipped, again.tiles_failed) == (1, 2, 0)
    assert pq.read_table(tmp_path / "run" / "failures.parquet").num_rows == 0


def test_an_empty_tile_writes_an_empty_partition_with_the_full_schema(
    tmp_path, field, checkpoints, client
):
    tile = read_tile_zarr(field[0])
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, tile.image.shape).astype(np.float32) * np.sqrt(tile.variance)
    empty = Tile(**{**tile.__dict__, "tile_id": 50, "image": noise})
    store = write_tile_zarr(empty, tmp_path / "empty" / "tile_00000050.zarr")
    summary = run([store, field[0]], tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (2, 0)
    table = pq.read_table(RunStore(tmp_path / "run").partition_path(50))
    full = pq.read_table(RunStore(tmp_path / "run").partition_path(0))
    assert table.num_rows == 0
    assert table.schema.remove_metadata().equals(full.schema.remove_metadata())


def test_the_same_tile_id_from_two_sources_is_refused(tmp_path, field, checkpoints, client):
    twin = tmp_path / "copy" / field[0].name
    shutil.copytree(field[0], twin)
    summary = run([field[0], twin], tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (1, 1)
    assert "already produced" in summary.failures[0].reason


def test_other_settings_in_the_same_folder_are_refused(tmp_path, field, checkpoints, client):
    run(field[:1], tmp_path / "run", models=checkpoints, client=client, **QUIET)
    other = PipelineConfig(photometry=PhotometryConfig(threshold_sigma=2.0))
    with pytest.raises(ValueError, match=r"other settings.*pipeline"):
        run(field[:1], tmp_path / "run", models=checkpoints, client=client, config=other, **QUIET)
    with pytest.raises(ValueError, match=r"other settings.*models"):
        run(field[:1], tmp_path / "run", models=[], client=client, **QUIET)
    # scheduling settings may change between runs of one folder
    again = PipelineConfig(batch_size=7, retries=0, max_in_flight=1, device="cpu")
    summary = run(field[:1], tmp_path / "run", models=checkpoints, client=client, config=again,
                  **QUIET)  # fmt: skip
    assert summary.tiles_skipped == 1


def test_batch_size_does_not_change_the_catalogue(
    tmp_path, field, checkpoints, client, read_catalogue
):
    run(field[:2], tmp_path / "big", models=checkpoints, client=client, **QUIET)
    small = PipelineConfig(batch_size=3)
    run(field[:2], tmp_path / "small", models=checkpoints, client=client, config=small, **QUIET)
    a, b = read_catalogue(tmp_path / "big"), read_catalogue(tmp_path / "small")
    for name in ("z_mlp", "z_cnn", "z_cnn_err"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-5, atol=1e-6)


@dataclass(frozen=True)
class DyingSource(TileSource):
    """A tile whose first read kills the worker process running it (SIGKILL, no clean-up)."""

    flag: str = ""

    def read(self, bands):
        flag = Path(self.flag)
        if not flag.exists():
            flag.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read(bands)


def test_a_worker_killed_mid_run_loses_no_tile_and_duplicates_no_row(
    tmp_path, field, checkpoints, client, read_catalogue, assert_same_table
):
    reference = run(field, tmp_path / "reference", models=checkpoints, client=client, **QUIET)
    sources = [TileSource("zarr", str(p.resolve())) for p in field]
    sources[1] = DyingSource("zarr", sources[1].path, flag=str(tmp_path / "killed"))
    summary = run(sources, tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (tmp_path / "killed").exists()  # a worker really died
    assert (summary.tiles_done, summary.tiles_failed) == (4, 0)
    manifest = pq.read_table(tmp_path / "run" / "manifest.parquet")
    assert sorted(manifest["tile_id"].to_pylist()) == [0, 1, 2, 3]
    catalogue = read_catalogue(tmp_path / "run")
    assert len(np.unique(catalogue["object_id"].to_numpy())) == catalogue.num_rows
    assert catalogue.num_rows == reference.galaxies
    assert_same_table(catalogue, read_catalogue(tmp_path / "reference"))


def test_photometry_only_run_has_no_photoz_columns(tmp_path, field, client):
    summary = run(field[:1], tmp_path / "run", models=[], client=client, **QUIET)
    table = pq.read_table(RunStore(tmp_path / "run").partition_path(0))
    assert summary.models == {} and not [c for c in table.column_names if c.startswith("z_")]


@pytest.mark.parametrize("window", [1, 3])
def test_a_small_window_still_processes_every_tile(tmp_path, field, checkpoints, client, window):
    config = PipelineConfig(max_in_flight=window)
    summary = run(field, tmp_path / "run", models=checkpoints, client=client, config=config,
                  **QUIET)  # fmt: skip
    assert (summary.tiles_done, summary.tiles_failed) == (4, 0)


def test_fits_tiles_give_the_zarr_catalogue(
    tmp_path, field, checkpoints, client, read_catalogue, assert_same_table
):
    for store in field[:2]:
        write_tile_fits(read_tile_zarr(store), tmp_path / "fits")
    from_fits = run(str(tmp_path / "fits" / "*.fits"), tmp_path / "a", models=checkpoints,
                    client=client, **QUIET)  # fmt: skip
    run(field[:2], tmp_path / "b", models=checkpoints, client=client, **QUIET)
    assert from_fits.tiles_done == 2
    a, b = read_catalogue(tmp_path / "a"), read_catalogue(tmp_path / "b")
    for name in ("object_id", "ra", "flux_i", "z_mlp", "z_cnn"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-6)


def test_shipped_checkpoints_give_sensible_redshifts(tmp_path, field, client):
    """The shipped networks on the small field (paper's sample, matched to the truth)."""
    summary = run(field, tmp_path / "run", client=client, **QUIET)
    assert {"mlp", "cnn"} <= set(summary.models)
    result = evaluate_field(RunStore(tmp_path / "run").partitions(), field[0].parent,
                            tmp_path / "report")  # fmt: skip
    assert result.n_matched_selected >= 15
    mlp = result.metrics["mlp"]
    assert mlp["sigma_nmad"] < 0.08 and mlp["outlier_fraction"] < 0.25, mlp
    assert result.metrics["cnn"]["sigma_nmad"] < 0.25


def test_a_missing_tile_in_a_manifest_is_a_failure_and_the_run_goes_on(
    tmp_path, field, checkpoints, client
):
    manifest = tmp_path / "tiles.txt"
    manifest.write_text(f"{field[0]}\nmissing.zarr\n{field[1]}\nnot_a_tile.txt\n")
    (tmp_path / "not_a_tile.txt").write_text("")
    summary = run(manifest, tmp_path / "run", models=checkpoints, client=client, **QUIET)
    assert (summary.tiles_done, summary.tiles_failed) == (2, 2)
    failures = pq.read_table(tmp_path / "run" / "failures.parquet").to_pylist()
    assert {f["kind"] for f in failures} == {"input"}
    reasons = " ".join(f["reason"] for f in failures)
    assert f"{manifest}:2" in reasons and f"{manifest}:4" in reasons
