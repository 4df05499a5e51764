"""The batch processor: tiles in, a per-tile partitioned photo-z catalogue out, on Dask.

``run(tiles, out)`` resolves every tile named (paths, globs, manifests: see
:mod:`csst_photoz.io.tile_sources`) before any work, so a bad argument stops the run at once,
skips those the output folder already holds, and submits
one :func:`~.tile_task.process_tile` task per tile through a bounded window of
``distributed.as_completed`` (at most ``max_in_flight`` tiles in the graph, however many tiles
there are). Task keys are deterministic per tile; Dask retries a task whose worker died
(``retries``); a tile with bad data comes back as a failure with its reason and the run goes on.
Checkpoints are checked first (:func:`resolve_checkpoints`: bands, declared input columns): a
checkpoint that does not fit stops the run with one `CheckpointError` before any tile.
Failures and results are recorded as they arrive, so an interrupted run resumes where it
stopped. At the end ``manifest.parquet`` and ``failures.parquet`` are written (see
:class:`~csst_photoz.io.run_store.RunStore`) and a :class:`RunSummary` is returned.
"""

from __future__ import annotations

import errno
import os
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from dask.utils import format_bytes
from distributed import Client, KilledWorker

from .. import __version__
from ..checkpoints import checkpoint_files, shipped_checkpoints
from ..constants import CSST_BANDS
from ..io.run_store import RunStore, TileFailure, TileRecord
from ..io.tile_sources import TileIdentity, TileSource, iter_tile_sources
from ..photometry import PhotometryConfig
from ..photometry.catalog import STAMP_UNIT, flux_input_columns
from ..tile import TileDataError
from .cluster import ClusterError, connect, gpus_visible, memory_limit_bytes
from .config import SCHEDULING_KEYS, PipelineConfig
from .submit import default_window, submit_bounded, task_per_item
from .tile_task import CheckpointRef, TileJob, TileResult, process_tile, worker_device

__all__ = ["RunSummary", "resolve_checkpoints", "run"]


@dataclass
class RunSummary:
    """What a run did.

    Attributes
    ----------
    out
        The run folder.
    tiles_done, tiles_skipped, tiles_failed
        Tiles processed now, found done from an earlier run, and failed.
    galaxies
        Sources written now (rows of the new partitions).
    wall_seconds
        Wall time of the run (cluster start-up excluded).
    stage_seconds
        Summed task time per stage (read, photometry, load_models, stamps, inference,
        write), and of the parts of photometry as ``photometry/<part>`` (to_device,
        pixel_masks, background, detection, kron_and_snr, apertures, catalogue).
    failures
        The failed tiles with their reasons.
    models
        Catalogue column name -> checkpoint file.
    """

    out: Path
    tiles_done: int = 0
    tiles_skipped: int = 0
    tiles_failed: int = 0
    galaxies: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[TileFailure] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)

    @property
    def galaxies_per_second(self) -> float:
        """Sources written per second of wall time."""
        return self.galaxies / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def __str__(self) -> str:
        stages = ", ".join(  # the top-level stages; "photometry/<part>" is in stage_seconds
            f"{k} {v:.1f} s" for k, v in self.stage_seconds.items() if "/" not in k
        )
        lines = [
            f"run {self.out}: {self.tiles_done} tiles done, {self.tiles_skipped} skipped "
            f"(done earlier), {self.tiles_failed} failed",
            f"{self.galaxies} galaxies in {self.wall_seconds:.1f} s "
            f"({self.galaxies_per_second:.1f} galaxies/s); task time: {stages or 'none'}",
            f"models: {', '.join(self.models) or 'none (photometry only)'}",
        ]
        lines += [f"FAILED {f.source}: {f.reason}" for f in self.failures]
        return "\n".join(lines)


