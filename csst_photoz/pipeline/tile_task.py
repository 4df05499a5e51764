"""One tile, end to end, as one Dask task: read -> measure -> stamps -> inference -> write.

`process_tile` is what the run submits per tile. Its payload is a :class:`TileJob` (paths, a
configuration and checkpoint references; never arrays). It is idempotent: the partition path
is a function of the tile id, written atomically, and the done-marker is written last, so a
task that Dask re-runs (a worker died after writing) finds the marker and returns at once.

Models are loaded once per worker process (a cached loader keyed by checkpoint digests and
device), not once per task. On a GPU worker the tile is copied to the device once; detection,
apertures, stamps and inference run there, and only the per-source table comes back. Between
tiles the CuPy and torch caching allocators release their free blocks, so the two libraries
share the device without one starving the other.

Bad input (a :class:`~csst_photoz.tile.TileDataError`: a corrupt or truncated tile, wrong
shape, missing bands, invalid pixels that defeat the measurement; or an unreadable file) is not
retried: it comes back as a ``failed`` result naming the file and the problem, and the run goes
on. Anything else raises, so Dask retries it and the run records it as an error.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from .. import __version__
from ..io.run_store import RunStore, TileRecord
from ..io.tile_sources import TileSource
from ..photometry import measure_tile
from ..threads import limit_threads
from ..tile import TileDataError
from .config import PipelineConfig
from .gpu_memory import device_memory_errors

__all__ = [
    "CheckpointRef",
    "TileJob",
    "TileResult",
    "prepare_worker",
    "process_tile",
    "worker_device",
]


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint to run: name, file, tensor digest, calibration factor and input columns.

    ``flux_columns`` and ``error_columns`` are the photometry catalogue's columns the network
    reads, in its band order (empty for stamp-only networks), chosen from the checkpoint's
    input declaration (:func:`~csst_photoz.photometry.catalog.flux_input_columns`).
    """

    name: str
    path: str
    sha256: str
    variant: str
    sigma_scale: float = 1.0
    flux_columns: tuple[str, ...] = ()
    error_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class TileJob:
    """What every tile task shares (small and picklable)."""

    out_dir: str
    config_json: str
    checkpoints: tuple[CheckpointRef, ...]
    bands: tuple[str, ...]


@dataclass(frozen=True)
class TileResult:
    """What a tile task reports back.

    ``status`` is ``"done"`` (partition written now), ``"skipped"`` (done before) or
    ``"failed"`` (bad input; ``reason`` says why).
    """

    source: str
    status: str
    tile_id: int | None = None
    rows: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    reason: str = ""


@lru_cache(maxsize=4)
def _config(config_json: str) -> PipelineConfig:
    return PipelineConfig.model_validate_json(config_json)


def _cuda_usable() -> bool:
    try:
        import cupy
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:
        return False


def worker_device(config: PipelineConfig) -> str:
    """``"cuda"`` or ``"cpu"``: where this process runs photometry and inference."""
    if config.device == "cpu":
        return "cpu"
    if _cuda_usable():
        return "cuda"
    if config.device == "cuda":
        raise RuntimeError(f"device='cuda' asked but no usable GPU on {socket.gethostname()}")
    return "cpu"


@lru_cache(maxsize=2)
def _models(checkpoints: tuple[CheckpointRef, ...], device: str) -> dict[str, Any]:
    """The networks, loaded once per worker process and device."""
    from ..models import load_model

    models = {}
    for ref in checkpoints:
        model = load_model(ref.path, map_location=device)
        digest = model.checkpoint_metadata.state_dict_sha256
        if digest != ref.sha256:
            raise RuntimeError(
                f"{ref.path}: checkpoint changed since the run started (tensor digest "
                f"{digest} != {ref.sha256})"
            )
        if model.sigma_scale != ref.sigma_scale:
            raise RuntimeError(
                f"{ref.path}: checkpoint recalibrated since the run started (sigma scale "
                f"{model.sigma_scale} != {ref.sigma_scale})"
            )
        models[ref.name] = model
    return models


