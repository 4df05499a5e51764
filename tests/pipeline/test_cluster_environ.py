"""Local workers start with the malloc settings that keep tile-sized arrays in the heap."""

import os

from csst_photoz.pipeline.cluster import WORKER_MALLOC_ENVIRON, connect


def _environ() -> dict:
    return {name: os.environ.get(name) for name in (*WORKER_MALLOC_ENVIRON, "OMP_NUM_THREADS")}


def test_local_workers_get_the_malloc_settings_and_keep_dasks():
    with connect(n_workers=1) as client:
        (seen,) = client.run(_environ).values()
    assert {name: seen[name] for name in WORKER_MALLOC_ENVIRON} == {
        name: str(value) for name, value in WORKER_MALLOC_ENVIRON.items()
    }
    assert seen["OMP_NUM_THREADS"] == "1"  # Dask's own pre-spawn settings are kept