def resolve_checkpoints(
    models: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    *,
    bands: Sequence[str] | None = None,
    photometry: PhotometryConfig | None = None,
) -> list[CheckpointRef]:
    """The checkpoints to run, with their catalogue column names, checked before any tile.

    Parameters
    ----------
    models
        None: the checkpoints shipped with the package; a folder: its ``*.pt`` files; a
        file or a list of files; an empty list: none (photometry only).
    bands
        The run's bands: every checkpoint's bands must be among them (None: not checked).
    photometry
        The photometry settings of the run (default: the paper's); every flux network's
        declared inputs (unit and flux definition per band) must be columns of the catalogue
        they measure (:func:`~csst_photoz.photometry.catalog.flux_input_columns`).

    Returns
    -------
    list of CheckpointRef
        Named ``z_<variant>`` (``mlp``, ``cnn``, ``hybrid``, ``hybrid_transfer``; ``_2``, ... for
        repeats), with the catalogue columns each network reads.

    Raises
    ------
    FileNotFoundError
        On a missing checkpoint, or a folder without any.
    CheckpointError
        On an unreadable checkpoint, one for bands the run lacks, or inputs the catalogue
        cannot provide (naming the file and the band, column or unit).
    """
    from ..models import CheckpointError, read_metadata

    photometry = photometry or PhotometryConfig()
    if models is None:
        files = shipped_checkpoints()
    elif isinstance(models, (str, os.PathLike)) and Path(models).is_dir():
        files = checkpoint_files(models)
        if not files:  # not a silent photometry-only run
            raise FileNotFoundError(
                f"{models}: no checkpoints (*.pt) in this folder; for photometry only, give no "
                "models (--no-models, models=[])"
            )
    elif isinstance(models, (str, os.PathLike)):
        files = [Path(models)]
    else:
        files = [Path(m) for m in models]
    refs, taken = [], set()
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint not found: {file}")
        metadata = read_metadata(file)
        missing = [band for band in metadata.bands if bands is not None and band not in bands]
        if missing:
            raise CheckpointError(
                f"{file}: the {metadata.variant} network needs bands {list(metadata.bands)}; "
                f"the run has {list(bands or ())}, without {missing}"
            )
        columns = []
        for entry in metadata.inputs.fluxes:
            try:
                columns.append(
                    flux_input_columns(
                        entry.band, unit=entry.unit, aperture=entry.aperture, config=photometry
                    )
                )
            except ValueError as error:
                raise CheckpointError(
                    f"{file}: declares input {entry.flux!r} ({entry.unit}, {entry.aperture}), "
                    f"which this run cannot provide: {error}"
                ) from None
        stamps = metadata.inputs.stamps
        if stamps is not None and stamps.unit != STAMP_UNIT:
            raise CheckpointError(
                f"{file}: declares stamps in {stamps.unit!r}; this run cuts them in {STAMP_UNIT!r}"
            )
        variant = metadata.variant
        name, k = variant.replace("-", "_"), 2
        while name in taken:
            name, k = f"{variant.replace('-', '_')}_{k}", k + 1
        taken.add(name)
        refs.append(
            CheckpointRef(
                name,
                str(file.resolve()),
                metadata.state_dict_sha256,
                variant,
                metadata.sigma_scale,
                tuple(flux for flux, _ in columns),
                tuple(error for _, error in columns),
            )
        )
    return refs


def _record(store: RunStore, source: TileSource, result: TileResult, summary: RunSummary) -> None:
    if result.status == "failed":
        failure = TileFailure(result.source, result.reason, result.tile_id, "data")
        store.record_failure(source.digest, failure)
        summary.tiles_failed += 1
        summary.failures.append(failure)
        return
    store.clear_failure(source.digest)
    store.clear_failures_of_tile(result.tile_id)  # e.g. recorded under the tile's old path
    # "skipped": this run's own earlier attempt wrote it (a retried task whose worker died
    # after the marker), since only tiles not done when the run started are submitted
    summary.tiles_done += 1
    summary.galaxies += result.rows
    for stage, seconds in result.stage_seconds.items():
        summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + seconds


