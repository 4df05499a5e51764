"""The run folder: partitions, done-markers, claims, settings and failure records."""

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csst_photoz.io import run_store as run_store_module
from csst_photoz.io.run_store import RunStore, TileFailure, TileRecord, file_sha256

_DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}


def make_table(tile_id: int, n: int = 50, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "object_id": pa.array(tile_id * 2**32 + np.arange(n), pa.int64()),
            "flux": pa.array(rng.normal(100.0, 5.0, n).astype(np.float32)),
            # few distinct values: a writer with dictionaries on would use one here
            "z_phot": pa.array(rng.choice([0.5, 1.0, 1.5], n), pa.float64()),
            "band": pa.array(rng.choice(["g", "r", "i"], n).tolist(), pa.string()),
            "flags": pa.array(rng.integers(0, 3, n), pa.int16()),
        }
    )
    return table.replace_schema_metadata({b"csst_photoz.tile_id": str(tile_id).encode()})


def make_record(store: RunStore, tile_id: int, source: str, **extra) -> TileRecord:
    table = make_table(tile_id, seed=tile_id)
    path, size, sha = store.write_partition(tile_id, table)
    return TileRecord(
        tile_id=tile_id,
        source=source,
        partition=str(path),
        rows=table.num_rows,
        bytes=size,
        sha256=sha,
        seconds=1.25,
        **extra,
    )


# -- partitions ------------------------------------------------------------------------------


def test_file_sha256_matches_hashlib(tmp_path):
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)  # spans several read chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_partition_is_written_under_its_tile_name_and_round_trips(tmp_path):
    store = RunStore(tmp_path / "run")
    table = make_table(7)
    path, size, sha = store.write_partition(7, table)
    assert path == store.partition_path(7) == tmp_path / "run" / "tiles" / "tile_00000007.parquet"
    assert size == path.stat().st_size and sha == file_sha256(path)
    # nothing but the partition is left in the folder (the temporary was renamed)
    assert sorted(p.name for p in store.tiles_dir.iterdir()) == ["tile_00000007.parquet"]
    assert pq.read_table(path).equals(table)


def test_partition_is_zstd_without_dictionaries_on_float_columns(tmp_path):
    store = RunStore(tmp_path)
    path, _, _ = store.write_partition(3, make_table(3))
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 50
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name = column.path_in_schema
            assert column.compression == "ZSTD", name
            dictionary = column.has_dictionary_page or bool(
                _DICTIONARY_ENCODINGS & set(column.encodings)
            )
            if name in ("flux", "z_phot", "object_id"):
                assert not dictionary, (name, column.encodings)
            else:  # strings and small ints keep their dictionaries
                assert dictionary, (name, column.encodings)
            assert column.is_stats_set, name


def test_partition_of_only_float_columns_has_no_dictionaries(tmp_path):
    table = pa.table({"a": pa.array([1.0, 1.0, 2.0]), "b": pa.array([0.5, 0.5, 0.5])})
    table = table.replace_schema_metadata({b"csst_photoz.tile_id": b"2"})
    path, _, _ = RunStore(tmp_path).write_partition(2, table)
    group = pq.ParquetFile(path).metadata.row_group(0)
    for c in range(group.num_columns):
        assert not group.column(c).has_dictionary_page


