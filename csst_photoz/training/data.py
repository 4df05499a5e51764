"""Training sets: a Parquet table of fluxes and true redshifts, optionally with aligned stamps.

A training-set folder (written by ``csst-photoz simulate stamps``) holds

* ``stamps.parquet``: one row per galaxy, with the true redshift and the measured photometry
  (by default ``kron_flux_<b>``, ``kron_flux_err_<b>`` in electrons and ``detected``);
* ``stamps.zarr``: array ``stamps``, float32 (n, bands, S, S) electrons, row i = table row i.

The folder's format (file names, writing, reading and `data_hash`) belongs to
:mod:`csst_photoz.io.training_set`; this module selects rows for training and holds them in
memory (`TrainingSet`).

Any other table works for the MLP alone: pass a Parquet, FITS or CSV file instead of a folder
(read by :func:`csst_photoz.io.tables.read_columns`), with its bands and column names in a
`~csst_photoz.training.config.DataColumns` (``csst-photoz train mlp --table FILE --bands ...``).
Its flux columns may hold electrons, nJy (or another flux density) or AB magnitudes
(``DataColumns.unit``, else the flux column's own unit, else electrons): fluxes are converted
to the working unit of :mod:`csst_photoz.units` (electrons stay electrons, everything else
becomes nJy); magnitude sentinels (99, -99, NaN) become NaN fluxes, so those rows fail the
selection below. The unit the columns had is what the checkpoint declares
(`TrainingSet.input_declaration`), and prediction converts other tables to it.

Loading validates what it reads and names the file in every error (missing columns, a stamp
array whose length or band count differs from the table, NaN or infinite redshifts). Rows are
then *selected*: detected (when the table has the ``detected`` column), with at least one
measured band (finite flux, finite positive error); the other bands of a row are missing
(`select_rows`). The paper's SNR > 10 in g or i cut is not repeated here:
the simulator applies it by default (``selected`` column). Stamps of the selected rows are read
chunk by chunk and centre-cropped to the network's input size on the way (the CNN would crop
them anyway), so 40,000 stamps of 64 x 64 take 1.1 GB in memory at 32 x 32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ..io.checkpoint_metadata import SIMULATOR_APERTURE, FluxInput, InputDeclaration
from ..io.paths import training_stamps_path, training_table_path
from ..io.tables import TableReadError, read_columns, table_format
from ..io.training_set import (
    BANDS_METADATA_KEY,
    TrainingDataError,
    data_hash,
    open_stamps,
    read_table_columns,
    read_table_schema,
)
from ..units import ELECTRON, UnitError, convert_fluxes, normalise_unit, working_unit
from .config import DataColumns

__all__ = [
    "TrainingDataError",
    "TrainingSet",
    "centre_crop",
    "data_hash",
    "estimate_background_rms",
    "load_training_set",
    "resolve_flux_unit",
    "select_rows",
]

#: Flux definition recorded for table columns that are not the simulator's ``kron_flux_<b>``.
UNSPECIFIED_APERTURE = "unspecified"
_SIMULATOR_COLUMNS = DataColumns()
# stamps used to estimate the background noise
_RMS_SAMPLE = 256
_MAD_TO_SIGMA = 1.4826


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
        (n, bands) float32, in the working unit of ``flux_unit``
        (:func:`csst_photoz.units.working_unit`: electrons, else nJy).
    stamps
        (n, bands, S, S) float32 electrons, centre-cropped; None if not loaded.
    background_rms
        (bands,) background noise per pixel estimated from the stamps; None without stamps.
    data_hash
        SHA-256 identifying the data (`data_hash`).
    columns
        The column names used.
    flux_unit
        The unit of the flux columns as read (``"electron"``, ``"nJy"``, ``"ABmag"``, ...).
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
    flux_unit: str = ELECTRON

    def __len__(self) -> int:
        """Number of selected rows."""
        return int(self.rows.size)

    def positions(self, table_rows: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Positions in this set of those ``table_rows`` that survived the selection."""
        wanted = np.asarray(table_rows, dtype=np.int64)
        return np.flatnonzero(np.isin(self.rows, wanted)).astype(np.int64)

    def input_declaration(self, model: Any) -> InputDeclaration:
        """What ``model``, trained on this set, reads: its flux columns with their unit.

        The flux columns and unit are those of this set (`flux_unit`); the flux definition is
        the simulator's 1 x Kron aperture for its ``kron_flux_<b>`` columns, else
        `UNSPECIFIED_APERTURE`. Stamps (stamp networks) are declared at the model's size.
        """
        from ..models.checkpoint import default_inputs

        declared = default_inputs(model)
        if not declared.fluxes:
            return declared
        simulator = (self.columns.flux, self.columns.flux_err) == (
            _SIMULATOR_COLUMNS.flux,
            _SIMULATOR_COLUMNS.flux_err,
        )
        aperture = SIMULATOR_APERTURE if simulator else UNSPECIFIED_APERTURE
        fluxes = tuple(
            FluxInput(band=band, flux=flux, flux_err=error, unit=self.flux_unit, aperture=aperture)
            for band, flux, error in zip(
                self.bands,
                self.columns.flux_columns(self.bands),
                self.columns.error_columns(self.bands),
                strict=True,
            )
        )
        return declared.model_copy(update={"fluxes": fluxes})


def _fail(path: Path, message: str) -> TrainingDataError:
    return TrainingDataError(f"{path}: {message}")


def _table_path(source: Path) -> Path:
    return training_table_path(source) if source.is_dir() else source


