"""Merging training-set folders (``stamps.parquet`` + ``stamps.zarr``) into one.

The folder's format (file names, attributes, chunking, reading) is :mod:`.training_set`'s; this
module only joins folders.

Training sets are simulated in slices with different seeds (``csst-photoz simulate stamps``), so
that a cut-off job keeps its finished slices; `merge_training_sets` joins the slices into one
folder in the same layout, which `~csst_photoz.training.data.load_training_set` reads like any
other.

The merged folder keeps row i of the table aligned with stamp i: rows are the parts' rows in
order. Every part's own ids restart at 0, so ``galaxy_id`` becomes the merged row index, and three
columns lead back to the source: ``part`` (index of the part), ``source_row`` (row in the part)
and ``source_galaxy_id`` (the part's ``galaxy_id``; with the part's seed it reproduces the stamp).
Per-part seeds become JSON lists, in part order, in the table's schema metadata
(``csst_photoz.seed``, ``csst_photoz.stamp_seed``) and in the stamp group's ``seed`` attribute;
``csst_photoz.merged_from`` / ``merged_from`` list the part folders.

Slices of one set (``csst-photoz simulate stamps --slice K/COUNT``, one seed, contiguous row
ranges of one truth catalogue, recorded in the ``slice`` attribute and the
``csst_photoz.slice`` metadata) merge differently (``mode="slices"``, chosen automatically when
every part is such a slice of one seed): they are put in slice order and concatenated as they
are, with no renumbering and no provenance columns, and the slice records are dropped, so the
result is exactly the folder a single run with that seed and size writes. Every slice must be
there once.

A part given twice, or two parts holding the same galaxies (the same data, or the same seed and
settings with overlapping rows, e.g. a folder and its copy), are refused with both folders named:
merged, they would repeat galaxies under new ids.

Stamps are copied block by block (never all in memory), one output block of whole chunks at a
time, so every chunk of the new array is written exactly once. The folder is written under a
temporary sibling name and renamed into place at the end: a reader never sees a partial merge.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from tqdm.auto import tqdm

from ..fields import described_field
from .atomic import with_default_mode
from .parquet import read_parquet_table
from .paths import TEMPORARY_SUFFIX, temporary_prefix, training_stamps_path, training_table_path
from .training_set import (
    SLICE_ATTR,
    SLICE_METADATA_KEY,
    STAMP_CHUNK_OBJECTS,
    STAMPS_ARRAY,
    STAMPS_STORE,
    TABLE_FILE,
    TrainingDataError,
    data_hash,
    open_stamps,
)

__all__ = [
    "SLICE_ATTR",
    "SLICE_METADATA_KEY",
    "STAMP_CHUNK_OBJECTS",
    "MergeMode",
    "TrainingSetMergeError",
    "merge_training_sets",
]

#: Stamp-group attributes that must agree between parts.
MATCHING_ATTRS = (
    "format",
    "bands",
    "size",
    "unit",
    "pixel_scale_arcsec",
    "instrument_config",
    "selected_only",
)
#: Per-part values that become lists in the merged set: zarr attribute and table metadata keys.
SEED_ATTR = "seed"
SEED_METADATA_KEYS = (b"csst_photoz.seed", b"csst_photoz.stamp_seed")
MERGED_FROM_ATTR = "merged_from"
MERGED_FROM_KEY = b"csst_photoz.merged_from"
#: Columns added by the merge (a part that has them is already a merged set).
PROVENANCE_COLUMNS = ("part", "source_row", "source_galaxy_id")
_SLICE_FIELDS = ("index", "count", "start", "stop", "n")

#: ``"renumber"``: parts of different seeds; ``"slices"``: slices of one seed; ``"auto"``.
MergeMode = Literal["auto", "slices", "renumber"]

# output chunks (of the simulator's size) written per block: 16 x 32 stamps of 7 x 64 x 64 = 59 MB
_BLOCK_CHUNKS = 16


class TrainingSetMergeError(TrainingDataError):
    """Parts that cannot be merged (the message names the folder and the mismatch)."""


@dataclass(frozen=True)
class _Part:
    """One validated input folder."""

    folder: Path
    table: pa.Table
    stamps: Any  # zarr.Array, read-only
    attrs: dict[str, Any]
    slice_record: dict[str, int] | None = None  # None: a whole set, not a slice

    @property
    def n_rows(self) -> int:
        return self.table.num_rows


def _fail(folder: Path, message: str) -> TrainingSetMergeError:
    return TrainingSetMergeError(f"{folder}: {message}")


def _open_part(folder: Path) -> _Part:
    """Read a part's table and open its stamp array, checking them against each other."""
    if not folder.is_dir():
        raise FileNotFoundError(f"training-set folder not found: {folder}")
    table_path, store = training_table_path(folder), training_stamps_path(folder)
    if not table_path.is_file():
        raise FileNotFoundError(f"{folder}: no {TABLE_FILE} (not a finished training set?)")
    if not store.exists():
        raise FileNotFoundError(f"{folder}: no {STAMPS_STORE} (stamp array missing)")
    table = read_parquet_table(table_path, required_columns=["galaxy_id"])
    try:
        opened = open_stamps(folder)
    except TrainingDataError as error:
        raise TrainingSetMergeError(str(error)) from None
    stamps, attrs = opened.array, opened.attrs

    missing = [key for key in (*MATCHING_ATTRS, SEED_ATTR) if key not in attrs]
    if missing:
        raise _fail(folder, f"{STAMPS_STORE} lacks attribute(s) {', '.join(missing)}")
    shape = tuple(int(s) for s in stamps.shape)
    expected = (table.num_rows, len(attrs["bands"]), int(attrs["size"]), int(attrs["size"]))
    if shape != expected:
        raise _fail(
            folder,
            f"stamp array has shape {shape}, but {TABLE_FILE} has {table.num_rows} rows and "
            f"the attributes say {len(attrs['bands'])} bands of {attrs['size']} px: "
            f"expected {expected}",
        )
    if np.dtype(stamps.dtype) != np.float32:
        raise _fail(folder, f"stamp array is {stamps.dtype}, expected float32")
    already = [name for name in PROVENANCE_COLUMNS if name in table.column_names]
    if already:
        raise _fail(
            folder,
            f"{TABLE_FILE} already has merge column(s) {', '.join(already)}: "
            "merge the original parts instead",
        )
    record = _slice_record(folder, attrs, table)
    first = record["start"] if record is not None else 0
    if "stamp_index" in table.column_names:
        index = table["stamp_index"].to_numpy(zero_copy_only=False)
        if not np.array_equal(index, first + np.arange(table.num_rows)):
            where = f"{first} + row number" if record is not None else "the row number"
            raise _fail(folder, f"stamp_index is not {where}: table and stamps misaligned")
    return _Part(folder=folder, table=table, stamps=stamps, attrs=attrs, slice_record=record)


