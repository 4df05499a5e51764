"""The path grammar: every name the package writes or looks for, built in one place."""

from pathlib import Path

import pytest

from csst_photoz.checkpoints import checkpoint_files
from csst_photoz.io.paths import (
    DemoLayout,
    RunLayout,
    is_training_state,
    parse_training_part,
    slice_folder,
    temporary_prefix,
    tile_fits_path,
    tile_store_path,
    tile_truth_path,
    training_log_path,
    training_part_path,
    training_stamps_path,
    training_state_path,
    training_table_path,
)
from csst_photoz.training.state import RunPaths

V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1"


def test_tile_names():
    assert tile_store_path("tiles", 42) == Path("tiles/tile_00000042.zarr")
    assert tile_truth_path("tiles", 42) == Path("tiles/tile_00000042_truth.parquet")
    assert tile_fits_path("fits", 42, "NUV") == Path("fits/tile42_NUV.fits")


def test_run_layout_names_match_the_v0_1_run_folder():
    layout = RunLayout(V0_1 / "run")
    assert layout.partition(0).is_file() and layout.marker(0).is_file()
    assert layout.claim(0).is_file()
    assert layout.settings.is_file() and layout.manifest.is_file()
    assert layout.failures_table.is_file()
    assert sorted(layout.markers_dir.glob(RunLayout.MARKER_GLOB)) == [layout.marker(0)]
    assert layout.failure("ab12") == V0_1 / "run" / "_failed" / "ab12.json"


def test_training_set_names_match_the_v0_1_training_set():
    folder = V0_1 / "training_set"
    assert training_table_path(folder).is_file()
    assert (training_stamps_path(folder) / "stamps").is_dir()
    assert slice_folder("sets", 3) == Path("sets/slice_3")


@pytest.mark.parametrize("start, stop", [(0, 32), (96, 130), (9_999_999_968, 9_999_999_999)])
def test_training_parts_sort_in_row_order_and_parse_back(start, stop):
    path = training_part_path("set", start, stop)
    assert path.parent == Path("set/_parts")
    assert parse_training_part(path.name) == (start, stop)
    assert training_part_path("set", 64, 96).name < training_part_path("set", 128, 160).name


@pytest.mark.parametrize(
    "name", ["rows_1_2.parquet", ".rows_0000000000_0000000032.parquet.x1.tmp", "stamps.parquet"]
)
def test_other_names_are_not_training_parts(name):
    assert parse_training_part(name) is None


def test_training_run_files_sit_beside_the_best_model():
    assert training_state_path("out/mlp.pt") == Path("out/mlp.last.pt")
    assert training_log_path("out/mlp.pt") == Path("out/mlp.log.jsonl")
    assert training_state_path("out/model") == Path("out/model.last.pt")  # no suffix
    paths = RunPaths.for_checkpoint("out/cnn.pt")
    assert (paths.best, paths.state, paths.log) == (
        Path("out/cnn.pt"),
        Path("out/cnn.last.pt"),
        Path("out/cnn.log.jsonl"),
    )
    assert is_training_state(paths.state) and not is_training_state(paths.best)


def test_checkpoint_files_leave_out_training_states(tmp_path):
    for name in ("cnn.pt", "mlp.pt", "mlp.last.pt", "zzz.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in checkpoint_files(tmp_path)] == ["mlp.pt", "cnn.pt", "zzz.pt"]


def test_temporary_names_are_hidden_beside_their_target():
    assert temporary_prefix(Path("run/tiles/tile_00000001.parquet")) == ".tile_00000001.parquet."


def test_demo_layout():
    layout = DemoLayout("demo")
    assert (layout.tiles, layout.run, layout.catalog, layout.report) == (
        Path("demo/tiles"),
        Path("demo/run"),
        Path("demo/catalog"),
        Path("demo/report"),
    )
