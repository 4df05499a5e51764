"""Tests for csst_photoz.evaluation.cli and .columns: the Parquet round trip."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csst_photoz.evaluation import model_columns, read_predictions
from csst_photoz.evaluation.cli import add_evaluate_parser, main
from csst_photoz.metrics import calibration_metrics, point_metrics


def _parser():
    parser = argparse.ArgumentParser(prog="csst-photoz")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    assert args.func is main
    return main(args)


@pytest.fixture
def predictions_file(tmp_path):
    rng = np.random.default_rng(9)
    n = 300
    z = rng.uniform(0.0, 2.5, n)
    sigma = 0.03 * (1 + z)
    z_mlp = z + sigma * rng.standard_normal(n)
    z_mlp[4] = np.nan
    z_knn = z + 0.05 * rng.standard_normal(n)
    truth = pa.array(z, mask=np.arange(n) == 7)  # one row without truth (null)
    table = pa.table(
        {
            "object_id": np.arange(n, dtype=np.int64),
            "redshift": truth,
            "z_mlp": z_mlp,
            "z_mlp_err": sigma,
            "z_knn": z_knn,
            "mag_i": rng.uniform(20.0, 25.0, n),
        }
    )
    path = tmp_path / "predictions.parquet"
    pq.write_table(table, path)
    return path, z, z_mlp, sigma, z_knn


def test_cli_round_trip(predictions_file, tmp_path, capsys):
    path, z, z_mlp, sigma, z_knn = predictions_file
    out = tmp_path / "report"
    argv = ["evaluate", "--predictions", str(path), "--truth-column", "redshift"]
    assert _run([*argv, "--magnitude-column", "mag_i", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "evaluated 2 model(s) on 299 galaxies (truth: redshift)" in printed
    assert "1 rows without a true redshift dropped" in printed
    assert "| mlp | 298 | 1 |" in printed

    document = json.loads((out / "metrics.json").read_text())
    keep = np.arange(z.size) != 7
    valid = keep & np.isfinite(z_mlp)
    mlp = document["models"]["mlp"]
    expected = point_metrics(z[valid], z_mlp[valid])
    assert {k: mlp[k] for k in expected if k != "n"} == {
        k: v for k, v in expected.items() if k != "n"
    }
    assert mlp["crps"] == calibration_metrics(z[valid], z_mlp[valid], sigma[valid])["crps"]
    assert (
        document["models"]["knn"]["sigma_nmad"] == point_metrics(z[keep], z_knn[keep])["sigma_nmad"]
    )
    assert document["models"]["knn"]["coverage_68"] is None
    assert document["models"]["mlp"]["paper"]["sigma_nmad"] == 0.023
    assert document["models"]["knn"]["paper"] is None
    assert document["magnitude_label"] == "mag_i"
    for name in ("report.md", "report.html", "pit_mlp.png", "metrics_vs_magnitude.png"):
        assert (out / name).is_file()


def test_cli_options(predictions_file, tmp_path):
    path, *_ = predictions_file
    out = tmp_path / "report"
    argv = ["evaluate", "--predictions", str(path), "--out", str(out), "--models", "knn"]
    argv += ["--z-bins", "0,1,2.5", "--threshold", "0.05", "--paper-training-size", "none"]
    assert _run(argv) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert list(document["models"]) == ["knn"]
    assert document["binned"]["redshift"]["knn"]["bin_high"] == [1.0, 2.5]
    assert document["threshold"] == 0.05
    assert document["paper_training_size"] is None
    assert document["binned"]["magnitude"] == {}


@pytest.mark.parametrize(
    "extra",
    [["--z-bins", "1"], ["--z-bins", "a,b"], ["--paper-training-size", "5"], ["--models", ","]],
)
def test_bad_options_are_usage_errors(predictions_file, tmp_path, extra):
    path, *_ = predictions_file
    with pytest.raises(SystemExit):
        _parser().parse_args(
            ["evaluate", "--predictions", str(path), "--out", str(tmp_path), *extra]
        )


def test_missing_file_and_columns_raise(predictions_file, tmp_path):
    path, *_ = predictions_file
    out = str(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match=r"not found"):
        _run(["evaluate", "--predictions", str(tmp_path / "nope.parquet"), "--out", out])
    with pytest.raises(ValueError, match=r"lacks required column\(s\): mag_r"):
        _run(["evaluate", "--predictions", str(path), "--out", out, "--magnitude-column", "mag_r"])
    with pytest.raises(ValueError, match=r"no prediction column for model\(s\) \['cnn'\]"):
        _run(["evaluate", "--predictions", str(path), "--out", out, "--models", "cnn"])


def test_default_truth_column_prefers_z_true(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.table({"z_true": [0.5, 1.0], "redshift": [9.0, 9.0], "z_cnn": [0.6, 1.1]}), path
    )
    table = read_predictions(path)
    assert table.truth_column == "z_true"
    np.testing.assert_array_equal(table.z_true, [0.5, 1.0])
    assert list(table.predictions) == ["cnn"]
    assert table.predictions["cnn"][1] is None
    pq.write_table(pa.table({"z_spec": [0.5], "z_cnn": [0.6]}), path)
    with pytest.raises(ValueError, match=r"none of the truth columns"):
        read_predictions(path)
    table = read_predictions(path, truth_column="z_spec")
    assert list(table.predictions) == ["cnn"]  # the truth column is never a model


def test_nulls_become_nan_and_strings_are_rejected(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.table({"z_true": [0.5, 1.0, None], "z_cnn": pa.array([0.6, None, 0.2])}), path
    )
    table = read_predictions(path)
    assert table.n_dropped == 1
    np.testing.assert_array_equal(table.predictions["cnn"][0], [0.6, np.nan])
    pq.write_table(pa.table({"z_true": [0.5], "z_cnn": ["0.6"]}), path)
    with pytest.raises(ValueError, match=r"column 'z_cnn' must be numeric"):
        read_predictions(path)
    pq.write_table(pa.table({"z_true": pa.array([None], pa.float64()), "z_cnn": [0.6]}), path)
    with pytest.raises(ValueError, match=r"no row has a finite true redshift"):
        read_predictions(path)


def test_model_column_grammar():
    names = ["object_id", "z_true", "z_mlp", "z_mlp_err", "z_cnn", "z_", "z_hybrid_transfer"]
    names += ["z_hybrid_transfer_err", "z_orphan_err", "mag_i"]
    assert model_columns(names) == {
        "mlp": ("z_mlp", "z_mlp_err"),
        "cnn": ("z_cnn", None),
        "hybrid_transfer": ("z_hybrid_transfer", "z_hybrid_transfer_err"),
    }
    assert list(model_columns(names, models=["cnn", "mlp"])) == ["cnn", "mlp"]
    assert model_columns(["redshift", "z_phot"], truth_column="redshift") == {
        "phot": ("z_phot", None)
    }
    with pytest.raises(ValueError, match=r"no model prediction columns"):
        model_columns(["z_true", "redshift", "z_mlp_err"])


def test_importing_the_command_is_light():
    code = (
        "import sys, csst_photoz.evaluation.cli, csst_photoz.evaluation; "
        "heavy = [m for m in ('matplotlib', 'torch', 'sklearn', 'astropy') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
