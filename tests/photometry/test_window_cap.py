"""The window cap only batches the work: the measured values do not depend on it (to float32
rounding), and GPU workers use their own cap (``max_window_pixels_gpu``)."""

import numpy as np
import pytest

from csst_photoz.photometry import apertures, measure
from csst_photoz.photometry.measure import PhotometryConfig
from csst_photoz.photometry.tile_photometry import measure_tile

from .scenes import scene_tile

CPU_CAP = PhotometryConfig().max_window_pixels
GPU_CAP = PhotometryConfig().max_window_pixels_gpu


@pytest.fixture
def window_caps(monkeypatch):
    """(cap, number of batches) of each `plan_windows` call, in order."""
    calls = []
    plan = apertures.plan_windows

    def spy(*args, max_window_pixels, **kwargs):
        batches = list(plan(*args, max_window_pixels=max_window_pixels, **kwargs))
        calls.append((max_window_pixels, len(batches)))
        return iter(batches)

    monkeypatch.setattr(apertures, "plan_windows", spy)
    return calls


def _measured(tile, config):
    """Every column of the catalogue, and the stamps of all its rows."""
    result = measure_tile(tile, config=config)
    stamps, inside = result.stamps(np.arange(result.table.num_rows))
    return result.table.to_pydict(), np.asarray(stamps), np.asarray(inside)


def test_defaults_are_the_cpu_cap_and_the_measured_gpu_cap():
    assert (CPU_CAP, GPU_CAP) == (4_194_304, 67_108_864)
    config = PhotometryConfig(max_window_pixels=100, max_window_pixels_gpu=200)
    assert (config.window_pixels(on_gpu=False), config.window_pixels(on_gpu=True)) == (100, 200)
    assert "max_window_pixels_gpu" not in PhotometryConfig().recorded()  # 0.1.0 runs resume
    assert PhotometryConfig(max_window_pixels_gpu=5).recorded()["max_window_pixels_gpu"] == 5


@pytest.mark.parametrize("cap", [1, 1024, GPU_CAP])
def test_measured_values_do_not_depend_on_the_window_cap(window_caps, cap):
    """Other caps batch the sources differently; the values agree to float32 rounding (the
    sums of a batch are reduced in another order: at most 2.1e-7 relative here), and exactly
    where the batches are the same (the CPU and GPU caps on this small tile)."""
    tile = scene_tile(seed=11)
    table, stamps, inside = _measured(tile, PhotometryConfig())
    default_calls = list(window_caps)
    window_caps.clear()
    other, other_stamps, other_inside = _measured(tile, PhotometryConfig(max_window_pixels=cap))
    assert {c for c, _ in default_calls} == {CPU_CAP} and {c for c, _ in window_caps} == {cap}
    same_batches = [n for _, n in window_caps] == [n for _, n in default_calls]
    assert same_batches == (cap == GPU_CAP)  # 1 and 1024 split what the defaults batch
    assert len(table["object_id"]) == 4 and other.keys() == table.keys()
    for name, values in table.items():
        expected, got = np.asarray(values), np.asarray(other[name])
        if expected.dtype.kind == "f" and not same_batches:
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, name)
    np.testing.assert_array_equal(other_stamps, stamps)
    np.testing.assert_array_equal(other_inside, inside)


def test_cupy_arrays_get_the_gpu_cap(monkeypatch, window_caps):
    """The cap follows the array library (as on a GPU worker; CuPy faked by `is_cupy`)."""
    tile = scene_tile(seed=11)
    config = PhotometryConfig(max_window_pixels_gpu=12_345)
    measure_tile(tile, config=config)
    assert {cap for cap, _ in window_caps} == {CPU_CAP}
    window_caps.clear()
    monkeypatch.setattr(measure, "is_cupy", lambda array: True)
    measure_tile(tile, config=config)
    assert {cap for cap, _ in window_caps} == {12_345}
