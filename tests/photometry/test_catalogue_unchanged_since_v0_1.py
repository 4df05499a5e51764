"""The photometry of a tile is the catalogue v0.1 wrote (frozen fixture, code before issue 15)."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from csst_photoz.io import read_tile_zarr
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.photometry.tile_photometry import measure_tile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "v0_1"


def test_the_v0_1_tile_gives_the_photometry_of_the_v0_1_run():
    tile = read_tile_zarr(FIXTURES / "tiles" / "tile_00000000.zarr")
    written = pq.read_table(FIXTURES / "run" / "tiles" / "tile_00000000.parquet")
    table = measure_tile(tile, config=PhotometryConfig()).table
    assert table.num_rows == written.num_rows > 0
    shared = [name for name in table.column_names if name in written.column_names]
    assert {"x", "y", "detection_snr", "flags", "flux_g", "flux_err_g", "flux_ap0p50_i"} <= set(
        shared
    )
    for name in shared:
        np.testing.assert_array_equal(
            table[name].to_numpy(zero_copy_only=False),
            written[name].to_numpy(zero_copy_only=False),
            err_msg=name,
        )
