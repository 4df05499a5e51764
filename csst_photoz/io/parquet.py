"""Parquet files written atomically and read with validation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_destination

__all__ = ["read_parquet_table", "write_parquet_atomic"]


def write_parquet_atomic(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` via a temporary file in the same folder and a rename.

    A reader never sees a half-written file: either the old file (or none) or the new one.

    Parameters
    ----------
    table
        The table; its schema metadata is kept.
    path
        Destination; parent folders are created.

    Returns
    -------
    pathlib.Path
        The destination path.

    """
    path = Path(path)
    with atomic_destination(path) as temporary:
        pq.write_table(table, temporary)
    return path


def read_parquet_table(path: str | Path, *, required_columns: Iterable[str] = ()) -> pa.Table:
    """Read a Parquet file, naming the file in every error.

    Parameters
    ----------
    path
        The file.
    required_columns
        Columns that must be present.

    Returns
    -------
    pyarrow.Table

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [name for name in required_columns if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks required column(s): {', '.join(missing)}")
    return table