def _slice_record(folder: Path, attrs: Mapping[str, Any], table: pa.Table) -> dict[str, int] | None:
    """A part's slice record (None for a whole set), checked against its rows."""
    raw = attrs.get(SLICE_ATTR)
    metadata = (table.schema.metadata or {}).get(SLICE_METADATA_KEY)
    if raw is None and metadata is None:
        return None
    if raw is None or metadata is None or json.loads(metadata) != raw:
        raise _fail(folder, f"the slice records of {STAMPS_STORE} and {TABLE_FILE} disagree")
    try:
        record = {key: int(raw[key]) for key in _SLICE_FIELDS}
    except (KeyError, TypeError, ValueError):
        raise _fail(folder, f"unreadable slice record {raw!r}") from None
    if record["stop"] - record["start"] != table.num_rows:
        raise _fail(
            folder,
            f"slice {record['index']}/{record['count']} covers rows {record['start']}.."
            f"{record['stop'] - 1} but {TABLE_FILE} has {table.num_rows} rows",
        )
    return record


def _check_compatible(parts: Sequence[_Part]) -> None:
    """Every part against the first: stamp attributes, array layout and table schema."""
    first = parts[0]
    reference = first.table.schema
    for k, part in enumerate(parts[1:], start=1):
        where = f"part {k} differs from part 0 ({first.folder}):"
        for key in MATCHING_ATTRS:
            if part.attrs[key] != first.attrs[key]:
                shown = (
                    ""
                    if key == "instrument_config"
                    else f" {part.attrs[key]!r} vs {first.attrs[key]!r}"
                )
                raise _fail(part.folder, f"{where} stamp attribute {key!r}{shown}")
        schema = part.table.schema
        missing = [name for name in reference.names if name not in schema.names]
        extra = [name for name in schema.names if name not in reference.names]
        if missing or extra:
            raise _fail(
                part.folder,
                f"{where} table columns: missing {missing or 'none'}, extra {extra or 'none'}",
            )
        for field in reference:
            other = schema.field(field.name).type
            if other != field.type:
                raise _fail(
                    part.folder, f"{where} column {field.name!r} is {other}, not {field.type}"
                )


