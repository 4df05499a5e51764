"""Tiny training sets for the training tests.

* ``stamp_set``: 64 stamps (48 x 48 px, 7 bands) from the project's own simulator, once per
  session (about 10 s);
* ``write_folder``: a synthetic folder in the simulator's layout, in milliseconds, for the
  validation tests (any shape, any damage);
* ``fast_config``: the paper's recipe shrunk to a few cheap steps.

Helpers reach the tests as fixtures because pytest's importlib mode keeps this folder off
``sys.path``.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zarr

from csst_photoz.training import TrainingConfig

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks run fastest on one thread (and do not contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def stamp_set(tmp_path_factory) -> Path:
    """A 64-galaxy training-set folder simulated with ``simulate_stamps`` (seed 1, 48 px)."""
    from distributed import Client

    from csst_photoz.pipeline import simulate_stamps

    out = tmp_path_factory.mktemp("stamps") / "set"
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        simulate_stamps(64, out, client=c, seed=1, size=48, progress=False)
    return out


def _write_folder(
    path: Path,
    n: int = 40,
    *,
    bands: tuple[str, ...] = BANDS,
    size: int = 16,
    n_stamps: int | None = None,
    stamp_bands: tuple[str, ...] | None = None,
    drop: tuple[str, ...] = (),
    nan_redshift: tuple[int, ...] = (),
    undetected: tuple[int, ...] = (),
    seed: int = 0,
) -> Path:
    """A training-set folder: table with the simulator's columns, stamps of Gaussian noise."""
    rng = np.random.default_rng(seed)
    redshift = rng.uniform(0.1, 3.0, n)
    redshift[list(nan_redshift)] = np.nan
    columns = {"redshift": redshift}
    for b in bands:
        columns[f"kron_flux_{b}"] = rng.lognormal(6.0, 1.0, n)
        columns[f"kron_flux_err_{b}"] = rng.uniform(5.0, 20.0, n)
    detected = np.ones(n, dtype=bool)
    detected[list(undetected)] = False
    columns["detected"] = detected
    for name in drop:
        columns.pop(name)
    table = pa.table(columns).replace_schema_metadata({"csst_photoz.bands": ",".join(bands)})
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "stamps.parquet")
    stamp_bands = bands if stamp_bands is None else stamp_bands
    shape = (n if n_stamps is None else n_stamps, len(stamp_bands), size, size)
    group = zarr.open_group(path / "stamps.zarr", mode="w")
    array = group.create_array("stamps", shape=shape, chunks=(8, *shape[1:]), dtype=np.float32)
    array[:] = rng.normal(0.0, 10.0, shape).astype(np.float32)
    group.attrs["bands"] = list(stamp_bands)
    return path


@pytest.fixture
def write_folder():
    """``write_folder(path, n=40, *, bands, size, n_stamps, stamp_bands, drop, nan_redshift,
    undetected, seed) -> path``."""
    return _write_folder


@pytest.fixture
def fast_config() -> TrainingConfig:
    """A few cheap steps per epoch: small batches, few copies, a high learning rate."""
    return TrainingConfig(
        seed=1,
        batch_size=32,
        learning_rate=1e-3,
        flux_realisations=2,
        dihedral_copies=2,
        max_epochs=2,
        progress=False,
    )
