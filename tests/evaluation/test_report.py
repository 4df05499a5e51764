"""Tests for csst_photoz.evaluation.report: files, keys, numbers, NaN handling, validation."""

import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from csst_photoz.evaluation import PAPER_RESULTS, evaluate, overall_markdown, paper_reference
from csst_photoz.metrics import binned_metrics, calibration_metrics, point_metrics

POINT = ("sigma_nmad", "outlier_fraction", "bias")
CALIBRATION = ("coverage_68", "coverage_95", "crps", "pit_ks", "median_sigma")


def _sample(seed, size=600):
    """True redshifts, a calibrated model with outliers, a sharper model without sigma."""
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.0, 3.0, size)
    sigma = 0.04 * (1 + z_true)
    mlp = z_true + sigma * rng.standard_normal(size)
    mlp[:15] = rng.uniform(0.0, 3.0, 15)
    cnn = z_true + 0.02 * (1 + z_true) * rng.standard_normal(size)
    magnitude = rng.uniform(19.0, 26.0, size)
    return z_true, {"MLP": (mlp, sigma), "cnn": cnn}, magnitude


def _no_nan_json(path):
    def reject(token):
        raise ValueError(f"{token} in JSON")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def report_and_inputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    z_true, predictions, magnitude = _sample(1)
    report = evaluate(z_true, predictions, magnitude=magnitude, magnitude_label="mag_i", out=out)
    return report, out, z_true, predictions, magnitude


def test_report_writes_the_expected_files(report_and_inputs):
    report, out, *_ = report_and_inputs
    expected = {
        "metrics.json",
        "report.md",
        "report.html",
        "zphot_vs_ztrue_MLP.png",
        "zphot_vs_ztrue_cnn.png",
        "pit_MLP.png",  # only the model with an uncertainty has a PIT histogram
        "metrics_vs_redshift.png",
        "metrics_vs_magnitude.png",
    }
    assert {p.name for p in out.iterdir()} == expected
    assert {p.name for p in report.paths.values()} == expected
    for path in out.glob("*.png"):
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 200


def test_json_numbers_equal_metrics_computed_directly(report_and_inputs):
    _, out, z_true, predictions, _ = report_and_inputs
    document = _no_nan_json(out / "metrics.json")
    assert document["n_galaxies"] == z_true.size
    assert document["threshold"] == 0.15
    assert list(document["models"]) == ["MLP", "cnn"]
    mlp_z, mlp_sigma = predictions["MLP"]
    for name, z_pred in (("MLP", mlp_z), ("cnn", predictions["cnn"])):
        entry = document["models"][name]
        expected = point_metrics(z_true, z_pred)
        assert entry["n"] == z_true.size and entry["n_missing"] == 0
        for key in POINT:
            assert entry[key] == expected[key]
    calibration = calibration_metrics(z_true, mlp_z, mlp_sigma)
    entry = document["models"]["MLP"]
    assert entry["n_sigma"] == z_true.size
    for key in CALIBRATION:
        assert entry[key] == calibration[key]
    assert all(document["models"]["cnn"][key] is None for key in ("n_sigma", *CALIBRATION))
    # the synthetic MLP is calibrated apart from its 15 outliers
    assert entry["coverage_68"] == pytest.approx(0.68, abs=0.06)


def test_binned_json_equals_binned_metrics(report_and_inputs):
    report, out, z_true, predictions, magnitude = report_and_inputs
    document = _no_nan_json(out / "metrics.json")
    z_edges = np.arange(0.0, 3.0 + 1e-9, 0.25)
    mag_edges = np.arange(19.0, 26.0 + 1e-9, 0.5)
    z_pred = predictions["cnn"]
    expected_z = binned_metrics(z_true, z_pred, by=z_true, bins=z_edges)
    expected_mag = binned_metrics(z_true, z_pred, by=magnitude, bins=mag_edges)
    for key, expected in (("redshift", expected_z), ("magnitude", expected_mag)):
        columns = document["binned"][key]["cnn"]
        np.testing.assert_allclose(columns["bin_low"], expected["bin_low"])
        np.testing.assert_allclose(columns["bin_high"], expected["bin_high"])
        assert columns["n"] == list(expected["n"])
        for metric in POINT:
            np.testing.assert_array_equal(columns[metric], expected[metric])
    assert report.binned_redshift["cnn"].values_equal(expected_z)
    assert document["magnitude_label"] == "mag_i"


