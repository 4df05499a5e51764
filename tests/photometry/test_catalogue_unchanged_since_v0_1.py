"""The photometry of a tile is the catalogue v0.1 wrote (frozen fixture, code before issue 15).

Two changes since, both deliberate (issue 18): ``NEIGHBOURS`` counts kept sources only (v0.1
counted every raw detection, noise peaks dropped by the S/N cut included), so the bit may only
have been cleared; and ``detection_snr`` agrees to float32 rounding: small windows now share
batches with larger ones (`.windows.plan_windows`), so its float32 sums over the detection
image add the same terms in another order. Every other column and bit is unchanged.
"""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from csst_photoz.io import read_tile_zarr
from csst_photoz.photometry import PhotometryConfig, SourceFlag
from csst_photoz.photometry.tile_photometry import measure_tile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "v0_1"
NEIGHBOURS = int(SourceFlag.NEIGHBOURS)


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
        now = table[name].to_numpy(zero_copy_only=False)
        then = written[name].to_numpy(zero_copy_only=False)
        if name == "flags":
            assert not np.any(now & ~then & NEIGHBOURS), "NEIGHBOURS may only have been cleared"
            now, then = now & ~NEIGHBOURS, then & ~NEIGHBOURS
        if name == "detection_snr":
            np.testing.assert_allclose(now, then, rtol=1e-6, atol=0, err_msg=name)
            continue
        np.testing.assert_array_equal(now, then, err_msg=name)