def _rows_of_run(part: _Part) -> tuple[int, int, int]:
    """``(start, stop, n)``: the part holds rows ``[start, stop)`` of its run's ``n`` rows."""
    record = part.slice_record
    if record is None:
        return 0, part.n_rows, part.n_rows
    return record["start"], record["stop"], record["n"]


def _recipe(part: _Part) -> str:
    """What makes a part's galaxies: its seed and recorded settings, not which slice it is."""
    metadata = {
        key.decode(errors="replace"): value.decode(errors="replace")
        for key, value in (part.table.schema.metadata or {}).items()
        if key != SLICE_METADATA_KEY
    }
    attrs = {key: value for key, value in part.attrs.items() if key != SLICE_ATTR}
    return json.dumps([attrs, metadata, _rows_of_run(part)[2]], sort_keys=True)


def _check_no_duplicates(parts: Sequence[_Part]) -> None:
    """Refuse parts that hold the same galaxies: one run's rows twice, or the same data.

    Two parts of the same seed and settings hold the same galaxies where their rows of that
    run overlap (a whole set covers all its rows, a slice its range); two parts with the same
    `~.training_set.data_hash` (table bytes and sampled stamps) are copies whatever they
    record. Merged, either would repeat galaxies under new ids.
    """
    recipes = [_recipe(part) for part in parts]
    hashes = [data_hash(training_table_path(part.folder), part.stamps) for part in parts]
    for j, part in enumerate(parts):
        for i in range(j):
            earlier = parts[i]
            (a, b, n), (c, d, _) = _rows_of_run(earlier), _rows_of_run(part)
            if recipes[i] == recipes[j] and max(a, c) < min(b, d):
                raise _fail(
                    part.folder,
                    f"holds the same galaxies as {earlier.folder}: seed "
                    f"{part.attrs[SEED_ATTR]!r}, rows {max(a, c)}..{min(b, d) - 1} of the same "
                    f"{n}-row set in both; give each part once",
                )
            if hashes[i] == hashes[j]:
                raise _fail(
                    part.folder,
                    f"holds the same data as {earlier.folder} (table and stamps, hash "
                    f"{hashes[j][:12]}): a copy of one part; give each part once",
                )


def _seed_value(raw: Any) -> Any:
    """A seed as an int when it reads as one (metadata values are strings)."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return int(raw)
    except (TypeError, ValueError):
        return raw


def _merge_common(
    mappings: Sequence[Mapping[Any, Any]], skip: Sequence[Any], what: str
) -> dict[Any, Any]:
    """Entries equal in every mapping; the others are dropped with a warning naming them."""
    merged: dict[Any, Any] = {}
    dropped = []
    for key, value in mappings[0].items():
        if key in skip:
            continue
        if all(key in other and other[key] == value for other in mappings[1:]):
            merged[key] = value
        else:
            dropped.append(key)
    dropped += [
        key for m in mappings[1:] for key in m if key not in mappings[0] and key not in skip
    ]
    if dropped:
        names = sorted({k.decode() if isinstance(k, bytes) else str(k) for k in dropped})
        warnings.warn(
            f"{what} entries that differ between the parts were dropped: {', '.join(names)}",
            stacklevel=3,
        )
    return merged


def _merged_table(parts: Sequence[_Part], sources: list[str]) -> pa.Table:
    """The parts' tables, in order, with merged-row ids and provenance columns."""
    names = parts[0].table.schema.names
    table = pa.concat_tables(
        [part.table.select(names).replace_schema_metadata(None) for part in parts]
    )
    n = table.num_rows
    rows = pa.array(np.arange(n, dtype=np.int64))
    position = table.schema.get_field_index("galaxy_id")
    source_ids = table["galaxy_id"].cast(pa.int64())
    table = table.set_column(
        position,
        described_field(
            "galaxy_id",
            pa.int64(),
            "",
            "row of the merged training set (= stamp index)",
            nullable=False,
        ),
        rows,
    )
    if "stamp_index" in names:
        table = table.set_column(
            table.schema.get_field_index("stamp_index"),
            described_field("stamp_index", pa.int64(), "", "row of the stamp in the stamp array"),
            rows,
        )
    counts = [part.n_rows for part in parts]
    extra = {
        "part": (
            pa.array(np.repeat(np.arange(len(parts), dtype=np.int16), counts)),
            "index of the source part (csst_photoz.merged_from)",
        ),
        "source_row": (
            pa.array(np.concatenate([np.arange(c, dtype=np.int64) for c in counts])),
            "row (and stamp index) in the source part",
        ),
        "source_galaxy_id": (source_ids, "galaxy_id in the source part (with its seed)"),
    }
    for name, (values, description) in extra.items():
        column = described_field(name, values.type, "", description, nullable=False)
        table = table.append_column(column, values)

    metadata = _merge_common(
        [part.table.schema.metadata or {} for part in parts],
        (*SEED_METADATA_KEYS, SLICE_METADATA_KEY),
        TABLE_FILE,
    )
    for key in SEED_METADATA_KEYS:
        values = [(part.table.schema.metadata or {}).get(key) for part in parts]
        if any(value is not None for value in values):
            metadata[key] = json.dumps([_seed_value(v) for v in values]).encode()
    metadata[MERGED_FROM_KEY] = json.dumps(sources).encode()
    return table.replace_schema_metadata(metadata)


