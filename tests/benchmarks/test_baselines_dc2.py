"""Smoke test of benchmarks/baselines_dc2.py on two tiny files in RAIL's DC2 layout."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
BANDS = "ugrizy"


def _write_dc2_like(path, rng, size):
    """``photometry/mag_<b>_lsst``, ``mag_err_<b>_lsst`` and ``redshift``; u undetected = 99."""
    z = rng.uniform(0.1, 2.5, size)
    centre = np.arange(len(BANDS))[None, :] - 2.0 * z[:, None]
    mag = 24.0 + rng.uniform(-2, 1, size)[:, None] - 1.5 * np.exp(-0.5 * centre**2)
    mag_err = np.full(mag.shape, 0.05)
    undetected = rng.random(size) < 0.1
    mag[undetected, 0], mag_err[undetected, 0] = 99.0, 26.6  # RAIL: the 1-sigma limit
    with h5py.File(path, "w") as handle:
        group = handle.create_group("photometry")
        group["redshift"] = z
        for k, band in enumerate(BANDS):
            group[f"mag_{band}_lsst"] = mag[:, k].astype(np.float32)
            group[f"mag_err_{band}_lsst"] = mag_err[:, k].astype(np.float32)


@pytest.mark.slow  # about 20 s of CPU: eight tuned tree candidates, a k-NN and an MLP epoch
def test_baselines_dc2_writes_a_table_for_every_method(tmp_path):
    rng = np.random.default_rng(0)
    _write_dc2_like(tmp_path / "test_dc2_training_9816.hdf5", rng, 300)
    _write_dc2_like(tmp_path / "test_dc2_validation_9816.hdf5", rng, 200)
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "baselines_dc2.py"), "--data-dir", str(tmp_path),
         "--rows", "250", "--epochs", "1", "--threads", "1", "--recipe", "early-stopping",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "baselines_dc2.json").read_text())
    assert saved["n_train"] == 250 and saved["n_test"] == 200
    assert set(saved["methods"]) == {"gbr", "knn", "mlp"}
    for row in saved["methods"].values():
        assert row["n"] == 200 and 0 <= row["outlier_fraction"] <= 1
    assert saved["settings"]["mlp"].startswith("1 epochs (best 1), csst-photoz CLI")
    markdown = (tmp_path / "out" / "baselines_dc2.md").read_text()
    assert "| gbr |" in markdown and "| mlp |" in markdown and markdown in result.stdout
