"""The shared RMM pool's cluster settings, and GPU out-of-memory errors naming the tile."""

import pytest
import torch

from csst_photoz.pipeline.config import PipelineConfig
from csst_photoz.pipeline.gpu_memory import (
    DeviceMemoryError,
    GpuMemoryConfig,
    device_memory_errors,
    is_device_out_of_memory,
)


def test_cluster_kwargs_share_one_pool_between_cupy_and_torch():
    kwargs = GpuMemoryConfig().cluster_kwargs()
    assert kwargs == {
        "rmm_pool_size": 0.5,
        "rmm_maximum_pool_size": 0.9,
        "rmm_managed_memory": False,
        "rmm_allocator_external_lib_list": ["cupy", "torch"],
    }
    assert PipelineConfig().gpu == GpuMemoryConfig()  # the defaults of [pipeline.gpu]


def test_sizes_in_bytes_and_strings_pass_through():
    kwargs = GpuMemoryConfig(rmm_pool_size="40GB", rmm_maximum_pool_size="70 GiB").cluster_kwargs()
    assert (kwargs["rmm_pool_size"], kwargs["rmm_maximum_pool_size"]) == ("40GB", "70 GiB")
    kwargs = GpuMemoryConfig(rmm_pool_size=2**30, rmm_maximum_pool_size=2**31).cluster_kwargs()
    assert (kwargs["rmm_pool_size"], kwargs["rmm_maximum_pool_size"]) == (2**30, 2**31)
    assert type(kwargs["rmm_pool_size"]) is int  # bytes stay bytes (a float is a fraction)


def test_the_off_switch_leaves_each_library_its_own_allocator():
    off = GpuMemoryConfig(rmm_pool=False)
    assert off.cluster_kwargs() == {} and off.worker_cli_args() == []


def test_worker_cli_args_are_dask_cuda_workers_options_for_the_same_pool():
    args = GpuMemoryConfig(rmm_pool_size="30GB", rmm_maximum_pool_size="70GB").worker_cli_args()
    assert args == [
        "--rmm-pool-size", "30GB", "--rmm-maximum-pool-size", "70GB",
        "--set-rmm-allocator-for-libs", "cupy,torch",
    ]  # fmt: skip
    assert GpuMemoryConfig().worker_cli_args()[:4] == [
        "--rmm-pool-size", "0.5", "--rmm-maximum-pool-size", "0.9",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rmm_pool_size": 0.0}, "rmm_pool_size as a fraction"),
        ({"rmm_pool_size": 1.5}, "rmm_pool_size as a fraction"),
        ({"rmm_pool_size": -3}, "rmm_pool_size -3 is -3 bytes, below 1 MiB"),
        ({"rmm_pool_size": 1}, "rmm_pool_size 1 is 1 bytes, below 1 MiB.*decimal point"),
        ({"rmm_pool_size": "lots"}, "rmm_pool_size must be a fraction"),
        ({"rmm_pool_size": True}, "rmm_pool_size must be a size"),
        ({"rmm_pool_size": [1]}, "rmm_pool_size must be a size"),
        ({"rmm_maximum_pool_size": "9 parsecs"}, "rmm_maximum_pool_size must be"),
        ({"rmm_pool_size": 0.8, "rmm_maximum_pool_size": 0.5}, "below rmm_pool_size"),
        ({"rmm_pool_size": "40GB", "rmm_maximum_pool_size": 2**30}, "below rmm_pool_size"),
        ({"pool_size": 0.5}, "pool_size"),
    ],
)
def test_invalid_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        GpuMemoryConfig(**settings)


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError("std::bad_alloc: out_of_memory: RMM failure at:arena.hpp:84"),
        RuntimeError("rmm::out_of_memory: Maximum pool size exceeded"),
        RuntimeError("CUDA error: out of memory"),
    ],
    ids=["torch", "rmm-memoryerror", "rmm-through-torch", "cuda-runtime"],
)
def test_every_form_of_gpu_oom_becomes_one_error_naming_the_tile(error):
    assert is_device_out_of_memory(error)
    with pytest.raises(DeviceMemoryError, match=r"tile 17 \(t17\.zarr\): the GPU ran out") as info:
        with device_memory_errors("tile 17 (t17.zarr)"):
            raise error
    assert info.value.__cause__ is error
    assert type(error).__name__ in str(info.value)
    assert isinstance(info.value, MemoryError)


@pytest.mark.parametrize(
    "error", [RuntimeError("shape mismatch"), ValueError("bad tile"), KeyError("flux_i")]
)
def test_other_errors_pass_unchanged(error):
    assert not is_device_out_of_memory(error)
    with pytest.raises(type(error)) as info, device_memory_errors("tile 1"):
        raise error
    assert info.value is error


def test_an_inner_mapping_is_not_wrapped_twice():
    with pytest.raises(DeviceMemoryError, match=r"^tile 2: ") as info:
        with device_memory_errors("run"), device_memory_errors("tile 2"):
            raise MemoryError("out of memory")
    assert not str(info.value).startswith("run")


def _allocate_beyond_the_pool(gigabytes: float) -> str:
    """Run on a worker: allocate more than the pool allows through torch, as a tile would."""
    try:
        with device_memory_errors("tile 99 (synthetic)"):
            torch.empty(int(gigabytes * 2**30), dtype=torch.uint8, device="cuda")
    except DeviceMemoryError as error:
        return f"{type(error.__cause__).__name__}|{error}"
    return "allocated"


@pytest.mark.gpu
def test_torch_oom_under_the_rmm_pool_names_the_tile_on_a_gpu_worker():
    pytest.importorskip("dask_cuda")
    pytest.importorskip("rmm")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    pool = GpuMemoryConfig(rmm_pool_size="1GB", rmm_maximum_pool_size="2GB")
    with (
        LocalCUDACluster(n_workers=1, ip="127.0.0.1", dashboard_address=":0",
                         **pool.cluster_kwargs()) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        (answer,) = client.run(_allocate_beyond_the_pool, 4.0).values()
    assert answer.split("|", 1)[1].startswith("tile 99 (synthetic): the GPU ran out of memory")