def _is_one_sliced_set(parts: Sequence[_Part]) -> bool:
    """Every part a slice of one seed's set (same seed, slice count and set size)."""
    records = [part.slice_record for part in parts]
    if any(record is None for record in records):
        return False
    seeds = {json.dumps(part.attrs[SEED_ATTR]) for part in parts}
    sets = {(record["count"], record["n"]) for record in records}
    return len(seeds) == 1 and len(sets) == 1


def _in_slice_order(parts: Sequence[_Part]) -> list[_Part]:
    """The slices sorted by index, checked to be all there, once, and contiguous."""
    if not _is_one_sliced_set(parts):
        plain = [str(part.folder) for part in parts if part.slice_record is None]
        raise TrainingSetMergeError(
            "slice mode needs slices of one set (same seed, slice count and size); "
            + (f"not slices: {', '.join(plain)}" if plain else "the slices differ")
        )
    ordered = sorted(parts, key=lambda part: part.slice_record["index"])
    records = [part.slice_record for part in ordered]
    count, n = records[0]["count"], records[0]["n"]
    indices = [record["index"] for record in records]
    missing = sorted(set(range(count)) - set(indices))
    repeated = sorted({k for k in indices if indices.count(k) > 1})
    if missing or repeated:
        twice = [str(part.folder) for part in ordered if part.slice_record["index"] in repeated]
        raise TrainingSetMergeError(
            f"slices of {count}: missing {missing or 'none'}, repeated {repeated or 'none'}"
            + (f" ({', '.join(twice)})" if twice else "")
        )
    stop = 0
    for part, record in zip(ordered, records, strict=True):
        if record["start"] != stop:
            raise _fail(part.folder, f"slice starts at row {record['start']}, not {stop}")
        stop = record["stop"]
    if stop != n:
        raise TrainingSetMergeError(f"the slices end at row {stop}, not {n}")
    return ordered


def _concatenated_table(parts: Sequence[_Part]) -> pa.Table:
    """The slices' tables as one, without their slice records (the single run's table)."""
    names = parts[0].table.schema.names
    metadata = _merge_common(
        [part.table.schema.metadata or {} for part in parts], (SLICE_METADATA_KEY,), TABLE_FILE
    )
    table = pa.concat_tables(
        [part.table.select(names).replace_schema_metadata(None) for part in parts]
    )
    return table.replace_schema_metadata(metadata)


def _copy_stamps(parts: Sequence[_Part], group: zarr.Group, *, progress: bool) -> None:
    """Create the merged stamp array and fill it block by block from the parts."""
    template = parts[0].stamps
    n = sum(part.n_rows for part in parts)
    chunk = STAMP_CHUNK_OBJECTS
    target = group.create_array(
        STAMPS_ARRAY,
        shape=(n, *template.shape[1:]),
        chunks=(chunk, *template.shape[1:]),
        dtype=np.float32,
        compressors=template.compressors,
        filters=template.filters,
        serializer=template.serializer,
        fill_value=template.fill_value,
    )
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part.n_rows)
    block = chunk * _BLOCK_CHUNKS
    with tqdm(total=n, desc="merge stamps", unit="stamp", disable=not progress) as bar:
        for start in range(0, n, block):
            stop = min(start + block, n)
            buffer = np.empty((stop - start, *template.shape[1:]), dtype=np.float32)
            for k, part in enumerate(parts):
                lo, hi = max(start, offsets[k]), min(stop, offsets[k + 1])
                if lo < hi:
                    buffer[lo - start : hi - start] = part.stamps[lo - offsets[k] : hi - offsets[k]]
            target[start:stop] = buffer
            bar.update(stop - start)


