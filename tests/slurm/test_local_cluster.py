"""Smoke tests of the local single-node SLURM cluster (jobs/local-slurm/).

Selected only with ``-m slurm``; they need root (start.sh installs and starts slurm).
"""

import time

import pytest

pytestmark = pytest.mark.slurm


def test_wrapped_job_completes_with_output(slurm_cluster, tmp_path):
    out = tmp_path / "wrapped.out"
    job = slurm_cluster.wrap(
        'echo "job=$SLURM_JOB_ID greeting=$CSST_GREETING"; hostname',
        env={"CSST_GREETING": "hello"},
        sbatch_args=("-o", str(out)),
    )
    assert slurm_cluster.wait(job, timeout=60) == "COMPLETED"
    lines = out.read_text().splitlines()
    assert lines[0] == f"job={job} greeting=hello"
    assert len(lines) == 2 and lines[1]  # hostname


def test_running_job_is_cancelled(slurm_cluster, tmp_path):
    out = tmp_path / "sleeper.out"
    script = tmp_path / "sleeper.sh"
    script.write_text('#!/bin/bash\necho "started"\nsleep "$1"\necho "not reached"\n')
    job = slurm_cluster.submit(script, "300", sbatch_args=("-o", str(out)))
    assert slurm_cluster.wait(job, timeout=60, states={"RUNNING"}) == "RUNNING"
    # RUNNING is set when the controller launches the job: wait for the script itself.
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    slurm_cluster.cancel(job)
    assert slurm_cluster.wait(job, timeout=60) == "CANCELLED"
    text = out.read_text()
    assert text.startswith("started\n") and "not reached" not in text
    assert f"JOB {job} ON" in text and "CANCELLED" in text  # slurmstepd's notice (stderr)
