import os
import stat

import pyarrow as pa
import pytest

from csst_photoz.io import read_parquet_table, write_parquet_atomic


def _table() -> pa.Table:
    schema = pa.schema([pa.field("a", pa.int64())]).with_metadata({"k": "v"})
    return pa.table({"a": [1, 2, 3]}, schema=schema)


def test_round_trip_keeps_rows_and_metadata(tmp_path):
    path = write_parquet_atomic(_table(), tmp_path / "sub" / "t.parquet")
    table = read_parquet_table(path, required_columns=["a"])
    assert table["a"].to_pylist() == [1, 2, 3]
    assert table.schema.metadata[b"k"] == b"v"


def test_no_temporary_file_is_left_behind(tmp_path):
    write_parquet_atomic(_table(), tmp_path / "t.parquet")
    assert os.listdir(tmp_path) == ["t.parquet"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(_table(), tmp_path / "t.parquet")
    assert os.listdir(tmp_path) == []


def test_truncated_file_is_named_in_the_error(tmp_path):
    path = write_parquet_atomic(_table(), tmp_path / "t.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"t\.parquet is not a readable Parquet file"):
        read_parquet_table(path)


def test_missing_file_and_missing_columns_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.parquet"):
        read_parquet_table(tmp_path / "nothere.parquet")
    path = write_parquet_atomic(_table(), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"lacks required column.*redshift"):
        read_parquet_table(path, required_columns=["a", "redshift"])


def test_written_files_are_readable_by_others_under_the_umask(tmp_path):
    path = write_parquet_atomic(pa.table({"a": [1]}), tmp_path / "t.parquet")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    mask = os.umask(0o022)
    os.umask(mask)
    assert mode == 0o666 & ~mask
