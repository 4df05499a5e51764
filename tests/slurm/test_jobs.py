"""The job scripts of ``jobs/`` on the real single-node SLURM cluster (jobs/local-slurm/).

Selected only with ``-m slurm``; they need root (start.sh installs and starts slurm). The node
has two CPUs shared with whatever else runs, so every job asks for one or two CPUs, no GPU
(``--gpus-per-node=0`` overrides the scripts' GPU defaults) and works on tiny inputs.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from csst_photoz.io import write_parquet_atomic, write_tile_zarr
from csst_photoz.io.paths import tile_store_path, tile_truth_path
from csst_photoz.io.run_store import RunStore

pytestmark = pytest.mark.slurm

JOBS = Path(__file__).resolve().parents[2] / "jobs"
BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
FIELD_TILES, FIELD_SIZE, FIELD_SEED = 6, 256, 21


def _cpu_job(tasks: int, *more: str) -> tuple[str, ...]:
    """One node, ``tasks`` tasks of one CPU, no GPU, ten minutes."""
    return (
        "--nodes=1", f"--ntasks-per-node={tasks}", "--cpus-per-task=1", "--gpus-per-node=0",
        "--time=10", *more,
    )  # fmt: skip


def _submit(cluster, script, tmp_path, name, *, env, sbatch_args):
    output = tmp_path / f"{name}.out"
    job = cluster.submit(JOBS / script, env=env, sbatch_args=(*sbatch_args, f"--output={output}"))
    return job, output


def _finish(cluster, job, output, timeout, expected="COMPLETED"):
    state = cluster.wait(job, timeout=timeout)
    text = output.read_text() if output.exists() else "(no output)"
    assert state == expected, f"job {job} ended {state}:\n{text[-4000:]}"
    return text


def _processes_mentioning(needle: str) -> list[int]:
    """PIDs of live processes whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in cmdline and stat.rsplit(")", 1)[-1].split()[0] not in "ZX":
            found.append(int(entry.name))
    return found