def _move_into_place(temporary: Path, out: Path, *, overwrite: bool) -> None:
    """Rename ``temporary`` to ``out``; an existing ``out`` (overwrite) is removed after."""
    if not (out.exists() or out.is_symlink()):
        os.rename(temporary, out)
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists (overwrite to replace it)")
    old = Path(tempfile.mkdtemp(prefix=temporary_prefix(out), suffix=".old", dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    try:
        os.rename(temporary, out)
    except BaseException:
        os.rename(old, out)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


def merge_training_sets(
    parts: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = True,
    mode: MergeMode = "auto",
) -> pa.Table:
    """Merge training-set folders into one folder of the same layout.

    Parameters
    ----------
    parts
        Training-set folders (``stamps.parquet`` + ``stamps.zarr``), in the order of the merged
        rows (slices: in any order). They must agree on bands, stamp size, unit, pixel scale,
        instrument configuration, ``selected_only`` and the table's columns (names and types).
    out
        The merged folder, written under a temporary sibling name and renamed at the end.
    overwrite
        Replace an existing ``out`` (never one of the parts); otherwise it is refused.
    progress
        Show a progress bar while copying the stamps.
    mode
        ``"renumber"``: independent sets (e.g. different seeds), renumbered with provenance
        columns; ``"slices"``: every slice of one sliced set, concatenated in slice order into
        the single run's folder; ``"auto"`` (default): ``"slices"`` when every part is a slice
        of one seed's set, else ``"renumber"``.

    Returns
    -------
    pyarrow.Table
        The table written to ``out/stamps.parquet``. ``"renumber"``: the parts' rows with
        ``galaxy_id`` (and ``stamp_index``) set to the merged row index, plus ``part`` (int16),
        ``source_row`` and ``source_galaxy_id``; schema metadata common to the parts, per-part
        seeds as JSON lists and ``csst_photoz.merged_from``. ``"slices"``: the slices' rows
        unchanged, with the single run's metadata.

    Raises
    ------
    FileNotFoundError
        A part folder, its table or its stamp store is missing.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    TrainingSetMergeError
        Parts that do not match (the message names the folder and the mismatch), a part that is
        inconsistent in itself (table rows vs stamps), ``out`` among the parts, a part given
        twice or holding the same galaxies as another (a copy: the same data; or the same seed
        and settings with overlapping rows; the message names both folders), or (slices) a
        missing, repeated or foreign slice.
    """
    if mode not in ("auto", "slices", "renumber"):
        raise ValueError(f"mode must be 'auto', 'slices' or 'renumber', not {mode!r}")
    folders = [Path(part) for part in parts]
    out = Path(out)
    if not folders:
        raise TrainingSetMergeError("no training-set folder to merge")
    resolved = [folder.resolve() for folder in folders]
    for k, folder in enumerate(resolved):
        if folder in resolved[:k]:
            raise _fail(folders[k], "listed twice")
    target = out.resolve()
    for folder, original in zip(resolved, folders, strict=True):
        if target == folder or target in folder.parents or folder in target.parents:
            raise _fail(original, f"the output {out} would overlap this part")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise FileExistsError(f"{out} exists (overwrite to replace it)")

    opened = [_open_part(folder) for folder in folders]
    _check_compatible(opened)
    if mode == "slices" or (mode == "auto" and _is_one_sliced_set(opened)):
        opened = _in_slice_order(opened)
        table = _concatenated_table(opened)
        attrs = _merge_common([part.attrs for part in opened], (SLICE_ATTR,), STAMPS_STORE)
    else:
        _check_no_duplicates(opened)
        sources = [str(part.folder.resolve()) for part in opened]
        table = _merged_table(opened, sources)
        attrs = _merge_common(
            [part.attrs for part in opened], (SEED_ATTR, SLICE_ATTR), STAMPS_STORE
        )
        attrs[SEED_ATTR] = [part.attrs[SEED_ATTR] for part in opened]
        attrs[MERGED_FROM_ATTR] = sources

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(
        tempfile.mkdtemp(prefix=temporary_prefix(out), suffix=TEMPORARY_SUFFIX, dir=out.parent)
    )
    try:
        group = zarr.open_group(training_stamps_path(temporary), mode="w")
        group.attrs.update(attrs)
        _copy_stamps(opened, group, progress=progress)
        pq.write_table(table, training_table_path(temporary))
        with_default_mode(temporary)  # mkdtemp makes it private
        _move_into_place(temporary, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return table
