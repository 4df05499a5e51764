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

import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client

from ..io.run_store import RunStore, TileFailure
from .config import SCHEDULING_KEYS

__all__ = [
    "DEFAULT_HIGHEST_HEALPIX_ORDER",
    "DEFAULT_PIXEL_THRESHOLD",
    "PROVENANCE_KEY",
    "CatalogExistsError",
    "FailedTilesError",
    "RunIntegrityError",
    "finalize_catalog",
    "finalize_run",
    "partition_settings_problem",
]

#: Schema-metadata key of the catalogue's provenance (`finalize_run`: run, tiles, rows,
#: ``allow_failed`` and the failed tiles left out).
PROVENANCE_KEY = b"csst_photoz.finalize"


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


class RunIntegrityError(ValueError):
    """A run folder whose markers, partitions, manifest or settings disagree.

    Parameters
    ----------
    root
        The run folder.
    problems
        One line per problem (the first ten are in the message).
    """

    def __init__(self, root: Path, problems: Sequence[str]) -> None:
        self.root = root
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f"; and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        super().__init__(
            f"{root}: {len(self.problems)} inconsistencies, no catalogue built: {shown}{more}. "
            "Rerun `csst-photoz run` with the same arguments to redo those tiles"
        )


class FailedTilesError(ValueError):
    """A run with failed tiles, finalised without asking for a catalogue without them."""

    def __init__(
        self, root: Path, failures: Sequence[TileFailure], option: str = "allow_failed=True"
    ) -> None:
        self.root = root
        self.failures = list(failures)
        self.option = option
        shown = "; ".join(f"{f.source}: {f.reason}" for f in self.failures[:5])
        more = f"; and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        super().__init__(
            f"{root}: {len(self.failures)} tiles failed ({shown}{more}); repair them and rerun, "
            f"or pass {option} to build the catalogue without them (recorded in its provenance)"
        )

    def with_option(self, option: str) -> FailedTilesError:
        """The same refusal naming ``option`` (e.g. ``"--allow-failed"``)."""
        return FailedTilesError(self.root, self.failures, option)


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
    provenance: Mapping[str, object] | None = None,
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
    provenance
        JSON-able facts stored in every output file's schema metadata under
        `PROVENANCE_KEY` (`finalize_run`: the run, its tiles, failed tiles left out).

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
    if provenance is not None:
        metadata = {**(schema.metadata or {}), PROVENANCE_KEY: json.dumps(provenance).encode()}
        schema = schema.with_metadata(metadata)
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


def _comparable(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """Pipeline settings as a partition or ``run.json`` records them, in one form to compare.

    Validated by `PipelineConfig`, the photometry by `PhotometryConfig.from_recorded` (a
    photometry key added since 0.1.0 that ``run.json`` leaves out holds 0.1.0's value, which is
    not always today's default: ``snr_mask_neighbours``), scheduling keys dropped; settings
    that do not validate are compared as written.
    """
    from ..photometry.measure import PhotometryConfig
    from .config import PipelineConfig

    try:
        data = dict(pipeline)
        if isinstance(data.get("photometry"), Mapping):
            data["photometry"] = PhotometryConfig.from_recorded(data["photometry"]).model_dump()
        dumped = PipelineConfig.model_validate(data).model_dump(mode="json")
    except ValueError:
        dumped = dict(pipeline)
    return {k: v for k, v in dumped.items() if k not in SCHEDULING_KEYS}


def partition_settings_problem(
    path: Path, metadata: Mapping[bytes, bytes] | None, settings: Mapping[str, Any]
) -> str | None:
    """How a partition's recorded settings differ from its run's ``run.json``, or None.

    Parameters
    ----------
    path
        The partition (for the message).
    metadata
        Its schema metadata (``csst_photoz.pipeline`` and ``csst_photoz.models``).
    settings
        The run's settings (``run.json``: ``pipeline`` without the scheduling keys, ``models``).
    """
    metadata = metadata or {}
    try:
        made_with = json.loads(metadata[b"csst_photoz.pipeline"])
        models = json.loads(metadata[b"csst_photoz.models"])
    except (KeyError, ValueError):
        return f"{path}: partition without the run's settings in its metadata"
    recorded = [(m["name"], m["state_dict_sha256"]) for m in models]
    expected = [(m["name"], m["state_dict_sha256"]) for m in settings.get("models", [])]
    if recorded != expected:
        return (
            f"{path}: made with models {[n for n, _ in recorded]}, not run.json's "
            f"{[n for n, _ in expected]} (or other checkpoints of those names)"
        )
    made_with, pipeline = _comparable(made_with), _comparable(settings.get("pipeline", {}))
    changed = sorted(
        k for k in set(made_with) | set(pipeline) if made_with.get(k) != pipeline.get(k)
    )
    if changed:
        return f"{path}: made with other pipeline settings than run.json (differing: {changed})"
    return None


def finalize_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    catalog_name: str = "catalog",
    client: Client,
    allow_failed: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[Path, int, int]:
    """Check a batch run's folder and build its HATS catalogue (`finalize_catalog`).

    Checked first (nothing is built if any fails): every done-marker is readable and its
    partition in place with the recorded size and SHA-256, every partition has a marker,
    every tile of ``manifest.parquet`` has a valid marker, and every partition was made with
    the settings and checkpoints of ``run.json``. Then failed tiles (``_failed/``) refuse the
    run unless ``allow_failed``; with it they are left out and named in the catalogue's
    provenance (schema metadata `PROVENANCE_KEY`).

    Parameters
    ----------
    run_dir
        The folder of a `~csst_photoz.pipeline.run`.
    out_dir
        Parent of the catalogue folder (default: ``run_dir``).
    catalog_name, client, overwrite, progress
        As for `finalize_catalog`.
    allow_failed
        Build the catalogue even though some tiles failed.

    Returns
    -------
    tuple of (pathlib.Path, int, int)
        The catalogue folder, its rows and its tiles.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` holds no ``run.json``.
    RunIntegrityError
        Markers, partitions, manifest or settings disagree (every problem listed).
    FailedTilesError
        Failed tiles and not ``allow_failed``.
    """
    store = RunStore(run_dir)
    if not store.settings_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no run.json)")
    try:
        settings = json.loads(store.settings_path.read_text())
    except (OSError, ValueError) as error:
        raise RunIntegrityError(
            store.root, [f"{store.settings_path}: unreadable ({error})"]
        ) from None
    audit = store.audit()
    problems = audit.problems()
    for record in audit.records:
        path = store.partition_path(record.tile_id)
        problem = partition_settings_problem(path, pq.read_schema(path).metadata, settings)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise RunIntegrityError(store.root, problems)
    if audit.failures and not allow_failed:
        raise FailedTilesError(store.root, audit.failures)
    rows = sum(record.rows for record in audit.records)
    provenance = {
        "run": str(store.root.resolve()),
        "tiles": len(audit.records),
        "rows": rows,
        "allow_failed": allow_failed,
        "failed_tiles": [
            {"source": f.source, "tile_id": f.tile_id, "reason": f.reason} for f in audit.failures
        ],
    }
    path = finalize_catalog(
        [store.partition_path(record.tile_id) for record in audit.records],
        store.root if out_dir is None else out_dir,
        catalog_name=catalog_name, client=client, overwrite=overwrite, progress=progress,
        provenance=provenance,
    )  # fmt: skip
    return path, rows, len(audit.records)