def _submit_all(
    client: Client,
    sources: Iterator[TileSource],
    job: TileJob,
    store: RunStore,
    summary: RunSummary,
    *,
    retries: int,
    window: int,
    progress: bool,
    total: int | None,
) -> None:
    start = time.perf_counter()

    def counters() -> dict[str, Any]:
        elapsed = max(time.perf_counter() - start, 1e-9)
        return {
            "done": summary.tiles_done,
            "failed": summary.tiles_failed,
            "galaxies_s": f"{summary.galaxies / elapsed:.0f}",
        }

    submit = task_per_item(client, process_tile, key=_tile_key, job=job)
    for outcome in submit_bounded(
        client, sources, submit, window=window, retries=retries, total=total,
        progress=progress, desc="tiles", unit="tile", postfix=counters,
    ):  # fmt: skip
        source = outcome.item
        if outcome.error is None:
            _record(store, source, outcome.result, summary)
            continue
        # retries exhausted: a worker kept dying, or a bug (bad tile data is a TileResult)
        error = outcome.error
        reason = "".join(traceback.format_exception_only(type(error), error)).strip()
        if isinstance(error, KilledWorker):
            reason = (
                f"{source.key}: the worker running it died on every try (Dask's "
                f"allowed-failures; out of memory? see --memory-limit): {reason}"
            )
        failure = TileFailure(source.key, reason, source.tile_id, "error")
        store.record_failure(source.digest, failure)
        summary.tiles_failed += 1
        summary.failures.append(failure)


def _tile_key(source: TileSource) -> str:
    return f"photoz-tile-{source.digest}"


#: Memory of a CPU worker process with the shipped networks loaded, Dask included, and the
#: peak memory per pixel (7 bands) of a tile on it: measured by
#: ``benchmarks/faults_memory.py`` (373 MB before Dask's worker, 126 bytes/pixel between
#: 512^2 and 2048^2 tiles; ``benchmarks/results/faults_memory.md``), and 132 bytes/pixel from
#: the 12.0 GB peak of a full 9216 x 9232 tile (``benchmarks/README.md``).
WORKER_BASE_BYTES = 500_000_000
TILE_BYTES_PER_PIXEL = 132


def memory_needed(pixels: int, checkpoints: Sequence[CheckpointRef]) -> int:
    """Bytes a worker needs to process a tile of ``pixels`` pixels per band with ``checkpoints``.

    The measured worker size (`WORKER_BASE_BYTES`), twice the checkpoint files (their tensors
    loaded, plus torch's working memory), and `TILE_BYTES_PER_PIXEL` per pixel.
    """
    networks = sum(2 * os.path.getsize(ref.path) for ref in checkpoints)
    return WORKER_BASE_BYTES + networks + TILE_BYTES_PER_PIXEL * pixels


def _memory_fraction(name: str, default: float) -> float:
    fraction = dask.config.get(f"distributed.worker.memory.{name}", default=default)
    return float(fraction) if fraction else 1.0


def _check_memory_limit(limit: int | None, need: int, base: int, given: object) -> None:
    """Refuse a worker memory limit that cannot hold the networks and one tile.

    Dask's nanny restarts a worker above ``distributed.worker.memory.terminate`` (95 %) of its
    limit, and a worker above ``pause`` (80 %) takes no new task: the peak ``need`` must stay
    below the first and the worker with its networks (``base``) below the second.

    Raises
    ------
    ClusterError
        Saying what is needed and the limit to use.
    """
    if not limit:
        return
    terminate = _memory_fraction("terminate", 0.95)
    pause = _memory_fraction("pause", 0.8)
    if limit * terminate < need or limit * pause < base:
        enough = format_bytes(int(max(need / terminate, base / pause)) + 1)
        raise ClusterError(
            f"memory limit {given!r} ({format_bytes(limit)} per worker) is too small: a worker "
            f"with these networks needs about {format_bytes(base)}, and {format_bytes(need)} "
            f"at its peak on the largest tile; Dask restarts a worker at {terminate:.0%} of "
            f"its limit and pauses it at {pause:.0%}: use --memory-limit {enough} or more "
            "(or fewer workers)"
        )


def _check_worker_memory(client: Client, need: int, base: int, given: object) -> None:
    """`_check_memory_limit` against the smallest limit of the cluster's workers."""
    limits = [
        worker.get("memory_limit") or 0 for worker in client.scheduler_info()["workers"].values()
    ]
    limits = [limit for limit in limits if limit > 0]
    if limits:
        _check_memory_limit(min(limits), need, base, given)


