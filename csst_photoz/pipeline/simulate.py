"""Distributed tile simulation: a short task chain per tile, bounded submission, resumable.

Per tile: a task draws the galaxies, writes the truth table (Parquet) and stages the zarr
group; seven band tasks render one band each into the staged group (a full 9216 x 9232 CSST
detector is rendered seven-fold in parallel, with ~1.5 GB per task); a last task publishes the
group by renaming it into place. Paths depend only on the tile id, and the published zarr group
marks a finished tile, so a rerun leaves it out before submission (tiles go through the bounded
window of :func:`~.submit.submit_bounded`). Task payloads are specs, settings and paths, never
arrays. The pixels depend only on the spec (master seed, tile id), not on which worker ran what.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from distributed import Client, Future

from ..instrument import Instrument, InstrumentConfig
from ..io import read_parquet_table, write_parquet_atomic
from ..io.paths import tile_store_path, tile_truth_path
from ..io.tile_zarr import TileZarrWriter, tile_size_on_disk
from ..sim.population import PopulationConfig
from ..sim.render import RenderSettings
from ..sim.tiles import DetectorEffects, TileSpec, band_planes, tile_attributes, tile_truth
from .submit import submit_bounded

__all__ = ["TileSimulationResult", "simulate_tiles"]


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


@dataclass(frozen=True)
class _Prepared:
    spec: TileSpec
    writer: TileZarrWriter | None  # None: the tile was already done
    truth_path: Path
    n_galaxies: int


def _prepare_tile(
    spec: TileSpec,
    out_dir: str,
    *,
    instrument_json: str,
    population_config: PopulationConfig,
    render: RenderSettings,
    effects: DetectorEffects,
    overwrite: bool,
) -> _Prepared:
    """Draw the tile's galaxies, write its truth table, and stage its zarr group."""
    store = tile_store_path(out_dir, spec.tile_id)
    truth_path = tile_truth_path(out_dir, spec.tile_id)
    if not overwrite and _is_finished(Path(out_dir), spec.tile_id):  # e.g. by a concurrent run
        return _Prepared(spec, None, truth_path, -1)
    for stale in store.parent.glob(f".{store.name}.*.tmp"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    instrument = _instrument(instrument_json)
    truth = tile_truth(spec, instrument=instrument, population_config=population_config)
    write_parquet_atomic(truth, truth_path)
    attributes = tile_attributes(
        spec, instrument=instrument, n_galaxies=truth.num_rows, render=render, effects=effects
    )
    shape = (len(instrument.band_names), spec.ny, spec.nx)
    writer = TileZarrWriter(store, shape, attributes)
    return _Prepared(spec, writer, truth_path, truth.num_rows)


def _render_band(
    prepared: _Prepared,
    band_index: int,
    *,
    instrument_json: str,
    render: RenderSettings,
    effects: DetectorEffects,
) -> float:
    """Render one band of a staged tile into its zarr group; returns the seconds it took."""
    if prepared.writer is None:
        return 0.0
    start = time.perf_counter()
    truth = read_parquet_table(prepared.truth_path)
    for b, image, variance, mask in band_planes(
        prepared.spec,
        truth,
        instrument=_instrument(instrument_json),
        render=render,
        effects=effects,
        band_indices=[band_index],
    ):
        prepared.writer.write_band(b, image, variance, mask)
    return time.perf_counter() - start


def _commit_tile(prepared: _Prepared, *band_seconds: float) -> TileSimulationResult:
    """Publish the tile once every band is written (the tile store marks a finished tile)."""
    store = tile_store_path(prepared.truth_path.parent, prepared.spec.tile_id)
    if prepared.writer is None:
        return TileSimulationResult(prepared.spec.tile_id, -1, 0.0, tile_size_on_disk(store), True)
    prepared.writer.commit()
    return TileSimulationResult(
        prepared.spec.tile_id,
        prepared.n_galaxies,
        float(sum(band_seconds)),
        tile_size_on_disk(store),
        False,
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
        One per tile: the tiles found finished (``skipped``) first, then the others in
        completion order.

    Raises
    ------
    RuntimeError
        When a tile still fails after ``retries`` (naming the tile); the tiles in flight are
        cancelled, those finished stay, so a rerun resumes.
    """
    instrument = instrument if instrument is not None else Instrument.default()
    population_config = population_config if population_config is not None else PopulationConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "instrument_json": instrument.config.model_dump_json(),
        "render": render,
        "effects": effects,
    }
    n_bands = len(instrument.band_names)

    def submit(spec: TileSpec) -> Future:
        """Three steps per tile: stage, one task per band (in parallel), commit."""
        name = f"{spec.seed}-{spec.tile_id}"
        prepared = client.submit(
            _prepare_tile, spec, str(out_dir), population_config=population_config,
            overwrite=overwrite, key=f"tile-prepare-{name}", pure=False, **settings,
        )  # fmt: skip
        bands = [
            client.submit(
                _render_band, prepared, b, key=f"tile-band-{name}-{b}", pure=False, **settings
            )
            for b in range(n_bands)
        ]
        return client.submit(_commit_tile, prepared, *bands, key=f"tile-commit-{name}", pure=False)

    results: list[TileSimulationResult] = []

    def pending() -> Iterator[TileSpec]:  # finished tiles are reported, not submitted
        for spec in specs:
            if not overwrite and _is_finished(out_dir, spec.tile_id):
                store = tile_store_path(out_dir, spec.tile_id)
                results.append(
                    TileSimulationResult(spec.tile_id, -1, 0.0, tile_size_on_disk(store), True)
                )
            else:
                yield spec

    total = len(specs) if isinstance(specs, Sized) else None
    for outcome in submit_bounded(
        client, pending(), submit, window=max_in_flight, retries=retries, total=total,
        progress=progress, desc="tiles", unit="tile",
    ):  # fmt: skip
        if outcome.error is not None:
            raise RuntimeError(
                f"tile {outcome.item.tile_id} failed after {retries} retries: {outcome.error}"
            ) from outcome.error
        results.append(outcome.result)
    return results


def _is_finished(out_dir: Path, tile_id: int) -> bool:
    """Whether a tile's published zarr group and truth table are both in ``out_dir``."""
    return tile_store_path(out_dir, tile_id).exists() and tile_truth_path(out_dir, tile_id).exists()
