"""The default CPU layout: one single-threaded worker per core, as many as the memory holds."""

import pytest

from csst_photoz.pipeline.cpu_layout import FULL_TILE_WORKER_BYTES, CpuLayout, cpu_layout


@pytest.mark.parametrize("cores", [1, 2, 16, 128])
def test_one_single_threaded_worker_per_core(cores):
    layout = cpu_layout(cores)
    assert layout == CpuLayout(n_workers=cores, threads_per_worker=1, pool_threads=1)


def test_memory_bounds_the_workers_and_adds_no_threads():
    # two-thread pools were slower than one (benchmarks/results/cpu_layout.md); Dask threads
    # would double a worker's memory
    layout = cpu_layout(16, memory_bytes=4 * FULL_TILE_WORKER_BYTES + 1)
    assert layout == CpuLayout(n_workers=4, threads_per_worker=1, pool_threads=1)
    # less memory than one worker needs: still one worker
    assert cpu_layout(8, memory_bytes=10**9) == CpuLayout(1, 1, 1)
    # plenty of memory: memory changes nothing
    assert cpu_layout(2, memory_bytes=10**15) == cpu_layout(2)


def test_cluster_kwargs_and_worker_environment():
    layout = CpuLayout(n_workers=3, threads_per_worker=1, pool_threads=2)
    assert layout.cluster_kwargs() == {"n_workers": 3, "threads_per_worker": 1}
    environ = layout.worker_environ()
    assert environ["OMP_NUM_THREADS"] == "2" and environ["OPENBLAS_NUM_THREADS"] == "2"
    assert environ["NUMEXPR_NUM_THREADS"] == "2"
    assert all(isinstance(v, str) for v in environ.values())


@pytest.mark.parametrize("cores", [0, -2, 1.5, True, "4"])
def test_bad_core_counts_are_refused(cores):
    with pytest.raises(ValueError, match="cores must be a positive integer"):
        cpu_layout(cores)


def test_bad_memory_and_layouts_are_refused():
    with pytest.raises(ValueError, match="memory_bytes must be positive"):
        cpu_layout(4, memory_bytes=0)
    with pytest.raises(ValueError, match=r"CpuLayout\.pool_threads must be an integer >= 1"):
        CpuLayout(n_workers=1, threads_per_worker=1, pool_threads=0)
