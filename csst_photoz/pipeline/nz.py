"""Tomographic n(z) of a catalogue on the Dask cluster, partition by partition.

Each task reads the few columns n(z) needs from one Parquet partition (the point estimate,
the compact p(z), ``object_id`` and, when present, the true redshift), and returns its
:class:`~csst_photoz.pz.nz.NzSums` (a few kB); the client adds them up. The catalogue is never
loaded whole. `catalog_partitions` lists the partitions of a run folder, a HATS catalogue or
one Parquet file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from ..io.run_store import RunStore
from ..pz.columns import PZ_SUFFIX, compact_column
from ..pz.nz import NzSums, nz_partial

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["catalog_partitions", "compute_nz", "partition_nz"]


def catalog_partitions(catalog: str | os.PathLike[str]) -> list[Path]:
    """The Parquet partitions of ``catalog``: a file, a run folder, or a (HATS) catalogue folder.

    A run folder (the ``--out`` of ``csst-photoz run``, with its ``run.json``) gives the
    partitions of its done tiles (`RunStore.partitions`), never its manifest or failures
    tables; any other folder every ``*.parquet`` below it, leaving out files and folders whose
    names start with ``_`` or ``.`` (HATS' ``_metadata``, temporary files).

    Raises
    ------
    FileNotFoundError
        If ``catalog`` does not exist or holds no partition.
    """
    path = Path(catalog)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such catalogue (a Parquet file or a folder)")
    store = RunStore(path)
    if store.settings_path.is_file():
        done = store.partitions()
        if not done:
            raise FileNotFoundError(f"{path}: a run folder with no done tile")
        return done
    found = sorted(
        file
        for file in path.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in file.relative_to(path).parts)
    )
    if not found:
        raise FileNotFoundError(f"{path}: no Parquet partitions below it")
    return found


def partition_nz(
    path: str | os.PathLike[str],
    *,
    model: str,
    tomo_edges: npt.ArrayLike,
    grid_edges: npt.ArrayLike,
    point_column: str | None = None,
    truth_column: str | None = None,
    id_column: str = "object_id",
    replicates: int = 100,
    seed: int = 0,
) -> NzSums:
    """The n(z) sums of one partition (the task each worker runs).

    Parameters
    ----------
    path
        A Parquet partition with ``id_column``, ``z_<model>_pz`` and the point estimate.
    model
        The ``<m>`` of ``z_<m>``.
    tomo_edges, grid_edges
        Tomographic edges and the grid of the stacks.
    point_column
        Column choosing the tomographic bin (default ``z_<model>``).
    truth_column
        True-redshift column, used where the partition has it (None: no truth).
    id_column
        Integer identifiers of the galaxies (their bootstrap weights hash them).
    replicates, seed
        Bootstrap replicates and seed.
    """
    point = point_column or f"z_{model}"
    schema = pq.read_schema(path)
    names = schema.names
    wanted = [id_column, point, f"z_{model}{PZ_SUFFIX}"]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"{path}: no column {missing} (columns: {names})")
    id_type = schema.field(id_column).type
    if not pa.types.is_integer(id_type):
        raise ValueError(f"{path}: id column {id_column!r} is {id_type}, not integers")
    has_truth = truth_column is not None and truth_column in names
    table = pq.read_table(path, columns=wanted + ([truth_column] if has_truth else []))
    return nz_partial(
        table.column(point).to_numpy(zero_copy_only=False).astype(np.float64),
        compact_column(table, model),
        table.column(id_column).to_numpy(zero_copy_only=False),
        tomo_edges=tomo_edges,
        grid_edges=grid_edges,
        replicates=replicates,
        seed=seed,
        z_true=table.column(truth_column).to_numpy(zero_copy_only=False) if has_truth else None,
    )


def compute_nz(
    partitions: Sequence[str | os.PathLike[str]],
    *,
    model: str,
    tomo_edges: npt.ArrayLike,
    grid_edges: npt.ArrayLike,
    client: Client | None = None,
    point_column: str | None = None,
    truth_column: str | None = None,
    id_column: str = "object_id",
    replicates: int = 100,
    seed: int = 0,
) -> NzSums:
    """The n(z) sums of a catalogue: one task per partition, added on the client.

    Parameters
    ----------
    partitions
        Parquet partitions (`catalog_partitions`).
    client
        A Dask client (:func:`~csst_photoz.pipeline.connect`); None: in this process, one
        partition after the other.
    model, tomo_edges, grid_edges, point_column, truth_column, id_column, replicates, seed
        As `partition_nz`.
    """
    if not partitions:
        raise ValueError("n(z) needs at least one partition")
    task = functools.partial(
        partition_nz,
        model=model,
        tomo_edges=np.asarray(tomo_edges, dtype=np.float64),
        grid_edges=np.asarray(grid_edges, dtype=np.float64),
        point_column=point_column,
        truth_column=truth_column,
        id_column=id_column,
        replicates=replicates,
        seed=seed,
    )
    paths = [str(p) for p in partitions]
    if client is None:
        return functools.reduce(lambda a, b: a + b, map(task, paths))
    from distributed import as_completed

    futures = client.map(task, paths, key=[f"nz-{model}-{i}-{p}" for i, p in enumerate(paths)])
    total: NzSums | None = None
    for future in as_completed(futures):
        part = future.result()
        total = part if total is None else total + part
        future.release()
    assert total is not None
    return total
