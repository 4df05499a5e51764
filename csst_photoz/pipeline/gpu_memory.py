"""One device memory pool for CuPy and torch on GPU workers; out-of-memory errors name the tile.

A GPU worker runs CuPy photometry and torch inference on the same device. Each library has its
own caching allocator, and one can hold freed blocks the other needs. With an RMM pool made by
dask-cuda and handed to both libraries (``rmm_allocator_external_lib_list=["cupy", "torch"]``),
they draw from one pool instead (``docs.rapids.ai``, dask-cuda API: ``LocalCUDACluster``
arguments ``rmm_pool_size``, ``rmm_maximum_pool_size``, ``rmm_allocator_external_lib_list``;
``dask cuda worker`` options ``--rmm-pool-size``, ``--rmm-maximum-pool-size``,
``--set-rmm-allocator-for-libs``).

The pool is the ``[pipeline.gpu]`` table of the project file (`GpuMemoryConfig`,
``docs/configuration.md``)::

    [pipeline.gpu]
    rmm_pool = true              # false: no RMM, each library keeps its own allocator
    rmm_pool_size = 0.5          # fraction of the device memory, bytes, or "40GB"
    rmm_maximum_pool_size = 0.9

Under RMM an allocation that fails no longer raises torch's ``torch.OutOfMemoryError``: RMM's
C++ ``rmm::out_of_memory`` reaches Python as a ``MemoryError`` (or, through torch's pluggable
allocator, a ``RuntimeError`` whose message says so). :func:`device_memory_errors` maps every
form to one :class:`DeviceMemoryError` that names the tile.

Wiring: :func:`~csst_photoz.pipeline.cluster.connect` starts ``LocalCUDACluster`` with
`GpuMemoryConfig.cluster_kwargs`; ``jobs/pipeline.sbatch`` starts ``dask cuda worker`` with
`GpuMemoryConfig.worker_cli_args`, printed by ``python -m csst_photoz.pipeline.gpu_memory
[--config F] [--set K=V ...]`` (the options of its ``csst-photoz run``); the tile task wraps
its work in ``device_memory_errors(f"tile {tile.tile_id} ({source.key})")``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dask.utils import parse_bytes
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

__all__ = [
    "DeviceMemoryError",
    "GpuMemoryConfig",
    "device_memory_errors",
    "is_device_out_of_memory",
]

#: Libraries whose allocations go through the RMM pool on GPU workers.
EXTERNAL_LIBS = ("cupy", "torch")

#: The smallest pool given in bytes: an integer 1 is one byte, not the whole device.
MIN_POOL_BYTES = 2**20

_OOM_WORDS = ("out of memory", "out_of_memory", "bad_alloc", "outofmemory")


class DeviceMemoryError(MemoryError):
    """A tile's photometry or inference did not fit in the GPU's memory pool.

    It is a ``MemoryError``, so handlers of that still catch it; the message names the tile,
    the error that the library raised and what to change.
    """


def _pool_bytes(name: str, value: Any) -> int | None:
    """Check a pool size; its bytes, or None for a fraction of the device memory."""
    if isinstance(value, bool) or not isinstance(value, float | int | str):
        raise ValueError(f"{name} must be a size, got {value!r}")
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise ValueError(
                f"{name} as a fraction of the device memory must be in (0, 1], got {value} "
                "(bytes are an integer or a size such as '40GB')"
            )
        return None
    try:
        size = parse_bytes(value) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(
            f"{name} must be a fraction in (0, 1] (0.5), a number of bytes or a size such as "
            f"'40GB', got {value!r}"
        ) from None
    if size < MIN_POOL_BYTES:
        raise ValueError(
            f"{name} {value!r} is {size} bytes, below 1 MiB; a fraction of the device memory "
            "is written with a decimal point (1.0, 0.5)"
        )
    return size


class GpuMemoryConfig(BaseModel):
    """The RMM pool of a GPU worker, shared by CuPy and torch (``[pipeline.gpu]``).

    Each size is a fraction of the device memory (a float in (0, 1]), a number of bytes (an
    integer, at least 1 MiB) or a size string (``"40GB"``, ``"38 GiB"``), as dask-cuda takes
    them.

    Attributes
    ----------
    rmm_pool
        Share one RMM pool between CuPy and torch (default). False: no RMM; each library
        keeps its own caching allocator (dask-cuda's default), e.g. to tell a pool problem
        from another.
    rmm_pool_size
        Initial pool. Default 0.5: a full 9216 x 9232 tile is 6 GB of pixels (image, variance,
        mask) and the photometry's working arrays about 2.3x the band stack
        (``benchmarks/README.md``), well inside half of an 80 GB H100.
    rmm_maximum_pool_size
        How far the pool may grow. Default 0.9, leaving room for the CUDA context,
        cuBLAS/cuDNN workspaces and the kernels CuPy compiles, which RMM does not manage.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rmm_pool: bool = True
    rmm_pool_size: float | int | str = 0.5
    rmm_maximum_pool_size: float | int | str = 0.9

    @field_validator("rmm_pool_size", "rmm_maximum_pool_size", mode="before")
    @classmethod
    def _size(cls, value: Any, info: ValidationInfo) -> Any:
        _pool_bytes(info.field_name, value)
        return value

    @model_validator(mode="after")
    def _maximum_above_initial(self) -> GpuMemoryConfig:
        initial, maximum = self.rmm_pool_size, self.rmm_maximum_pool_size
        fractions = isinstance(initial, float) and isinstance(maximum, float)
        sizes = _pool_bytes("rmm_pool_size", initial), _pool_bytes("rmm_maximum_pool_size", maximum)
        in_bytes = None not in sizes
        if (fractions and maximum < initial) or (in_bytes and sizes[1] < sizes[0]):
            raise ValueError(
                f"rmm_maximum_pool_size {maximum!r} is below rmm_pool_size {initial!r}"
            )
        return self

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``dask_cuda.LocalCUDACluster`` for this pool.

        Returns
        -------
        dict
            ``rmm_pool_size``, ``rmm_maximum_pool_size``, ``rmm_allocator_external_lib_list``
            and ``rmm_managed_memory=False`` (plain device allocations: managed memory larger
            than the free device memory can hang a GPU); empty without the pool.
        """
        if not self.rmm_pool:
            return {}
        return {
            "rmm_pool_size": self.rmm_pool_size,
            "rmm_maximum_pool_size": self.rmm_maximum_pool_size,
            "rmm_managed_memory": False,
            "rmm_allocator_external_lib_list": list(EXTERNAL_LIBS),
        }

    def worker_cli_args(self) -> list[str]:
        """The same pool as options of ``dask cuda worker`` (job scripts that start workers)."""
        if not self.rmm_pool:
            return []
        return [
            "--rmm-pool-size", str(self.rmm_pool_size),
            "--rmm-maximum-pool-size", str(self.rmm_maximum_pool_size),
            "--set-rmm-allocator-for-libs", ",".join(EXTERNAL_LIBS),
        ]  # fmt: skip


def is_device_out_of_memory(error: BaseException) -> bool:
    """True if ``error`` is a GPU allocation failure, in any of the forms it takes.

    torch's own allocator raises ``torch.OutOfMemoryError`` (a ``RuntimeError``); CuPy's pool
    raises ``cupy.cuda.memory.OutOfMemoryError`` (a ``MemoryError``); RMM raises
    ``MemoryError``; torch with RMM as its pluggable allocator may pass the C++ failure on as
    a ``RuntimeError`` naming ``out_of_memory`` or ``bad_alloc``.
    """
    if isinstance(error, MemoryError):
        return True
    if type(error).__name__ == "OutOfMemoryError":
        return True
    if isinstance(error, RuntimeError):
        message = str(error).lower()
        return any(word in message for word in _OOM_WORDS)
    return False


@contextmanager
def device_memory_errors(where: str) -> Iterator[None]:
    """Re-raise a GPU out-of-memory error inside the block as a `DeviceMemoryError`.

    Parameters
    ----------
    where
        What the block works on, for the message (``"tile 12 (/data/t12.zarr)"``).

    Raises
    ------
    DeviceMemoryError
        From the original error (kept as ``__cause__``), naming ``where``. Other errors pass
        unchanged, and so does a `DeviceMemoryError` raised by an inner block.
    """
    try:
        yield
    except DeviceMemoryError:
        raise
    except Exception as error:
        if not is_device_out_of_memory(error):
            raise
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DeviceMemoryError(
            f"{where}: the GPU ran out of memory ({type(error).__module__}."
            f"{type(error).__qualname__}: {detail}); the device pool is shared by CuPy and "
            "torch: lower [pipeline] batch_size, or give GPU workers a larger pool "
            "([pipeline.gpu] rmm_pool_size / rmm_maximum_pool_size)"
        ) from error


def main(argv: list[str] | None = None) -> int:
    """Print the ``dask cuda worker`` options of a project's pool, one a line.

    ``python -m csst_photoz.pipeline.gpu_memory [--config F] [--set K=V ...] [other options]``
    reads ``[pipeline.gpu]`` as ``csst-photoz run`` does with the same options (the others are
    ignored), so a job script starts its workers with the pool its run is configured with.
    Exit status 2, with the problem on stderr, for a file or key that is not valid.
    """
    from ..cli_options import add_config_options
    from ..project_config import load_project_config

    parser = argparse.ArgumentParser(
        prog="python -m csst_photoz.pipeline.gpu_memory",
        description="the dask cuda worker options of the [pipeline.gpu] pool, one a line",
    )
    add_config_options(parser, sections="[pipeline]")
    args, _ = parser.parse_known_args(argv)
    try:
        pool = load_project_config(args.config, overrides=args.set).pipeline.gpu
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for arg in pool.worker_cli_args():
        print(arg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
