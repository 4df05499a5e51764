"""Per-tile Parquet partitions to one HATS catalogue (HEALPix-partitioned, LSDB-readable).

The batch processor writes one Parquet file per tile. :func:`finalize_catalog` re-partitions
them by sky position with hats-import's catalogue pipeline, run as a Dask job on a given
client, so the result is readable with ``lsdb.read_hats``.

What is checked before any Dask work starts (every error names the file):

- every partition exists and is a readable Parquet file with ``ra``, ``dec`` and ``object_id``;
- the non-empty partitions share one schema (column names and types); zero-row partitions
  (empty tiles) are skipped, and if every partition is empty a :class:`ValueError` is raised,
  since hats-import cannot write a catalogue without rows;
- the destination is free (or ``overwrite=True``).

Staging and publication: the import writes into a hidden sibling folder of the destination
(``out_dir/.<catalog_name>.finalize-*``), which also holds hats-import's intermediate and
resume files; the finished catalogue's row count is checked against the sum of the inputs'
footers, and only then is it renamed into place. A failed or interrupted finalize therefore
never leaves a partial catalogue under the final name (a hard kill can leave the hidden staging
folder, which is safe to delete). Folders are renamed, so the staging folder and the
destination are on the same file system by construction.

Schema metadata: hats-import's Parquet reader drops the inputs' schema metadata; here the
common schema is handed to it as a schema file, so keys such as ``csst_photoz.version`` reach
every HATS partition and ``dataset/_common_metadata``. Keys whose values differ between
partitions are left out, with a warning (``csst_photoz.tile_id``, which is per tile by
design, silently).

On a multi-machine cluster, the partitions and ``out_dir`` must be on a file system that all
workers see (hats-import's tasks read the inputs and write the pixels themselves).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client

__all__ = [
    "DEFAULT_HIGHEST_HEALPIX_ORDER",
    "DEFAULT_PIXEL_THRESHOLD",
    "CatalogExistsError",
    "finalize_catalog",
]


class CatalogExistsError(FileExistsError):
    """The destination catalogue exists and replacing it was not asked for.

    ``option`` is how the caller asks for it: ``overwrite=True`` from Python; the command line
    re-raises `with_option` ``"--overwrite"``.
    """

    def __init__(self, target: Path, option: str = "overwrite=True") -> None:
        super().__init__(f"{target} exists (pass {option} to replace it)")
        self.target = target

    def with_option(self, option: str) -> CatalogExistsError:
        """The same error, naming ``option`` as the way to replace the catalogue."""
        return CatalogExistsError(self.target, option)


#: Most rows in one HATS partition. A partition is read, sorted and written by one task, so
#: about 1e6 rows of ~60 float64 columns (~0.5 GB in memory) keeps workers comfortable while
#: giving files of a few hundred MB, the size LSDB works well with.
DEFAULT_PIXEL_THRESHOLD = 1_000_000

#: Finest HEALPix order used to bin objects (order 10: pixels of ~3.4 arcmin, ~12 arcmin^2).
#: Partitions are merged upwards from it until they reach ``pixel_threshold`` rows. hats-import
#: keeps a dense int64 histogram at this order in every mapping task (order 10: 100 MB; four
#: times more per order), so higher orders only pay off with a small ``pixel_threshold``.
DEFAULT_HIGHEST_HEALPIX_ORDER = 10

#: Columns every partition must have: position, and the sort key that fixes row order.
_RA, _DEC, _SORT = "ra", "dec", "object_id"
_REQUIRED_COLUMNS = (_RA, _DEC, _SORT)

#: Schema-metadata keys never carried into the catalogue (pandas index bookkeeping would
#: describe columns the HATS files do not have).
# pandas' own key, and the per-tile key of the batch processor's partitions (one value per tile)
_DROPPED_METADATA_KEYS = frozenset({b"pandas", b"csst_photoz.tile_id"})

_CATALOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class _Partition:
    """One input file as seen from its footer."""

    path: Path
    num_rows: int
    schema: pa.Schema


def _inspect_partition(path: Path) -> _Partition:
    """Read one partition's footer and check its required columns."""
    if not path.is_file():
        raise FileNotFoundError(f"catalogue partition not found: {path}")
    try:
        with pq.ParquetFile(path) as parquet_file:
            schema = parquet_file.schema_arrow
            num_rows = parquet_file.metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [name for name in _REQUIRED_COLUMNS if name not in schema.names]
    if missing:
        raise ValueError(
            f"catalogue partition {path} lacks required column(s): {', '.join(missing)}"
        )
    return _Partition(path, num_rows, schema)


