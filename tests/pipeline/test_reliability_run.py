"""Issue 19, items 2, 3, 5 and 8: overwrite is a fresh run, finalize checks the run, one run
per folder, honest summaries."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from csst_photoz.io.run_store import RunLockedError, RunStore
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline import PipelineConfig, run
from csst_photoz.pipeline.finalize import (
    PROVENANCE_KEY,
    FailedTilesError,
    RunIntegrityError,
    finalize_run,
)

QUIET = {"progress": False}
LOOSE = PipelineConfig(photometry=PhotometryConfig(threshold_sigma=2.0))


def test_overwrite_is_a_fresh_run_without_the_old_partitions(tmp_path, field, checkpoints, client):
    out = tmp_path / "run"
    run(field[:2], out, models=checkpoints, client=client, **QUIET)
    summary = run(field[2:3], out, models=[], client=client, config=LOOSE, overwrite=True,
                  **QUIET)  # fmt: skip
    assert summary.tiles_done == 1
    store = RunStore(out)
    assert [r.tile_id for r in store.markers()] == [2]
    assert sorted(p.name for p in store.tiles_dir.iterdir()) == ["tile_00000002.parquet"]
    settings = json.loads(store.settings_path.read_text())
    assert settings["models"] == [] and settings["pipeline"]["photometry"]["threshold_sigma"] == 2
    table = pq.read_table(store.partition_path(2))
    assert not [name for name in table.column_names if name.startswith("z_")]


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path, field, client):
    store = RunStore(tmp_path / "run")
    with store.lock():
        with pytest.raises(RunLockedError, match="in use by another run"):
            run(field[:1], store.root, models=[], client=client, **QUIET)
    assert not store.tiles_dir.exists()


@pytest.mark.slow  # a run and two finalizes (hats-import)
def test_finalize_refuses_failed_tiles_unless_allowed_and_records_them(
    tmp_path, field, checkpoints, client
):
    bad = tmp_path / "bad" / "tile_00000077.zarr"
    shutil.copytree(field[1], bad)
    (bad / "zarr.json").write_text("{")
    out = tmp_path / "run"
    run([field[0], bad], out, models=checkpoints, client=client, **QUIET)
    with pytest.raises(FailedTilesError, match=r"1 tiles failed.*allow_failed=True"):
        finalize_run(out, client=client)
    path, rows, tiles = finalize_run(out, client=client, allow_failed=True)
    assert tiles == 1 and rows == pq.read_metadata(RunStore(out).partition_path(0)).num_rows
    schema = pq.read_schema(path / "dataset" / "_common_metadata")
    provenance = json.loads(schema.metadata[PROVENANCE_KEY])
    assert provenance["allow_failed"] is True and provenance["tiles"] == 1
    assert [f["source"] for f in provenance["failed_tiles"]] == [str(bad)]


def test_finalize_refuses_a_lost_marker_and_partitions_of_other_settings(
    tmp_path, field, checkpoints, client
):
    out = tmp_path / "run"
    run(field[:2], out, models=checkpoints, client=client, **QUIET)
    store = RunStore(out)
    marker = store.marker_path(1).read_bytes()
    store.marker_path(1).unlink()  # the 329-of-372-rows case: a tile dropped silently before
    with pytest.raises(RunIntegrityError, match=r"tile_00000001.parquet: partition without a"):
        finalize_run(out, client=client)
    store.marker_path(1).write_bytes(marker)
    settings = json.loads(store.settings_path.read_text())
    settings["models"] = []  # the --no-models --overwrite case of before: run.json disagrees
    store.settings_path.write_text(json.dumps(settings))
    with pytest.raises(RunIntegrityError, match=r"made with models \['mlp', 'cnn'\], not run"):
        finalize_run(out, client=client)


@pytest.mark.slow  # three runs
def test_moved_tiles_resume_and_another_tile_with_a_taken_id_is_refused(
    tmp_path, field, checkpoints, client
):
    out = tmp_path / "run"
    first = run(field[:2], out, models=checkpoints, client=client, **QUIET)
    assert first.tiles_done == 2
    moved = [tmp_path / "elsewhere" / store.name for store in field[:2]]
    for source, destination in zip(field[:2], moved, strict=True):
        shutil.copytree(source, destination)
    again = run(moved, out, models=checkpoints, client=client, **QUIET)
    assert (again.tiles_done, again.tiles_skipped, again.tiles_failed) == (0, 2, 0)
    # a different tile (other metadata) under a taken id is refused, naming the first source
    other = tmp_path / "other" / field[0].name
    shutil.copytree(field[0], other)
    document = json.loads((other / "zarr.json").read_text())
    document["attributes"]["exposure_time"] = [
        2 * t for t in document["attributes"]["exposure_time"]
    ]
    (other / "zarr.json").write_text(json.dumps(document))
    refused = run([other], out, models=checkpoints, client=client, **QUIET)
    assert refused.tiles_failed == 1 and "already produced from" in refused.failures[0].reason


def test_a_memory_limit_below_the_measured_need_is_refused_before_any_worker(tmp_path, field):
    from csst_photoz.pipeline.cluster import ClusterError

    with pytest.raises(ClusterError, match=r"too small: .* needs about .* use --memory-limit"):
        run(field[:1], tmp_path / "run", models=[], memory_limit="1MB", n_workers=1, **QUIET)
    with pytest.raises(ClusterError, match=r"too small"):
        run(field[:1], tmp_path / "run", models=[], memory_limit="500MB", n_workers=1, **QUIET)


def test_an_empty_models_folder_is_refused_not_photometry_only(tmp_path, field):
    from csst_photoz.pipeline.batch import resolve_checkpoints

    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no checkpoints \(\*\.pt\).*--no-models"):
        resolve_checkpoints(tmp_path / "models")
