"""Photometry of a :class:`~csst_photoz.tile.Tile`: catalogue table and stamps.

The glue between the tile object and the array kernels: it moves the tile's planes to the
chosen array library once (``xp=cupy`` puts them on the GPU, where they stay for detection,
apertures and stamps), runs :func:`~.measure.measure_sources`, and builds the Arrow catalogue.
Stamps are cut per batch of rows, so a consumer (the CNN) never holds all stamps of a full tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from ..tile import Tile, TileDataError
from .backend import array_module, is_cupy
from .catalog import object_ids, photometry_table
from .measure import (
    PhotometryConfig,
    SourceMeasurements,
    StageTimer,
    measure_sources,
    untimed,
)
from .stamps import cut_stamps

__all__ = ["TilePhotometry", "measure_tile"]


@dataclass(frozen=True)
class TilePhotometry:
    """The measured tile: its catalogue, the device-side measurements and the settings."""

    table: pa.Table
    measurements: SourceMeasurements
    config: PhotometryConfig
    tile_id: int

    def stamps(self, rows: Any = None, *, seed: int = 0) -> tuple[Any, Any]:
        """Cut the stamps of ``rows`` (default: all sources) on the measurement's device.

        Parameters
        ----------
        rows
            Row indices (host ints), or None for every source.
        seed
            Seed of the edge-padding noise.

        Returns
        -------
        stamps, flags
            float32 (n, n_bands, S, S) with ``S = config.stamp_size`` and int32 (n,)
            :attr:`~.SourceFlag.STAMP_PADDED` bits.
        """
        m = self.measurements
        n = len(m)
        rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"tile {self.tile_id}: stamp rows outside 0..{n - 1}")
        keys = object_ids(self.tile_id, n)[rows].astype(np.uint64)
        xp = array_module(m.images)
        index = xp.asarray(rows)
        return cut_stamps(
            m.images, m.x[index], m.y[index], size=self.config.stamp_size,
            background_rms=m.background_rms, keys=xp.asarray(keys), seed=seed, valid=m.valid,
        )  # fmt: skip


def measure_tile(
    tile: Tile,
    *,
    config: PhotometryConfig | None = None,
    xp: ModuleType = np,
    stage: StageTimer | None = None,
    overwrite_input: bool = False,
) -> TilePhotometry:
    """Detect and measure the sources of a tile.

    Parameters
    ----------
    tile
        The seven-band tile.
    config
        Photometry settings (default: the paper's recipe).
    xp
        Array library to compute with: ``numpy`` (default) or ``cupy`` (the tile is copied to
        the GPU once and everything after runs there).
    stage
        Optional timer (see :func:`~.measure.measure_sources`): also given ``"to_device"``
        (the copy of the tile to ``xp``) and ``"catalogue"`` (the Arrow table, on the host).
    overwrite_input
        Let the background be subtracted in place in ``tile.image`` (NumPy; saves a copy of the
        band stack). With CuPy the device copy is always used this way; ``tile`` is untouched.

    Returns
    -------
    TilePhotometry
        Catalogue table (host), measurements (device) and settings.
    """
    config = config or PhotometryConfig()
    stage = stage or untimed
    with stage("to_device"):
        image, variance, mask = (xp.asarray(a) for a in (tile.image, tile.variance, tile.mask))
    try:
        measurements = measure_sources(
            image, variance, bands=tile.bands, pixel_scale_arcsec=tile.pixel_scale_arcsec,
            mask=mask, config=config, stage=stage,
            # a device copy made just now is ours to overwrite
            overwrite_input=overwrite_input or (xp is not np and not is_cupy(tile.image)),
        )  # fmt: skip
    except ValueError as error:
        raise TileDataError(f"tile {tile.tile_id}: {error}") from error
    with stage("catalogue"):
        table = photometry_table(measurements, tile, config)
    return TilePhotometry(
        table=table, measurements=measurements, config=config, tile_id=tile.tile_id
    )
