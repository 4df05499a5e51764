"""The SLURM routes without a SLURM cluster: job scripts' guards, dask-jobqueue helpers.

The scripts themselves run on the real local cluster in ``tests/slurm`` (``-m slurm``).
"""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from csst_photoz.pipeline import slurm_cpu_cluster, slurm_runner_client

JOBS = Path(__file__).resolve().parents[2] / "jobs"
SCRIPTS = ("pipeline.sbatch", "train.sbatch", "simulate.sbatch")


def _no_slurm_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CSST_"))}


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse_and_pass_shellcheck(script):
    assert subprocess.run(["bash", "-n", str(JOBS / script)], check=False).returncode == 0
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    result = subprocess.run(
        ["shellcheck", str(JOBS / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("script", "env", "message"),
    [
        ("pipeline.sbatch", {}, "not in a SLURM job"),
        ("pipeline.sbatch", {"SLURM_JOB_ID": "1"}, "CSST_TILES is not set"),
        ("pipeline.sbatch", {"SLURM_JOB_ID": "1", "CSST_TILES": "t", "CSST_OUT": "o",
                             "CSST_WORKER": "tpu"}, "CSST_WORKER must be cuda or cpu"),
        ("train.sbatch", {"SLURM_JOB_ID": "1", "CSST_DATA": "d"}, "CSST_CKPT is not set"),
        ("simulate.sbatch", {"CSST_OUT": "o", "CSST_SEED": "1", "CSST_N": "4",
                             "CSST_SLICE": "2", "CSST_SLICES": "2"}, "not below the count 2"),
        ("simulate.sbatch", {"CSST_OUT": "o", "CSST_WHAT": "catalog", "CSST_SEED": "1",
                             "CSST_N": "4"}, "CSST_WHAT must be tiles, stamps or merge"),
    ],
)  # fmt: skip
def test_scripts_refuse_a_bad_configuration(tmp_path, script, env, message):
    result = subprocess.run(
        ["bash", str(JOBS / script)], env={**_no_slurm_env(), "HOME": str(tmp_path), **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stdout + result.stderr


def test_runner_needs_a_slurm_step(monkeypatch):
    for name in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    handler = signal.getsignal(signal.SIGINT)  # dask_jobqueue.runner replaces it on import
    try:
        with pytest.raises(RuntimeError, match="SLURM_PROCID"), slurm_runner_client():
            pass
    finally:
        signal.signal(signal.SIGINT, handler)


def test_cpu_cluster_job_script_has_single_threaded_workers(tmp_path):
    with slurm_cpu_cluster(
        cores=4, memory="8GB", walltime="01:00:00", queue="cpu", account="csst",
        lifetime="55m", log_directory=tmp_path, job_extra_directives=["--gpus-per-node=0"],
        job_script_prologue=["source /opt/venv/bin/activate"],
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
    ) as cluster:  # fmt: skip
        script = cluster.job_script()
    for line in ("#SBATCH -p cpu", "#SBATCH -A csst", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH -t 01:00:00", "#SBATCH --gpus-per-node=0",
                 "source /opt/venv/bin/activate"):  # fmt: skip
        assert line in script.splitlines(), line
    worker = script.splitlines()[-1]
    for option in ("--nthreads 1", "--nworkers 4", "--lifetime 55m", "--lifetime-stagger 2m",
                   "--local-directory ${TMPDIR:-/tmp}"):  # fmt: skip
        assert option in worker, option
