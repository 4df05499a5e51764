"""The GPU device check runs on CPU (``--dry-run``), so that it cannot fail on a typo the day a
GPU is lent; its budget, parsing and report are checked on their own."""

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
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
                "max_window_pixels": 67108864, "max_window_pixels_key": "max_window_pixels_gpu",
                "full_tile": {"seconds": 2.0, "sources": 14000, "stages_s": stages},
                "full_tile_other_window_cap": {
                    "max_window_pixels": 4194304, "seconds": 2.5, "sources": 14000,
                    "stages_s": {"kron_and_snr": 0.4},
                    "agreement": {"same_rows": True, "max_rel_diff": 1.2e-7, "column": "flux_g"},
                },
                "stamps": {"stamps_per_s": 1e5},
                "quarter_tile": {"numpy": quarter, "cupy": quarter,
                                 "speedup_per_stage": {"background": 1.0}},
            }},
            "inference": {"status": "ok", "seconds": 30.0, "result": {
                "batch": 4096, "device": "cuda", "inputs": "synthetic (photometry failed)",
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
    assert "window cap `max_window_pixels_gpu` = 67,108,864 px." in markdown
    assert (
        "With the other backend's window cap, 4,194,304 px: 2.50 s (kron_and_snr 0.400 s), "
        "14000 sources; same rows: True, largest relative difference 1.2e-07 (flux_g)."
    ) in markdown
    assert "inputs: synthetic (photometry failed)." in markdown


def test_the_pipeline_section_names_the_pool_and_the_window_cap():
    result = {
        "cluster": "LocalCUDACluster(n_workers=1) from connect()", "tiles_done": 3,
        "tiles_failed": 0, "galaxies": 9000, "wall_s": 30.0, "galaxies_per_s": 300.0,
        "tiles_per_hour": 360.0, "stage_shares": {"read": 0.25, "photometry": 0.75},
        "gpu_pool": {"rmm_pool": True, "rmm_pool_size": 0.6, "rmm_maximum_pool_size": 0.9},
        "max_window_pixels": 67108864, "warning": "connect() did not start a LocalCUDACluster",
    }  # fmt: skip
    lines = gpu_check._pipeline_lines(result, dry_run=False)
    assert lines[0].startswith("LocalCUDACluster(n_workers=1) from connect(): 3 tiles done")
    assert "'rmm_pool_size': 0.6" in lines[1] and "67,108,864 px" in lines[1]
    assert lines[-1] == "**Warning: connect() did not start a LocalCUDACluster.**"


def test_agreement_of_two_catalogues_names_the_worst_column():
    import pyarrow as pa

    table = pa.table({"id": [1, 2], "flux": [1.0, float("nan")], "mag": [20.0, 21.0]})
    close = pa.table({"id": [1, 2], "flux": [1.0 + 1e-7, float("nan")], "mag": [20.0, 21.0]})
    near_zero = pa.table({"id": [1, 2], "x": [1e-9, 1.0], "y": [2e-9, 1.0]})
    assert phases._agreement(near_zero.select(["id", "x"]),
                             near_zero.select(["id", "y"]).rename_columns(["id", "x"])
                             )["max_rel_diff"] == pytest.approx(1e-9 / 0.5)  # fmt: skip
    agreement = phases._agreement(table, close)
    assert agreement["same_rows"] and agreement["column"] == "flux"
    assert agreement["max_rel_diff"] == pytest.approx(1e-7, rel=1e-3)
    moved = pa.table({"id": [1, 3], "flux": [1.0, float("nan")], "mag": [20.0, 21.0]})
    assert phases._agreement(table, moved)["differs"] == "id"
    nan = pa.table({"id": [1, 2], "flux": [float("nan"), float("nan")], "mag": [20.0, 21.0]})
    assert phases._agreement(table, nan)["max_rel_diff"] == float("inf")
    assert not phases._agreement(table, table.slice(0, 1))["same_rows"]


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


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel holding one module, ``gpu_check_probe``."""
    files = {
        "gpu_check_probe/__init__.py": "VALUE = 1\n",
        "gpu_check_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\n"
        "Name: gpu-check-probe\nVersion: 0.1\n",
        "gpu_check_probe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files["gpu_check_probe-0.1.dist-info/RECORD"] = "\n".join(
        [*record, "gpu_check_probe-0.1.dist-info/RECORD,,"]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gpu_check_probe-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    (folder / "other_python-1.0-cp399-cp399-manylinux_2_28_x86_64.whl").write_bytes(b"")
    return path


def test_dry_run_of_the_first_steps_installs_wheels_and_writes_results(tmp_path):
    """The setup step as on the lent machine: the carried wheels this Python can use go into
    the site folder, which is first on the later steps' path; a wheel for another Python is
    named, not installed; the report and the steps' logs reach --out and --copy-to."""
    out, copy, site = tmp_path / "out", tmp_path / "copy", tmp_path / "site"
    _tiny_wheel(tmp_path / "wheels")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--dry-run", "--steps", "setup",
         "environment", "--work", str(tmp_path / "work"), "--out", str(out), "--copy-to",
         str(copy), "--wheels", str(tmp_path / "wheels"), "--site", str(site)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]  # partial
    report = json.loads((copy / "gpu_check_dryrun_cpu.json").read_text())
    assert set(report["steps"]) == {"setup", "environment"}
    setup, environment = report["steps"]["setup"], report["steps"]["environment"]
    assert setup["status"] == "partial (1 wheels not for this Python)"
    assert setup["wheels"] == ["gpu_check_probe-0.1-py3-none-any.whl"]
    assert setup["refused"] == [
        "other_python-1.0-cp399-cp399-manylinux_2_28_x86_64.whl (no tag this Python supports)"
    ]
    assert (site / "gpu_check_probe" / "__init__.py").is_file()
    assert environment["status"] == "ok"
    assert str(site) in environment["result"]["python_path"]
    assert environment["result"]["versions"]["torch"]
    assert environment["result"]["module_files"]["dask"].endswith("__init__.py")
    assert (out / "gpu_check_dryrun_cpu.md").read_text().startswith("# GPU device check (dry")
    assert {p.name for p in (copy / "gpu_check_logs").iterdir()} >= {
        "setup.log", "environment.log", "environment.json"
    }  # fmt: skip


def test_a_step_that_overruns_is_killed_with_its_whole_process_group(tmp_path):
    """A phase's children (dask workers, process pools) do not outlive its timeout."""
    pid_file = tmp_path / "child.pid"
    child = "import time; time.sleep(60)"
    parent = (
        "import subprocess, sys, time; "
        f"c = subprocess.Popen([sys.executable, '-c', {child!r}]); "
        f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    result = gpu_check._run(
        [sys.executable, "-c", parent], 1.0, dict(os.environ), tmp_path / "step.log"
    )
    assert result["status"] == "timed out after 1 s"
    child_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the kill is sent; the kernel may take a moment to reap it
            os.kill(child_pid, 0)
            time.sleep(0.1)


def test_pytest_counts_come_from_the_per_test_lines_when_pytest_was_killed():
    output = (
        "tests/a.py::test_one PASSED [ 33%]\n"
        "tests/a.py::test_two[x] FAILED [ 66%]\n"
        "tests/b.py::test_three SKIPPED (no CUDA) [ 80%]\n"
        "tests/b.py::test_four PASSED [ 90%]\n"
    )
    assert gpu_check._pytest_counts(output) == {
        "passed": 2, "failed": 1, "skipped": 1, "incomplete": 1
    }  # fmt: skip
    assert gpu_check._pytest_counts(output + "===== 2 passed, 1 failed in 3s =====") == {
        "passed": 2, "failed": 1
    }  # fmt: skip


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
