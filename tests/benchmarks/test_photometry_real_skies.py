"""Smoke test of ``benchmarks/photometry_real_skies.py`` on a small tile, so that it never
rots: every scenario is measured with the two cleaning options in every combination, and the
row of the defaults is named."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # a benchmark script end to end (~15 s); run with -m slow
def test_real_skies_benchmark_runs_every_scenario_and_option(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "photometry_real_skies.py"), "--size", "256",
         "--defects", "2", "--before", "", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "photometry_real_skies_256.json").read_text())
    assert written["default_run"] == "after + S/N without neighbours"
    assert len(written["scenarios"]) == 6
    for runs in written["scenarios"].values():
        assert len(runs) == 4 and written["default_run"] in runs
    clean = written["scenarios"]["clean"]["after (neither)"]
    assert clean["detections"] > 0 and 0 < clean["completeness_i_lt_26"] <= 1
    assert (tmp_path / "photometry_real_skies_256.png").stat().st_size > 0