def resolve_flux_unit(
    declared: str | None,
    units: dict[str, str | None],
    flux_columns: list[str],
    path: Path,
    *,
    default: str = ELECTRON,
) -> str:
    """The flux columns' unit: ``declared``, else the columns' own (one for all), else ``default``.

    Raises
    ------
    TrainingDataError
        On an unknown unit or flux columns of different units, naming the column.
    """
    try:
        if declared is not None:
            return normalise_unit(declared, flux_columns[0])
        found = {name: units.get(name) for name in flux_columns if units.get(name)}
        if not found:
            return default
        normalised = {name: normalise_unit(unit, name) for name, unit in found.items()}
    except UnitError as error:
        raise _fail(path, str(error)) from None
    if len(set(normalised.values())) > 1 or len(found) != len(flux_columns):
        raise _fail(
            path,
            f"flux columns of different units {found}: convert them or declare one unit "
            "(columns.unit, --flux-unit)",
        )
    return next(iter(normalised.values()))


def _resolve_bands(
    columns: DataColumns, schema: pa.Schema, stamps_attrs: dict[str, Any], path: Path
) -> tuple[str, ...]:
    if columns.bands is not None:
        return tuple(columns.bands)
    metadata = schema.metadata or {}
    if BANDS_METADATA_KEY in metadata:
        return tuple(metadata[BANDS_METADATA_KEY].decode().split(","))
    if "bands" in stamps_attrs:
        return tuple(str(b) for b in stamps_attrs["bands"])
    raise _fail(path, "names no bands (no csst_photoz.bands metadata): set columns.bands (--bands)")


def select_rows(
    fluxes: npt.ArrayLike,
    flux_errors: npt.ArrayLike,
    detected: npt.ArrayLike | None = None,
) -> npt.NDArray[np.bool_]:
    """Rows usable for training: detected, with at least one band measured.

    A band is measured when its flux is finite and its error finite and positive; the others
    are missing (:func:`csst_photoz.models.features.missing_bands`, the package's one
    convention), and the networks' ``"indicator"`` feature layout, which every new network uses,
    takes rows with missing bands as they come at prediction time. A row with no measured band
    carries no photometry and is left out.

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
    measured = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    keep = np.any(measured, axis=1)
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
    has_store = source.is_dir() and training_stamps_path(source).exists()
    if stamps and not source.is_dir():
        raise TrainingDataError(f"{source}: stamps need a training-set folder, not a file")
    if stamps and not has_store:
        raise FileNotFoundError(
            f"no stamp store {training_stamps_path(source)} (the stamp networks need it)"
        )
    # an existing store is always opened: it is checked against the table and enters the hash
    store = open_stamps(source) if has_store else None
    load_stamps = bool(stamps) or (stamps is None and has_store)

    flux_names, error_names, values, units, bands = _read_table(
        table_path, columns, store.attrs if store else {}, folder=source.is_dir()
    )
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
    flux_unit = resolve_flux_unit(columns.unit, units, flux_names, table_path)
    try:
        fluxes, errors = convert_fluxes(
            _stack(values, flux_names, table_path), _stack(values, error_names, table_path),
            flux_unit, working_unit(flux_unit), bands=bands, column=flux_names[0],
        )  # fmt: skip
    except UnitError as error:
        raise _fail(table_path, str(error)) from None
    detected = values.get(columns.detected)
    keep = select_rows(fluxes, errors, detected)
    rows = np.flatnonzero(keep).astype(np.int64)
    if rows.size == 0:
        raise _fail(table_path, "no row is detected with a finite flux and error in any band")

    stamp_data = background = None
    if store is not None:
        store.check(n_rows, bands)
        if load_stamps:
            background = estimate_background_rms(store.read(rows[:_RMS_SAMPLE]))
            crop = partial(centre_crop, size=stamp_size) if stamp_size else None
            stamp_data = store.read(rows, transform=crop)

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
        data_hash=data_hash(table_path, store.array if store else None),
        columns=columns,
        flux_unit=flux_unit,
    )


def _stack(values: dict[str, Any], names: list[str], path: Path) -> np.ndarray:
    """(n, len(names)) float64 columns; a non-numeric column is an error naming it."""
    stacked = []
    for name in names:
        try:
            stacked.append(np.asarray(values[name], dtype=np.float64))
        except (TypeError, ValueError):
            raise _fail(path, f"column {name!r} is not numeric") from None
    return np.column_stack(stacked)


def _read_table(
    path: Path, columns: DataColumns, stamps_attrs: dict[str, Any], *, folder: bool
) -> tuple[list[str], list[str], dict[str, Any], dict[str, str | None], tuple[str, ...]]:
    """Flux and error names, the values and units read, and the bands of a training table."""
    try:
        is_parquet = folder or table_format(path) == "parquet"
    except TableReadError as error:
        raise TrainingDataError(str(error)) from None
    schema = read_table_schema(path) if is_parquet else None
    if schema is None and columns.bands is None:
        raise _fail(path, "names no bands: set columns.bands (--bands)")
    bands = _resolve_bands(columns, schema, stamps_attrs, path) if schema else columns.bands
    try:
        flux_names, error_names = columns.flux_columns(bands), columns.error_columns(bands)
    except ValueError as error:
        raise _fail(path, str(error)) from None
    names = [columns.redshift, *flux_names, *error_names]
    if schema is not None:
        with_detected = columns.detected in schema.names
        values = read_table_columns(path, names + ([columns.detected] if with_detected else []))
        units = {
            name: ((schema.field(name).metadata or {}).get(b"unit", b"").decode() or None)
            for name in flux_names
        }
        return flux_names, error_names, dict(values), units, bands
    try:
        read = read_columns(path, names, optional=[columns.detected])
    except TableReadError as error:
        raise TrainingDataError(str(error)) from None
    return flux_names, error_names, read.values, read.units, bands
