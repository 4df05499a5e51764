"""Issue 19, item 7: distinct exit statuses and one-line errors instead of tracebacks."""

import errno
from pathlib import Path

import pytest

import csst_photoz.pipeline.cli as pipeline_cli
from csst_photoz.cli import ExitStatus, exit_status, main
from csst_photoz.io.checkpoint_metadata import CheckpointError
from csst_photoz.io.run_store import RunSettingsError
from csst_photoz.pipeline.cluster import ClusterError, gpus_visible
from csst_photoz.pipeline.finalize import CatalogExistsError


@pytest.mark.parametrize(
    "error, status",
    [
        (ValueError("bad"), ExitStatus.USAGE),
        (KeyError("key"), ExitStatus.USAGE),
        (FileNotFoundError(errno.ENOENT, "No such file", "x"), ExitStatus.USAGE),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "x"), ExitStatus.USAGE),
        (CatalogExistsError(Path("catalog")), ExitStatus.USAGE),
        (RunSettingsError("run", ["pipeline"]), ExitStatus.USAGE),
        (CheckpointError("a.pt: refused"), ExitStatus.USAGE),
        (ClusterError("no scheduler"), ExitStatus.USAGE),
        (OSError(errno.ENOSPC, "No space left on device", "x"), ExitStatus.IO_ERROR),
        (OSError(errno.EROFS, "Read-only file system", "x"), ExitStatus.IO_ERROR),
        (PermissionError(errno.EACCES, "Permission denied", "x"), ExitStatus.IO_ERROR),
        (KeyboardInterrupt(), ExitStatus.INTERRUPTED),
        (RuntimeError("a bug"), None),
        (ZeroDivisionError(), None),
    ],
)
def test_each_error_has_its_exit_status(error, status):
    assert exit_status(error) == status


def test_the_statuses_are_distinct():
    values = [status.value for status in ExitStatus]
    assert len(set(values)) == len(values)
    assert ExitStatus.TILES_FAILED not in (ExitStatus.INTERNAL_ERROR, ExitStatus.USAGE)


@pytest.fixture
def field(tmp_path):
    """Two tile stores by name (these commands stop before reading any)."""
    stores = [tmp_path / "tiles" / f"tile_0000000{k}.zarr" for k in (1, 2)]
    for store in stores:
        store.mkdir(parents=True)
    return stores


def _raising(error):
    def command(args):
        raise error

    return command


@pytest.mark.parametrize(
    "error, status, line",
    [
        (KeyboardInterrupt(), 130, "interrupted; rerun the same command to resume"),
        (OSError(errno.ENOSPC, "No space left on device", "/out/tiles/tile_1.parquet"), 4,
         "/out/tiles/tile_1.parquet: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/out/run.json"), 4,
         "/out/run.json: Read-only file system"),
        (CatalogExistsError(Path("/out/catalog")), 2, "/out/catalog exists"),
    ],
)  # fmt: skip
def test_errors_become_one_line_and_a_status(monkeypatch, capsys, tmp_path, error, status, line):
    monkeypatch.setattr(pipeline_cli, "_cmd_run", _raising(error))
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "run")]) == status
    err = capsys.readouterr().err
    assert line in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_unexpected_error_keeps_its_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline_cli, "_cmd_run", _raising(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError):
        main(["run", str(tmp_path), "--out", str(tmp_path / "run")])


def test_run_into_a_file_is_a_usage_error(tmp_path, field, capsys):
    out = tmp_path / "out.txt"
    out.write_text("")
    assert main(["run", str(field[0]), "--out", str(out), "--no-models", "--quiet"]) == 2
    assert f"{out}: exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["-5GB", "lots", "0"])
def test_a_bad_memory_limit_is_a_usage_error(tmp_path, field, capsys, limit):
    argv = ["run", str(field[0]), "--out", str(tmp_path / "run"), "--no-models", "--quiet",
            f"--memory-limit={limit}"]  # fmt: skip
    assert main(argv) == 2
    assert f"memory limit {limit!r}" in capsys.readouterr().err


@pytest.mark.skipif(gpus_visible() > 0, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_before_any_tile(tmp_path, field, capsys):
    argv = ["run", str(field[0]), "--out", str(tmp_path / "run"), "--no-models", "--quiet",
            "--device", "cuda"]  # fmt: skip
    assert main(argv) == 2
    assert "no usable GPU" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("tiles/*"))


def test_a_non_tile_argument_stops_the_run_before_any_tile(tmp_path, field, capsys):
    (tmp_path / "notes").mkdir()
    argv = ["run", str(field[0]), str(field[1]), str(tmp_path / "notes"), "--out",
            str(tmp_path / "run"), "--no-models", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "folder holds no tiles" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