def _identities(sources: Sequence[TileSource], bands: tuple[str, ...]) -> dict[str, TileIdentity]:
    """Source key -> identity, for the sources whose metadata can be read.

    The others' tasks report why they cannot be read.
    """
    identities = {}
    for source in sources:
        try:
            identities[source.key] = source.identity(bands)
        except TileDataError:
            continue
    return identities


def _twins(
    sources: Sequence[TileSource], identities: dict[str, TileIdentity]
) -> dict[TileSource, TileSource | None]:
    """Each source -> the earlier source of the same tile (same id and checksum), or None."""
    first: dict[tuple[int, str], TileSource] = {}
    twins: dict[TileSource, TileSource | None] = {}
    for source in sources:
        identity = identities.get(source.key)
        key = None if identity is None else (identity.tile_id, identity.checksum)
        twins[source] = first.get(key) if key is not None else None
        if key is not None:
            first.setdefault(key, source)
    return twins


def _is_done(
    source: TileSource, identity: TileIdentity | None, done: dict[int, TileRecord]
) -> bool:
    """Whether the tile has a valid marker made from the same tile.

    By checksum, wherever the tile lies now; markers of older runs, without one, by path.
    """
    if identity is None or identity.tile_id not in done:
        return False
    record = done[identity.tile_id]
    if record.checksum:
        return record.checksum == identity.checksum
    return record.source == source.key


