"""Issue 19: the jobs' Dask cluster speaks TLS with per-job credentials; others are refused."""

import os
import stat
import subprocess
import sys
import time

import pytest
import yaml
from distributed import Client
from distributed.security import Security

from csst_photoz.pipeline.cluster import write_job_credentials


def test_credentials_are_private_and_the_config_requires_tls(tmp_path):
    folder = tmp_path / "job" / "tls"
    config = write_job_credentials(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("cert.pem", "key.pem", "tls.yaml"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    settings = yaml.safe_load(config.read_text())["distributed"]["comm"]
    assert settings["require-encryption"] is True
    assert settings["tls"]["worker"]["key"] == str(folder / "key.pem")
    assert "PRIVATE KEY" in (folder / "key.pem").read_text()
    with pytest.raises(FileExistsError, match="not empty"):
        write_job_credentials(folder)


def _start(args, environ):
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli." + args[0], *args[1:]],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_a_tls_cluster_works_with_the_job_credentials_and_refuses_others(tmp_path):
    folder = tmp_path / "tls"
    write_job_credentials(folder)
    environ = {**os.environ, "DASK_CONFIG": str(folder)}
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = _start(["dask_scheduler", "--protocol", "tls", "--host", "127.0.0.1",
                        "--port", "0", "--dashboard-address", "127.0.0.1:0",
                        "--scheduler-file", str(scheduler_file)], environ)  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = _start(["dask_worker", "--scheduler-file", str(scheduler_file),
                         "--nthreads", "1", "--host", "127.0.0.1"], environ)  # fmt: skip
        cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
        job = Security(tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key,
                       require_encryption=True)  # fmt: skip
        with Client(scheduler_file=str(scheduler_file), security=job, timeout=30) as client:
            address = client.scheduler.address
            assert address.startswith("tls://127.0.0.1:")
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        with pytest.raises((OSError, TypeError, ValueError)):  # no credentials at all
            Client(address.replace("tls://", "tcp://"), timeout=5)
        with pytest.raises(OSError):  # a certificate the cluster does not trust
            Client(address, security=Security.temporary(), timeout=5)
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
