"""Training sets: a Parquet table of fluxes and true redshifts, optionally with aligned stamps.

A training-set folder (written by ``csst-photoz simulate stamps``) holds

* ``stamps.parquet``: one row per galaxy, with the true redshift and the measured photometry
  (by default ``kron_flux_<b>``, ``kron_flux_err_<b>`` in electrons and ``detected``);
* ``stamps.zarr``: array ``stamps``, float32 (n, bands, S, S) electrons, row i = table row i.

Any other Parquet file works for the MLP alone: pass the file instead of a folder, with its
column names in a `~csst_photoz.training.config.DataColumns`.

Loading validates what it reads and names the file in every error (missing columns, a stamp
array whose length or band count differs from the table, NaN or infinite redshifts). Rows are
then *selected*: detected (when the table has the ``detected`` column), with finite fluxes and
finite, positive errors in every band. The paper's SNR > 10 in g or i cut is not repeated here:
the simulator applies it by default (``selected`` column). Stamps of the selected rows are read
chunk by chunk and centre-cropped to the network's input size on the way (the CNN would crop
them anyway), so 40,000 stamps of 64 x 64 take 1.1 GB in memory at 32 x 32.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from .config import DataColumns

__all__ = [
    "STAMPS_ARRAY",
    "STAMPS_STORE",
    "TABLE_FILE",
    "TrainingDataError",
    "TrainingSet",
    "centre_crop",
    "data_hash",
    "estimate_background_rms",
    "load_training_set",
    "select_rows",
]

#: File names inside a training-set folder.
TABLE_FILE = "stamps.parquet"
STAMPS_STORE = "stamps.zarr"
STAMPS_ARRAY = "stamps"
# rows read from zarr at a time (a multiple of the simulator's 32-object chunks)
_READ_BLOCK = 1024
# stamps used to estimate the background noise, and to checksum the stamp array
_RMS_SAMPLE = 256
_HASH_SAMPLE = 8
_MAD_TO_SIGMA = 1.4826


class TrainingDataError(ValueError):
    """A training set that cannot be used as it is (the message names the file)."""


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """The selected rows of a training set, in memory.

    Attributes
    ----------
    source
        The folder or Parquet file read.
    bands
        Band names, in the order of the flux columns and stamp planes.
    rows
        (n,) int64 rows of the table (and stamp array) kept by the selection, ascending.
    n_table_rows
        Rows of the table before selection (splits are drawn over these).
    redshift
        (n,) float32 true redshifts.
    fluxes, flux_errors
        (n, bands) float32, in the table's unit.
    stamps
        (n, bands, S, S) float32 electrons, centre-cropped; None if not loaded.
    background_rms
        (bands,) background noise per pixel estimated from the stamps; None without stamps.
    data_hash
        SHA-256 identifying the data (`data_hash`).
    columns
        The column names used.
    """

    source: Path
    bands: tuple[str, ...]
    rows: npt.NDArray[np.int64]
    n_table_rows: int
    redshift: npt.NDArray[np.float32]
    fluxes: npt.NDArray[np.float32]
    flux_errors: npt.NDArray[np.float32]
    stamps: npt.NDArray[np.float32] | None
    background_rms: npt.NDArray[np.float64] | None
    data_hash: str
    columns: DataColumns = field(default_factory=DataColumns)

    def __len__(self) -> int:
        """Number of selected rows."""
        return int(self.rows.size)

    def positions(self, table_rows: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Positions in this set of those ``table_rows`` that survived the selection."""
        wanted = np.asarray(table_rows, dtype=np.int64)
        return np.flatnonzero(np.isin(self.rows, wanted)).astype(np.int64)


def _fail(path: Path, message: str) -> TrainingDataError:
    return TrainingDataError(f"{path}: {message}")


def _table_path(source: Path) -> Path:
    return source / TABLE_FILE if source.is_dir() else source


def _resolve_bands(
    columns: DataColumns, schema: pa.Schema, stamps_attrs: dict[str, Any], path: Path
) -> tuple[str, ...]:
    if columns.bands is not None:
        return tuple(columns.bands)
    metadata = schema.metadata or {}
    if b"csst_photoz.bands" in metadata:
        return tuple(metadata[b"csst_photoz.bands"].decode().split(","))
    if "bands" in stamps_attrs:
        return tuple(str(b) for b in stamps_attrs["bands"])
    raise _fail(path, "names no bands (no csst_photoz.bands metadata): set columns.bands")


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise _fail(path, f"not a readable Parquet file: {error}") from None