def _schema_difference(schema: pa.Schema, reference: pa.Schema) -> str:
    """A short description of how ``schema`` differs from ``reference``."""
    types = {field.name: field.type for field in schema}
    expected = {field.name: field.type for field in reference}
    parts = []
    if extra := [name for name in types if name not in expected]:
        parts.append(f"extra columns {extra}")
    if missing := [name for name in expected if name not in types]:
        parts.append(f"missing columns {missing}")
    changed = [
        f"{name}: {types[name]} instead of {kind}"
        for name, kind in expected.items()
        if name in types and types[name] != kind
    ]
    if changed:
        parts.append("types " + ", ".join(changed))
    return "; ".join(parts) or "column order or nullability"


def _common_schema(partitions: Sequence[_Partition]) -> pa.Schema:
    """The shared schema of non-empty partitions, with the metadata keys they agree on."""
    reference = partitions[0]
    fields = reference.schema.remove_metadata()
    for partition in partitions[1:]:
        if not partition.schema.remove_metadata().equals(fields):
            raise ValueError(
                f"catalogue partitions have different schemas: {partition.path} differs from "
                f"{reference.path} ({_schema_difference(partition.schema, fields)})"
            )
    metadata = {
        key: value
        for key, value in (reference.schema.metadata or {}).items()
        if key not in _DROPPED_METADATA_KEYS
    }
    for partition in partitions[1:]:
        other = partition.schema.metadata or {}
        for key in [key for key in metadata if other.get(key) != metadata[key]]:
            warnings.warn(
                f"schema metadata key {key.decode(errors='replace')!r} differs between "
                f"{reference.path} and {partition.path}; it is left out of the catalogue",
                stacklevel=3,
            )
            del metadata[key]
    return fields.with_metadata(metadata or None)


def _check_catalogue_rows(catalogue: Path, expected: int) -> None:
    """Raise unless the HATS catalogue's properties and pixel files hold ``expected`` rows."""
    import hats
    from hats.io.paths import pixel_catalog_file

    catalog = hats.read_hats(catalogue)
    declared = catalog.catalog_info.total_rows
    suffix = catalog.catalog_info.npix_suffix
    on_disk = sum(
        pq.read_metadata(pixel_catalog_file(catalogue, pixel, npix_suffix=suffix).path).num_rows
        for pixel in catalog.get_healpix_pixels()
    )
    if declared != expected or on_disk != expected:
        raise RuntimeError(
            f"HATS import into {catalogue} lost or duplicated rows: the partitions hold "
            f"{expected} rows, the catalogue declares {declared} and its pixel files hold "
            f"{on_disk}"
        )