def _no_processes_left(needle: str, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_mentioning(needle)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> list[Path]:
    """Six simulated 256 x 256 tiles (zarr) with their truth tables; returns the stores."""
    from csst_photoz.sim.tiles import simulate_tile, tile_grid

    directory = tmp_path_factory.mktemp("field")
    stores = []
    for spec in tile_grid(FIELD_TILES, nx=FIELD_SIZE, ny=FIELD_SIZE, seed=FIELD_SEED):
        tile, truth = simulate_tile(spec)
        stores.append(write_tile_zarr(tile, tile_store_path(directory, spec.tile_id)))
        write_parquet_atomic(truth, tile_truth_path(directory, spec.tile_id))
    return stores


def _pipeline_env(tiles, out, shared, **more):
    return {
        "CSST_TILES": " ".join(map(str, tiles)),
        "CSST_OUT": str(out),
        "CSST_SHARED": str(shared),
        "CSST_WORKER": "cpu",
        "CSST_STARTUP_TIMEOUT": "120",
        **more,
    }


def _check_catalogue(out: Path, tile_ids: list[int]) -> pa.Table:
    """Every tile once, partitions matching their markers, object ids unique."""
    store = RunStore(out)
    records = list(store.markers())
    assert [r.tile_id for r in records] == tile_ids
    for record in records:
        store.verify_partition(record)
    partitions = sorted(store.tiles_dir.glob("*.parquet"))
    assert [p.name for p in partitions] == [store.partition_path(t).name for t in tile_ids]
    table = pa.concat_tables([pq.read_table(p) for p in partitions])
    assert table.num_rows == sum(r.rows for r in records) > 0
    ids = table["object_id"].to_numpy()
    assert np.unique(ids).size == ids.size
    assert sorted(set(table["tile_id"].to_pylist())) == tile_ids
    return table


def test_pipeline_job_on_cpu_workers(slurm_cluster, field, tmp_path):
    out, shared = tmp_path / "run", tmp_path / "shared"
    env = _pipeline_env(field[:3], out, shared)
    job, output = _submit(
        slurm_cluster, "pipeline.sbatch", tmp_path, "pipeline", env=env, sbatch_args=_cpu_job(2)
    )
    text = _finish(slurm_cluster, job, output, timeout=240)

    assert "2 workers joined" in text and "3 tiles done, 0 skipped" in text
    assert "models: mlp, cnn" in text  # the shipped checkpoints
    assert "scheduler tls://" in text and "scheduler tls://127." not in text  # TLS by default
    assert not (shared / "tls" / job).exists()  # the job's credentials are deleted at the end
    _check_catalogue(out, [0, 1, 2])
    logs = shared / "logs" / job
    assert (logs / "scheduler.log").stat().st_size > 0
    assert list(logs.glob("workers-*.log"))
    workers_config = (logs / "dask-config" / "csst-photoz-workers.yaml").read_text()
    assert "MALLOC_MMAP_THRESHOLD_: 33554432" in workers_config  # the workers' malloc settings
    assert "OMP_NUM_THREADS" in workers_config  # Dask's own entries kept
    assert not (shared / f"scheduler-{job}.json").exists()  # cleaned up
    assert _no_processes_left(f"scheduler-{job}.json") == []


SLOW_TILES = '''
"""Worker preload for the tests: every tile takes {delay} s longer (patched before any task)."""
import time

import csst_photoz.pipeline.tile_task as tile_task

# dask imports a preload file twice (nanny and worker, with a reload): wrap the original once
_process_tile = getattr(tile_task, "_unslowed_process_tile", tile_task.process_tile)
tile_task._unslowed_process_tile = _process_tile


def process_tile(*args, **kwargs):
    time.sleep({delay})
    return _process_tile(*args, **kwargs)


tile_task.process_tile = process_tile
'''


def test_cancelled_pipeline_resumes_when_resubmitted(slurm_cluster, field, tmp_path):
    out, shared = tmp_path / "run", tmp_path / "shared"
    preload = tmp_path / "slow_tiles.py"
    preload.write_text(SLOW_TILES.format(delay=3))
    env = _pipeline_env(field, out, shared, CSST_WORKER_ARGS=f"--preload {preload}")
    job, output = _submit(
        slurm_cluster, "pipeline.sbatch", tmp_path, "first", env=env, sbatch_args=_cpu_job(1)
    )
    store = RunStore(out)
    deadline = time.monotonic() + 180
    while not list(store.markers()):
        assert slurm_cluster.state(job) in ("PENDING", "RUNNING", "CONFIGURING"), output.read_text()
        assert time.monotonic() < deadline, "no tile finished in time"
        time.sleep(0.2)
    assert slurm_cluster.state(job) == "RUNNING"
    slurm_cluster.cancel(job)
    _finish(slurm_cluster, job, output, timeout=60, expected="CANCELLED")
    assert _no_processes_left(f"scheduler-{job}.json") == []
    done_first = [r.tile_id for r in store.markers()]
    assert 1 <= len(done_first) < FIELD_TILES

    env = _pipeline_env(field, out, shared)  # the same run, now without the slowdown
    again, output = _submit(
        slurm_cluster, "pipeline.sbatch", tmp_path, "again", env=env, sbatch_args=_cpu_job(1)
    )
    text = _finish(slurm_cluster, again, output, timeout=240)
    done_now = FIELD_TILES - len(done_first)
    assert f"{done_now} tiles done, {len(done_first)} skipped (done earlier), 0 failed" in text
    _check_catalogue(out, list(range(FIELD_TILES)))


def _training_set(folder: Path, n: int = 64, size: int = 16) -> Path:
    """A tiny training set in the simulator's layout: random photometry, noise stamps."""
    rng = np.random.default_rng(0)
    columns = {"redshift": rng.uniform(0.1, 3.0, n)}
    for b in BANDS:
        columns[f"kron_flux_{b}"] = rng.lognormal(6.0, 1.0, n)
        columns[f"kron_flux_err_{b}"] = rng.uniform(5.0, 20.0, n)
    columns["detected"] = np.ones(n, dtype=bool)
    table = pa.table(columns).replace_schema_metadata({"csst_photoz.bands": ",".join(BANDS)})
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "stamps.parquet")
    group = zarr.open_group(folder / "stamps.zarr", mode="w")
    shape = (n, len(BANDS), size, size)
    stamps = group.create_array("stamps", shape=shape, chunks=(16, *shape[1:]), dtype=np.float32)
    stamps[:] = rng.normal(0.0, 10.0, shape).astype(np.float32)
    group.attrs["bands"] = list(BANDS)
    return folder


