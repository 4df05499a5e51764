"""The GPU device check runs on CPU (``--dry-run``), so that it cannot fail on a typo the day a
GPU is lent; its budget, parsing and report are checked on their own."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check")
phases = _load("gpu_check_phases")


def test_budget_keeps_the_later_steps_floors_and_never_exceeds_a_cap():
    steps = gpu_check.STEPS
    total = 480.0
    assert sum(step.floor_s for step in steps) < total
    # a first step that takes all it may still leaves every later step its floor
    remaining = total
    for index, step in enumerate(steps):
        allowed = gpu_check.budget_for(index, remaining, 1.0)
        assert 0 <= allowed <= step.cap_s
        later = sum(s.floor_s for s in steps[index + 1 :])
        assert remaining - allowed >= later - 1e-9
        remaining -= allowed
    assert remaining >= 0
    assert gpu_check.budget_for(0, 10.0, 1.0) == 0.0  # nothing left once the floors are kept
    assert gpu_check.budget_for(len(steps) - 1, 1e6, 2.0) == steps[-1].cap_s * 2


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("3 passed, 1 skipped, 215 deselected in 9.1s", {"passed": 3, "skipped": 1,
                                                        "deselected": 215}),
        ("1 failed, 2 passed, 1 error in 3s", {"failed": 1, "passed": 2, "error": 1}),
        ("11/226 tests collected (215 deselected) in 3.02s", {"deselected": 215, "collected": 11}),
    ],
)  # fmt: skip
def test_pytest_summary_is_parsed(tail, expected):
    assert gpu_check._pytest_counts(tail) == expected


def _report(tmp_path: Path) -> dict:
    stages = {"to_device": 0.5, "background": 0.2, "detection": 0.3, "catalogue": 0.1}
    quarter = {"sources": 10, "seconds": 1.0, "stages_s": stages}
    return {
        "command": "python3 benchmarks/gpu_check.py",
        "dry_run": False,
        "budget_s": 480.0,
        "wall_s": 400.0,
        "device": "nvidia_h100_80gb_hbm3",
        "steps": {
            "environment": {"status": "ok", "seconds": 2.0, "result": {"device": {"name": "H"}}},
            "tests": {"status": "ok", "seconds": 50.0, "counts": {"passed": 11}},
            "tiles": {"status": "ok", "seconds": 60.0,
                      "result": {"generator": "GalSim patch", "wall_s": 55.0}},
            "photometry": {"status": "ok", "seconds": 90.0, "result": {
                "shape": [9232, 9216], "device": "cupy", "first_call_s": 20.0,
                "full_tile": {"seconds": 2.0, "sources": 14000, "stages_s": stages},
                "stamps": {"stamps_per_s": 1e5},
                "quarter_tile": {"numpy": quarter, "cupy": quarter,
                                 "speedup_per_stage": {"background": 1.0}},
            }},
            "inference": {"status": "ok", "seconds": 30.0, "result": {
                "batch": 4096, "device": "cuda",
                "networks": {"cnn": {"fp32": {"galaxies_per_s": 1e5},
                                     "bf16": {"galaxies_per_s": 2e5}}},
            }},
            "pipeline": {"status": "timed out after 150 s", "seconds": 150.0, "log_tail": "..."},
        },
    }  # fmt: skip


def test_the_report_names_each_measurement_and_each_step_that_failed(tmp_path):
    markdown = gpu_check.to_markdown(_report(tmp_path))
    assert markdown.startswith("# GPU device check (nvidia_h100_80gb_hbm3)")
    assert "| tests | ok | 50.0 |" in markdown
    assert "Full tile [9232, 9216] on cupy: 2.00 s, 14000 sources" in markdown
    assert "| detection | 0.300 | 0.300 | 0.300 | nan |" in markdown
    assert "| cnn | 100,000 | 200,000 |" in markdown
    assert "## pipeline: timed out after 150 s" in markdown


def test_a_partial_result_of_a_step_that_overran_still_gives_a_report(tmp_path):
    report = _report(tmp_path)
    photometry = report["steps"]["photometry"]
    photometry.update(status="timed out after 110 s", partial=True)
    del photometry["result"]["quarter_tile"]  # the step stopped before the NumPy comparison
    report["steps"]["inference"]["result"] = {"batch": 4096}  # stopped before any network
    markdown = gpu_check.to_markdown(report)
    assert "*Partial: the step timed out after 110 s.*" in markdown
    assert "| detection | 0.300 | nan | nan | nan |" in markdown
    assert "(incomplete result: KeyError" in markdown


def test_mirrored_tile_has_the_full_size_and_continues_the_patch_by_reflection():
    tile = phases.mirrored_tile(5, (150, 130), 64, seed=1)
    assert tile.shape == (150, 130) and tile.tile_id == 5
    np.testing.assert_array_equal(tile.image[:, :, 64:128], tile.image[:, :, 63::-1])
    np.testing.assert_array_equal(tile.variance[:, 64:128, :], tile.variance[:, 63::-1, :])
    assert tile.wcs_header["CRPIX1"] == pytest.approx((130 + 1) / 2, abs=1)
    assert "mirror-tiled" in tile.meta["generator"]


def test_dry_run_of_the_first_steps_writes_results(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--dry-run", "--steps", "setup",
         "environment", "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "gpu_check_dryrun_cpu.json").read_text())
    assert set(report["steps"]) == {"setup", "environment"}
    assert report["steps"]["environment"]["result"]["versions"]["torch"]
    assert (out / "gpu_check_dryrun_cpu.md").read_text().startswith("# GPU device check (dry")


@pytest.mark.slow
def test_full_dry_run_of_every_step_on_cpu(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--dry-run", "--tiles", "2",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    report = json.loads((out / "gpu_check_dryrun_cpu.json").read_text())
    steps = report["steps"]
    assert all(step["status"] == "ok" for step in steps.values())
    assert steps["tests"]["counts"]["collected"] >= 3  # the gpu tests exist and import
    assert steps["photometry"]["result"]["full_tile"]["sources"] > 0
    assert set(steps["inference"]["result"]["networks"]) >= {"mlp", "cnn"}
    pipeline = steps["pipeline"]["result"]
    assert pipeline["tiles_done"] == 2 and pipeline["galaxies"] > 0
    assert {"read", "photometry", "inference", "write"} <= set(pipeline["stage_shares"])