def _read_columns(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    schema = _read_schema(path)
    missing = [name for name in names if name not in schema.names]
    if missing:
        raise _fail(path, f"lacks column(s) {', '.join(missing)}")
    table = pq.read_table(path, columns=names)
    return {name: table[name].to_numpy(zero_copy_only=False) for name in names}


def select_rows(
    fluxes: npt.ArrayLike,
    flux_errors: npt.ArrayLike,
    detected: npt.ArrayLike | None = None,
) -> npt.NDArray[np.bool_]:
    """Rows usable for training: detected, finite fluxes, finite positive errors in every band.

    Parameters
    ----------
    fluxes, flux_errors
        (n, bands) measured fluxes and errors.
    detected
        (n,) booleans, or None to skip that test.

    Returns
    -------
    numpy.ndarray
        (n,) boolean mask.
    """
    values = np.asarray(fluxes, dtype=np.float64)
    errors = np.asarray(flux_errors, dtype=np.float64)
    keep = np.all(np.isfinite(values), axis=1)
    keep &= np.all(np.isfinite(errors) & (errors > 0), axis=1)
    if detected is not None:
        keep &= np.asarray(detected, dtype=bool)
    return keep


def centre_crop(stamps: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (n, bands, H, W) stamps as the CNN's stamp transform does, symmetrically.

    An axis longer than ``size`` keeps ``size`` pixels starting at ``(L - size) // 2``, or
    ``size + 1`` when ``L - size`` is odd, so that the crop is symmetric and commutes with the
    eight dihedral transforms (the model then crops the last pixel). Shorter axes are kept.
    """
    height, width = stamps.shape[-2:]
    if height != width:
        raise ValueError(f"stamps must be square, got {height} x {width}")
    if height <= size:
        return stamps
    keep = size + (height - size) % 2
    start = (height - keep) // 2
    return stamps[..., start : start + keep, start : start + keep]


def estimate_background_rms(stamps: np.ndarray) -> npt.NDArray[np.float64]:
    """Per-band background noise per pixel from the stamps' borders (robust: 1.4826 x MAD).

    Parameters
    ----------
    stamps
        (n, bands, S, S) background-subtracted stamps; a frame of ``max(2, S // 8)`` pixels
        along the edges is used.

    Returns
    -------
    numpy.ndarray
        (bands,) positive noise levels.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    width = max(2, stamps.shape[-1] // 8)
    frame = np.ones(stamps.shape[-2:], dtype=bool)
    frame[width:-width, width:-width] = False
    pixels = stamps[..., frame].transpose(1, 0, 2).reshape(stamps.shape[1], -1)
    median = np.median(pixels, axis=1, keepdims=True)
    rms = _MAD_TO_SIGMA * np.median(np.abs(pixels - median), axis=1)
    if not np.all(np.isfinite(rms) & (rms > 0)):
        raise ValueError(f"cannot estimate a positive background noise from the stamps: {rms}")
    return rms


def data_hash(table_path: Path, stamps: Any | None = None) -> str:
    """SHA-256 of the table file's bytes and of the stamp array's shape, dtype and a sample.

    The sample is up to eight evenly spaced stamps: a cheap guard against pairing a table with
    the wrong stamps, not a full checksum of the array.
    """
    digest = hashlib.sha256()
    with open(table_path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    if stamps is not None:
        n = int(stamps.shape[0])
        digest.update(f"stamps|{tuple(stamps.shape)}|{np.dtype(stamps.dtype).str}".encode())
        for row in np.unique(np.linspace(0, n - 1, min(n, _HASH_SAMPLE)).astype(np.int64)):
            digest.update(np.ascontiguousarray(stamps[int(row)], dtype=np.float32).tobytes())
    return digest.hexdigest()


def _open_stamps(folder: Path) -> tuple[Any, dict[str, Any]]:
    import zarr

    store = folder / STAMPS_STORE
    try:
        group = zarr.open_group(store, mode="r")
        return group[STAMPS_ARRAY], dict(group.attrs)
    except (KeyError, ValueError, OSError) as error:
        raise _fail(store, f"no readable '{STAMPS_ARRAY}' array: {error}") from None


def _read_stamps(array: Any, rows: np.ndarray, size: int | None) -> np.ndarray:
    """The stamps of ``rows`` (ascending), read block by block and cropped."""
    first = centre_crop(np.asarray(array[0:1], dtype=np.float32), size) if size else None
    side = array.shape[-1] if first is None else first.shape[-1]
    out = np.empty((rows.size, array.shape[1], side, side), dtype=np.float32)
    done = 0
    for start in range(0, int(array.shape[0]), _READ_BLOCK):
        stop = min(start + _READ_BLOCK, int(array.shape[0]))
        wanted = rows[(rows >= start) & (rows < stop)]
        if wanted.size == 0:
            continue
        block = np.asarray(array[start:stop], dtype=np.float32)[wanted - start]
        out[done : done + wanted.size] = centre_crop(block, size) if size else block
        done += wanted.size
    return out


def load_training_set(
    source: str | Path,
    *,
    columns: DataColumns | None = None,
    stamps: bool | None = None,
    stamp_size: int | None = 32,
) -> TrainingSet:
    """Read, validate and select a training set.

    Parameters
    ----------
    source
        A training-set folder (``stamps.parquet`` + ``stamps.zarr``) or a Parquet file.
    columns
        Column names (default: the simulator's).
    stamps
        Load the stamps: True requires them, False skips them, None loads them if present.
        A stamp store that exists is checked against the table and hashed in every case.
    stamp_size
        Centre-crop stamps to this side (`centre_crop`); None keeps them whole.

    Returns
    -------
    TrainingSet

    Raises
    ------
    FileNotFoundError
        If the table (or, with ``stamps=True``, the stamp store) is missing.
    TrainingDataError
        On missing columns, NaN or infinite redshifts, a stamp array that does not match the
        table, or no usable row.
    """
    columns = columns if columns is not None else DataColumns()
    source = Path(source)
    table_path = _table_path(source)
    if not table_path.is_file():
        raise FileNotFoundError(f"training table not found: {table_path}")
    has_store = source.is_dir() and (source / STAMPS_STORE).exists()
    if stamps and not source.is_dir():
        raise TrainingDataError(f"{source}: stamps need a training-set folder, not a file")
    if stamps and not has_store:
        raise FileNotFoundError(
            f"no stamp store {source / STAMPS_STORE} (the stamp networks need it)"
        )
    # an existing store is always opened: it is checked against the table and enters the hash
    array, attrs = _open_stamps(source) if has_store else (None, {})
    load_stamps = bool(stamps) or (stamps is None and has_store)

    schema = _read_schema(table_path)
    bands = _resolve_bands(columns, schema, attrs, table_path)
    flux_names, error_names = columns.flux_columns(bands), columns.error_columns(bands)
    names = [columns.redshift, *flux_names, *error_names]
    with_detected = columns.detected in schema.names
    values = _read_columns(table_path, names + ([columns.detected] if with_detected else []))
    n_rows = len(values[columns.redshift])

    redshift = np.asarray(values[columns.redshift], dtype=np.float64)
    bad = ~np.isfinite(redshift)
    if bad.any():
        shown = np.flatnonzero(bad)[:5].tolist()
        raise _fail(
            table_path,
            f"{int(bad.sum())} row(s) have a NaN or infinite {columns.redshift!r} "
            f"(rows {shown}...); drop them or fix the table",
        )
    fluxes = np.column_stack([np.asarray(values[c], dtype=np.float64) for c in flux_names])
    errors = np.column_stack([np.asarray(values[c], dtype=np.float64) for c in error_names])
    detected = values[columns.detected] if with_detected else None
    keep = select_rows(fluxes, errors, detected)
    rows = np.flatnonzero(keep).astype(np.int64)
    if rows.size == 0:
        raise _fail(table_path, "no row is detected with finite fluxes and errors in every band")

    stamp_data = background = None
    if array is not None:
        store = source / STAMPS_STORE
        if len(array.shape) != 4 or array.shape[0] != n_rows or array.shape[1] != len(bands):
            raise _fail(
                store,
                f"stamp array has shape {tuple(array.shape)}, but {TABLE_FILE} has {n_rows} "
                f"rows and {len(bands)} bands: expected ({n_rows}, {len(bands)}, S, S)",
            )
        if "bands" in attrs and tuple(attrs["bands"]) != bands:
            raise _fail(store, f"stamp bands {attrs['bands']} differ from the table's {bands}")
        if load_stamps:
            background = estimate_background_rms(_read_stamps(array, rows[:_RMS_SAMPLE], None))
            stamp_data = _read_stamps(array, rows, stamp_size)

    return TrainingSet(
        source=source,
        bands=bands,
        rows=rows,
        n_table_rows=n_rows,
        redshift=redshift[rows].astype(np.float32),
        fluxes=fluxes[rows].astype(np.float32),
        flux_errors=errors[rows].astype(np.float32),
        stamps=stamp_data,
        background_rms=background,
        data_hash=data_hash(table_path, array),
        columns=columns,
    )
