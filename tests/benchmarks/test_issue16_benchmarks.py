"""Smoke tests of the any-catalogue benchmarks: each runs small and writes its table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    stem = script.removesuffix(".py")
    markdown = (out / f"{stem}.md").read_text()
    assert markdown in result.stdout
    return json.loads((out / f"{stem}.json").read_text())


@pytest.mark.slow  # about 15 s: a small catalogue and one training epoch
def test_domain_flag_benchmark_reports_every_flag_bit_for_both_groups(tmp_path):
    saved = _run("domain_flag.py", "--n", "1500", "--epochs", "1", out=tmp_path)
    groups = saved["groups"]
    assert {"selected", "fainter (not selected)"} <= set(groups)
    assert groups["selected"]["n"] + groups["fainter (not selected)"]["n"] == 1500
    for row in groups.values():
        assert set(row["flag_shares"]) == {
            "OUTSIDE_SELECTION", "OUTSIDE_COLOUR_SPACE", "MISSING_BANDS", "CLAMPED"
        }  # fmt: skip
    # the fainter galaxies are outside the training selection far more often
    fainter = groups["fainter (not selected)"]["flag_shares"]["OUTSIDE_SELECTION"]
    assert fainter > groups["selected"]["flag_shares"]["OUTSIDE_SELECTION"]
    assert saved["domain_bytes"] > 0 and saved["checkpoint_bytes"] > saved["domain_bytes"]


@pytest.mark.slow  # about 20 s: two settings of one epoch each
def test_band_dropout_benchmark_gives_every_case_of_every_setting(tmp_path):
    saved = _run("band_dropout.py", "--n", "1500", "--epochs", "1", "--dropout", "0", "0.1",
                 out=tmp_path)  # fmt: skip
    cases = {(row["band_dropout"], row["case"]) for row in saved["rows"]}
    assert cases == {
        (d, c) for d in (0.0, 0.1) for c in ("all bands", "u missing", "NUV+u missing")
    }
    assert all(0 <= row["outlier_fraction"] <= 1 for row in saved["rows"])
