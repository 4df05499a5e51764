"""Where things live on disk: the one place that knows the project's path grammar."""

from __future__ import annotations

from pathlib import Path

__all__ = ["slice_folder", "tile_store_path", "tile_truth_path"]


def tile_store_path(directory: str | Path, tile_id: int) -> Path:
    """The zarr group of a tile: ``<directory>/tile_<id, 8 digits>.zarr``."""
    return Path(directory) / f"tile_{tile_id:08d}.zarr"


def tile_truth_path(directory: str | Path, tile_id: int) -> Path:
    """The truth table of a simulated tile, beside it: ``tile_<id>_truth.parquet``."""
    return Path(directory) / f"tile_{tile_id:08d}_truth.parquet"


def slice_folder(directory: str | Path, index: int) -> Path:
    """The folder of slice ``index`` of a sliced training set: ``<directory>/slice_<index>``."""
    return Path(directory) / f"slice_{index}"