def test_train_job_two_gloo_processes_and_resubmission_resumes(slurm_cluster, tmp_path):
    from csst_photoz.models import load_model
    from csst_photoz.training import read_log

    config = tmp_path / "train.toml"
    config.write_text(
        "[training]\nseed = 1\nbatch_size = 32\nlearning_rate = 1e-3\n"
        "flux_realisations = 1\ndihedral_copies = 1\n"
    )
    ckpt = tmp_path / "models" / "mlp.pt"
    env = {
        "CSST_KIND": "mlp",
        "CSST_DATA": str(_training_set(tmp_path / "set")),
        "CSST_CKPT": str(ckpt),
        "CSST_EPOCHS": "1",
        "CSST_CONFIG": str(config),
    }
    job, output = _submit(
        slurm_cluster, "train.sbatch", tmp_path, "train", env=env, sbatch_args=_cpu_job(2)
    )
    text = _finish(slurm_cluster, job, output, timeout=180)
    assert "1 node(s) x 2 cpu process(es)" in text
    model = load_model(ckpt)
    assert model.checkpoint_metadata.training.world_size == 2
    assert ckpt.with_name("mlp.last.pt").is_file()
    assert [(r["epoch"], r["world_size"]) for r in read_log(ckpt.with_suffix(".log.jsonl"))] == [
        (1, 2)
    ]

    # the next job of a chain: --epochs is the cap, the state of epoch 1 is resumed
    again, output = _submit(
        slurm_cluster, "train.sbatch", tmp_path, "again",
        env={**env, "CSST_EPOCHS": "2"}, sbatch_args=_cpu_job(2),
    )  # fmt: skip
    text = _finish(slurm_cluster, again, output, timeout=180)
    assert "resuming from" in text
    assert [r["epoch"] for r in read_log(ckpt.with_suffix(".log.jsonl"))] == [1, 2]


def test_simulate_array_tiles_union_is_the_single_run(slurm_cluster, tmp_path):
    from distributed import Client

    from csst_photoz.io.tile_zarr import read_tile_zarr
    from csst_photoz.pipeline import simulate_tiles
    from csst_photoz.sim.tiles import tile_grid

    n, size, seed = 3, 48, 5
    env = {"CSST_WHAT": "tiles", "CSST_OUT": str(tmp_path / "sliced"), "CSST_SEED": str(seed),
           "CSST_N": str(n), "CSST_SIZE": str(size)}  # fmt: skip
    job, _ = _submit(
        slurm_cluster, "simulate.sbatch", tmp_path, "tiles-%a", env=env,
        sbatch_args=("--array=0-1", "--ntasks=1", "--cpus-per-task=1", "--mem-per-cpu=2G",
                     "--time=10"),
    )  # fmt: skip
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        simulate_tiles(tile_grid(n, nx=size, ny=size, seed=seed), tmp_path / "single",
                       client=c, progress=False)  # fmt: skip
    state = slurm_cluster.wait(job, timeout=180)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("tiles-*.out")))
    assert state == "COMPLETED", logs
    assert "slice 0/2: tile ids 0..0" in logs and "slice 1/2: tile ids 1..2" in logs
    runs = ("single", "sliced")
    for tile_id in range(n):
        single = read_tile_zarr(tile_store_path(tmp_path / "single", tile_id))
        sliced = read_tile_zarr(tile_store_path(tmp_path / "sliced", tile_id))
        np.testing.assert_array_equal(single.image, sliced.image)
        np.testing.assert_array_equal(single.mask, sliced.mask)
        truth = [pq.read_table(tile_truth_path(tmp_path / d, tile_id)) for d in runs]
        assert truth[0].equals(truth[1])


