"""Smoke tests of the photometry benchmark scripts on tiny tiles, so that they never rot.

The scripts run as subprocesses, as a user runs them (``benchmarks/photometry.py`` pins the
thread pools of the process it runs in).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from csst_photoz.instrument import Instrument
from csst_photoz.sim.tiles import TileSpec, simulate_tile

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def load_module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_throughput_benchmark_runs_on_a_tiny_tile(tmp_path):
    run_script(
        "photometry.py", "--size", "256", "--repeats", "1", "--photutils-sources", "5",
        "--stamp-batch", "8", "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "photometry_cpu.json").read_text())
    assert (tmp_path / "photometry_cpu.md").read_text().startswith("# Photometry throughput")
    assert result["environment"]["threads"]["OMP_NUM_THREADS"] == "1"
    assert result["tile"]["truth_galaxies"] > 0
    rows = result["apertures"]["implementations"]
    assert len(rows) == 5 and all(row["galaxies_per_s"] > 0 for row in rows.values())
    assert result["apertures"]["agreement_with_sep_exact"]["max_rel_diff"] < 1e-4
    assert set(result["full_tile"]["pipelines"]) and result["full_tile"]["our_stages_s"]
    assert result["stamps"]["per_call"] <= 8


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_gpu_device_without_cupy_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "photometry.py"), "--device", "gpu", "--size", "64",
         "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs CuPy" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_validation_runs_on_a_tiny_tile(tmp_path):
    run_script("photometry_validation.py", "--size", "256", "--out", str(tmp_path))
    result = json.loads((tmp_path / "photometry_validation.json").read_text())
    assert (tmp_path / "photometry_validation.png").stat().st_size > 10_000
    assert result["tile"]["truth_galaxies"] > 0
    assert set(result["completeness"]) == {"ours", "sep"}
    assert set(result["residuals"]) == {"r", "i"}
    assert set(result["residuals_all_bands"]) == {"NUV", "u", "g", "r", "i", "z", "y"}


def test_validation_noisy_tile_is_the_simulators_tile():
    validation = load_module("photometry_validation")
    spec = TileSpec(tile_id=3, nx=96, ny=64, seed=5)
    instrument = Instrument.default()
    noisy, clean, truth = validation.noisy_and_clean_tile(spec, instrument)
    reference, reference_truth = simulate_tile(spec, instrument=instrument)
    assert truth.equals(reference_truth)
    for plane in ("image", "variance", "mask"):
        np.testing.assert_array_equal(getattr(noisy, plane), getattr(reference, plane))
    assert not np.array_equal(clean.image, noisy.image)


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_detection_benchmark_runs_on_a_tiny_tile(tmp_path):
    run_script("detection.py", "--size", "256", "--repeats", "1", "--out", str(tmp_path))
    result = json.loads((tmp_path / "detection_cpu.json").read_text())
    assert (tmp_path / "detection_cpu.md").read_text().startswith("# Detection")
    assert result["environment"]["threads"]["OMP_NUM_THREADS"] == "1"
    rates = result["throughput"]
    assert len(rates) == 3 and all(row["mpix_per_s"] > 0 for row in rates.values())
    quality = result["quality"]
    assert len(quality) == 4
    # the raw detections of ours and sep (clean=False) are the same algorithm on one image
    raw_ours, raw_sep = (quality[name]["detections"] for name in list(quality)[::2][:2])
    assert abs(raw_ours - raw_sep) <= 0.05 * raw_sep
    assert all(0 <= q["purity"] <= 1 for q in quality.values())
