"""One device memory pool for CuPy and torch on GPU workers; out-of-memory errors name the tile.

A GPU worker runs CuPy photometry and torch inference on the same device. Each library has its
own caching allocator, and one can hold freed blocks the other needs. With an RMM pool made by
dask-cuda and handed to both libraries (``rmm_allocator_external_lib_list=["cupy", "torch"]``),
they draw from one pool instead (``docs.rapids.ai``, dask-cuda API: ``LocalCUDACluster``
arguments ``rmm_pool_size``, ``rmm_maximum_pool_size``, ``rmm_allocator_external_lib_list``).

Under RMM an allocation that fails no longer raises torch's ``torch.OutOfMemoryError``: RMM's
C++ ``rmm::out_of_memory`` reaches Python as a ``MemoryError`` (or, through torch's pluggable
allocator, a ``RuntimeError`` whose message says so). :func:`device_memory_errors` maps every
form to one :class:`DeviceMemoryError` that names the tile.

Wiring (the cluster helper and the tile task)::

    cluster = LocalCUDACluster(**GpuMemoryConfig().cluster_kwargs(), n_workers=n_gpus, ...)
    with device_memory_errors(f"tile {tile.tile_id} ({source.key})"):
        table = _measure_and_infer(...)

and for ``dask cuda worker`` started by a job script: ``GpuMemoryConfig().worker_cli_args()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DeviceMemoryError",
    "GpuMemoryConfig",
    "device_memory_errors",
    "is_device_out_of_memory",
]

#: Libraries whose allocations go through the RMM pool on GPU workers.
EXTERNAL_LIBS = ("cupy", "torch")

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|K|M|G|T)?\s*$", re.I)
_OOM_WORDS = ("out of memory", "out_of_memory", "bad_alloc", "outofmemory")


class DeviceMemoryError(MemoryError):
    """A tile's photometry or inference did not fit in the GPU's memory pool.

    It is a ``MemoryError``, so handlers of that still catch it; the message names the tile,
    the error that the library raised and what to change.
    """


def _check_size(name: str, value: float | int | str | None) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        raise ValueError(f"GPU memory pool: {name} must be a size, got {value!r}")
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise ValueError(
                f"GPU memory pool: {name} as a fraction of the device memory must be in (0, 1], "
                f"got {value}"
            )
        return
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"GPU memory pool: {name} in bytes must be > 0, got {value}")
        return
    if not isinstance(value, str) or not _SIZE.match(value):
        raise ValueError(
            f"GPU memory pool: {name} must be a fraction in (0, 1], a number of bytes or a "
            f"size such as '40GB', got {value!r}"
        )


@dataclass(frozen=True)
class GpuMemoryConfig:
    """The RMM pool of a GPU worker, shared by CuPy and torch.

    Attributes
    ----------
    pool_size
        Initial pool: a fraction of the device memory (float in (0, 1]), bytes (int) or a size
        string (``"40GB"``), as dask-cuda's ``rmm_pool_size`` takes it. Default 0.5: a full
        9216 x 9232 tile is 6 GB of pixels (image, variance, mask) and the photometry's working
        arrays about 2.3x the band stack (``benchmarks/README.md``), well inside half of an
        80 GB H100.
    maximum_pool_size
        How far the pool may grow (same forms; None: dask-cuda's default, the whole device).
        Default 0.9, leaving room for the CUDA context, cuBLAS/cuDNN workspaces and the kernels
        CuPy compiles, which RMM does not manage.
    external_libs
        Libraries that allocate from the pool (``("cupy", "torch")``).
    """

    pool_size: float | int | str = 0.5
    maximum_pool_size: float | int | str | None = 0.9
    external_libs: tuple[str, ...] = EXTERNAL_LIBS

    def __post_init__(self) -> None:
        _check_size("pool_size", self.pool_size)
        _check_size("maximum_pool_size", self.maximum_pool_size)
        if (
            isinstance(self.pool_size, float)
            and isinstance(self.maximum_pool_size, float)
            and self.maximum_pool_size < self.pool_size
        ):
            raise ValueError(
                f"GPU memory pool: maximum_pool_size {self.maximum_pool_size} is below "
                f"pool_size {self.pool_size}"
            )
        unknown = sorted(set(self.external_libs) - set(EXTERNAL_LIBS))
        if unknown or not self.external_libs:
            raise ValueError(
                f"GPU memory pool: external_libs must be some of {list(EXTERNAL_LIBS)}, got "
                f"{list(self.external_libs)}"
            )

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``dask_cuda.LocalCUDACluster`` for this pool.

        Returns
        -------
        dict
            ``rmm_pool_size``, ``rmm_maximum_pool_size`` (when set),
            ``rmm_allocator_external_lib_list`` and ``rmm_managed_memory=False`` (plain device
            allocations: managed memory larger than the free device memory can hang a GPU).
        """
        kwargs: dict[str, Any] = {
            "rmm_pool_size": self.pool_size,
            "rmm_managed_memory": False,
            "rmm_allocator_external_lib_list": list(self.external_libs),
        }
        if self.maximum_pool_size is not None:
            kwargs["rmm_maximum_pool_size"] = self.maximum_pool_size
        return kwargs

    def worker_cli_args(self) -> list[str]:
        """The same pool as options of ``dask cuda worker`` (job scripts that start workers)."""
        args = ["--rmm-pool-size", str(self.pool_size)]
        if self.maximum_pool_size is not None:
            args += ["--rmm-maximum-pool-size", str(self.maximum_pool_size)]
        return [*args, "--rmm-allocator-external-lib-list", ",".join(self.external_libs)]


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
            "(GpuMemoryConfig.pool_size / maximum_pool_size)"
        ) from error
