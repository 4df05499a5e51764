"""Execution on Dask: cluster helpers and the distributed jobs (tile simulation, the batch run)."""

from .cluster import connect, gpus_visible
from .config import PipelineConfig, load_pipeline_config
from .run import RunSummary, resolve_checkpoints, run
from .simulate import TileSimulationResult, simulate_tiles
from .simulate_stamps import simulate_stamps

__all__ = [
    "PipelineConfig",
    "RunSummary",
    "TileSimulationResult",
    "connect",
    "gpus_visible",
    "load_pipeline_config",
    "resolve_checkpoints",
    "run",
    "simulate_stamps",
    "simulate_tiles",
]
