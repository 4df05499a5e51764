"""Distributed training-set simulation: stamps (zarr) aligned row by row with a Parquet table.

The truth catalogue is drawn on the client (small); batches of rows, aligned with the stamp
array's chunks of objects, go to the workers, which render, measure and write their own rows of
``stamps.zarr`` (disjoint chunks, so no two workers touch one chunk) and return the batch's
table. The table is written last, as ``stamps.parquet``, in row order.

A *slice* (`~csst_photoz.pipeline.slices.SliceSpec`) renders one contiguous range of rows of the
same truth catalogue (drawn whole from the seed, then cut), with their global ``stamp_index``;
every row depends only on (seed, row), so the slices merged in order are the single run.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import zarr
from distributed import Client, as_completed
from tqdm.auto import tqdm

from ..instrument import Instrument, InstrumentConfig
from ..io import write_parquet_atomic
from ..io.training_sets import SLICE_ATTR, SLICE_METADATA_KEY, STAMP_CHUNK_OBJECTS
from ..sim.catalog import simulate_catalog
from ..sim.population import PopulationConfig
from ..sim.stamps import neighbour_pool, render_stamps
from .slices import SliceSpec

__all__ = ["STAMP_CHUNK_OBJECTS", "draw_training_truth", "simulate_stamps"]


def draw_training_truth(
    n: int,
    *,
    seed: int,
    instrument: Instrument,
    population_config: PopulationConfig | None = None,
    selected_only: bool = True,
) -> pa.Table:
    """``n`` galaxies for a training set: by default the paper's SNR > 10 (g or i) sample."""
    if not selected_only:
        return simulate_catalog(
            n, seed=seed, instrument=instrument, population_config=population_config
        )
    draw = max(8 * n, 1000)
    while True:
        table = simulate_catalog(
            draw, seed=seed, instrument=instrument, population_config=population_config
        )
        selected = table.filter(table["selected"])
        if selected.num_rows >= n:
            return selected.slice(0, n)
        draw *= 2


@lru_cache(maxsize=2)
def _worker_state(config_json: str, population_json: str, seed: int) -> tuple[Instrument, pa.Table]:
    instrument = Instrument(InstrumentConfig.model_validate_json(config_json))
    population = PopulationConfig.model_validate_json(population_json)
    return instrument, neighbour_pool(seed, instrument=instrument, population_config=population)


def _render_batch(
    truth: pa.Table,
    start: int,
    store: str,
    *,
    config_json: str,
    population_json: str,
    seed: int,
    size: int,
    first_row: int = 0,
) -> tuple[int, pa.Table]:
    """Render rows ``start...`` of the set into rows ``start - first_row...`` of ``store``."""
    instrument, pool = _worker_state(config_json, population_json, seed)
    stamps, table = render_stamps(
        truth,
        instrument=instrument,
        seed=seed,
        size=size,
        pool=pool,
        population_config=PopulationConfig.model_validate_json(population_json),
        index_offset=start,
    )
    local = start - first_row
    zarr.open_array(Path(store) / "stamps", mode="r+")[local : local + truth.num_rows] = stamps
    return start, table


def simulate_stamps(
    n: int,
    out_dir: str | Path,
    *,
    client: Client,
    seed: int,
    instrument: Instrument | None = None,
    population_config: PopulationConfig | None = None,
    size: int = 64,
    selected_only: bool = True,
    batch_chunks: int = 2,
    retries: int = 2,
    progress: bool = True,
    slice_spec: SliceSpec | None = None,
) -> pa.Table:
    """Simulate a training set of ``n`` stamps into ``out_dir`` on a Dask cluster.

    Writes ``stamps.zarr`` (array ``stamps``: float32 (n, n_bands, size, size) electrons,
    chunks of 32 objects, attrs with bands, pixel scale and seed) and ``stamps.parquet``
    (truth, offsets, neighbours and the paper-style Kron photometry, row i = stamp i).

    With ``slice_spec`` only that slice's rows ``[start, stop)`` of the ``n``-row set are
    rendered (the truth is drawn for all ``n`` and cut); ``out_dir`` then holds ``stop -
    start`` stamps with their global ``stamp_index``, and the slice (index, count, start, stop,
    n) is recorded in the zarr attribute ``slice`` and the table metadata
    ``csst_photoz.slice``, for `~csst_photoz.io.training_sets.merge_training_sets`.

    Returns
    -------
    pyarrow.Table
        The table written to ``stamps.parquet``.
    """
    instrument = instrument if instrument is not None else Instrument.default()
    population = population_config if population_config is not None else PopulationConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = draw_training_truth(
        n,
        seed=seed,
        instrument=instrument,
        population_config=population,
        selected_only=selected_only,
    )
    first, stop = (0, n) if slice_spec is None else slice_spec.bounds(n)
    truth = truth.slice(first, stop - first)
    bands = instrument.band_names
    store = out_dir / "stamps.zarr"
    group = zarr.open_group(store, mode="w")
    group.create_array(
        "stamps",
        shape=(stop - first, len(bands), size, size),
        chunks=(STAMP_CHUNK_OBJECTS, len(bands), size, size),
        dtype=np.float32,
        compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
    )
    group.attrs.update(
        {
            "format": "csst_photoz.stamps",
            "bands": list(bands),
            "size": size,
            "unit": "electron",
            "pixel_scale_arcsec": instrument.config.pixel_scale_arcsec,
            "seed": seed,
            "selected_only": selected_only,
            "instrument_config": json.loads(instrument.config.model_dump_json()),
        }
    )
    if slice_spec is not None:
        group.attrs[SLICE_ATTR] = slice_spec.metadata(n)
    batch = STAMP_CHUNK_OBJECTS * batch_chunks
    kwargs = {
        "config_json": instrument.config.model_dump_json(),
        "population_json": population.model_dump_json(),
        "seed": seed,
        "size": size,
    }
    futures = [
        client.submit(
            _render_batch,
            truth.slice(start - first, batch),
            start,
            str(store),
            **kwargs,
            first_row=first,
            key=f"stamps-{seed}-{start}",
            retries=retries,
            pure=False,
        )
        for start in range(first, stop, batch)
    ]
    tables: dict[int, pa.Table] = {}
    with tqdm(total=stop - first, desc="stamps", unit="stamp", disable=not progress) as bar:
        for future in as_completed(futures):
            start, table = future.result()
            tables[start] = table
            bar.update(table.num_rows)
    table = pa.concat_tables([tables[start] for start in sorted(tables)])
    if slice_spec is not None:
        metadata = {**(table.schema.metadata or {})}
        metadata[SLICE_METADATA_KEY] = json.dumps(slice_spec.metadata(n)).encode()
        table = table.replace_schema_metadata(metadata)
    write_parquet_atomic(table, out_dir / "stamps.parquet")
    return table