def test_failed_partition_write_leaves_no_file(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    old_path, old_size, old_sha = store.write_partition(4, make_table(4, seed=1))

    def broken_write(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(run_store_module.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        store.write_partition(4, make_table(4, seed=2))
    with pytest.raises(OSError, match="disk full"):
        store.write_partition(5, make_table(5))
    # the earlier partition is untouched; no partial file or temporary is left behind
    assert file_sha256(old_path) == old_sha and old_path.stat().st_size == old_size
    assert sorted(p.name for p in store.tiles_dir.iterdir()) == ["tile_00000004.parquet"]


def test_rewriting_a_partition_replaces_it(tmp_path):
    store = RunStore(tmp_path)
    _, _, first = store.write_partition(4, make_table(4, seed=1))
    path, _, second = store.write_partition(4, make_table(4, seed=2))
    assert first != second == file_sha256(path)
    assert pq.read_table(path).equals(make_table(4, seed=2))


def test_verify_partition_detects_a_flipped_byte_and_a_deleted_file(tmp_path):
    store = RunStore(tmp_path)
    record = make_record(store, 9, "src9")
    store.verify_partition(record)  # intact: no error
    path = store.partition_path(9)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert store.is_done(record)  # same size: the cheap check cannot see it ...
    with pytest.raises(ValueError, match="differs from its done-marker") as info:
        store.verify_partition(record)  # ... the SHA-256 does
    assert str(path) in str(info.value)
    path.unlink()
    with pytest.raises(ValueError, match="missing") as info:
        store.verify_partition(record)
    assert str(path) in str(info.value)
    assert not store.is_done(record)


def test_is_done_false_after_truncation(tmp_path):
    store = RunStore(tmp_path)
    record = make_record(store, 1, "src1")
    assert store.is_done(record)
    path = store.partition_path(1)
    with open(path, "r+b") as handle:
        handle.truncate(record.bytes - 10)
    assert not store.is_done(record)
    with pytest.raises(ValueError, match=str(path.name)):
        store.verify_partition(record)


# -- markers ---------------------------------------------------------------------------------


def test_marker_round_trips(tmp_path):
    store = RunStore(tmp_path)
    record = make_record(
        store, 12, "/data/tile12.zarr", worker="w1", device="cpu", stage_seconds={"read": 0.5}
    )
    assert store.read_marker(12) is None
    store.write_marker(record)
    assert store.marker_path(12).name == "tile_00000012.json"
    assert store.read_marker(12) == record
    assert json.loads(store.marker_path(12).read_text()) == asdict(record)
    assert list(store.markers()) == [record]
    # no temporaries beside the marker
    assert [p.name for p in store.marker_path(12).parent.iterdir()] == ["tile_00000012.json"]


def test_unreadable_markers_are_skipped(tmp_path):
    store = RunStore(tmp_path)
    good = make_record(store, 2, "a")
    store.write_marker(good)
    store.marker_path(3).write_text("{not json")
    store.marker_path(4).write_text(json.dumps({"tile_id": 4}))  # missing fields
    assert store.read_marker(3) is None and store.read_marker(4) is None
    assert list(store.markers()) == [good]


def test_markers_in_tile_id_order_and_done_sources(tmp_path):
    store = RunStore(tmp_path)
    records = {tile_id: make_record(store, tile_id, f"src{tile_id}") for tile_id in (10, 2, 7)}
    for record in records.values():
        store.write_marker(record)
    assert [r.tile_id for r in store.markers()] == [2, 7, 10]
    assert store.done_sources() == {f"src{i}": records[i] for i in (2, 7, 10)}
    store.partition_path(7).unlink()
    assert store.done_sources() == {"src2": records[2], "src10": records[10]}
    assert store.partitions() == [store.partition_path(2), store.partition_path(10)]


# -- claims ----------------------------------------------------------------------------------


def test_claim_first_wins_and_reports_the_holder(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.claim(5, "a.zarr") is None
    assert store.claim(5, "a.zarr") is None  # a retried task of the same source goes on
    assert store.claim(5, "b.zarr") == "a.zarr"
    assert store.claim(6, "b.zarr") is None  # other ids are independent
    assert store.claim(6, "a.zarr") == "b.zarr"
    assert RunStore(tmp_path / "run").claim(5, "c.zarr") == "a.zarr"  # survives a new store


_BARRIER = None


def _hold_at(barrier) -> None:
    global _BARRIER  # worker-process state, set by the pool initializer
    _BARRIER = barrier


def _race(root: str, tile_ids: list[int], source: str) -> list[str | None]:
    _BARRIER.wait(timeout=30)  # both workers start claiming together
    store = RunStore(root)
    return [store.claim(tile_id, source) for tile_id in tile_ids]


def test_claim_race_between_processes_has_exactly_one_winner(tmp_path):
    tile_ids = list(range(40))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    with ProcessPoolExecutor(
        2, mp_context=context, initializer=_hold_at, initargs=(barrier,)
    ) as pool:
        futures = [pool.submit(_race, str(tmp_path), tile_ids, source) for source in ("a", "b")]
        results = dict(zip(("a", "b"), (f.result(timeout=60) for f in futures), strict=True))
    store = RunStore(tmp_path)
    for i, tile_id in enumerate(tile_ids):
        outcomes = (results["a"][i], results["b"][i])
        assert outcomes.count(None) == 1, (tile_id, outcomes)
        winner = "a" if outcomes[0] is None else "b"
        # the claim records the winner, and the winner keeps it
        assert (tmp_path / "_claims" / f"tile_{tile_id:08d}").read_text() == winner
        assert store.claim(tile_id, winner) is None
        assert store.claim(tile_id, "c") == winner


def test_a_claim_is_never_seen_half_written(tmp_path, monkeypatch):
    """A rival claiming between another task's write and its link sees a complete claim."""
    store = RunStore(tmp_path)
    seen = {}
    real_link = os.link

    def link_after_a_rival(source, destination):
        if not seen:
            seen["rival"] = "pending"
            seen["rival"] = store.claim(1, "b.zarr")
            seen["file"] = (tmp_path / "_claims" / "tile_00000001").read_text()
        return real_link(source, destination)

    monkeypatch.setattr(run_store_module.os, "link", link_after_a_rival)
    assert store.claim(1, "a.zarr") == "b.zarr"  # the rival got there first, and is named
    assert seen == {"rival": None, "file": "b.zarr"}
    assert store.claim(1, "b.zarr") is None
    assert not [p for p in (tmp_path / "_claims").iterdir() if p.name.startswith(".")]


# -- settings --------------------------------------------------------------------------------


def test_check_settings(tmp_path):
    store = RunStore(tmp_path / "run")
    settings = {"model": "m1", "bands": ("g", "r"), "aperture": 1.5, "nested": {"k": 1}}
    store.check_settings(settings)  # first call records them
    assert json.loads(store.settings_path.read_text()) == {
        "aperture": 1.5,
        "bands": ["g", "r"],
        "model": "m1",
        "nested": {"k": 1},
    }
    store.check_settings(dict(settings))  # equal settings (tuple == list after JSON) pass
    store.check_settings({**settings, "bands": ["g", "r"]})

    changed = {**settings, "aperture": 2.0, "extra": True, "nested": {"k": 2}}
    del changed["model"]
    with pytest.raises(ValueError) as info:
        store.check_settings(changed)
    message = str(info.value)
    assert "['aperture', 'extra', 'model', 'nested']" in message
    assert "bands" not in message
    assert str(store.root) in message
    # the recorded settings are untouched by the refused call
    assert json.loads(store.settings_path.read_text())["aperture"] == 1.5

    store.check_settings(changed, overwrite=True)
    assert json.loads(store.settings_path.read_text()) == json.loads(json.dumps(changed))
    store.check_settings(changed)
    with pytest.raises(ValueError, match=r"\['aperture'"):
        store.check_settings(settings)


def test_unreadable_settings_are_refused(tmp_path):
    store = RunStore(tmp_path)
    store.settings_path.write_text("{broken")
    with pytest.raises(ValueError, match="unreadable run settings"):
        store.check_settings({"a": 1})
    store.check_settings({"a": 1}, overwrite=True)
    store.check_settings({"a": 1})


# -- failures and consolidated tables --------------------------------------------------------


def test_failures_record_replace_and_clear(tmp_path):
    store = RunStore(tmp_path)
    assert store.failures() == []
    store.clear_failure("nothing")  # clearing an absent record is fine
    first = TileFailure("/t/b.zarr", "corrupt", tile_id=None)
    second = TileFailure("/t/a.zarr", "shape", tile_id=3, kind="error")
    store.record_failure("bbbb", first)
    store.record_failure("aaaa", second)
    assert store.failures() == [second, first]  # in digest order
    replaced = TileFailure("/t/b.zarr", "still corrupt", tile_id=8)
    store.record_failure("bbbb", replaced)
    assert store.failures() == [second, replaced]
    store.clear_failure("aaaa")
    assert store.failures() == [replaced]
    assert not store.failure_path("aaaa").exists()
    store.failure_path("zzzz").write_text("garbage")
    assert store.failures() == [replaced]


def test_write_manifest_table(tmp_path):
    store = RunStore(tmp_path)
    empty = store.write_manifest()
    assert empty.num_rows == 0
    assert pq.read_table(tmp_path / "manifest.parquet").schema.equals(empty.schema)

    kept = make_record(store, 4, "s4", worker="w", device="cuda:0", stage_seconds={"b": 2, "a": 1})
    gone = make_record(store, 1, "s1")
    store.write_marker(kept)
    store.write_marker(gone)
    store.partition_path(1).unlink()
    table = store.write_manifest()
    assert table.schema.names == [
        "tile_id",
        "source",
        "partition",
        "rows",
        "bytes",
        "sha256",
        "seconds",
        "worker",
        "device",
        "stage_seconds",
        "checksum",
    ]
    assert table.schema.field("tile_id").type == pa.int64()
    assert table.schema.field("seconds").type == pa.float64()
    assert table.schema.field("stage_seconds").type == pa.string()
    rows = table.to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert row == {**asdict(kept), "stage_seconds": '{"a": 1, "b": 2}'}
    assert pq.read_table(tmp_path / "manifest.parquet").equals(table)


def test_write_failures_table(tmp_path):
    store = RunStore(tmp_path)
    empty = store.write_failures()
    assert empty.num_rows == 0
    assert empty.schema.names == ["source", "reason", "tile_id", "kind"]
    assert empty.schema.field("tile_id").type == pa.int64()

    store.record_failure("d1", TileFailure("s1", "bad", None))
    store.record_failure("d2", TileFailure("s2", "worse", 7, "error"))
    table = store.write_failures()
    assert table.to_pylist() == [
        {"source": "s1", "reason": "bad", "tile_id": None, "kind": "data"},
        {"source": "s2", "reason": "worse", "tile_id": 7, "kind": "error"},
    ]
    assert pq.read_table(tmp_path / "failures.parquet").equals(table)


def test_partition_is_named_by_the_callers_tile_id_not_the_metadata(tmp_path):
    store = RunStore(tmp_path)
    path, _, _ = store.write_partition(9, make_table(3))  # metadata says tile 3
    assert path == tmp_path / "tiles" / "tile_00000009.parquet"
    bare = pa.table({"flux": pa.array([1.0, 2.0])})  # no metadata at all
    assert store.write_partition(10, bare)[0].name == "tile_00000010.parquet"


# -- a run folder written before issue 15 ----------------------------------------------------

V0_1_RUN = Path(__file__).parents[1] / "fixtures" / "v0_1" / "run"


def test_run_folder_written_by_v0_1_still_opens():
    store = RunStore(V0_1_RUN)
    (record,) = store.markers()
    assert (record.tile_id, record.rows) == (0, 2)
    assert record.partition == "tiles/tile_00000000.parquet"
    assert store.read_marker(0) == record
    assert store.partition_path(0) == V0_1_RUN / record.partition
    assert store.is_done(record)
    store.verify_partition(record)  # size and SHA-256 of the partition match the marker
    assert store.done_sources() == {record.source: record}
    assert store.partitions() == [V0_1_RUN / "tiles" / "tile_00000000.parquet"]
    assert pq.read_table(store.partition_path(0)).num_rows == record.rows
    manifest = pq.read_table(store.layout.manifest).to_pylist()
    assert [(row["tile_id"], row["sha256"]) for row in manifest] == [(0, record.sha256)]
    assert pq.read_table(store.layout.failures_table).num_rows == 0 and store.failures() == []
    # the run's own settings pass the rerun check (and nothing is rewritten)
    before = store.settings_path.read_bytes()
    store.check_settings(json.loads(before))
    assert store.settings_path.read_bytes() == before
    # its claim names the source that holds the tile id
    assert store.layout.claim(0).read_text() == record.source


# -- issue 19: overwrite, leftovers, lock, audit ---------------------------------------------


def _finished_run(root: Path, tile_ids=(1, 2, 3)) -> RunStore:
    store = RunStore(root)
    store.check_settings({"threshold": 1.5})
    for tile_id in tile_ids:
        store.claim(tile_id, f"/tiles/{tile_id}.zarr")
        store.write_marker(make_record(store, tile_id, f"/tiles/{tile_id}.zarr"))
    store.record_failure("abc", TileFailure("/tiles/9.zarr", "corrupt", 9))
    store.write_manifest()
    store.write_failures()
    return store


def test_overwrite_discards_every_file_of_the_earlier_run(tmp_path):
    store = _finished_run(tmp_path / "run")
    (store.root / "notes.txt").write_text("mine")  # not the run's: kept
    store.check_settings({"threshold": 2.0}, overwrite=True)
    assert json.loads(store.settings_path.read_text()) == {"threshold": 2.0}
    assert sorted(p.name for p in store.root.iterdir()) == ["notes.txt", "run.json"]
    assert list(store.markers()) == [] and store.failures() == []


def test_discard_removes_markers_first_and_settings_last(tmp_path):
    layout = RunStore(tmp_path).layout
    entries = layout.run_entries
    assert entries[0] == layout.markers_dir and entries[-1] == layout.settings
    assert {layout.tiles_dir, layout.claims_dir, layout.failures_dir} <= set(entries)


def test_an_interrupted_discard_never_leaves_stale_tiles_marked_done(tmp_path, monkeypatch):
    store = _finished_run(tmp_path / "run")
    renames = []
    real_rename = os.rename

    def rename_then_die(source, destination):
        if renames:  # the kill comes after the first entry (the markers) is moved
            raise KeyboardInterrupt
        renames.append(source)
        real_rename(source, destination)

    monkeypatch.setattr(run_store_module.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.check_settings({"threshold": 2.0}, overwrite=True)
    monkeypatch.undo()
    assert list(store.markers()) == [] and store.done_sources() == {}
    with pytest.raises(ValueError, match="other settings"):  # the old run.json still refuses
        store.check_settings({"threshold": 2.0})
    store.remove_leftovers()  # the hidden folder of the half-done discard goes
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_remove_leftovers_deletes_temporaries_and_keeps_other_files(tmp_path):
    store = _finished_run(tmp_path / "run")
    leftovers = [
        store.tiles_dir / ".tile_00000004.parquet.k2j3.tmp",
        store.layout.markers_dir / ".tile_00000004.json.x9.tmp",
        store.layout.claims_dir / ".tile_00000004.ab12",
        store.root / ".run.json.q1.tmp",
        store.root / ".manifest.parquet.z8.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    (store.root / ".discarded-abc" / "tiles").mkdir(parents=True)
    (store.root / ".user-settings").write_text("keep")
    removed = store.remove_leftovers()
    assert set(removed) == {*leftovers, store.root / ".discarded-abc"}
    assert (store.root / ".user-settings").exists()
    assert len(store.done_sources()) == 3


def test_a_second_lock_on_a_folder_is_refused(tmp_path):
    store = RunStore(tmp_path / "run")
    with store.lock():
        holder = json.loads(store.layout.lock.read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(run_store_module.RunLockedError, match=rf"process {os.getpid()}"):
            with RunStore(tmp_path / "run").lock():
                pass
    assert not store.layout.lock.exists()
    with store.lock():  # free again
        pass


def _dead_pid() -> int:
    process = multiprocessing.get_context("spawn").Process(target=int)
    process.start()
    process.join()
    return process.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    store = RunStore(tmp_path / "run")
    store.root.mkdir()
    host = run_store_module.socket.gethostname()
    store.layout.lock.write_text(json.dumps({"host": host, "pid": _dead_pid(), "started": 0}))
    with store.lock():
        assert json.loads(store.layout.lock.read_text())["pid"] == os.getpid()


def test_a_lock_held_on_another_host_is_refused(tmp_path):
    store = RunStore(tmp_path / "run")
    store.root.mkdir()
    store.layout.lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))
    with pytest.raises(run_store_module.RunLockedError, match="on elsewhere"):
        with store.lock():
            pass


def test_audit_of_a_consistent_run(tmp_path):
    store = _finished_run(tmp_path / "run")
    audit = store.audit()
    assert [r.tile_id for r in audit.records] == [1, 2, 3] and audit.problems() == []
    assert [f.tile_id for f in audit.failures] == [9]


def test_audit_names_lost_markers_orphans_and_broken_partitions(tmp_path):
    store = _finished_run(tmp_path / "run", tile_ids=(1, 2, 3, 4))
    store.marker_path(1).unlink()  # a lost marker: its partition is an orphan, manifest lists it
    store.marker_path(2).write_text("{trunc")  # unreadable marker
    store.partition_path(3).unlink()  # a marker without its partition
    problems = store.audit().problems()
    # 2 has an unreadable marker and so an orphan partition; the manifest lists 1, 2 and 3
    assert len(problems) == 7, problems
    text = "\n".join(problems)
    assert f"{store.marker_path(2)}: unreadable done-marker" in text
    assert f"{store.partition_path(3)}: partition of tile 3 is missing" in text
    assert f"{store.partition_path(1)}: partition without a done-marker" in text
    assert "tile 1: in manifest.parquet but without a valid done-marker" in text
    assert [r.tile_id for r in store.audit().records] == [4]


def test_a_claim_with_a_checksum_follows_the_tile_not_its_path(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.claim(5, "/old/tile_5.zarr", checksum="abc") is None
    assert store.claim(5, "/new/tile_5.zarr", checksum="abc") is None  # moved: the same tile
    assert store.claim(5, "/new/other.zarr", checksum="def") == "/old/tile_5.zarr"
    assert store.claim(6, "/old/tile_6.zarr") is None  # a claim of an older run (a path)
    assert store.claim(6, "/old/tile_6.zarr", checksum="abc") is None
    assert store.claim(6, "/new/tile_6.zarr", checksum="abc") == "/old/tile_6.zarr"


def test_clear_failures_of_a_tile_forgets_every_source_of_it(tmp_path):
    store = RunStore(tmp_path / "run")
    store.record_failure("a", TileFailure("/old/tile_3.zarr", "corrupt", 3))
    store.record_failure("b", TileFailure("/other/tile_4.zarr", "corrupt", 4))
    store.record_failure("c", TileFailure("/missing.zarr", "not found", None, "input"))
    store.clear_failures_of_tile(3)
    assert sorted(f.source for f in store.failures()) == ["/missing.zarr", "/other/tile_4.zarr"]
