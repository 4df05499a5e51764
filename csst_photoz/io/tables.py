"""Read named columns of a user's table: Parquet (pyarrow), FITS or CSV (astropy).

`read_columns` is the one reader of catalogues that the project did not write (a spec-z
training file, a table to predict). The format follows the file name: ``.parquet`` / ``.pq``
through pyarrow, ``.fits`` / ``.fit`` / ``.fits.gz`` and ``.csv`` / ``.ecsv`` through
:meth:`astropy.table.Table.read`. Every error names the file; a missing column also lists the
columns the file has. Masked (null) entries of numeric columns become NaN. The columns' units
come with them: a Parquet field's ``unit`` metadata, or the astropy column's unit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["TABLE_SUFFIXES", "TableColumns", "TableReadError", "read_columns", "table_format"]

#: File-name endings read, by format.
TABLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq"),
    "fits": (".fits", ".fit", ".fits.gz", ".fit.gz"),
    "csv": (".csv", ".ecsv"),
}


class TableReadError(ValueError):
    """A table that cannot be read as asked (the message names the file and the column)."""


@dataclass(frozen=True, eq=False)
class TableColumns:
    """Columns read from a table.

    Attributes
    ----------
    path
        The file.
    values
        Column name -> (n,) NumPy array (numeric columns with nulls as NaN).
    units
        Column name -> unit string, or None where the file gives none.
    n_rows
        Rows of the table.
    """

    path: Path
    values: dict[str, np.ndarray]
    units: dict[str, str | None]
    n_rows: int

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of column ``name``."""
        return self.values[name]


def table_format(path: str | os.PathLike[str]) -> str:
    """``"parquet"``, ``"fits"`` or ``"csv"`` from the file name.

    Raises
    ------
    TableReadError
        For another ending.
    """
    name = Path(path).name.lower()
    for kind, suffixes in TABLE_SUFFIXES.items():
        if name.endswith(suffixes):
            return kind
    known = ", ".join(s for suffixes in TABLE_SUFFIXES.values() for s in suffixes)
    raise TableReadError(f"{path}: unknown table format (file names ending {known} are read)")


def _missing(path: Path, wanted: Sequence[str], present: Sequence[str]) -> None:
    absent = [name for name in wanted if name not in present]
    if absent:
        raise TableReadError(
            f"{path}: no column {absent[0]!r}"
            + (f" (nor {absent[1:]})" if len(absent) > 1 else "")
            + f"; the table has {list(present)}"
        )


def _numpy(values: np.ndarray) -> np.ndarray:
    """A plain array in native byte order (FITS is big-endian); masked numbers as NaN."""
    if isinstance(values, np.ma.MaskedArray):
        if values.dtype.kind in "fiu":
            return np.ma.filled(values.astype(np.float64), np.nan)
        values = np.ma.filled(values)
    values = np.asarray(values)
    if values.dtype.byteorder not in "=|":
        values = values.astype(values.dtype.newbyteorder("="))
    return values


def _read_parquet(path: Path, names: Sequence[str], optional: Sequence[str]) -> TableColumns:
    schema = pq.read_schema(path)
    _missing(path, names, schema.names)
    names = [*names, *(name for name in optional if name in schema.names)]
    table = pq.read_table(path, columns=list(dict.fromkeys(names)))
    values, units = {}, {}
    for name in names:
        column = table[name]
        if pa.types.is_integer(column.type) and column.null_count:
            column = column.cast(pa.float64())
        values[name] = np.asarray(column.to_numpy(zero_copy_only=False))
        metadata = schema.field(name).metadata or {}
        unit = metadata.get(b"unit", b"").decode()
        units[name] = unit or None
    return TableColumns(path, values, units, table.num_rows)


def _read_astropy(
    path: Path, names: Sequence[str], optional: Sequence[str], kind: str
) -> TableColumns:
    from astropy.table import Table

    if kind == "fits":
        reader = "fits"
    else:
        reader = "ascii.ecsv" if path.name.lower().endswith(".ecsv") else "ascii.csv"
    try:
        table = Table.read(path, format=reader)
    except Exception as error:  # astropy raises many types for unreadable files
        raise TableReadError(f"{path}: cannot read it as {reader} ({error})") from None
    _missing(path, names, table.colnames)
    names = [*names, *(name for name in optional if name in table.colnames)]
    values = {name: _numpy(table[name].data) for name in names}
    units = {name: None if table[name].unit is None else str(table[name].unit) for name in names}
    return TableColumns(path, values, units, len(table))


def read_columns(
    path: str | os.PathLike[str], names: Sequence[str], *, optional: Sequence[str] = ()
) -> TableColumns:
    """Read columns ``names`` of a Parquet, FITS or CSV table.

    Parameters
    ----------
    path
        The table (format from its name, `table_format`).
    names
        Columns to read.
    optional
        Columns read when the table has them.

    Returns
    -------
    TableColumns

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TableReadError
        On an unknown format, an unreadable file or a missing column (naming the file and
        the column, and listing the table's columns).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    kind = table_format(path)
    if kind == "parquet":
        return _read_parquet(path, names, optional)
    return _read_astropy(path, names, optional, kind)
