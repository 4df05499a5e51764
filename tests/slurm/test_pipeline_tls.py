"""jobs/pipeline.sbatch's TLS, run here without SLURM: ``srun`` is a shim that runs its command.

The job script makes the job's credentials, starts a TLS-only scheduler and the workers, runs
the pipeline through them, and deletes the credentials at the end; while it runs, a client
without the job's key is refused. (The same script on the local SLURM cluster is
``test_jobs.py::test_pipeline_job_on_cpu_workers``.)
"""

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from distributed import Client
from distributed.security import Security

from csst_photoz.io import write_tile_zarr
from csst_photoz.io.paths import tile_store_path
from csst_photoz.sim.tiles import simulate_tile, tile_grid

REPO = Path(__file__).resolve().parents[2]
SRUN = """#!/bin/bash
# srun without SLURM: drop the options, send the output where --output says, run the command
output=/dev/null
while [[ $1 == --* ]]; do
    [[ $1 == --output=* ]] && output=${1#--output=}
    shift
done
exec "$@" >"${output//%N/$(hostname -s)}" 2>&1
"""


@pytest.mark.slow
def test_the_pipeline_job_speaks_tls_and_refuses_other_clients(tmp_path):
    spec = tile_grid(1, nx=256, ny=256, seed=3)[0]
    tile, _ = simulate_tile(spec)
    store = write_tile_zarr(tile, tile_store_path(tmp_path / "field", spec.tile_id))
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "srun").write_text(SRUN)
    (shims / "srun").chmod(0o755)
    shared, job = tmp_path / "shared", "4242"
    environ = {
        **os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "SLURM_JOB_ID": job,
        "SLURM_JOB_NUM_NODES": "1", "SLURM_NTASKS_PER_NODE": "1", "CSST_WORKER": "cpu",
        "CSST_TILES": str(store), "CSST_OUT": str(tmp_path / "run"), "CSST_SHARED": str(shared),
        "CSST_MODELS": "none", "CSST_STARTUP_TIMEOUT": "120", "CSST_DASHBOARD_PORT": "0",
    }  # fmt: skip
    process = subprocess.Popen(
        ["bash", str(REPO / "jobs" / "pipeline.sbatch")], env=environ, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    scheduler_file = shared / f"scheduler-{job}.json"
    tls_dir = shared / "tls" / job
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((tls_dir / "key.pem").stat().st_mode) == 0o600
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tls://")
        with pytest.raises((OSError, TypeError, ValueError)):
            Client(address.replace("tls://", "tcp://"), timeout=5)
        with pytest.raises(OSError):
            Client(address, security=Security.temporary(), timeout=5)
        output, _ = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert "1 tiles done" in output and f"scheduler {address}" in output
    assert not tls_dir.exists() and not scheduler_file.exists()
    assert (shared / "logs" / job / "dask-config" / "tls.yaml").exists()
