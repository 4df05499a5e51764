"""A tiny simulated field and small checkpoints shared by the batch-processor tests.

Fixtures, not importable helpers, because pytest's importlib import mode does not put this
folder on ``sys.path``.
"""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from csst_photoz.io import write_parquet_atomic, write_tile_zarr
from csst_photoz.io.paths import tile_store_path, tile_truth_path
from csst_photoz.models import CNN, MLP, CNNConfig, MLPConfig, save_model
from csst_photoz.pipeline import connect
from csst_photoz.sim.tiles import simulate_tile, tile_grid

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
FIELD_TILES = 4
FIELD_SIZE = 320


@pytest.fixture(scope="session")
def field(tmp_path_factory, instrument) -> list[Path]:
    """Four simulated 320 x 320 tiles (zarr) with their truth tables; returns the stores."""
    directory = tmp_path_factory.mktemp("field")
    stores = []
    for spec in tile_grid(FIELD_TILES, nx=FIELD_SIZE, ny=FIELD_SIZE, seed=11):
        tile, truth = simulate_tile(spec, instrument=instrument)
        stores.append(write_tile_zarr(tile, tile_store_path(directory, spec.tile_id)))
        write_parquet_atomic(truth, tile_truth_path(directory, spec.tile_id))
    return stores


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, field) -> Path:
    """An MLP and a CNN with fitted input transforms (untrained weights) in one folder."""
    directory = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(3)
    limits = [100.0 + 10 * k for k in range(len(BANDS))]
    mlp = MLP(MLPConfig(bands=BANDS, limiting_flux=limits))
    cnn = CNN(CNNConfig(bands=BANDS, background_rms=[10.0] * len(BANDS)))
    save_model(mlp, directory / "mlp.pt")
    save_model(cnn, directory / "cnn.pt")
    return directory


@pytest.fixture(scope="module")
def client():
    """A local cluster of two single-threaded worker processes."""
    with connect(n_workers=2) as dask_client:
        yield dask_client


@pytest.fixture
def read_catalogue():
    """``read_catalogue(run_dir) -> pyarrow.Table`` of every partition, by object id."""

    def read(run_dir: Path):
        import pyarrow as pa

        tables = [pq.read_table(p) for p in sorted((Path(run_dir) / "tiles").glob("*.parquet"))]
        table = pa.concat_tables(tables)
        return table.take(np.argsort(table["object_id"].to_numpy(), kind="stable"))

    return read


@pytest.fixture
def assert_same_table():
    """``assert_same_table(a, b)``: same schema and values, NaN equal to NaN."""

    def check(a, b) -> None:
        assert a.schema.equals(b.schema, check_metadata=True)
        assert a.num_rows == b.num_rows
        for name in a.column_names:
            np.testing.assert_array_equal(
                a[name].to_numpy(zero_copy_only=False),
                b[name].to_numpy(zero_copy_only=False),
                err_msg=name,
            )

    return check
