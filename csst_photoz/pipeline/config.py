"""Settings of the batch processor (``csst_photoz.run`` / ``csst-photoz run``).

One typed, frozen object: the photometry recipe (the paper's by default), the inference batch
size and precision, and the scheduling knobs (retries, window of tiles in flight). It is
recorded in every output partition's schema metadata, and loads from the ``[pipeline]`` table
of a TOML file (with a ``[pipeline.photometry]`` sub-table)::

    [pipeline]
    batch_size = 2048  # default: 256 on CPU, 4096 on CUDA
    retries = 3

    [pipeline.photometry]
    kron_factor = 2.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config_files import read_toml_table
from ..photometry import PhotometryConfig

__all__ = ["CPU_BATCH_SIZE", "CUDA_BATCH_SIZE", "PipelineConfig", "load_pipeline_config"]

#: Default sources per forward pass on CPU workers and on CUDA workers.
CPU_BATCH_SIZE = 256
CUDA_BATCH_SIZE = 4096


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
        Sources per forward pass (stamps are cut batch by batch, so this also bounds the stamp
        memory: 8192 x 7 x 64 x 64 float32 is 0.9 GB). None (default): `CPU_BATCH_SIZE` on
        CPU, where small batches stay in cache (CNN inference 7,100 galaxies/s at 256 against
        2,800 at 8192, ``benchmarks/results/inference_cpu.md``), `CUDA_BATCH_SIZE` on CUDA.
    mixed_precision
        Run the networks under bfloat16 autocast on CUDA (ignored on CPU, where float32 is
        faster than emulated bfloat16).
    torch_threads
        Threads torch uses per CPU worker (default 1: one worker process per core).
    stamp_seed
        Seed of the noise that pads stamps cut at tile edges (the noise of a source depends
        only on this seed and its object id).
    retries
        Dask retries of a tile task (a worker that dies mid-tile; bad data is not retried).
    max_in_flight
        Tiles submitted at once (default: twice the worker threads); bounds the graph size.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    photometry: PhotometryConfig = PhotometryConfig()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int | None = Field(None, ge=1)
    mixed_precision: bool = True
    torch_threads: int = Field(1, ge=1)
    stamp_seed: int = 0
    retries: int = Field(2, ge=0)
    max_in_flight: int | None = Field(None, ge=1)

    def inference_batch_size(self, device: str) -> int:
        """Sources per forward pass on ``device`` (``"cpu"`` or ``"cuda"``)."""
        if self.batch_size is not None:
            return self.batch_size
        return CUDA_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read a `PipelineConfig` from the ``[pipeline]`` table of a TOML file.

    Parameters
    ----------
    path
        The TOML file; other top-level tables and unknown keys are errors.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Invalid TOML, no ``[pipeline]`` table, unknown keys or invalid values (naming the file).
    """
    path = Path(path)
    table = read_toml_table(path, "pipeline", what="pipeline")
    try:
        return PipelineConfig.model_validate(table)
    except ValidationError as error:
        raise ValueError(f"{path}: invalid [pipeline] settings:\n{error}") from None
