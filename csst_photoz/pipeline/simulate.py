"""Distributed tile simulation: one Dask task per tile, bounded submission, resumable.

Each task simulates one tile and writes it (zarr) and its truth table (Parquet) to paths that
depend only on the tile id; a tile whose two files exist is skipped on a rerun. Task payloads
are tile specs and settings (small), never arrays. The result of a tile depends only on its
spec (the master seed and tile id), not on which worker ran it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path

from distributed import Client, as_completed
from tqdm.auto import tqdm

from ..instrument import Instrument, InstrumentConfig
from ..io import write_parquet_atomic
from ..io.paths import tile_store_path, tile_truth_path
from ..io.tile_zarr import tile_size_on_disk, write_tile_zarr
from ..sim.population import PopulationConfig
from ..sim.render import RenderSettings
from ..sim.tiles import DetectorEffects, TileSpec, simulate_tile

__all__ = ["TileSimulationResult", "simulate_one_tile", "simulate_tiles"]


@dataclass(frozen=True)
class TileSimulationResult:
    """What one tile task reports back (small, so it travels cheaply)."""

    tile_id: int
    n_galaxies: int
    seconds: float
    bytes_on_disk: int
    skipped: bool


@lru_cache(maxsize=4)
def _instrument(config_json: str) -> Instrument:
    """One Instrument per worker process and configuration (not one per task)."""
    return Instrument(InstrumentConfig.model_validate_json(config_json))


def simulate_one_tile(
    spec: TileSpec,
    out_dir: str,
    *,
    instrument_json: str,
    population_config: PopulationConfig,
    render: RenderSettings,
    effects: DetectorEffects,
    overwrite: bool = False,
) -> TileSimulationResult:
    """Simulate and write one tile; the task each worker runs."""
    store, truth_path = (
        tile_store_path(out_dir, spec.tile_id),
        tile_truth_path(out_dir, spec.tile_id),
    )
    if not overwrite and store.exists() and truth_path.exists():
        return TileSimulationResult(spec.tile_id, -1, 0.0, tile_size_on_disk(store), True)
    start = time.perf_counter()
    tile, truth = simulate_tile(
        spec,
        instrument=_instrument(instrument_json),
        population_config=population_config,
        render=render,
        effects=effects,
    )
    # truth first, tile last: the tile store's presence marks a finished tile
    write_parquet_atomic(truth, truth_path)
    write_tile_zarr(tile, store)
    seconds = time.perf_counter() - start
    return TileSimulationResult(
        spec.tile_id, truth.num_rows, seconds, tile_size_on_disk(store), False
    )


def simulate_tiles(
    specs: Iterable[TileSpec],
    out_dir: str | Path,
    *,
    client: Client,
    instrument: Instrument | None = None,
    population_config: PopulationConfig | None = None,
    render: RenderSettings = RenderSettings(),
    effects: DetectorEffects = DetectorEffects(),
    overwrite: bool = False,
    retries: int = 2,
    max_in_flight: int | None = None,
    progress: bool = True,
) -> list[TileSimulationResult]:
    """Simulate tiles on a Dask cluster, writing ``tile_<id>.zarr`` and truth Parquet files.

    Parameters
    ----------
    specs
        Tiles to simulate (any iterable; consumed lazily, so a long list never builds a large
        graph).
    out_dir
        Output folder.
    client
        Dask client (see :func:`csst_photoz.pipeline.connect`).
    instrument, population_config, render, effects
        Simulation settings shared by all tiles.
    overwrite
        Re-simulate tiles whose files exist (default: skip them, so reruns resume).
    retries
        Dask retries per tile (a worker dying mid-tile re-runs it elsewhere).
    max_in_flight
        Tiles submitted at once (default: twice the number of worker threads).
    progress
        Show a progress bar.

    Returns
    -------
    list of TileSimulationResult
        One per tile, in completion order.
    """
    instrument = instrument if instrument is not None else Instrument.default()
    population_config = population_config if population_config is not None else PopulationConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = max_in_flight or 2 * max(1, sum(client.nthreads().values()))
    instrument_json = instrument.config.model_dump_json()
    specs_iter: Iterator[TileSpec] = iter(specs)

    def submit(spec: TileSpec):
        return client.submit(
            simulate_one_tile,
            spec,
            str(out_dir),
            instrument_json=instrument_json,
            population_config=population_config,
            render=render,
            effects=effects,
            overwrite=overwrite,
            key=f"simulate-tile-{spec.seed}-{spec.tile_id}",
            retries=retries,
            pure=False,
        )

    results: list[TileSimulationResult] = []
    tile_of = {}
    first = []
    for spec in islice(specs_iter, window):
        future = submit(spec)
        tile_of[future.key] = spec.tile_id
        first.append(future)
    pending = as_completed(first)
    total = len(specs) if isinstance(specs, Sized) else None
    with tqdm(desc="tiles", unit="tile", total=total, disable=not progress) as bar:
        for future in pending:
            try:
                results.append(future.result())
            except Exception as exc:
                raise RuntimeError(
                    f"tile {tile_of[future.key]} failed after {retries} retries: {exc}"
                ) from exc
            future.release()
            bar.update(1)
            following = next(specs_iter, None)
            if following is not None:
                new = submit(following)
                tile_of[new.key] = following.tile_id
                pending.add(new)
    return results
