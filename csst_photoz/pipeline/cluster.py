"""Getting a Dask client: an existing one, a scheduler address or file, or a local cluster.

On SLURM there are three routes (``jobs/README.md`` compares them):

* ``jobs/pipeline.sbatch`` starts ``dask scheduler`` and ``srun``s the workers in one
  allocation; the pipeline joins by ``--scheduler-file`` (:func:`connect`);
* :func:`slurm_runner_client`: a Dask cluster made of the tasks of an existing allocation
  (``srun -n N python script.py``; ``dask_jobqueue.slurm.SLURMRunner``);
* :func:`slurm_cpu_cluster`: a pool of CPU worker *jobs* submitted from a login node or a
  notebook (``dask_jobqueue.SLURMCluster``), e.g. for simulation; awkward for GPUs.

dask-jobqueue is imported only by the two helpers that use it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
from dask.utils import parse_bytes
from distributed import Client, LocalCluster

from .cpu_layout import cpu_layout
from .gpu_memory import GpuMemoryConfig

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster

__all__ = [
    "SCHEDULER_TIMEOUT",
    "WORKER_MALLOC_ENVIRON",
    "ClusterError",
    "connect",
    "gpus_visible",
    "memory_limit_bytes",
    "slurm_cpu_cluster",
    "slurm_runner_client",
    "write_job_credentials",
]

#: glibc malloc settings for worker processes (Dask's nanny sets them before a worker starts).
#: A tile task allocates and frees many arrays of a few to tens of MB; with Dask's default
#: (``MALLOC_TRIM_THRESHOLD_=65536``: give freed memory back to the system at once) every task
#: faults that memory back in, and the 2048^2 photometry takes 1.55-2.1 s instead of 1.47-1.50
#: s (``benchmarks/README.md``). Arrays up to 32 MB (glibc's largest mmap threshold) come from
#: the heap, which is not trimmed; larger ones are mapped and unmapped as before.
WORKER_MALLOC_ENVIRON = {
    "MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
    "MALLOC_TRIM_THRESHOLD_": 2**34,
}


#: Seconds :func:`connect` waits for a scheduler file to appear, and then for its scheduler.
SCHEDULER_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    """No cluster to work on (a usage or configuration error: exit status 2).

    A scheduler file that does not appear, a scheduler that does not answer, a worker memory
    limit that cannot be.
    """

    exit_status = 2


def memory_limit_bytes(memory_limit: str | int | float | None) -> int | None:
    """A worker memory limit in bytes (None for ``"auto"``/None: Dask's share of the machine).

    Parameters
    ----------
    memory_limit
        ``"auto"``, None, a byte count or a size such as ``"16GB"`` / ``"12 GiB"``.

    Raises
    ------
    ClusterError
        On a size that cannot be parsed or is not positive, naming it.
    """
    if memory_limit is None or memory_limit == "auto":
        return None
    try:
        value = parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit
    except (ValueError, TypeError):
        value = None
    if not isinstance(value, int | float) or not value > 0:
        raise ClusterError(
            f"memory limit {memory_limit!r}: expected a positive size such as 16GB, or auto"
        )
    return int(value)


def _scheduler_address(path: Path, timeout: float) -> str:
    """The address in a scheduler file, waiting up to ``timeout`` seconds for it to appear."""
    deadline = time.monotonic() + timeout
    problem = "does not exist"
    while True:
        try:
            return str(json.loads(path.read_text())["address"])
        except FileNotFoundError:
            problem = "does not exist"
        except (OSError, ValueError, KeyError, TypeError) as error:  # partly written, or bad
            problem = f"is not a scheduler file ({type(error).__name__}: {error})"
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"{path}: scheduler file {problem} after {timeout:.0f} s (is the scheduler "
                "running, and writing this file?)"
            )
        time.sleep(0.1)


def _remote_client(address: str, where: str, timeout: float) -> Client:
    try:
        return Client(address=address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ClusterError(
            f"{where}: no Dask scheduler answers at {address} within {timeout:.0f} s (a stale "
            f"scheduler file of a finished job?): {error}"
        ) from None


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
    threads_per_worker: int | None = None,
    memory_limit: str = "auto",
    timeout: float = SCHEDULER_TIMEOUT,
    gpu_memory: GpuMemoryConfig | None = None,
) -> Iterator[Client]:
    """A Dask client for the duration of a ``with`` block.

    Exactly one of ``client``, ``address`` or ``scheduler_file`` connects to an existing
    cluster (left running afterwards). With none, a local cluster is started for the block and
    shut down after it: ``dask_cuda.LocalCUDACluster`` (one worker per GPU) when GPUs are
    visible and dask-cuda is installed, else ``distributed.LocalCluster`` with one
    single-threaded worker process per core. Local clusters listen on 127.0.0.1 only, the
    dashboard included (on a free port: ``client.dashboard_link``); their worker processes
    start with :data:`WORKER_MALLOC_ENVIRON`.

    Parameters
    ----------
    client, address, scheduler_file
        An existing cluster to use.
    n_workers
        Workers of a local cluster (default: one per core, or one per GPU).
    threads_per_worker
        Threads per local CPU worker; default the measured layout of
        :func:`~csst_photoz.pipeline.cpu_layout.cpu_layout` (one single-threaded worker per
        core, torch/BLAS pools of one thread).
    memory_limit
        Per-worker memory limit of a local cluster (``"auto"`` or a positive size).
    timeout
        Seconds to wait for a scheduler file to appear, and for a scheduler to answer.
    gpu_memory
        The memory pool of a local GPU cluster's workers (``[pipeline.gpu]``; default
        `GpuMemoryConfig()`: one RMM pool shared by CuPy and torch,
        :mod:`csst_photoz.pipeline.gpu_memory`).

    Raises
    ------
    ClusterError
        A scheduler file that does not appear (or is not one) within ``timeout``, a
        scheduler that does not answer, or a memory limit that is not a positive size.
    """
    given = [arg for arg in (client, address, scheduler_file) if arg is not None]
    if len(given) > 1:
        raise ValueError("give at most one of client, address and scheduler_file")
    if client is not None:
        yield client
        return
    if address is not None or scheduler_file is not None:
        if scheduler_file is not None:
            where = str(scheduler_file)
            address = _scheduler_address(Path(scheduler_file), timeout)
        else:
            where = "address"
        remote = _remote_client(str(address), where, timeout)
        try:
            yield remote
        finally:
            remote.close()
        return
    memory_limit_bytes(memory_limit)  # refuse a bad size before starting anything
    n_gpus = gpus_visible()
    if n_gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            n_gpus = 0
    layout = cpu_layout(os.cpu_count() or 1)
    dasks_own = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    environ = {**dasks_own, **WORKER_MALLOC_ENVIRON}
    if not n_gpus:
        environ.update(layout.worker_environ())
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        if n_gpus:
            cluster = LocalCUDACluster(
                n_workers=n_workers or n_gpus, ip="127.0.0.1", dashboard_address="127.0.0.1:0",
                **(gpu_memory or GpuMemoryConfig()).cluster_kwargs(),
            )  # fmt: skip
        else:
            cluster = LocalCluster(
                n_workers=n_workers or layout.n_workers,
                threads_per_worker=threads_per_worker or layout.threads_per_worker,
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


@contextmanager
def slurm_runner_client(
    *,
    scheduler_file: str | Path = "scheduler-{job_id}.json",
    scheduler_options: Mapping[str, Any] | None = None,
    worker_options: Mapping[str, Any] | None = None,
    wait_timeout: float | None = 300.0,
) -> Iterator[Client]:
    """A client of a Dask cluster made of the tasks of the current SLURM job step.

    Run a script with ``srun -n N python script.py`` (N >= 3) inside an allocation: every task
    calls this function; task 0 becomes the scheduler and tasks 2.. the workers (their call
    serves until the cluster shuts down, then the process exits), and task 1 runs the ``with``
    block with a client once the ``N - 2`` workers have joined. Leaving the block shuts the
    cluster down. This is ``dask_jobqueue.slurm.SLURMRunner`` (which installs a SIGINT handler
    that exits the process when it is imported).

    Parameters
    ----------
    scheduler_file
        Where the scheduler writes its address, on storage every node sees; ``{job_id}`` is
        replaced by ``SLURM_JOB_ID``.
    scheduler_options, worker_options
        Keyword arguments of ``distributed.Scheduler`` and ``distributed.Worker`` (e.g.
        ``{"interface": "ib0"}``, ``{"nthreads": 1, "memory_limit": "8GB"}``).
    wait_timeout
        Seconds to wait for all workers (None: do not wait).

    Raises
    ------
    RuntimeError
        Outside a SLURM job step (no ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_JOB_ID``), or
        with fewer than three tasks.
    """
    from dask_jobqueue.slurm import SLURMRunner

    with (
        SLURMRunner(
            scheduler_file=str(scheduler_file),
            scheduler_options=dict(scheduler_options or {}),
            worker_options=dict(worker_options or {}),
        ) as runner,
        Client(runner) as client,
    ):
        if wait_timeout is not None:
            client.wait_for_workers(runner.n_workers, timeout=wait_timeout)
        yield client


def slurm_cpu_cluster(
    *,
    cores: int,
    memory: str,
    walltime: str = "01:00:00",
    queue: str | None = None,
    account: str | None = None,
    interface: str | None = None,
    lifetime: str | None = None,
    lifetime_stagger: str = "2m",
    log_directory: str | Path | None = None,
    local_directory: str | None = None,
    job_extra_directives: Sequence[str] = (),
    job_script_prologue: Sequence[str] = (),
    **kwargs: Any,
) -> SLURMCluster:
    """A pool of CPU worker jobs on SLURM (``dask_jobqueue.SLURMCluster``), not yet scaled.

    Each job is one SLURM task with ``cores`` CPUs running ``cores`` single-threaded worker
    processes (the simulation and photometry code is single-threaded). The scheduler runs in
    this process; call ``cluster.scale(jobs=n)`` or ``cluster.adapt(maximum_jobs=n)`` and
    ``Client(cluster)``, and close the cluster to cancel the jobs.

    Parameters
    ----------
    cores, memory
        CPUs and memory of one job (``"16GB"``), shared by its worker processes.
    walltime, queue, account
        ``#SBATCH -t``, ``-p``, ``-A``.
    interface
        Network interface of the scheduler and workers (``"ib0"``); default: dask's choice.
    lifetime, lifetime_stagger
        Workers retire gracefully after ``lifetime`` (``"55m"`` for a one-hour walltime), give or
        take the stagger, so that their tasks move elsewhere before SLURM kills the job; with
        ``adapt`` new jobs replace them.
    log_directory
        Where the worker jobs' output goes (default: the current directory).
    local_directory
        Node-local scratch of the workers (default ``$TMPDIR`` on the node, else ``/tmp``).
    job_extra_directives, job_script_prologue
        More ``#SBATCH`` options (e.g. ``["--gpus-per-node=0"]``) and shell lines run before
        the workers (``module load``, ``source venv/bin/activate``).
    **kwargs
        Any other ``SLURMCluster`` argument.

    Returns
    -------
    dask_jobqueue.SLURMCluster
    """
    from dask_jobqueue import SLURMCluster

    extra = list(kwargs.pop("worker_extra_args", []))
    if lifetime is not None:
        extra += ["--lifetime", lifetime, "--lifetime-stagger", lifetime_stagger]
    return SLURMCluster(
        cores=cores,
        processes=cores,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        interface=interface,
        python=kwargs.pop("python", sys.executable),
        local_directory=local_directory or "${TMPDIR:-/tmp}",
        log_directory=None if log_directory is None else str(log_directory),
        worker_extra_args=extra,
        job_extra_directives=list(job_extra_directives),
        job_script_prologue=list(job_script_prologue),
        **kwargs,
    )


def write_job_credentials(folder: str | Path) -> Path:
    """Temporary TLS credentials of one job's Dask cluster, and the Dask config that uses them.

    A self-signed key and certificate (``distributed.security.Security.temporary``: RSA 2048,
    one pair for the scheduler, the workers and the clients, which trust only it) are written
    to ``folder`` (created private, mode 0700) as ``key.pem`` and ``cert.pem`` (mode 0600),
    with ``tls.yaml``: a Dask config file that requires encryption and names them for every
    role. Put it in the ``DASK_CONFIG`` folder of the scheduler, the workers and the client
    (``jobs/pipeline.sbatch`` moves it there); start the scheduler with ``--protocol tls``.
    A process without the key cannot join the cluster or submit work to it.

    Parameters
    ----------
    folder
        The job's private folder (must not exist, or be empty).

    Returns
    -------
    pathlib.Path
        The config file ``folder/tls.yaml``.
    """
    import yaml
    from distributed.security import Security

    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder}: not empty (a job's credentials go in a new folder)")
    security = Security.temporary()
    files = {"cert.pem": security.tls_ca_file, "key.pem": security.tls_client_key}
    for name, contents in files.items():
        handle = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as stream:
            stream.write(contents)
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    pair = {"cert": cert, "key": key}
    config = {
        "distributed": {
            "comm": {
                "require-encryption": True,
                "tls": {"ca-file": cert, "scheduler": pair, "worker": pair, "client": pair},
            }
        }
    }
    path = folder / "tls.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
