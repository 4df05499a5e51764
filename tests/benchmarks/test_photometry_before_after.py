"""Smoke test of ``benchmarks/photometry_before_after.py``: an earlier commit's photometry runs
beside this checkout's and sep's in one process (its package renamed), so the script never
rots."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # a benchmark script end to end (~15 s); run with -m slow
def test_before_after_benchmark_times_every_version_beside_sep(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "photometry_before_after.py"), "--before", "bc815ab",
         "--sizes", "96", "--repeats", "1", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "photometry_before_after_cpu.json").read_text())
    (size,) = written["sizes"]
    assert set(size["runs"]) == {"commit bc815ab", "this checkout", "sep"}
    assert size["runs"]["this checkout"]["time_vs_now"] == 1.0
    assert all(run["median_s"] > 0 and run["rows"] >= 0 for run in size["runs"].values())
    markdown = (tmp_path / "photometry_before_after_cpu.md").read_text()
    assert "| 96^2 (1 rounds) | commit bc815ab |" in markdown
