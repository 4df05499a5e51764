"""Settings of the batch processor (``csst_photoz.run`` / ``csst-photoz run``).

One typed, frozen object: the photometry recipe (the paper's by default), the inference batch
size and precision, and the scheduling knobs (retries, window of tiles in flight). It is
recorded in every output partition's schema metadata, and loads from the ``[pipeline]`` and
``[photometry]`` tables of a project TOML file (``docs/configuration.md``)::

    [pipeline]
    batch_size = 2048  # sources per forward pass; default: 256 on CPU, 4096 on CUDA
    threads = 1        # torch threads per CPU worker (older name: torch_threads)
    retries = 3

    [pipeline.gpu]     # the RMM pool GPU workers share between CuPy and torch
    rmm_pool_size = 0.5

    [photometry]       # also accepted as [pipeline.photometry]
    kron_factor = 2.5
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from ..config_files import format_validation_error, read_sections
from ..photometry import PhotometryConfig
from .gpu_memory import GpuMemoryConfig

__all__ = [
    "CPU_BATCH_SIZE",
    "CUDA_BATCH_SIZE",
    "SCHEDULING_KEYS",
    "PipelineConfig",
    "load_pipeline_config",
    "pipeline_config_from_sections",
]

#: Default sources per forward pass on CPU workers and on CUDA workers.
CPU_BATCH_SIZE = 256
CUDA_BATCH_SIZE = 4096

#: Settings that change how a run is scheduled, not what it writes (a rerun may change them,
#: e.g. resuming a CPU run on GPU workers): left out of the run's recorded identity.
SCHEDULING_KEYS = frozenset(
    {"device", "batch_size", "torch_threads", "retries", "max_in_flight", "gpu"}
)


class PipelineConfig(BaseModel):
    """How tiles are measured, inferred and scheduled.

    Attributes
    ----------
    photometry
        Detection, aperture and stamp settings (:class:`~csst_photoz.photometry.PhotometryConfig`).
    device
        ``"auto"`` (CUDA when CuPy and a GPU are usable in the worker, else CPU), ``"cpu"`` or
        ``"cuda"``. On CUDA the tile stays on the GPU from photometry to inference.
    batch_size
        Sources per forward pass of the networks (stamps are cut batch by batch, so this also
        bounds the stamp memory: 8192 x 7 x 64 x 64 float32 is 0.9 GB). None (default):
        `CPU_BATCH_SIZE` on CPU, where small batches stay in cache (CNN inference 7,100
        galaxies/s at 256 against 2,800 at 8192, ``benchmarks/results/inference_cpu.md``),
        `CUDA_BATCH_SIZE` on CUDA.
    mixed_precision
        Run the networks under bfloat16 autocast on CUDA (ignored on CPU, where float32 is
        faster than emulated bfloat16).
    torch_threads
        Threads torch uses per CPU worker (default 1: one worker process per core); the key
        is ``threads`` (``torch_threads``, its older name, is still accepted).
    stamp_seed
        Seed of the noise that pads stamps cut at tile edges (the noise of a source depends
        only on this seed and its object id).
    retries
        Dask retries of a tile task (a worker that dies mid-tile; bad data is not retried).
    max_in_flight
        Tiles submitted at once (default: twice the worker threads); bounds the graph size.
    gpu
        The RMM pool of GPU workers (``[pipeline.gpu]``,
        :class:`~csst_photoz.pipeline.gpu_memory.GpuMemoryConfig`), used where the cluster
        starts (:func:`~csst_photoz.pipeline.cluster.connect`, the job script). It changes no
        row, so it is left out of the dumped settings (``run.json``, the partitions' metadata,
        the settings sent to workers).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    photometry: PhotometryConfig = PhotometryConfig()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int | None = Field(None, ge=1)
    mixed_precision: bool = True
    torch_threads: int = Field(1, ge=1, validation_alias=AliasChoices("threads", "torch_threads"))
    stamp_seed: int = 0
    retries: int = Field(2, ge=0)
    max_in_flight: int | None = Field(None, ge=1)
    gpu: GpuMemoryConfig = Field(GpuMemoryConfig(), exclude=True)

    def inference_batch_size(self, device: str) -> int:
        """Sources per forward pass on ``device`` (``"cpu"`` or ``"cuda"``)."""
        if self.batch_size is not None:
            return self.batch_size
        return CUDA_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read a `PipelineConfig` from the ``[pipeline]`` and ``[photometry]`` tables of a TOML file.

    Parameters
    ----------
    path
        A project file (``docs/configuration.md``) holding at least one of the two tables; the
        photometry may also be a ``[pipeline.photometry]`` sub-table, as in older files.
        Unknown tables and unknown keys are errors; the file's other sections are not read.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Invalid TOML, neither table, unknown keys or invalid values (naming the file, the
        section and the key).
    """
    path = Path(path)
    sections = read_sections(path, top_level_instrument=False, what="pipeline")
    if "pipeline" not in sections and "photometry" not in sections:
        raise ValueError(f"{path}: no [pipeline] table")
    return pipeline_config_from_sections(
        sections.get("pipeline", {}), sections.get("photometry"), source=str(path)
    )


def pipeline_config_from_sections(
    pipeline: Mapping[str, Any],
    photometry: Mapping[str, Any] | None = None,
    *,
    source: str = "the command line",
) -> PipelineConfig:
    """A validated `PipelineConfig` from a ``[pipeline]`` table and a ``[photometry]`` table.

    Parameters
    ----------
    pipeline
        Keys of `PipelineConfig`, without ``photometry``.
    photometry
        Keys of :class:`~csst_photoz.photometry.PhotometryConfig`; None: its defaults.
    source
        Where the tables came from, for error messages.

    Raises
    ------
    ValueError
        Unknown keys or invalid values, naming the source, the section and the key.
    """
    try:
        settings = PhotometryConfig.model_validate(photometry or {})
    except ValidationError as error:
        raise format_validation_error(error, source=source, section="photometry") from None
    if "photometry" in pipeline:
        raise ValueError(f"{source}: give the photometry settings as [photometry]")
    try:
        return PipelineConfig.model_validate({**pipeline, "photometry": settings})
    except ValidationError as error:
        raise format_validation_error(error, source=source, section="pipeline") from None
