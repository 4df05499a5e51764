"""The counting stand-in for CuPy counts what a GPU would do and changes no result; the budget's
extrapolation and projection are plain arithmetic; no stage syncs once per source."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # the scripts import their neighbours
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


counting_numpy = _load("counting_numpy")
launch_budget = _load("launch_budget")
XP = counting_numpy.XP


def test_operations_syncs_and_transfers_are_counted_per_stage():
    rng = np.random.default_rng(4)
    host = rng.normal(size=1000)
    with counting_numpy.counting() as counter:
        with counter.stage("copy"):
            a = XP.asarray(host)
        with counter.stage("work"):
            b = XP.where(a > 0, a, 0.0)  # greater + where: 2 launches
            kept = b[b > 0.5]  # greater + mask gather: 2 launches, 1 sync
            total = float(kept.sum())  # add.reduce: 1 launch; float(): 1 sync
            XP.maximum.at(b, np.array([1, 2]), 5.0)  # 1 launch
            for _ in range(XP.asarray(2)):  # asarray: 1 launch; loop bound: 1 sync
                pass
            (none,) = XP.nonzero(b > 9)  # 2 launches, 1 sync
    copy, work = counter.stages["copy"].as_dict(), counter.stages["work"].as_dict()
    assert copy["h2d_bytes"] == host.nbytes and copy["syncs"] == 0
    assert work["launches"] == 9
    assert work["syncs_by_kind"] == {
        "boolean-mask indexing (output size)": 1, "float()": 1,
        "__index__ (loop bound / size from data)": 1, "nonzero (output size)": 1,
    }  # fmt: skip
    assert total == pytest.approx(host[host > 0.5].sum()) and none.size == 0
    assert work["launches_by_op"]["maximum.at"] == 1


def test_numpy_functions_on_device_arrays_are_reported():
    with counting_numpy.counting() as counter:
        a = XP.asarray(np.ones(4))
        np.cumsum(a)  # np., not xp.: on CuPy a TypeError or a hidden copy to the host
    assert counter.stages["other"].numpy_on_device == {"np.cumsum": 1}


@pytest.fixture(scope="module")
def tiles():
    """A 768^2 tile mirror-tiled from a 192^2 GalSim patch, and its 384^2 corner."""
    large = launch_budget.mirrored_tile(0, (768, 768), 192, seed=7)
    return _load("gpu_check_phases")._crop(large, 384, 384), large


def test_counting_changes_no_measurement(tiles):
    from csst_photoz.photometry import measure_tile

    small_tile = tiles[0]
    plain = measure_tile(small_tile)
    with counting_numpy.counting():
        counted = measure_tile(small_tile, xp=XP)
    assert plain.table.num_rows > 0
    assert counted.table.column_names == plain.table.column_names
    for name in plain.table.column_names:
        np.testing.assert_array_equal(counted.table[name].to_numpy(), plain.table[name].to_numpy(),
                                      err_msg=name)  # fmt: skip
    # the patching is undone on leaving the block
    import csst_photoz.photometry.backend as backend

    assert backend.array_module(np.ones(2)) is np


def test_no_stage_syncs_or_launches_once_per_source(tiles, monkeypatch):
    """A count that grows with the sources is a loop over them (data-dependent branches may
    add a few: at 192^2 -> 384^2 detection went from 87 to 93 syncs, then stayed). Checked with
    the aperture windows batched by size alone: merging small groups of windows
    (`plan_windows`' ``merge_pixels``) gives a tile with few sources fewer batches, a growth
    bounded by the window sizes, not by the sources; merging never adds any."""
    from csst_photoz.photometry import windows

    defaults = windows.plan_windows.__kwdefaults__
    monkeypatch.setattr(windows.plan_windows, "__kwdefaults__", {**defaults, "merge_pixels": 0})
    small, large = (launch_budget.count_tile(tile, 64) for tile in tiles)
    monkeypatch.setattr(windows.plan_windows, "__kwdefaults__", defaults)
    merged = [launch_budget.count_tile(tile, 64) for tile in tiles]
    added = large["sources"] - small["sources"]
    assert added >= 50
    for counted in (*merged, small, large):  # a NumPy function on a device array: a CuPy bug
        assert not any(stage["numpy_on_device"] for stage in counted["stages"].values())
    for stage, counts in large["stages"].items():
        before = small["stages"][stage]
        for key in ("syncs", "launches"):
            assert counts[key] - before[key] < 0.1 * added, (
                stage, key, before[f"{key}_by_op" if key == "launches" else "syncs_by_kind"],
                counts[f"{key}_by_op" if key == "launches" else "syncs_by_kind"],
            )  # fmt: skip
            for with_merging, without in zip(merged, (small, large), strict=True):
                assert with_merging["stages"][stage][key] <= without["stages"][stage][key]


def test_extrapolation_is_linear_in_pixels_and_projection_uses_the_stated_constants():
    def measured(pixels, launches, syncs, moved):
        stage = {"launches": launches, "syncs": syncs, "bytes_moved": moved,
                 "h2d_bytes": 0, "d2h_bytes": 10 * pixels}  # fmt: skip
        return {"pixels": pixels, "stages": {"s": stage}}

    full = launch_budget.extrapolate(
        measured(100, 50, 3, 1_000), measured(400, 80, 3, 4_000), pixels=1_000
    )["s"]
    assert full["launches"] == pytest.approx(140)  # 50 + 0.1 per pixel
    assert full["syncs"] == 3 and not full["syncs_grow_with_tile"]
    assert full["launches_grow_with_tile"]
    assert full["bytes_moved"] == pytest.approx(10_000)
    assert full["launch_s"] == pytest.approx(140 * launch_budget.LAUNCH_S)
    assert full["sync_s"] == pytest.approx(3 * launch_budget.SYNC_S)
    assert full["hbm_s"] == pytest.approx(10_000 / launch_budget.HBM_BYTES_PER_S)
    assert full["pcie_s"] == pytest.approx(10_000 / launch_budget.PCIE_BYTES_PER_S)
    assert full["total_s"] == pytest.approx(
        full["launch_s"] + full["sync_s"] + full["hbm_s"] + full["pcie_s"]
    )
