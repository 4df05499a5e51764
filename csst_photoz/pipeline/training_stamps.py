"""Distributed training-set simulation: stamps (zarr) aligned row by row with a Parquet table.

The truth catalogue is drawn on the client (small); batches of rows, aligned with the stamp
array's chunks of objects, go to the workers, which render, measure and write their own rows of
``stamps.zarr`` (disjoint chunks, so no two workers touch one chunk) with the batch's table rows
(`~csst_photoz.io.training_set.TrainingSetWriter`). The table is written last, as
``stamps.parquet``, in row order. Batches go through a bounded window, and a rerun into the same
folder renders only the batches not yet written.

A *slice* (`~csst_photoz.pipeline.slices.SliceSpec`) renders one contiguous range of rows of the
same truth catalogue (drawn whole from the seed, then cut), with their global ``stamp_index``;
every row depends only on (seed, row), so the slices merged in order are the single run.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from distributed import Client, Future

from ..instrument import Instrument, InstrumentConfig
from ..io.training_set import (
    STAMP_CHUNK_OBJECTS,
    TrainingSetSettings,
    TrainingSetWriter,
    begin_training_set,
)
from ..sim.catalog import simulate_catalog
from ..sim.population import PopulationConfig
from ..sim.stamps import neighbour_pool, render_stamps
from .slices import SliceSpec
from .submit import submit_bounded

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


def _render_block(
    truth: pa.Table,
    start: int,
    folder: str,
    *,
    config_json: str,
    population_json: str,
    seed: int,
    size: int,
    first_row: int = 0,
) -> int:
    """Render rows ``first_row + start...`` of the set into rows ``start...`` of the folder.

    Returns the number of stamps written.
    """
    instrument, pool = _worker_state(config_json, population_json, seed)
    stamps, table = render_stamps(
        truth,
        instrument=instrument,
        seed=seed,
        size=size,
        pool=pool,
        population_config=PopulationConfig.model_validate_json(population_json),
        index_offset=first_row + start,
    )
    TrainingSetWriter(folder).write_block(start, stamps, table)
    return table.num_rows


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
    max_in_flight: int | None = None,
    overwrite: bool = False,
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

    Blocks of ``32 x batch_chunks`` rows are submitted through a bounded window
    (:func:`~csst_photoz.pipeline.submit.submit_bounded`), each one written with its table
    rows as soon as it is rendered. Rerunning into the same folder with the same settings
    resumes: finished blocks are skipped, and the files are those of an uninterrupted run.

    Parameters
    ----------
    n
        Stamps in the whole set.
    out_dir
        The training-set folder.
    client
        Dask client (see :func:`csst_photoz.pipeline.connect`).
    seed
        Master seed: every stamp depends only on (seed, row).
    instrument, population_config
        Simulation settings (default: the packaged instrument, the paper's population).
    size
        Stamp side [pixels].
    selected_only
        Draw only galaxies passing the paper's SNR > 10 (g or i) selection.
    batch_chunks
        Zarr chunks (of 32 stamps) per task.
    retries
        Dask retries per block.
    max_in_flight
        Blocks submitted at once (default: twice the number of worker threads).
    overwrite
        Start over in a folder holding another (or an unfinished) training set, instead of
        resuming it.
    progress
        Show a progress bar.
    slice_spec
        Render only this slice of the ``n`` rows.

    Returns
    -------
    pyarrow.Table
        The table written to ``stamps.parquet``.

    Raises
    ------
    TrainingDataError
        When ``out_dir`` holds a training set made with other settings (without
        ``overwrite``).
    RuntimeError
        When a block still fails after ``retries`` (naming its rows); the blocks written
        stay, so a rerun resumes.
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
    settings = TrainingSetSettings(
        n=stop - first,
        bands=tuple(instrument.band_names),
        size=size,
        seed=seed,
        pixel_scale_arcsec=instrument.config.pixel_scale_arcsec,
        instrument_config=json.loads(instrument.config.model_dump_json()),
        selected_only=selected_only,
        slice=None if slice_spec is None else slice_spec.metadata(n),
        population_config=json.loads(population.model_dump_json()),
    )
    writer = begin_training_set(out_dir, settings, resume=not overwrite)
    kwargs = {
        "config_json": instrument.config.model_dump_json(),
        "population_json": population.model_dump_json(),
        "seed": seed,
        "size": size,
        "first_row": first,
    }

    def submit(block: tuple[int, int]) -> Future:
        start, stop = block  # rows of the folder; rows first + start... of the whole set
        return client.submit(
            _render_block, truth.slice(start, stop - start), start, str(writer.folder),
            **kwargs, key=f"stamps-{seed}-{first + start}", pure=False,
        )  # fmt: skip

    blocks = [] if writer.complete else writer.pending_blocks(STAMP_CHUNK_OBJECTS * batch_chunks)
    for outcome in submit_bounded(
        client, blocks, submit, window=max_in_flight, retries=retries, total=len(blocks),
        progress=progress, desc="stamp blocks", unit="block",
    ):  # fmt: skip
        if outcome.error is not None:
            start, stop = outcome.item
            raise RuntimeError(
                f"{out_dir}: stamps [{first + start}, {first + stop}) failed after {retries} "
                f"retries: {outcome.error}; rerun to resume"
            ) from outcome.error
    return writer.finish()