def test_markdown_and_html_show_the_same_numbers(report_and_inputs):
    report, out, *_ = report_and_inputs
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    mlp = report.metrics["MLP"]
    for text in (
        f"{mlp['sigma_nmad']:.4f}",
        f"{100 * mlp['outlier_fraction']:.2f}%",
        f"{mlp['coverage_68']:.3f}",
        "1.43%",  # the paper's MLP outlier fraction
        "0.023",
    ):
        assert text in markdown
        assert text in page
    assert overall_markdown(report.metrics) in markdown
    for name in ("metrics_vs_magnitude.png", "pit_MLP.png", "zphot_vs_ztrue_cnn.png"):
        assert f"]({name})" in markdown
        assert f"<img src='{name}'" in page
    assert "## Metrics in bins of mag_i" in markdown
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_paper_column_matches_names():
    assert paper_reference("MLP") == {"sigma_nmad": 0.023, "outlier_fraction": 0.0143}
    assert paper_reference("cnn") == {"sigma_nmad": 0.025, "outlier_fraction": 0.0121}
    assert paper_reference("Hybrid") == {"sigma_nmad": 0.020, "outlier_fraction": 0.0103}
    for name in ("hybrid-transfer", "Hybrid transfer", "hybrid_transfer", "hybridtransfer"):
        assert paper_reference(name) == {"sigma_nmad": 0.020, "outlier_fraction": 0.0090}
    assert paper_reference("mlp", training_size=10_000) == {
        "sigma_nmad": 0.028,
        "outlier_fraction": 0.0239,
    }
    assert paper_reference("knn") is None
    assert paper_reference("mlp", training_size=None) is None
    assert sorted(PAPER_RESULTS) == [10_000, 20_000, 30_000]
    with pytest.raises(ValueError, match=r"no results for 5000 training galaxies"):
        paper_reference("mlp", training_size=5000)


def test_nan_predictions_are_left_out_and_counted(tmp_path):
    z_true, predictions, magnitude = _sample(2, size=400)
    mlp_z, mlp_sigma = (a.copy() for a in predictions["MLP"])
    mlp_z[[3, 4, 5]] = np.nan
    mlp_sigma[[5, 6]] = np.nan
    magnitude = magnitude.copy()
    magnitude[[10, 11]] = np.nan
    report = evaluate(z_true, {"MLP": (mlp_z, mlp_sigma)}, magnitude=magnitude, out=tmp_path)
    entry = _no_nan_json(tmp_path / "metrics.json")["models"]["MLP"]
    valid = np.isfinite(mlp_z)
    usable = valid & np.isfinite(mlp_sigma)
    assert (entry["n"], entry["n_missing"], entry["n_sigma"]) == (397, 3, 396)
    expected = point_metrics(z_true[valid], mlp_z[valid])
    for key in POINT:
        assert entry[key] == expected[key]
    calibration = calibration_metrics(z_true[usable], mlp_z[usable], mlp_sigma[usable])
    for key in CALIBRATION:
        assert entry[key] == calibration[key]
    assert report.binned_redshift["MLP"]["n"].sum() == 397
    assert report.binned_magnitude["MLP"]["n"].sum() == 395  # NaN magnitudes only drop here
    assert "| MLP | 397 | 3 |" in (tmp_path / "report.md").read_text()


def test_model_without_any_valid_prediction_gets_null_metrics(tmp_path):
    z_true, predictions, _ = _sample(3, size=100)
    nothing = np.full(z_true.size, np.nan)
    models = {"cnn": predictions["cnn"], "broken": (nothing, nothing)}
    report = evaluate(z_true, models, out=tmp_path)
    entry = _no_nan_json(tmp_path / "metrics.json")["models"]["broken"]
    assert entry["n"] == 0 and entry["n_missing"] == 100 and entry["n_sigma"] == 0
    assert all(entry[key] is None for key in (*POINT, *CALIBRATION))
    assert report.binned_redshift["broken"]["n"].sum() == 0
    assert "pit_broken" not in report.paths
    assert (tmp_path / "zphot_vs_ztrue_broken.png").is_file()


def test_bare_array_equals_tuple_without_sigma(tmp_path):
    z_true, predictions, _ = _sample(4, size=100)
    bare = evaluate(z_true, {"cnn": predictions["cnn"]}, out=tmp_path / "a")
    paired = evaluate(z_true, {"cnn": (predictions["cnn"], None)}, out=tmp_path / "b")
    assert bare.metrics == paired.metrics


def test_default_bins_are_round_and_span_the_data(tmp_path):
    rng = np.random.default_rng(5)
    z_true = rng.uniform(0.13, 2.61, 300)
    report = evaluate(
        z_true, {"m": z_true + 0.01}, magnitude=rng.uniform(20.2, 24.9, 300), out=tmp_path
    )
    table = report.binned_redshift["m"]
    assert table["bin_low"][0] == 0.0 and table["bin_high"][-1] == 2.75
    np.testing.assert_allclose(np.diff(table["bin_low"]), 0.25)
    magnitude_table = report.binned_magnitude["m"]
    assert magnitude_table["bin_low"][0] == 20.0 and magnitude_table["bin_high"][-1] == 25.0
    assert table["n"].sum() == magnitude_table["n"].sum() == 300


