"""Execution on Dask: cluster helpers and the distributed jobs (tile simulation, ...)."""

from .cluster import connect, gpus_visible
from .simulate import TileSimulationResult, simulate_tiles
from .simulate_stamps import simulate_stamps

__all__ = [
    "TileSimulationResult",
    "connect",
    "gpus_visible",
    "simulate_stamps",
    "simulate_tiles",
]
