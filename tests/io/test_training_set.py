"""The training-set folder: resumable block writing, the table written last, reading back."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from csst_photoz.io.paths import training_parts_folder
from csst_photoz.io.training_set import (
    SLICE_METADATA_KEY,
    STAMP_CHUNK_OBJECTS,
    TrainingDataError,
    TrainingSetSettings,
    TrainingSetWriter,
    begin_training_set,
    data_hash,
    open_stamps,
    read_table_columns,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0_1" / "training_set"
# data_hash of the fixture computed with the code of commit eb89b6b (before issue 15); the
# fixture's mlp.pt records the same value as its training data hash
FIXTURE_HASH = "8ecf3794ea3be9246d7dca161dc20870f64a0840cb792522dc9f1874e7a7ad85"
N = 2 * STAMP_CHUNK_OBJECTS + 6  # the last block is short
BLOCK = STAMP_CHUNK_OBJECTS


def settings(**changes) -> TrainingSetSettings:
    values = dict(
        n=N,
        bands=("g", "r", "i"),
        size=8,
        seed=11,
        pixel_scale_arcsec=0.074,
        instrument_config={"name": "test"},
    )
    return TrainingSetSettings(**{**values, **changes})


def block(start: int, stop: int) -> tuple[np.ndarray, pa.Table]:
    """Stamps and rows that depend only on the row numbers."""
    rows = np.arange(start, stop)
    stamps = np.stack([np.random.default_rng(row).normal(size=3 * 8 * 8) for row in rows])
    table = pa.table({"galaxy_id": rows, "redshift": rows / 100.0})
    metadata = {b"csst_photoz.bands": b"g,r,i", b"csst_photoz.seed": b"11"}
    return stamps.reshape(-1, 3, 8, 8).astype(np.float32), table.replace_schema_metadata(metadata)


def write_blocks(writer: TrainingSetWriter, spans) -> None:
    for start, stop in spans:
        writer.write_block(start, *block(start, stop))


def test_blocks_in_any_order_finish_into_one_aligned_folder(tmp_path):
    folder = tmp_path / "set"
    writer = begin_training_set(folder, settings())
    write_blocks(writer, [(64, 70), (0, 32), (32, 64)])
    assert not (folder / "stamps.parquet").exists() and not writer.complete
    table = writer.finish()
    assert writer.complete
    assert sorted(os.listdir(folder)) == ["stamps.parquet", "stamps.zarr"]
    assert table.equals(pq.read_table(folder / "stamps.parquet"), check_metadata=True)
    np.testing.assert_array_equal(table["galaxy_id"].to_numpy(), np.arange(N))
    assert table.schema.metadata[b"csst_photoz.bands"] == b"g,r,i"
    stamps = open_stamps(folder)
    assert stamps.shape == (N, 3, 8, 8)
    np.testing.assert_array_equal(stamps.read(np.arange(N)), block(0, N)[0])
    group = zarr.open_group(folder / "stamps.zarr", mode="r")
    assert group["stamps"].chunks == (STAMP_CHUNK_OBJECTS, 3, 8, 8)
    assert dict(group.attrs) == settings().attrs()
    assert group.attrs["format"] == "csst_photoz.stamps"


def test_interrupted_set_resumes_its_finished_blocks(tmp_path):
    whole = begin_training_set(tmp_path / "whole", settings())
    write_blocks(whole, [(0, 32), (32, 64), (64, 70)])
    expected = whole.finish()

    folder = tmp_path / "set"
    write_blocks(begin_training_set(folder, settings()), [(0, 32), (64, 70)])
    resumed = begin_training_set(folder, settings())  # a new run, same settings
    assert resumed.finished_blocks() == [(0, 32), (64, 70)]
    assert resumed.pending_blocks(BLOCK) == [(32, 64)]
    write_blocks(resumed, resumed.pending_blocks(BLOCK))
    assert resumed.finish().equals(expected, check_metadata=True)
    np.testing.assert_array_equal(
        open_stamps(folder).read(np.arange(N)), open_stamps(tmp_path / "whole").read(np.arange(N))
    )


def test_pending_blocks_fill_the_gaps_whatever_the_block_size(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings(n=200))
    assert writer.pending_blocks(64) == [(0, 64), (64, 128), (128, 192), (192, 200)]
    write_blocks(writer, [(32, 64), (128, 160)])
    assert writer.pending_blocks(64) == [(0, 32), (64, 128), (160, 200)]
    assert writer.pending_blocks(32) == [(0, 32), (64, 96), (96, 128), (160, 192), (192, 200)]
    with pytest.raises(ValueError, match="multiple of 32"):
        writer.pending_blocks(48)


@pytest.mark.parametrize(
    "changes, differing",
    [
        ({"seed": 12}, "seed"),
        ({"n": N + 1}, "n"),
        ({"size": 16}, "size"),
        ({"bands": ("g", "r", "z")}, "bands"),
        ({"slice": {"index": 0, "count": 2, "start": 0, "stop": N, "n": 2 * N}}, "slice"),
    ],
)
def test_a_store_of_other_settings_is_refused_naming_the_folder(tmp_path, changes, differing):
    folder = tmp_path / "set"
    write_blocks(begin_training_set(folder, settings()), [(0, 32)])
    with pytest.raises(TrainingDataError, match=rf"{folder}: .*other settings.*{differing}"):
        begin_training_set(folder, settings(**changes))
    assert TrainingSetWriter(folder).finished_blocks() == [(0, 32)]  # left as it was


def test_a_store_not_written_by_csst_photoz_is_not_resumed(tmp_path):
    folder = tmp_path / "set"
    zarr.open_group(folder / "stamps.zarr", mode="w").create_array(
        "stamps", shape=(N, 3, 8, 8), dtype=np.float32
    )
    with pytest.raises(TrainingDataError, match="not a stamp store written by csst_photoz"):
        begin_training_set(folder, settings())
    begin_training_set(folder, settings(), resume=False)  # starting over is allowed


def test_starting_over_discards_a_finished_set(tmp_path):
    folder = tmp_path / "set"
    writer = begin_training_set(folder, settings())
    write_blocks(writer, [(0, 32), (32, 64), (64, 70)])
    writer.finish()
    again = begin_training_set(folder, settings(seed=3), resume=False)
    assert not again.complete and again.finished_blocks() == []
    assert not (folder / "stamps.parquet").exists()
    assert zarr.open_group(folder / "stamps.zarr", mode="r").attrs["seed"] == 3


def test_a_finished_set_resumes_as_complete(tmp_path):
    folder = tmp_path / "set"
    writer = begin_training_set(folder, settings())
    write_blocks(writer, [(0, 32), (32, 64), (64, 70)])
    table = writer.finish()
    resumed = begin_training_set(folder, settings())
    assert resumed.complete and resumed.finished_blocks() == [(0, N)]
    assert resumed.pending_blocks(BLOCK) == []
    training_parts_folder(folder).mkdir()  # as if the first finish stopped after the table
    assert resumed.finish().equals(table)
    assert sorted(os.listdir(folder)) == ["stamps.parquet", "stamps.zarr"]
    with pytest.raises(ValueError, match="finished"):
        resumed.write_block(0, *block(0, 32))


def test_a_retried_block_replaces_itself(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings())
    write_blocks(writer, [(0, 32), (0, 32)])
    assert writer.finished_blocks() == [(0, 32)]
    assert not list(training_parts_folder(tmp_path / "set").glob(".*"))  # no temporaries


@pytest.mark.parametrize(
    "start, stop, message",
    [
        (16, 48, "multiple of 32"),
        (64, 71, "within the set"),
        (0, 20, "chunk boundary"),
        (32, 96, "within the set"),
    ],
)
def test_blocks_off_the_chunk_grid_are_refused(tmp_path, start, stop, message):
    writer = begin_training_set(tmp_path / "set", settings())
    stamps, table = block(start, stop)
    with pytest.raises(ValueError, match=message):
        writer.write_block(start, stamps, table)


def test_inconsistent_or_overlapping_blocks_are_refused(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings(n=128))
    write_blocks(writer, [(0, 64)])
    with pytest.raises(ValueError, match="overlaps finished"):
        writer.write_block(32, *block(32, 96))
    stamps, table = block(64, 96)
    with pytest.raises(ValueError, match="35 table rows for 32 stamps"):
        writer.write_block(64, stamps, pa.concat_tables([table, block(0, 3)[1]]))
    with pytest.raises(ValueError, match="shape"):
        writer.write_block(64, stamps[:, :2], table)
    assert writer.finished_blocks() == [(0, 64)]


def test_finishing_with_missing_rows_names_them(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings())
    write_blocks(writer, [(32, 64)])
    with pytest.raises(ValueError, match=r"rows \[0, 32\), \[64, 70\) are not written"):
        writer.finish()
    assert not writer.complete


def test_a_slice_records_itself_in_the_attributes_and_the_table(tmp_path):
    record = {"index": 1, "count": 3, "start": 70, "stop": 140, "n": 210}
    writer = begin_training_set(tmp_path / "set", settings(slice=record))
    write_blocks(writer, [(0, 32), (32, 64), (64, 70)])
    table = writer.finish()
    assert json.loads(table.schema.metadata[SLICE_METADATA_KEY]) == record
    assert zarr.open_group(tmp_path / "set" / "stamps.zarr", mode="r").attrs["slice"] == record


def test_a_writer_travels_to_a_worker_as_its_folder(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings())
    copy = pickle.loads(pickle.dumps(writer))
    copy.write_block(0, *block(0, 32))
    TrainingSetWriter(tmp_path / "set").write_block(32, *block(32, 64))
    assert writer.finished_blocks() == [(0, 32), (32, 64)]
    with pytest.raises(FileNotFoundError, match="begin_training_set"):
        TrainingSetWriter(tmp_path / "nothing")


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="n >= 1"):
        settings(n=0)


# -- reading ---------------------------------------------------------------------------------


def test_rows_are_read_in_blocks_through_a_transform(tmp_path, monkeypatch):
    from csst_photoz.io import training_set

    monkeypatch.setattr(training_set, "_READ_BLOCK", 16)  # rows cross several read blocks
    writer = begin_training_set(tmp_path / "set", settings())
    write_blocks(writer, [(0, 32), (32, 64), (64, 70)])
    writer.finish()
    stamps = open_stamps(tmp_path / "set")
    rows = np.array([0, 5, 15, 16, 40, 69])
    expected = block(0, N)[0][rows]
    np.testing.assert_array_equal(stamps.read(rows), expected)
    cropped = stamps.read(rows, transform=lambda s: s[..., 2:6, 2:6])
    np.testing.assert_array_equal(cropped, expected[..., 2:6, 2:6])
    assert stamps.read(np.array([], dtype=np.int64)).shape == (0, 3, 8, 8)
    with pytest.raises(ValueError, match="ascending"):
        stamps.read([3, 1])


def test_stamps_are_checked_against_their_table(tmp_path):
    writer = begin_training_set(tmp_path / "set", settings())
    stamps = open_stamps(writer.folder)
    stamps.check(N, ("g", "r", "i"))
    with pytest.raises(TrainingDataError, match=rf"stamps\.zarr: .*{N + 1} rows"):
        stamps.check(N + 1, ("g", "r", "i"))
    with pytest.raises(TrainingDataError, match=r"stamps\.zarr: stamp bands .* differ"):
        stamps.check(N, ("g", "r", "z"))


def test_a_missing_or_unreadable_stamp_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stamps\.zarr"):
        open_stamps(tmp_path)
    zarr.open_group(tmp_path / "stamps.zarr", mode="w")
    with pytest.raises(TrainingDataError, match=r"stamps\.zarr: no readable 'stamps' array"):
        open_stamps(tmp_path)


def test_training_set_written_by_v0_1_still_loads():
    stamps = open_stamps(FIXTURE)
    assert stamps.shape == (24, 7, 16, 16) and stamps.attrs["seed"] == 5
    columns = read_table_columns(FIXTURE / "stamps.parquet", ["galaxy_id", "redshift"])
    stamps.check(len(columns["galaxy_id"]), stamps.attrs["bands"])
    assert data_hash(FIXTURE / "stamps.parquet", stamps.array) == FIXTURE_HASH
    assert stamps.read(np.arange(24)).shape == (24, 7, 16, 16)
    # an old finished folder is a complete set for a writer with its settings
    writer = TrainingSetWriter(FIXTURE)
    assert writer.complete and writer.settings.n == 24 and writer.pending_blocks(BLOCK) == []
