"""Smoke test of the end-to-end benchmark on two tiny tiles, so that it never rots."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_pipeline_benchmark_runs_on_tiny_tiles(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pipeline.py"), "--tiles", "2", "--size", "192x160",
         "--workers", "1", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "pipeline_cpu_192x160.json").read_text())
    (run,) = record["runs"]
    assert run["tiles"] == 2 and run["galaxies"] > 0 and run["galaxies_per_s"] > 0
    assert {"read", "photometry", "stamps", "inference", "write"} <= set(run["stage_seconds"])
    parts = run["photometry_part_share"]
    assert {"background", "detection", "kron_and_snr", "apertures"} <= set(parts)
    assert sum(parts.values()) == pytest.approx(run["stage_share"]["photometry"], rel=0.02)
    assert record["tile_size"] == [192, 160]
    assert record["survey_projection"]["survey_worker_hours"] > 0
    markdown = (tmp_path / "out" / "pipeline_cpu_192x160.md").read_text()
    assert markdown.startswith("# Batch processor")
