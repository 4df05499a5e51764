"""Issue 19, item 4: no cluster to join is an error within a timeout, never a silent wait."""

import json
import socket
import time

import pytest

from csst_photoz.pipeline.cluster import ClusterError, connect, memory_limit_bytes


def test_a_missing_scheduler_file_is_an_error_after_the_timeout(tmp_path):
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"scheduler file does not exist after 1 s"):
        with connect(scheduler_file=tmp_path / "scheduler.json", timeout=1.0):
            pass
    assert time.monotonic() - start < 10


def test_a_garbage_scheduler_file_is_named(tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text("{not json")
    with pytest.raises(ClusterError, match=r"is not a scheduler file"):
        with connect(scheduler_file=path, timeout=0.5):
            pass


def test_a_stale_scheduler_file_is_a_short_error(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"address": f"tcp://127.0.0.1:{port}"}))
    start = time.monotonic()
    with pytest.raises(ClusterError, match=rf"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        with connect(scheduler_file=path, timeout=2.0):
            pass
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("text", ["-5GB", "0", "lots", "0 B"])
def test_a_memory_limit_must_be_a_positive_size(text):
    with pytest.raises(ClusterError, match=rf"memory limit {text!r}"):
        memory_limit_bytes(text)


def test_memory_limits_in_bytes():
    assert memory_limit_bytes("auto") is None
    assert memory_limit_bytes("2GB") == 2_000_000_000
    assert memory_limit_bytes("1 GiB") == 2**30
