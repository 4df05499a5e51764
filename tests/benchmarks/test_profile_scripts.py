"""Smoke tests of the profiling helpers: the tile-task driver and the py-spy summary."""

import subprocess
import sys
from pathlib import Path

import pytest

from csst_photoz.io.tile_zarr import write_tile_zarr
from csst_photoz.sim.tiles import TileSpec, simulate_tile

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_profile_tile_runs_the_tile_task(tmp_path):
    tile, _ = simulate_tile(TileSpec(tile_id=3, nx=160, ny=160, seed=5))
    store = write_tile_zarr(tile, tmp_path / "tile_00000003.zarr")
    out = _run(str(BENCHMARKS / "profile_tile.py"), str(store), "--repeats", "1",
               "--out", str(tmp_path / "scratch"))  # fmt: skip
    assert out.startswith("done: ") and "'photometry'" in out
    assert (tmp_path / "scratch" / "run_0" / "tiles").is_dir()


def test_profile_summary_counts_inclusive_and_innermost_shares(tmp_path):
    ours = "csst_photoz/photometry/measure.py"
    raw = tmp_path / "profile.txt"
    raw.write_text(
        f"main (x.py:1);process_tile (csst_photoz/pipeline/tile_task.py:9);"
        f"measure_sources ({ours}:5);<lambda> (numpy/core.py:3) 30\n"
        f"main (x.py:1);process_tile (csst_photoz/pipeline/tile_task.py:9) 10\n"
        f"main (x.py:1);_warm_up (profile_tile.py:2);process_tile "
        f"(csst_photoz/pipeline/tile_task.py:9) 500\n"
        f"main (x.py:1);import (x.py:2) 60\n"
    )
    out = _run(str(BENCHMARKS / "profile_summary.py"), str(raw), "--out", str(tmp_path / "s.md"))
    assert "40 samples inside `process_tile`" in out  # not the import, not the warm-up
    assert "| measure_sources (photometry/measure.py) | 75.0% |" in out
    assert "| process_tile (pipeline/tile_task.py) | 100.0% |" in out
    assert "| process_tile (pipeline/tile_task.py) | 25.0% |" in out  # its own share
    assert (tmp_path / "s.md").read_text() == out.rstrip("\n") + "\n"
