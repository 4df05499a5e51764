"""The ``[pipeline.gpu]`` pool keys: from the project file to ``LocalCUDACluster`` and to the
``dask cuda worker`` options of the SLURM job, refused naming the key when invalid."""

import subprocess
import sys
import types
from pathlib import Path

import pytest
from distributed import LocalCluster

from csst_photoz.pipeline import cluster
from csst_photoz.pipeline.config import SCHEDULING_KEYS, PipelineConfig, load_pipeline_config
from csst_photoz.pipeline.gpu_memory import GpuMemoryConfig, main
from csst_photoz.project_config import load_project_config

SBATCH = Path(__file__).resolve().parents[2] / "jobs" / "pipeline.sbatch"

POOL_TOML = """\
[pipeline]
batch_size = 1024

[pipeline.gpu]
rmm_pool_size = "30GB"
rmm_maximum_pool_size = 0.8
"""


def test_the_toml_table_and_set_overrides_give_the_pool(tmp_path):
    path = tmp_path / "project.toml"
    path.write_text(POOL_TOML)
    config = load_pipeline_config(path)
    assert config.gpu == GpuMemoryConfig(rmm_pool_size="30GB", rmm_maximum_pool_size=0.8)
    assert config.batch_size == 1024
    project = load_project_config(
        path, overrides=["pipeline.gpu.rmm_pool_size=0.25", "pipeline.gpu.rmm_pool=false"]
    )
    assert project.pipeline.gpu == GpuMemoryConfig(
        rmm_pool=False, rmm_pool_size=0.25, rmm_maximum_pool_size=0.8
    )


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("pipeline.gpu.rmm_pool_size=1", r"pipeline\.gpu\.rmm_pool_size: .*below 1 MiB"),
        ("pipeline.gpu.rmm_pool_size=2.0", r"pipeline\.gpu\.rmm_pool_size: .*fraction"),
        ("pipeline.gpu.rmm_maximum_pool_size=lots", r"pipeline\.gpu\.rmm_maximum_pool_size: "),
        ("pipeline.gpu.rmm_maximum_pool_size=0.2", r"pipeline\.gpu: .*below rmm_pool_size"),
        ("pipeline.gpu.pool_size=0.5", r"pipeline\.gpu\.pool_size: unknown key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(assignment, message):
    with pytest.raises(ValueError, match=message):
        load_project_config(overrides=[assignment])


def test_the_pool_is_not_part_of_the_recorded_settings():
    """It changes no row: runs with any pool resume each other, and 0.1.0 runs still do."""
    assert "gpu" in SCHEDULING_KEYS
    pooled = PipelineConfig(gpu=GpuMemoryConfig(rmm_pool_size="30GB"))
    assert "gpu" not in pooled.model_dump(mode="json")
    assert pooled.model_dump_json() == PipelineConfig().model_dump_json()


@pytest.fixture
def fake_dask_cuda(monkeypatch):
    """A `dask_cuda` whose LocalCUDACluster records its keywords (a small in-process cluster)."""
    seen = {}

    class LocalCUDACluster(LocalCluster):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(n_workers=1, threads_per_worker=1, processes=False,
                             dashboard_address=None)  # fmt: skip

    monkeypatch.setitem(
        sys.modules, "dask_cuda", types.SimpleNamespace(LocalCUDACluster=LocalCUDACluster)
    )
    monkeypatch.setattr(cluster, "gpus_visible", lambda: 1)
    return seen


def test_the_configured_pool_reaches_the_local_cuda_cluster(fake_dask_cuda):
    pool = load_project_config(overrides=['pipeline.gpu.rmm_pool_size="20GB"']).pipeline.gpu
    with cluster.connect(gpu_memory=pool) as client:
        assert len(client.nthreads()) == 1
    assert fake_dask_cuda["rmm_pool_size"] == "20GB"
    assert fake_dask_cuda["rmm_maximum_pool_size"] == 0.9
    assert fake_dask_cuda["rmm_allocator_external_lib_list"] == ["cupy", "torch"]
    assert fake_dask_cuda["n_workers"] == 1


def test_without_a_pool_setting_the_defaults_reach_it_and_off_gives_none(fake_dask_cuda):
    with cluster.connect():
        pass
    assert fake_dask_cuda["rmm_pool_size"] == 0.5  # unchanged default
    fake_dask_cuda.clear()
    with cluster.connect(gpu_memory=GpuMemoryConfig(rmm_pool=False)):
        pass
    assert not any(key.startswith("rmm_") for key in fake_dask_cuda)


def test_the_job_scripts_helper_prints_the_worker_options_of_the_runs_config(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(POOL_TOML)
    # the options of `csst-photoz run` in CSST_RUN_ARGS, as the job script passes them to
    # `python -m csst_photoz.pipeline.gpu_memory`; the run's other options are ignored
    run_args = ["--config", str(path), "--set", "pipeline.gpu.rmm_maximum_pool_size=0.7",
                "--models", "m.pt", "--quiet"]  # fmt: skip
    assert main(run_args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "--rmm-pool-size", "30GB", "--rmm-maximum-pool-size", "0.7",
        "--set-rmm-allocator-for-libs", "cupy,torch",
    ]  # fmt: skip


def test_the_helper_refuses_a_bad_pool_with_status_2_naming_the_key(capsys):
    assert main(["--set", "pipeline.gpu.rmm_pool_size=3.0"]) == 2
    assert "pipeline.gpu.rmm_pool_size" in capsys.readouterr().err
    assert main(["--set", "pipeline.gpu.rmm_pool=false"]) == 0
    assert capsys.readouterr().out == ""


def test_the_job_script_starts_gpu_workers_with_the_helpers_options():
    text = SBATCH.read_text()
    assert 'python -m csst_photoz.pipeline.gpu_memory "${run_args[@]}"' in text
    assert 'dask cuda worker "${common[@]}" "${pool_args[@]}" "${worker_args[@]}"' in text
    assert text.index('read -r -a run_args <<<"${CSST_RUN_ARGS:-}"') < text.index("gpu_memory")
    subprocess.run(["bash", "-n", str(SBATCH)], check=True, timeout=30)


def test_run_starts_its_local_gpu_cluster_with_the_configured_pool(fake_dask_cuda, tmp_path):
    from csst_photoz.pipeline import run

    config = load_project_config(
        overrides=['pipeline.gpu.rmm_pool_size="20GB"', "pipeline.device=cpu"]
    ).pipeline
    run([], tmp_path / "out", models=[], config=config, progress=False)
    assert fake_dask_cuda["rmm_pool_size"] == "20GB"