def test_custom_bins_threshold_and_no_paper(tmp_path):
    z_true, predictions, magnitude = _sample(6, size=300)
    report = evaluate(
        z_true,
        predictions,
        magnitude=magnitude,
        out=tmp_path,
        z_bins=[0.0, 1.0, 3.0],
        magnitude_bins=[19.0, 22.0, 26.0],
        threshold=0.05,
        paper_training_size=None,
    )
    mlp_z = predictions["MLP"][0]
    assert (
        report.metrics["MLP"]["outlier_fraction"]
        == point_metrics(z_true, mlp_z, threshold=0.05)["outlier_fraction"]
    )
    assert report.metrics["MLP"]["paper"] is None
    assert list(report.binned_redshift["MLP"]["bin_high"]) == [1.0, 3.0]
    assert len(report.binned_magnitude["cnn"]) == 2
    assert "Paper columns: not requested." in (tmp_path / "report.md").read_text()


def test_rerun_overwrites(tmp_path):
    z_true, predictions, _ = _sample(7, size=100)
    evaluate(z_true, predictions, out=tmp_path)
    report = evaluate(z_true, {"cnn": predictions["cnn"]}, out=tmp_path)
    assert list(_no_nan_json(tmp_path / "metrics.json")["models"]) == ["cnn"]
    assert report.paths["json"].is_file()


GOOD_Z = np.array([0.2, 0.5, 1.0, 2.0])

INVALID = [
    pytest.param({"z_true": [0.2, np.nan, 1.0, 2.0]}, r"z_true contains 1 value", id="z-nan"),
    pytest.param({"z_true": [0.2, -1.0, 1.0, 2.0]}, r"z_true must be > -1", id="z-minus-1"),
    pytest.param({"z_true": []}, r"z_true is empty", id="z-empty"),
    pytest.param({"predictions": {}}, r"non-empty mapping", id="no-models"),
    pytest.param({"predictions": {"m": GOOD_Z[:3]}}, r"z_pred of model 'm' has shape", id="shape"),
    pytest.param(
        {"predictions": {"m": (GOOD_Z, [0.1, 0.0, 0.1, 0.1])}}, r"sigma of model 'm'", id="s0"
    ),
    pytest.param(
        {"predictions": {"m": (GOOD_Z, [0.1, 0.1])}}, r"sigma of model 'm' has shape", id="s-shape"
    ),
    pytest.param({"predictions": {"a b": GOOD_Z, "a_b": GOOD_Z}}, r"share the file", id="names"),
    pytest.param({"predictions": {" ": GOOD_Z}}, r"non-empty strings", id="blank-name"),
    pytest.param({"magnitude": [20.0, 21.0]}, r"magnitude has shape", id="mag-shape"),
    pytest.param({"z_bins": [1.0, 0.5]}, r"strictly increasing", id="bins"),
    pytest.param({"magnitude_bins": [20.0]}, r"at least 2 edges", id="mag-bins"),
    pytest.param({"threshold": -1.0}, r"threshold must be", id="threshold"),
    pytest.param({"paper_training_size": 1}, r"no results for 1 training", id="paper"),
]


@pytest.mark.parametrize(("override", "message"), INVALID)
def test_invalid_arguments_raise_before_writing(tmp_path, override, message):
    kwargs = {
        "z_true": GOOD_Z,
        "predictions": {"m": (GOOD_Z + 0.01, np.full(4, 0.1))},
        "magnitude": [20.0, 21.0, 22.0, 23.0],
        **override,
    }
    out = tmp_path / "report"
    with pytest.raises(ValueError, match=message):
        evaluate(kwargs.pop("z_true"), kwargs.pop("predictions"), out=out, **kwargs)
    assert not out.exists()


def test_out_is_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        evaluate(GOOD_Z, {"m": GOOD_Z}, tmp_path)


def test_report_is_not_nan_even_for_empty_bins(tmp_path):
    report = evaluate(GOOD_Z, {"m": GOOD_Z + 0.01}, out=tmp_path, z_bins=[0.0, 1.0, 5.0, 9.0])
    assert report.binned_redshift["m"]["n"][-1] == 0
    assert math.isnan(report.binned_redshift["m"]["sigma_nmad"][-1])
    assert _no_nan_json(tmp_path / "metrics.json")["binned"]["redshift"]["m"]["bias"][-1] is None
