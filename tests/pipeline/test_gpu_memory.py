"""The shared RMM pool's cluster settings, and GPU out-of-memory errors naming the tile."""

import pytest
import torch

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


def test_sizes_in_bytes_and_strings_pass_through_and_no_maximum_is_left_out():
    kwargs = GpuMemoryConfig(pool_size="40GB", maximum_pool_size=None).cluster_kwargs()
    assert kwargs["rmm_pool_size"] == "40GB"
    assert "rmm_maximum_pool_size" not in kwargs
    assert (
        GpuMemoryConfig(pool_size=2**30, maximum_pool_size=2**31).cluster_kwargs()[
            "rmm_maximum_pool_size"
        ]
        == 2**31
    )


def test_worker_cli_args_match_the_cluster_kwargs():
    args = GpuMemoryConfig(pool_size="30GB", maximum_pool_size="70GB").worker_cli_args()
    assert args == [
        "--rmm-pool-size", "30GB", "--rmm-maximum-pool-size", "70GB",
        "--rmm-allocator-external-lib-list", "cupy,torch",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pool_size": 0.0}, "pool_size as a fraction"),
        ({"pool_size": 1.5}, "pool_size as a fraction"),
        ({"pool_size": -3}, "pool_size in bytes"),
        ({"pool_size": "lots"}, "pool_size must be"),
        ({"pool_size": True}, "pool_size must be a size"),
        ({"maximum_pool_size": "9 parsecs"}, "maximum_pool_size must be"),
        ({"pool_size": 0.8, "maximum_pool_size": 0.5}, "below pool_size"),
        ({"external_libs": ("cupy", "jax")}, "external_libs"),
        ({"external_libs": ()}, "external_libs"),
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

    pool = GpuMemoryConfig(pool_size="1GB", maximum_pool_size="2GB")
    with (
        LocalCUDACluster(n_workers=1, ip="127.0.0.1", dashboard_address=":0",
                         **pool.cluster_kwargs()) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        (answer,) = client.run(_allocate_beyond_the_pool, 4.0).values()
    assert answer.split("|", 1)[1].startswith("tile 99 (synthetic): the GPU ran out of memory")