def _check_out_folder(out: Path) -> None:
    """Refuse an output path that exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, "exists and is not a folder (the run's output is a folder)", str(out)
        )


def _refuse_cuda_without_gpu(config: PipelineConfig, client: Client | None) -> None:
    """Refuse ``device="cuda"`` where no worker (or, for a local cluster, this machine) has a GPU.

    Raises
    ------
    ValueError
        Before any tile, instead of every tile failing on its worker.
    """
    if config.device != "cuda":
        return
    advice = "; use device auto or cpu (--device auto|cpu, pipeline.device)"
    if client is None:
        if not gpus_visible():
            raise ValueError(f"device 'cuda' asked but no usable GPU on this machine{advice}")
        return
    try:
        client.run(worker_device, config)
    except RuntimeError as error:
        raise ValueError(f"device 'cuda' asked but {error}{advice}") from None


def run(
    tiles: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    models: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    client: Client | None = None,
    config: PipelineConfig | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    address: str | None = None,
    n_workers: int | None = None,
    memory_limit: str = "auto",
    bands: Sequence[str] = CSST_BANDS,
    overwrite: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Measure tiles and predict photo-z, writing one Parquet partition per tile.

    Parameters
    ----------
    tiles
        Zarr tile stores, per-band FITS files, folders of them, globs, or manifests
        (``.txt``/``.lst`` lines or a Parquet ``path`` column); all resolved before any work
        (a tile listed in a manifest that is missing or not a tile is recorded as failed).
    out
        The run folder (see :class:`~csst_photoz.io.run_store.RunStore`); rerunning into it
        resumes: tiles already done are skipped, failed ones are tried again.
    models
        Checkpoints: None for those shipped with the package, a folder, a file, or a list;
        ``[]`` for photometry only.
    client, scheduler_file, address
        An existing cluster (at most one); none starts a local cluster for the run
        (:func:`~csst_photoz.pipeline.connect`: one worker per GPU, else one per core).
    config
        Photometry, inference and scheduling settings (default: the paper's recipe).
    n_workers
        Workers of a local cluster.
    memory_limit
        Memory per worker of a local cluster (``"auto"``: the machine's memory shared by the
        workers in proportion to their threads, as Dask does). A full 9216 x 9232 tile needs
        about 12 GB on a CPU worker (``benchmarks/README.md``).
    bands
        The bands every tile must have, in order.
    overwrite
        Discard an earlier run in ``out`` that used other settings (default: refuse).
    progress
        Show a progress bar and the dashboard address.

    Returns
    -------
    RunSummary
        Tiles done / skipped / failed, galaxies, wall and per-stage times, failures.

    Raises
    ------
    CheckpointError
        Before any tile is submitted: a checkpoint that cannot be read, needs bands the run
        lacks, or reads fluxes the run's photometry does not measure.
    FileNotFoundError, ValueError
        Before any tile: a tile argument (path, glob, folder) that does not exist or is not a
        tile; ``device="cuda"`` without a GPU.
    NotADirectoryError
        ``out`` exists and is not a folder.
    ClusterError
        A scheduler file that does not appear, a scheduler that does not answer, or a memory
        limit that is not a positive size.

    Examples
    --------
    >>> import csst_photoz
    >>> summary = csst_photoz.run("field/*.zarr", "catalogue/")      # doctest: +SKIP
    >>> print(summary)                                                # doctest: +SKIP
    """
    config = config or PipelineConfig()
    out = Path(out)
    _check_out_folder(out)
    checkpoints = resolve_checkpoints(models, bands=bands, photometry=config.photometry)
    local = client is None and address is None and scheduler_file is None
    if local:
        _refuse_cuda_without_gpu(config, None)
    # every argument is resolved before any work: a bad one stops the run here, not midway
    unusable: list[TileFailure] = []  # a listed tile that is missing or not a tile

    def listed_but_unusable(path: str, reason: str) -> None:
        unusable.append(TileFailure(path, reason, None, "input"))

    sources = list(iter_tile_sources(tiles, on_error=listed_but_unusable))
    identities = _identities(sources, tuple(bands))
    pixels = max((identity.pixels for identity in identities.values()), default=0)
    need, base = memory_needed(pixels, checkpoints), memory_needed(0, checkpoints)
    if local:  # before any worker starts (one below its own size restarts without end)
        _check_memory_limit(memory_limit_bytes(memory_limit), need, base, memory_limit)
    store = RunStore(out)
    settings = {
        "pipeline": {  # photometry keys added since 0.1.0 only when not at their defaults
            **config.model_dump(mode="json", exclude=set(SCHEDULING_KEYS)),
            "photometry": config.photometry.recorded(),
        },
        "models": [
            {"name": c.name, "state_dict_sha256": c.sha256, "sigma_scale": c.sigma_scale}
            for c in checkpoints
        ],
        "bands": list(bands),
        "version": __version__,
    }
    with store.lock():  # one run per folder; what a killed run left is ours to remove
        store.remove_leftovers()
        store.check_settings(settings, overwrite=overwrite)
        job = TileJob(
            out_dir=str(store.root.resolve()),
            config_json=config.model_dump_json(),
            checkpoints=tuple(checkpoints),
            bands=tuple(bands),
        )
        summary = RunSummary(out=store.root, models={c.name: c.path for c in checkpoints})
        for failure in unusable:
            store.record_failure(TileSource("zarr", failure.source).digest, failure)
            summary.tiles_failed += 1
            summary.failures.append(failure)
        pending = []
        done = store.done_tiles()
        for source, twin in _twins(sources, identities).items():
            if twin is not None:  # the same tile (id and metadata) named twice
                failure = TileFailure(
                    source.key,
                    f"{source.key}: tile id {identities[source.key].tile_id} is already "
                    f"produced from {twin.key} (the same tile, listed twice)",
                    identities[source.key].tile_id, "input",
                )  # fmt: skip
                store.record_failure(source.digest, failure)
                summary.tiles_failed += 1
                summary.failures.append(failure)
            elif _is_done(source, identities.get(source.key), done):
                store.clear_failure(source.digest)
                summary.tiles_skipped += 1
            else:
                pending.append(source)
        cluster = {"client": client, "address": address, "scheduler_file": scheduler_file}
        with connect(
            **cluster, n_workers=n_workers, memory_limit=memory_limit, gpu_memory=config.gpu
        ) as dask_client:
            if not local:
                _refuse_cuda_without_gpu(config, dask_client)
            _check_worker_memory(dask_client, need, base, memory_limit)
            if progress:
                print(f"Dask dashboard: {dask_client.dashboard_link}", flush=True)
            window = config.max_in_flight or default_window(dask_client)
            start = time.perf_counter()
            _submit_all(
                dask_client, iter(pending), job, store, summary, retries=config.retries,
                window=window, progress=progress, total=len(pending),
            )  # fmt: skip
            summary.wall_seconds = time.perf_counter() - start
        store.write_manifest()
        store.write_failures()
    return summary
