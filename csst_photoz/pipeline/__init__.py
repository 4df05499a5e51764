"""Execution on Dask: cluster helpers and the distributed jobs (tile simulation, the batch run).

- :func:`run` -- the batch processor: tiles -> per-tile photo-z catalogue partitions
  (:mod:`.batch`, one task per tile in :mod:`.tile_task`, settings in :mod:`.config`);
- :func:`finalize_catalog` -- per-tile partitions -> HATS catalogue (:mod:`.finalize`);
- :func:`run_demo` -- simulate, run, finalise and evaluate a small field (:mod:`.demo`);
- :func:`simulate_tiles`, :func:`simulate_stamps` -- distributed simulation;
- :func:`connect` -- a Dask client: existing, by scheduler file or address, or a local cluster;
  :func:`slurm_runner_client`, :func:`slurm_cpu_cluster` -- Dask on SLURM (dask-jobqueue).

Names are imported lazily, so that the command line does not load Dask before it needs it.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

__all__ = [
    "ClusterError",
    "Outcome",
    "PipelineConfig",
    "RunSummary",
    "TileSimulationResult",
    "connect",
    "finalize_catalog",
    "finalize_run",
    "gpus_visible",
    "load_pipeline_config",
    "resolve_checkpoints",
    "run",
    "run_demo",
    "simulate_stamps",
    "simulate_tiles",
    "slurm_cpu_cluster",
    "slurm_runner_client",
    "submit_bounded",
    "write_job_credentials",
]

_SOURCES = {
    "PipelineConfig": "config",
    "RunSummary": "batch",
    "Outcome": "submit",
    "TileSimulationResult": "simulate",
    "connect": "cluster",
    "ClusterError": "cluster",
    "finalize_catalog": "finalize",
    "finalize_run": "finalize",
    "gpus_visible": "cluster",
    "load_pipeline_config": "config",
    "resolve_checkpoints": "batch",
    "run": "batch",
    "run_demo": "demo",
    "simulate_stamps": "training_stamps",
    "simulate_tiles": "simulate",
    "slurm_cpu_cluster": "cluster",
    "slurm_runner_client": "cluster",
    "submit_bounded": "submit",
    "write_job_credentials": "cluster",
}

__getattr__, __dir__ = lazy_attributes(__name__, _SOURCES, __all__)