def prepare_worker(job: TileJob) -> str:
    """Load the job's networks into this worker process ahead of its first tile.

    Optional (a tile task loads them on first use); benchmarks call it on every worker with
    ``client.run`` so that timed runs exclude the one-off loading. Returns the device.
    """
    device = worker_device(_config(job.config_json))
    if job.checkpoints:
        _models(job.checkpoints, device)
    return device


def _array_module(device: str) -> ModuleType:
    if device == "cuda":
        import cupy

        return cupy
    return np


class _StageClock:
    """Wall time per stage, synchronising the GPU before each reading."""

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp
        self.seconds: dict[str, float] = {}

    def sync(self) -> None:
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _release_device_memory(device: str) -> None:
    if device != "cuda":
        return
    import cupy
    import torch

    cupy.get_default_memory_pool().free_all_blocks()
    torch.cuda.empty_cache()


def _with_photoz(table: pa.Table, estimates: dict[str, Any], job: TileJob) -> pa.Table:
    """The photometry table with the photo-z columns of every model, and run metadata.

    Per model ``z_<name>``, ``z_<name>_err``, ``z_<name>_flag`` and, for a model with a p(z)
    head, the p(z) columns of :mod:`csst_photoz.pz.columns`. The flag is the uint16 domain flag
    of :mod:`csst_photoz.models.domain`.
    """
    from ..models.domain import flag_description  # torch is imported by the inference stage
    from ..pz.columns import photoz_columns

    for ref in job.checkpoints:
        estimate = estimates[ref.name]
        table = table.append_column(
            pa.field(f"z_{ref.name}", pa.float32(), metadata={
                "unit": "", "description": f"photometric redshift ({ref.variant})"}),
            pa.array(estimate.z, type=pa.float32()),
        )  # fmt: skip
        table = table.append_column(
            pa.field(f"z_{ref.name}_err", pa.float32(), metadata={
                "unit": "", "description": f"1-sigma uncertainty of z_{ref.name}"}),
            pa.array(estimate.z_err, type=pa.float32()),
        )  # fmt: skip
        table = table.append_column(
            pa.field(f"z_{ref.name}_flag", pa.uint16(), metadata={
                "unit": "", "description": flag_description(f"z_{ref.name}")}),
            pa.array(estimate.flag, type=pa.uint16()),
        )  # fmt: skip
        for pz_field, values in photoz_columns(estimate, ref.name):  # none without a p(z) head
            table = table.append_column(pz_field, values)
    metadata = dict(table.schema.metadata or {})
    metadata[b"csst_photoz.models"] = json.dumps(
        [{"name": r.name, "variant": r.variant, "file": os.path.basename(r.path),
          "state_dict_sha256": r.sha256} for r in job.checkpoints]
    ).encode()  # fmt: skip
    metadata[b"csst_photoz.pipeline"] = job.config_json.encode()
    metadata[b"csst_photoz.version"] = __version__.encode()
    return table.replace_schema_metadata(metadata)