def test_simulate_array_stamps_and_merge_job_give_the_single_run(slurm_cluster, tmp_path):
    from distributed import Client

    from csst_photoz.pipeline import simulate_stamps

    n, size, seed = 8, 16, 6
    out = tmp_path / "sliced"
    env = {"CSST_WHAT": "stamps", "CSST_OUT": str(out), "CSST_SEED": str(seed),
           "CSST_N": str(n), "CSST_SIZE": str(size)}  # fmt: skip
    resources = ("--ntasks=1", "--cpus-per-task=1", "--mem-per-cpu=2G", "--time=10")
    array, _ = _submit(
        slurm_cluster, "simulate.sbatch", tmp_path, "stamps-%a", env=env,
        sbatch_args=("--array=0-1", *resources),
    )  # fmt: skip
    merge, merge_output = _submit(
        slurm_cluster, "simulate.sbatch", tmp_path, "merge", env={**env, "CSST_WHAT": "merge"},
        sbatch_args=(f"--dependency=afterok:{array}", *resources),
    )  # fmt: skip
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        simulate_stamps(n, tmp_path / "single", client=c, seed=seed, size=size, progress=False)
    _finish(slurm_cluster, merge, merge_output, timeout=240)
    assert slurm_cluster.state(array) == "COMPLETED"

    merged, single = out / "merged", tmp_path / "single"
    assert pq.read_table(merged / "stamps.parquet").equals(
        pq.read_table(single / "stamps.parquet"), check_metadata=True
    )
    a = zarr.open_group(single / "stamps.zarr", mode="r")
    b = zarr.open_group(merged / "stamps.zarr", mode="r")
    assert dict(a.attrs) == dict(b.attrs)
    np.testing.assert_array_equal(a["stamps"][:], b["stamps"][:])


RUNNER_SCRIPT = """
import sys
from csst_photoz.pipeline import slurm_runner_client

with slurm_runner_client(scheduler_file=sys.argv[1], worker_options={"nthreads": 1}) as client:
    print("workers", len(client.nthreads()), "sum", client.submit(sum, [1, 2, 3]).result())
"""


def test_slurm_runner_makes_a_cluster_of_the_job_tasks(slurm_cluster, tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER_SCRIPT)
    output = tmp_path / "runner.out"
    job = slurm_cluster.wrap(
        f"srun {sys.executable} {script} {tmp_path}/scheduler-{{job_id}}.json",
        sbatch_args=("--ntasks=3", "--overcommit", "--cpus-per-task=1", "--time=5",
                     f"--output={output}"),
    )  # fmt: skip
    text = _finish(slurm_cluster, job, output, timeout=120)
    assert "workers 1 sum 6" in text  # task 0 scheduler, task 1 this client, task 2 a worker


def test_slurm_cpu_cluster_submits_worker_jobs(slurm_cluster, tmp_path):
    from distributed import Client

    from csst_photoz.pipeline import slurm_cpu_cluster

    with slurm_cpu_cluster(
        cores=1, memory="1GB", walltime="00:05:00", log_directory=tmp_path,
        job_extra_directives=["--gpus-per-node=0"],
    ) as cluster:  # fmt: skip
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(os.getpid).result() != os.getpid()  # ran in the job
            jobs = [worker.job_id for worker in cluster.workers.values()]
    assert len(jobs) == 1 and list(tmp_path.glob(f"*-{jobs[0]}.err"))
    assert slurm_cluster.wait(jobs[0], timeout=60) in ("CANCELLED", "COMPLETED")  # closed
