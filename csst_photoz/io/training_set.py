"""The training-set folder: stamps (zarr) aligned row by row with a Parquet table.

Layout (names from :mod:`.paths`)::

    SET/stamps.parquet        one row per galaxy: truth, offsets, neighbours, measured photometry
    SET/stamps.zarr           zarr group; array ``stamps``: float32 (n, bands, S, S) electrons,
                              chunks of `STAMP_CHUNK_OBJECTS` objects, Blosc-zstd compressed
    SET/_parts/rows_<start>_<stop>.parquet
                              only while the set is written: the table rows of a finished block

Row i of the table describes stamp i. The group's attributes say what the stamps are
(`TrainingSetSettings`: ``format``, ``bands``, ``size``, ``unit``, ``pixel_scale_arcsec``,
``seed``, ``selected_only``, ``instrument_config`` and, for a slice of a larger set, ``slice``);
the table's schema metadata names the bands (``csst_photoz.bands``) and repeats a slice record
(``csst_photoz.slice``).

**Writing** is resumable. `begin_training_set` creates the stamp array (or reopens the
unfinished one of an interrupted run with the same settings, and refuses one made with other
settings); `TrainingSetWriter.write_block` stores a block of stamps and then, atomically, the
block's table rows as a part, which is also the record that the block is done;
`TrainingSetWriter.finish` joins the parts in row order into ``stamps.parquet`` and removes them.
The table is written last: a folder is a complete training set only once its table exists.
Blocks start on chunk boundaries, so workers writing different blocks never touch one chunk.

**Reading**: `open_stamps` opens and checks the stamp array, `StampArray.read` reads rows of it
block by block (with an optional per-block transform, e.g. a crop), `read_table_schema` /
`read_table_columns` read the table (or any Parquet file of the same columns), and `data_hash`
identifies a training set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from .parquet import write_parquet_atomic
from .paths import (
    STAMPS_ARRAY,
    STAMPS_STORE,
    TABLE_FILE,
    parse_training_part,
    training_part_path,
    training_parts_folder,
    training_stamps_path,
    training_table_path,
)

__all__ = [
    "BANDS_METADATA_KEY",
    "SLICE_ATTR",
    "SLICE_METADATA_KEY",
    "STAMPS_ARRAY",
    "STAMPS_FORMAT",
    "STAMPS_STORE",
    "STAMP_CHUNK_OBJECTS",
    "TABLE_FILE",
    "StampArray",
    "TrainingDataError",
    "TrainingSetSettings",
    "TrainingSetWriter",
    "begin_training_set",
    "data_hash",
    "open_stamps",
    "read_table_columns",
    "read_table_schema",
]

PathLike = str | os.PathLike[str]

#: Objects per zarr chunk of a stamp array: 32 x 7 x 64 x 64 float32 = 3.7 MB.
STAMP_CHUNK_OBJECTS = 32
#: The ``format`` attribute of a stamp group.
STAMPS_FORMAT = "csst_photoz.stamps"
#: Table metadata key of the band names (comma-separated, in the order of the flux columns).
BANDS_METADATA_KEY = b"csst_photoz.bands"
#: Stamp-group attribute and table metadata key of a slice: index, count, start, stop, n.
SLICE_ATTR = "slice"
SLICE_METADATA_KEY = b"csst_photoz.slice"
#: Stamp-group attribute of the galaxy population's configuration.
POPULATION_ATTR = "population_config"

# rows read from zarr at a time (a multiple of the simulator's 32-object chunks)
_READ_BLOCK = 1024
# stamps checksummed by `data_hash`
_HASH_SAMPLE = 8


class TrainingDataError(ValueError):
    """A training set that cannot be used as it is (the message names the file)."""


def _fail(path: Path, message: str) -> TrainingDataError:
    return TrainingDataError(f"{path}: {message}")


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSetSettings:
    """What the stamps of a training-set folder are: its shape and the stamp group's attributes.

    Attributes
    ----------
    n
        Stamps (and table rows) in the folder.
    bands
        Band names, in the order of the stamp planes.
    size
        Stamp side [pixels].
    seed
        Seed of the simulation.
    pixel_scale_arcsec
        Pixel size [arcsec].
    instrument_config
        The instrument configuration, as JSON-ready data.
    selected_only
        Whether only galaxies passing the paper's selection were drawn.
    population_config
        The galaxy population's configuration, as JSON-ready data (None: not recorded, as in
        folders written before it was).
    unit
        Unit of the pixel values.
    slice
        For a slice of a larger set: its ``index``, ``count``, ``start``, ``stop`` and ``n``.
    """

    n: int
    bands: tuple[str, ...]
    size: int
    seed: int
    pixel_scale_arcsec: float
    instrument_config: dict[str, Any] = field(default_factory=dict)
    selected_only: bool = True
    unit: str = "electron"
    slice: dict[str, int] | None = None
    population_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.n < 1 or self.size < 1 or not self.bands:
            raise ValueError(
                f"a training set needs n >= 1 stamps of size >= 1 in >= 1 band, got n = "
                f"{self.n}, size = {self.size}, bands = {self.bands}"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of the stamp array: (n, bands, size, size)."""
        return (self.n, len(self.bands), self.size, self.size)

    def attrs(self) -> dict[str, Any]:
        """The stamp group's attributes (JSON-ready)."""
        attrs = {
            "format": STAMPS_FORMAT,
            "bands": list(self.bands),
            "size": self.size,
            "unit": self.unit,
            "pixel_scale_arcsec": self.pixel_scale_arcsec,
            "seed": self.seed,
            "selected_only": self.selected_only,
            "instrument_config": self.instrument_config,
        }
        if self.slice is not None:
            attrs[SLICE_ATTR] = dict(self.slice)
        if self.population_config is not None:
            attrs[POPULATION_ATTR] = self.population_config
        return json.loads(json.dumps(attrs))


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StampArray:
    """An opened stamp array of a training-set folder (see `open_stamps`).

    Attributes
    ----------
    path
        The stamp group (``stamps.zarr``).
    array
        The zarr array ``stamps``, (n, bands, S, S), opened read-only.
    attrs
        The group's attributes (possibly none for sets written by other tools).
    """

    path: Path
    array: Any
    attrs: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return tuple(int(s) for s in self.array.shape)

    def check(self, n_rows: int, bands: Sequence[str]) -> None:
        """Check the array against its table: one stamp per row, one plane per band.

        Raises
        ------
        TrainingDataError
            Naming the store, when the shape or the ``bands`` attribute differ.
        """
        bands = tuple(bands)
        shape = self.shape
        if len(shape) != 4 or shape[0] != n_rows or shape[1] != len(bands):
            raise _fail(
                self.path,
                f"stamp array has shape {shape}, but {TABLE_FILE} has {n_rows} rows and "
                f"{len(bands)} bands: expected ({n_rows}, {len(bands)}, S, S)",
            )
        if "bands" in self.attrs and tuple(self.attrs["bands"]) != bands:
            raise _fail(
                self.path, f"stamp bands {self.attrs['bands']} differ from the table's {bands}"
            )

    def read(
        self,
        rows: npt.ArrayLike,
        *,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> npt.NDArray[np.float32]:
        """The stamps of ``rows``, read block by block (never the whole array at once).

        Parameters
        ----------
        rows
            Ascending row indices.
        transform
            Applied to every block of float32 stamps (n, bands, S, S) as it is read, e.g. a
            centre crop that keeps memory low; it must map stamps one to one.

        Returns
        -------
        numpy.ndarray
            (len(rows), bands, S', S') float32.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size > 1 and np.any(np.diff(rows) < 0):
            raise ValueError("rows must be ascending")
        first = np.asarray(self.array[0:1], dtype=np.float32)
        template = transform(first) if transform is not None else first
        out = np.empty((rows.size, *template.shape[1:]), dtype=np.float32)
        n, done = self.shape[0], 0
        for start in range(0, n, _READ_BLOCK):
            stop = min(start + _READ_BLOCK, n)
            wanted = rows[(rows >= start) & (rows < stop)]
            if wanted.size == 0:
                continue
            block = np.asarray(self.array[start:stop], dtype=np.float32)[wanted - start]
            out[done : done + wanted.size] = transform(block) if transform is not None else block
            done += wanted.size
        return out


def open_stamps(folder: PathLike) -> StampArray:
    """Open the stamp array of a training-set folder read-only.

    Parameters
    ----------
    folder
        The training-set folder.

    Returns
    -------
    StampArray

    Raises
    ------
    FileNotFoundError
        If the folder has no ``stamps.zarr``.
    TrainingDataError
        If the store has no readable ``stamps`` array.
    """
    store = training_stamps_path(folder)
    if not store.exists():
        raise FileNotFoundError(f"no stamp store {store}")
    try:
        group = zarr.open_group(store, mode="r")
        return StampArray(store, group[STAMPS_ARRAY], dict(group.attrs))
    except (KeyError, ValueError, OSError) as error:
        raise _fail(store, f"no readable '{STAMPS_ARRAY}' array: {error}") from None


def read_table_schema(path: PathLike) -> pa.Schema:
    """The schema of a training table (``stamps.parquet`` or any Parquet file).

    Raises
    ------
    TrainingDataError
        Naming the file, when it is not readable Parquet.
    """
    path = Path(path)
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise _fail(path, f"not a readable Parquet file: {error}") from None


def read_table_columns(path: PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of a training table as NumPy arrays.

    Raises
    ------
    TrainingDataError
        Naming the file, when it is not readable or lacks some of ``names``.
    """
    path = Path(path)
    schema = read_table_schema(path)
    missing = [name for name in names if name not in schema.names]
    if missing:
        raise _fail(path, f"lacks column(s) {', '.join(missing)}")
    table = pq.read_table(path, columns=list(names))
    return {name: table[name].to_numpy(zero_copy_only=False) for name in names}


def data_hash(table_path: PathLike, stamps: Any | None = None) -> str:
    """SHA-256 of the table file's bytes and of the stamp array's shape, dtype and a sample.

    Parameters
    ----------
    table_path
        The table (``stamps.parquet``, or a plain Parquet file).
    stamps
        The stamp array (`StampArray.array`), or None for a table alone.

    Returns
    -------
    str
        Hex digest. The sample is up to eight evenly spaced stamps: a cheap guard against
        pairing a table with the wrong stamps, not a full checksum of the array.
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


# -- writing ---------------------------------------------------------------------------------


def _settings_of(folder: Path, group: Any) -> TrainingSetSettings:
    """The settings recorded in an existing stamp group (one this module wrote)."""
    store = training_stamps_path(folder)
    attrs = dict(group.attrs)
    try:
        array = group[STAMPS_ARRAY]
        if attrs.get("format") != STAMPS_FORMAT:
            raise KeyError("format")
        return TrainingSetSettings(
            n=int(array.shape[0]),
            bands=tuple(attrs["bands"]),
            size=int(attrs["size"]),
            seed=attrs["seed"],
            pixel_scale_arcsec=attrs["pixel_scale_arcsec"],
            instrument_config=attrs["instrument_config"],
            selected_only=attrs["selected_only"],
            unit=attrs["unit"],
            slice=attrs.get(SLICE_ATTR),
            population_config=attrs.get(POPULATION_ATTR),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise _fail(store, f"not a stamp store written by csst_photoz ({error})") from None


def _differences(earlier: TrainingSetSettings, settings: TrainingSetSettings) -> list[str]:
    old, new = earlier.attrs(), settings.attrs()
    if POPULATION_ATTR not in old:  # written before the population was recorded
        new.pop(POPULATION_ATTR, None)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if earlier.n != settings.n:
        changed.insert(0, "n")
    return changed


def begin_training_set(
    folder: PathLike, settings: TrainingSetSettings, *, resume: bool = True
) -> TrainingSetWriter:
    """Start writing a training-set folder, or take up an interrupted one.

    Parameters
    ----------
    folder
        The training-set folder (created if needed).
    settings
        What the stamps are (shape and attributes).
    resume
        Keep what an earlier run with the same settings wrote: its finished blocks (and, for a
        finished set, the whole set: `TrainingSetWriter.complete`). False starts over: an
        existing table, stamp array and parts are discarded.

    Returns
    -------
    TrainingSetWriter

    Raises
    ------
    TrainingDataError
        With ``resume``, when the folder holds a stamp store made with other settings (the
        message names the folder and the settings that differ) or one this module did not
        write.
    """
    folder = Path(folder)
    store = training_stamps_path(folder)
    if resume and store.exists():
        earlier = _settings_of(folder, zarr.open_group(store, mode="r"))
        changed = _differences(earlier, settings)
        if changed:
            raise _fail(
                folder,
                f"holds a training set made with other settings (differing: {', '.join(changed)})"
                "; use another folder, or start over without resuming",
            )
        return TrainingSetWriter(folder)
    training_table_path(folder).unlink(missing_ok=True)  # incomplete from here on
    shutil.rmtree(training_parts_folder(folder), ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(store, mode="w")
    group.create_array(
        STAMPS_ARRAY,
        shape=settings.shape,
        chunks=(STAMP_CHUNK_OBJECTS, *settings.shape[1:]),
        dtype=np.float32,
        compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
    )
    group.attrs.update(settings.attrs())
    training_parts_folder(folder).mkdir()
    return TrainingSetWriter(folder)


class TrainingSetWriter:
    """Writes the blocks of a training-set folder begun by `begin_training_set`.

    A writer holds only the folder's path and its settings, so it is cheap to pickle or to
    reopen (``TrainingSetWriter(folder)``) on the worker that renders a block; workers may
    write different blocks at the same time.

    Parameters
    ----------
    folder
        A folder begun by `begin_training_set` (possibly finished).

    Raises
    ------
    FileNotFoundError
        If the folder has no stamp store.
    TrainingDataError
        If the store was not written by this module.
    """

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        store = training_stamps_path(self.folder)
        if not store.exists():
            raise FileNotFoundError(f"{self.folder}: no {STAMPS_STORE} (begin_training_set first)")
        self.settings = _settings_of(self.folder, zarr.open_group(store, mode="r"))

    def __repr__(self) -> str:
        return f"TrainingSetWriter({str(self.folder)!r})"

    @property
    def complete(self) -> bool:
        """Whether the folder is a finished training set (its table exists)."""
        return training_table_path(self.folder).is_file()

    def finished_blocks(self) -> list[tuple[int, int]]:
        """The row ranges ``(start, stop)`` already written, in row order."""
        if self.complete:
            return [(0, self.settings.n)]
        parts = training_parts_folder(self.folder)
        names = sorted(p.name for p in parts.iterdir()) if parts.is_dir() else []
        return [span for name in names if (span := parse_training_part(name)) is not None]

    def pending_blocks(self, block_rows: int) -> list[tuple[int, int]]:
        """The rows still to write, as blocks ``(start, stop)`` of at most ``block_rows`` rows.

        Blocks fill the gaps between finished blocks, so they never overlap one, even when
        ``block_rows`` differs from the interrupted run's.

        Parameters
        ----------
        block_rows
            A positive multiple of `STAMP_CHUNK_OBJECTS` (blocks start on chunk boundaries).
        """
        if block_rows < 1 or block_rows % STAMP_CHUNK_OBJECTS:
            raise ValueError(
                f"block_rows must be a positive multiple of {STAMP_CHUNK_OBJECTS}, got {block_rows}"
            )
        return [
            (a, min(a + block_rows, stop))
            for start, stop in self._gaps()
            for a in range(start, stop, block_rows)
        ]

    def _gaps(self) -> list[tuple[int, int]]:
        """The row ranges not written yet, in row order."""
        gaps, row = [], 0
        for start, stop in [*self.finished_blocks(), (self.settings.n, self.settings.n)]:
            if start > row:
                gaps.append((row, start))
            row = max(row, stop)
        return gaps

    def write_block(self, start: int, stamps: np.ndarray, table: pa.Table) -> None:
        """Store the stamps and table rows of rows ``[start, start + len(stamps))``.

        The stamps are written first, then the rows as a part (atomically): once the part
        exists the block is finished. Writing a finished block again (a retried task)
        replaces it.

        Parameters
        ----------
        start
            First row; a multiple of `STAMP_CHUNK_OBJECTS`.
        stamps
            (k, bands, size, size) stamps.
        table
            Their k table rows, in order.

        Raises
        ------
        ValueError
            For a block off the chunk grid, beyond the set, overlapping another finished block,
            of the wrong shape, with another number of rows than stamps, or in a finished set.
        """
        stop = start + int(np.shape(stamps)[0])
        n = self.settings.n
        if self.complete:
            raise ValueError(f"{self.folder}: the training set is finished; begin it anew")
        if start < 0 or start % STAMP_CHUNK_OBJECTS or stop > n or stop <= start:
            raise ValueError(
                f"{self.folder}: block [{start}, {stop}) must start on a multiple of "
                f"{STAMP_CHUNK_OBJECTS} and lie within the set's {n} rows"
            )
        if stop % STAMP_CHUNK_OBJECTS and stop != n:
            raise ValueError(f"{self.folder}: block [{start}, {stop}) must end on a chunk boundary")
        if tuple(np.shape(stamps)[1:]) != self.settings.shape[1:]:
            raise ValueError(
                f"{self.folder}: stamps of shape {np.shape(stamps)}, expected "
                f"(k, {', '.join(map(str, self.settings.shape[1:]))})"
            )
        if table.num_rows != stop - start:
            raise ValueError(
                f"{self.folder}: {table.num_rows} table rows for {stop - start} stamps"
            )
        overlap = [(a, b) for a, b in self.finished_blocks() if a < stop and start < b]
        if overlap and overlap != [(start, stop)]:
            raise ValueError(f"{self.folder}: block [{start}, {stop}) overlaps finished {overlap}")
        array = zarr.open_array(training_stamps_path(self.folder) / STAMPS_ARRAY, mode="r+")
        array[start:stop] = np.asarray(stamps, dtype=np.float32)
        write_parquet_atomic(table, training_part_path(self.folder, start, stop))

    def finish(self) -> pa.Table:
        """Join the finished blocks' rows into ``stamps.parquet`` (atomically) and drop the parts.

        For a slice, the slice record is added to the table's metadata. Finishing a finished
        set reads its table (and removes parts left by a finish cut short after the table).

        Returns
        -------
        pyarrow.Table
            The table of the set.

        Raises
        ------
        ValueError
            If rows are missing (the message lists the first missing ranges).
        """
        table_path = training_table_path(self.folder)
        if self.complete:
            shutil.rmtree(training_parts_folder(self.folder), ignore_errors=True)
            return pq.read_table(table_path)
        blocks = self.finished_blocks()
        gaps = self._gaps()
        if gaps:
            raise ValueError(
                f"{self.folder}: rows {', '.join(f'[{a}, {b})' for a, b in gaps[:5])} are not "
                "written yet; write them before finishing"
            )
        parts = [pq.read_table(training_part_path(self.folder, a, b)) for a, b in blocks]
        table = pa.concat_tables(parts)
        if self.settings.slice is not None:
            metadata: Mapping[bytes, bytes] = {
                **(table.schema.metadata or {}),
                SLICE_METADATA_KEY: json.dumps(self.settings.slice).encode(),
            }
            table = table.replace_schema_metadata(metadata)
        write_parquet_atomic(table, table_path)
        shutil.rmtree(training_parts_folder(self.folder), ignore_errors=True)
        return table
