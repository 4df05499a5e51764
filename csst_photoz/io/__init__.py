"""Reading and writing the project's files, with validation of everything read.

Tiles as zarr groups (:mod:`.tile_zarr`) and per-band FITS (:mod:`.tile_fits`), catalogues as
Parquet (:mod:`.parquet`), checkpoint files and their metadata (:mod:`.checkpoint_file`,
:mod:`.checkpoint_metadata`), training sets
(:mod:`.training_set`), batch-run folders (:mod:`.run_store`), and the path grammar
(:mod:`.paths`).
"""

from ..tile import TileDataError
from .checkpoint_file import read_checkpoint, write_checkpoint
from .checkpoint_metadata import (
    CheckpointMetadata,
    FluxInput,
    InputDeclaration,
    SigmaCalibration,
    StampInput,
    TrainingRecord,
)
from .parquet import read_parquet_table, write_parquet_atomic
from .paths import tile_store_path, tile_truth_path
from .tile_fits import read_tile_fits, tile_fits_path, write_tile_fits
from .tile_zarr import (
    TileFormatError,
    TileZarrWriter,
    read_tile_zarr,
    tile_size_on_disk,
    write_tile_zarr,
)
from .training_set import (
    TrainingSetSettings,
    TrainingSetWriter,
    begin_training_set,
    open_stamps,
)

__all__ = [
    "CheckpointMetadata",
    "FluxInput",
    "InputDeclaration",
    "SigmaCalibration",
    "StampInput",
    "TileDataError",
    "TileFormatError",
    "TileZarrWriter",
    "TrainingRecord",
    "TrainingSetSettings",
    "TrainingSetWriter",
    "begin_training_set",
    "open_stamps",
    "read_checkpoint",
    "read_parquet_table",
    "read_tile_fits",
    "read_tile_zarr",
    "tile_fits_path",
    "tile_size_on_disk",
    "tile_store_path",
    "tile_truth_path",
    "write_checkpoint",
    "write_parquet_atomic",
    "write_tile_fits",
    "write_tile_zarr",
]
