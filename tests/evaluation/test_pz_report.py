"""``csst-photoz evaluate`` on a table with p(z) columns: the p(z) section and its numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from csst_photoz.evaluation.columns import model_columns
from csst_photoz.pz import PzGrid
from csst_photoz.pz.columns import photoz_columns

GRID = PzGrid(0.0, 4.0, 200)


def _table(n: int = 400, seed: int = 0) -> pa.Table:
    """Calibrated Gaussian p(z): the truth is drawn from each galaxy's own p(z)."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0.2, 2.5, n)
    sigma = 0.04 * (1 + centre)
    z_true = centre + sigma * rng.standard_normal(n)
    cdf = stats.norm.cdf(GRID.edges[None], centre[:, None], sigma[:, None])
    probabilities = np.diff(cdf, axis=1)
    table = pa.table({"redshift": z_true, "z_mlp": centre, "z_mlp_err": sigma})
    estimate = SimpleNamespace(pz=probabilities / probabilities.sum(1, keepdims=True), pz_grid=GRID)
    for field, values in photoz_columns(estimate, "mlp"):
        table = table.append_column(field, values)
    return table


def test_pz_columns_are_not_models():
    from csst_photoz.evaluation.field import photoz_columns as field_models

    names = ["redshift", "z_mlp", "z_mlp_err", "z_mlp_mode", "z_mlp_std", "z_mlp_pz", "z_cnn"]
    assert list(model_columns(names, truth_column="redshift")) == ["mlp", "cnn"]
    assert field_models([*names[1:], "z_cnn_flag", "z_x_mode"]) == ["mlp", "cnn", "x_mode"]


def test_evaluate_reports_pz_calibration_and_nz(tmp_path):
    from csst_photoz.cli import main

    pq.write_table(_table(), tmp_path / "photoz.parquet")
    out = tmp_path / "report"
    assert (
        main(["evaluate", "--predictions", str(tmp_path / "photoz.parquet"), "--out", str(out)])
        == 0
    )
    document = json.loads((out / "metrics.json").read_text())
    assert list(document["models"]) == ["mlp"]
    pz = document["models"]["mlp"]["pz"]
    assert pz["pit_ks"] < 0.08 and abs(pz["coverage_95"] - 0.9545) < 0.03
    assert pz["crps"] < document["models"]["mlp"]["crps"] * 1.05
    nz = document["models"]["mlp"]["nz"]
    assert len(nz["galaxies"]) == 5 and max(nz["mean_bias"]) < 0.02
    for name in ("pz_mlp.png", "nz_mlp.png"):
        assert (out / name).stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "## p(z)" in report and "pz_mlp.png" in report and "nz_mlp.png" in report