def _publish(staged: Path, target: Path, *, overwrite: bool, staging: Path) -> None:
    """Rename ``staged`` to ``target``, moving an existing ``target`` aside first if allowed."""
    aside = None
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise CatalogExistsError(target)
        aside = staging / "replaced"
        os.rename(target, aside)
    try:
        os.rename(staged, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
        raise


def finalize_catalog(
    partitions: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    catalog_name: str = "catalog",
    client: Client,
    pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD,
    highest_healpix_order: int = DEFAULT_HIGHEST_HEALPIX_ORDER,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Build a HATS catalogue from per-tile Parquet partitions with hats-import on Dask.

    Rows are assigned to HEALPix pixels from ``ra``/``dec`` (degrees); each HATS partition
    file is sorted by the ``_healpix_29`` spatial index that hats-import adds and then by
    ``object_id``, so the output does not depend on the order of ``partitions`` or on
    scheduling. Zero-row partitions are skipped. The common schema metadata of the inputs
    (``csst_photoz.*`` keys) is kept in every output file.

    Parameters
    ----------
    partitions
        Per-tile Parquet files (``RUN/tiles/tile_<id>.parquet``), each with ``object_id``,
        ``ra`` and ``dec`` columns; the non-empty ones must share one schema.
    out_dir
        Folder that receives the catalogue folder (created if missing).
    catalog_name
        Name of the catalogue folder and of the HATS catalogue (letters, digits, ``._-``,
        not starting with a dot).
    client
        Dask client running the import tasks (see :func:`csst_photoz.pipeline.connect`); its
        workers must see ``partitions`` and ``out_dir``.
    pixel_threshold
        Most rows in one HATS partition.
    highest_healpix_order
        Finest HEALPix order used to bin objects before merging pixels up to
        ``pixel_threshold`` rows (0-29; each mapping task holds a dense histogram of
        ``12 * 4**order`` int64 counts, 100 MB at order 10).
    overwrite
        Replace an existing ``out_dir/catalog_name`` (moved aside while the new one is
        renamed in, deleted after); by default it is an error.
    progress
        Show hats-import's progress bars.

    Returns
    -------
    pathlib.Path
        The catalogue folder, ``out_dir / catalog_name``; open it with ``lsdb.read_hats``.

    Raises
    ------
    ValueError
        No partitions, a partition listed twice, an unreadable partition, one lacking ``ra``,
        ``dec`` or ``object_id``, non-empty partitions with different schemas, every
        partition empty (hats-import cannot write a catalogue without rows), or an invalid
        ``catalog_name``, ``pixel_threshold`` or ``highest_healpix_order``.
    FileNotFoundError
        A partition does not exist.
    FileExistsError
        ``out_dir / catalog_name`` exists and ``overwrite`` is false.
    RuntimeError
        hats-import failed, or the catalogue's row count differs from the inputs' total.
    """
    if not _CATALOG_NAME.fullmatch(catalog_name):
        raise ValueError(
            f"invalid catalog_name {catalog_name!r}: use letters, digits, '.', '_' and '-', "
            "not starting with a dot"
        )
    if isinstance(pixel_threshold, bool) or not isinstance(pixel_threshold, int):
        raise ValueError(f"pixel_threshold must be a positive integer, got {pixel_threshold!r}")
    if pixel_threshold < 1:
        raise ValueError(f"pixel_threshold must be a positive integer, got {pixel_threshold}")
    if not 0 <= highest_healpix_order <= 29:
        raise ValueError(f"highest_healpix_order must be in 0..29, got {highest_healpix_order}")
    paths = [Path(path) for path in partitions]
    if not paths:
        raise ValueError("no catalogue partitions given: nothing to finalize")
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise ValueError(f"catalogue partition listed twice: {seen[key]} and {path}")
        seen[key] = path

    out_dir = Path(out_dir)
    target = out_dir / catalog_name
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise CatalogExistsError(target)

    inspected = [_inspect_partition(path) for path in paths]
    non_empty = [partition for partition in inspected if partition.num_rows > 0]
    if not non_empty:
        listed = ", ".join(str(path) for path in paths[:5]) + (", ..." if len(paths) > 5 else "")
        raise ValueError(
            f"all {len(paths)} catalogue partitions are empty ({listed}): hats-import cannot "
            "write a HATS catalogue without rows"
        )
    schema = _common_schema(non_empty)
    expected_rows = sum(partition.num_rows for partition in non_empty)

    from hats_import import ImportArguments, pipeline_with_client
    from hats_import.catalog.file_readers import ParquetPyarrowReader

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{catalog_name}.finalize-", dir=out_dir))
    try:
        schema_file = staging / "schema.parquet"
        pq.write_table(schema.empty_table(), schema_file)
        staged = staging / catalog_name
        arguments = ImportArguments(
            output_path=staging,
            output_artifact_name=catalog_name,
            input_file_list=[str(partition.path) for partition in non_empty],
            file_reader=ParquetPyarrowReader(),
            ra_column=_RA,
            dec_column=_DEC,
            sort_columns=_SORT,
            use_schema_file=str(schema_file),
            pixel_threshold=pixel_threshold,
            highest_healpix_order=highest_healpix_order,
            expected_total_rows=expected_rows,
            tmp_dir=staging / "intermediate",
            resume=False,
            delete_intermediate_parquet_files=True,
            delete_resume_log_files=True,
            progress_bar=progress,
            simple_progress_bar=True,
        )
        try:
            pipeline_with_client(arguments, client)
        except Exception as exc:
            raise RuntimeError(
                f"hats-import failed building {target} from {len(non_empty)} partitions "
                f"(first: {non_empty[0].path}): {exc}"
            ) from exc
        _check_catalogue_rows(staged, expected_rows)
        _publish(staged, target, overwrite=overwrite, staging=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
