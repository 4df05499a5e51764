"""The default layout of a CPU node: worker processes x threads, and torch/BLAS threads each.

Threads per worker are of two kinds: Dask threads (tiles at once in one process) and the
threads of torch and the BLAS/OpenMP/numexpr pools.

Chosen by measurement (``benchmarks/cpu_layout.py``, ``benchmarks/results/cpu_layout.md``):
end-to-end ``csst_photoz.run`` on this project's 2-core machine, four 1024^2 tiles per run,
layouts in rotating rounds, on a machine shared with other jobs (load average 12-14). One
single-threaded worker per core (2x1x1) was fastest, at 94 galaxies/s. One worker with two
Dask threads (1x2x1) reached 83 and one single-threaded worker (1x1x1) 76. One worker with two
torch/BLAS threads (1x1x2) reached 31; it was the slowest in every run, and it spends twice the
CPU time per galaxy. The photometry, about two thirds of a tile's time, is single-threaded
NumPy, so pool threads only help the inference share. On a quiet machine, ``benchmarks/README.md``
(end to end) measured 1 -> 2 workers at 281 -> 392 galaxies/s. Memory bounds the number of
workers: a full 9216 x 9232 tile needs about 12 GB on a CPU worker. Where memory allows fewer
workers than cores, the spare cores stay idle. Dask threads would double a worker's memory,
and pool threads were slower here, so none is added (to be measured on a quiet many-core node).

Wiring (``pipeline.cluster.connect`` and ``PipelineConfig.torch_threads``)::

    layout = cpu_layout(os.cpu_count() or 1, memory_bytes=psutil.virtual_memory().total)
    LocalCluster(**layout.cluster_kwargs(), ...)  # with layout.worker_environ() pre-spawn
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL_TILE_WORKER_BYTES", "CpuLayout", "cpu_layout"]

#: Memory a CPU worker needs for a full 9216 x 9232 tile (peak RSS 12.0 GB measured,
#: ``benchmarks/results/pipeline_cpu_9216x9232.md``).
FULL_TILE_WORKER_BYTES = 12 * 10**9

#: Environment variables that size the BLAS / OpenMP / numexpr pools of a worker process.
POOL_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass(frozen=True)
class CpuLayout:
    """Processes and threads of a CPU node's Dask workers.

    Attributes
    ----------
    n_workers
        Worker processes.
    threads_per_worker
        Dask threads per worker (tiles processed at once by one process).
    pool_threads
        Threads per worker for torch (``PipelineConfig.torch_threads``) and the
        BLAS/OpenMP/numexpr pools (set in the worker's environment before it starts).
    """

    n_workers: int
    threads_per_worker: int
    pool_threads: int

    def __post_init__(self) -> None:
        for name in ("n_workers", "threads_per_worker", "pool_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CpuLayout.{name} must be an integer >= 1, got {value!r}")

    def cluster_kwargs(self) -> dict[str, int]:
        """``n_workers`` and ``threads_per_worker`` of ``distributed.LocalCluster``."""
        return {"n_workers": self.n_workers, "threads_per_worker": self.threads_per_worker}

    def worker_environ(self) -> dict[str, str]:
        """The pool sizes for the workers' environment (Dask's nanny ``pre-spawn-environ``)."""
        return dict.fromkeys(POOL_VARIABLES, str(self.pool_threads))


def cpu_layout(cores: int, *, memory_bytes: int | None = None) -> CpuLayout:
    """The measured best layout for a CPU node with ``cores`` cores.

    Parameters
    ----------
    cores
        Cores the node gives the run (``os.cpu_count()``, or the allocation's CPUs).
    memory_bytes
        Memory the workers share; None: not a constraint. Each worker needs
        `FULL_TILE_WORKER_BYTES` for full tiles (at least one worker is started).

    Returns
    -------
    CpuLayout
        One single-threaded worker process per core, as many as the memory holds.

    Raises
    ------
    ValueError
        If ``cores`` is not a positive integer or ``memory_bytes`` is not positive.
    """
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive integer, got {cores!r}")
    workers = cores
    if memory_bytes is not None:
        if memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be positive, got {memory_bytes!r}")
        workers = max(1, min(cores, memory_bytes // FULL_TILE_WORKER_BYTES))
    return CpuLayout(n_workers=workers, threads_per_worker=1, pool_threads=1)