def _flux_inputs(
    table: pa.Table, checkpoints: tuple[CheckpointRef, ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """The catalogue columns the flux networks read, and each network's positions in them."""
    pairs: list[tuple[str, str]] = []
    index: dict[str, list[int]] = {}
    for ref in checkpoints:
        index[ref.name] = []
        for pair in zip(ref.flux_columns, ref.error_columns, strict=True):
            if pair not in pairs:
                pairs.append(pair)
            index[ref.name].append(pairs.index(pair))

    def stack(names: list[str]) -> np.ndarray:
        columns = [table[name].to_numpy() for name in names]
        return np.stack(columns, axis=1) if columns else np.zeros((table.num_rows, 0))

    return stack([f for f, _ in pairs]), stack([e for _, e in pairs]), index


def _measure_and_infer(
    tile: Any, job: TileJob, config: PipelineConfig, device: str, clock: _StageClock
) -> pa.Table:
    from ..models.inference import predict_catalog

    xp = _array_module(device)
    with clock.stage("photometry"):  # its parts as "photometry/<part>" (MEASURE_STAGES, ...)
        photometry = measure_tile(
            tile, config=config.photometry, xp=xp, overwrite_input=True,  # the tile is ours
            stage=lambda name: clock.stage(f"photometry/{name}"),
        )  # fmt: skip
    table = photometry.table
    with clock.stage("load_models"):  # once per worker process (cached), ~0 after
        models = _models(job.checkpoints, device) if job.checkpoints else {}
    fluxes, errors, flux_index = _flux_inputs(table, job.checkpoints)
    stamp_seconds = 0.0

    def cut(rows: np.ndarray) -> Any:
        nonlocal stamp_seconds
        clock.sync()
        start = time.perf_counter()
        stamps, _ = photometry.stamps(rows, seed=config.stamp_seed)
        clock.sync()
        stamp_seconds += time.perf_counter() - start
        return stamps

    threads = config.torch_threads if device == "cpu" and models else None
    with clock.stage("inference"), limit_threads(threads):
        estimates = predict_catalog(
            models, tile.bands, fluxes, errors, cut, flux_index=flux_index,
            batch_size=config.inference_batch_size(device),
            mixed_precision=config.mixed_precision, seed=config.stamp_seed,
        )  # fmt: skip
    clock.seconds["inference"] -= stamp_seconds
    clock.seconds["stamps"] = stamp_seconds
    return _with_photoz(table, estimates, job)


def process_tile(source: TileSource, job: TileJob) -> TileResult:
    """Process one tile into its catalogue partition (the Dask task).

    Parameters
    ----------
    source
        The tile to read.
    job
        Output folder, settings and checkpoints shared by the run.

    Returns
    -------
    TileResult
        ``done``, ``skipped`` (its marker and partition were already in place) or ``failed``
        (bad input, with the reason).
    """
    config = _config(job.config_json)
    store = RunStore(job.out_dir)
    device = worker_device(config)
    clock = _StageClock(np)
    start = time.perf_counter()
    try:
        with clock.stage("read"):
            tile = source.read(job.bands)  # its reasons name what is wrong with the data
            identity = source.identity(job.bands)
    except (TileDataError, OSError) as error:
        return TileResult(source.key, "failed", source.tile_id, reason=str(error))
    # the claim follows the tile's content, not its path: a moved tile is the same tile
    holder = store.claim(tile.tile_id, source.key, identity.checksum)
    if holder is not None:
        return TileResult(
            source.key, "failed", tile.tile_id,
            reason=f"{source.key}: tile id {tile.tile_id} was already produced from {holder}",
        )  # fmt: skip
    marker = store.read_marker(tile.tile_id)
    if marker is not None and store.is_done(marker):
        return TileResult(source.key, "skipped", tile.tile_id, rows=marker.rows)
    clock.xp = _array_module(device)
    try:
        try:
            with device_memory_errors(f"tile {tile.tile_id} ({source.key})"):
                table = _measure_and_infer(tile, job, config, device, clock)
        except TileDataError as error:  # the measurement refuses the data (naming the tile)
            return TileResult(source.key, "failed", tile.tile_id, reason=f"{source.key}: {error}")
    finally:
        _release_device_memory(device)
    with clock.stage("write"):
        path, size, sha256 = store.write_partition(tile.tile_id, table)
    seconds = time.perf_counter() - start
    stages = {name: round(value, 6) for name, value in clock.seconds.items()}
    store.write_marker(
        TileRecord(
            tile_id=tile.tile_id, source=source.key, partition=str(path.relative_to(store.root)),
            rows=table.num_rows, bytes=size, sha256=sha256, seconds=seconds,
            worker=f"{socket.gethostname()}:{os.getpid()}", device=device, stage_seconds=stages,
            checksum=identity.checksum,
        )
    )  # fmt: skip
    return TileResult(source.key, "done", tile.tile_id, table.num_rows, seconds, stages)
