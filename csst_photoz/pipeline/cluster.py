"""Getting a Dask client: an existing one, a scheduler address or file, or a local cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, LocalCluster

__all__ = ["connect", "gpus_visible"]


def gpus_visible() -> int:
    """Number of CUDA devices usable from this process (0 without CuPy or a GPU)."""
    try:
        import cupy
    except ImportError:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


@contextmanager
def connect(
    *,
    client: Client | None = None,
    address: str | None = None,
    scheduler_file: str | Path | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str = "auto",
) -> Iterator[Client]:
    """A Dask client for the duration of a ``with`` block.

    Exactly one of ``client``, ``address`` or ``scheduler_file`` connects to an existing
    cluster (left running afterwards). With none, a local cluster is started for the block and
    shut down after it: ``dask_cuda.LocalCUDACluster`` (one worker per GPU) when GPUs are
    visible and dask-cuda is installed, else ``distributed.LocalCluster`` with one
    single-threaded worker process per core. Local clusters listen on 127.0.0.1 only, the
    dashboard included (on a free port: ``client.dashboard_link``).

    Parameters
    ----------
    client, address, scheduler_file
        An existing cluster to use.
    n_workers
        Workers of a local cluster (default: one per core, or one per GPU).
    threads_per_worker
        Threads per local CPU worker (GalSim and NumPy code here is single-threaded).
    memory_limit
        Per-worker memory limit of a local cluster.
    """
    given = [arg for arg in (client, address, scheduler_file) if arg is not None]
    if len(given) > 1:
        raise ValueError("give at most one of client, address and scheduler_file")
    if client is not None:
        yield client
        return
    if address is not None or scheduler_file is not None:
        remote = Client(
            address=address, scheduler_file=str(scheduler_file) if scheduler_file else None
        )
        try:
            yield remote
        finally:
            remote.close()
        return
    n_gpus = gpus_visible()
    if n_gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            n_gpus = 0
    if n_gpus:
        cluster = LocalCUDACluster(
            n_workers=n_workers or n_gpus, ip="127.0.0.1", dashboard_address="127.0.0.1:0"
        )
    else:
        cluster = LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit=memory_limit,
        )
    local = Client(cluster)
    try:
        yield local
    finally:
        local.close()
        cluster.close()
