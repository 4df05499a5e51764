"""Tests for csst_photoz.metrics.binned."""

import warnings

import numpy as np
import pytest
from astropy.table import Table

from csst_photoz.metrics import binned_metrics, point_metrics

METRICS = ("sigma_nmad", "outlier_fraction", "bias")


def _sample(seed, size=400):
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.0, 3.0, size)
    z_pred = np.clip(z_true + rng.normal(0.0, 0.08, size) * (1 + z_true), 0.0, None)
    magnitude = rng.uniform(18.0, 26.0, size)
    return z_true, z_pred, magnitude


def test_table_layout():
    """Columns, types, edges and metadata of the returned table."""
    z_true, z_pred, _ = _sample(0)
    table = binned_metrics(z_true, z_pred, by=z_true, bins=[0.0, 1.0, 2.0, 3.0])
    assert isinstance(table, Table)
    assert table.colnames == ["bin_low", "bin_high", "n", *METRICS]
    assert len(table) == 3
    assert np.issubdtype(table["n"].dtype, np.integer)
    assert list(table["bin_low"]) == [0.0, 1.0, 2.0]
    assert list(table["bin_high"]) == [1.0, 2.0, 3.0]
    assert table.meta["threshold"] == 0.15


@pytest.mark.parametrize("threshold", [0.15, 0.05])
def test_bins_equal_point_metrics_on_manual_subsets(threshold):
    """Each row equals point_metrics on the hand-selected subset."""
    z_true, z_pred, magnitude = _sample(1)
    edges = [19.0, 21.0, 22.5, 24.0, 25.5]
    table = binned_metrics(z_true, z_pred, by=magnitude, bins=edges, threshold=threshold)
    for row, low, high in zip(table, edges[:-1], edges[1:], strict=True):
        upper = magnitude <= high if high == edges[-1] else magnitude < high
        subset = (magnitude >= low) & upper
        expected = point_metrics(z_true[subset], z_pred[subset], threshold=threshold)
        assert row["n"] == expected["n"] > 0
        for name in METRICS:
            assert row[name] == expected[name]


def test_counts_follow_numpy_histogram_edges():
    """Half-open bins, closed last bin, out-of-range values dropped."""
    # 0 -> [0, 1); 1, 2 and 3 -> [1, 3] (last bin closed); -1, 3.5 and +-inf are not counted.
    by = np.array([0.0, 1.0, 2.0, 3.0, -1.0, 3.5, np.inf, -np.inf])
    z_true = np.linspace(0.1, 0.8, by.size)
    edges = [0.0, 1.0, 3.0]
    table = binned_metrics(z_true, z_true + 0.01, by=by, bins=edges)
    assert list(table["n"]) == [1, 3]
    assert list(table["n"]) == list(np.histogram(by[np.isfinite(by)], bins=edges)[0])


def test_binning_on_z_true_uses_exact_subsets():
    """Small exact example binned on z_true."""
    z_true = np.array([0.25, 0.5, 0.75, 1.0, 1.5])
    z_pred = np.array([0.25, 0.75, 0.5, 1.5, 1.5])
    table = binned_metrics(z_true, z_pred, by=z_true, bins=[0.0, 0.5, 1.5])
    # Bin [0, 0.5): only z = 0.25, a perfect prediction.
    assert (table["n"][0], table["bias"][0], table["outlier_fraction"][0]) == (1, 0.0, 0.0)
    # Bin [0.5, 1.5]: dz / (1 + z) = [0.25/1.5, -0.25/1.75, 0.5/2, 0] -> 2 of 4 above 0.15.
    assert table["n"][1] == 4
    assert table["outlier_fraction"][1] == 0.5


def test_empty_bins_give_zero_and_nan_without_warnings():
    """Empty bins give n = 0 and NaN metrics, silently."""
    z_true, z_pred, _ = _sample(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = binned_metrics(z_true, z_pred, by=z_true, bins=[-1.0, -0.5, 0.0, 3.0, 5.0])
    assert list(table["n"]) == [0, 0, z_true.size, 0]
    for name in METRICS:
        assert np.isnan(table[name][[0, 1, 3]]).all()
        assert np.isfinite(table[name][2])


def test_empty_sample_gives_all_empty_bins():
    """An empty sample is allowed and gives only empty bins."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = binned_metrics([], [], by=[], bins=[0.0, 1.0, 2.0])
    assert list(table["n"]) == [0, 0]
    assert np.isnan(table["bias"]).all()


def test_accepts_lists():
    """Plain lists give the same table as arrays."""
    z_true, z_pred, magnitude = _sample(3, size=60)
    bins = np.array([18.0, 22.0, 26.0])
    expected = binned_metrics(z_true, z_pred, by=magnitude, bins=bins)
    result = binned_metrics(
        z_true.tolist(), z_pred.tolist(), by=magnitude.tolist(), bins=[18, 22, 26]
    )
    assert result.values_equal(expected)


def test_arguments_after_z_pred_are_keyword_only():
    """The by and bins arguments are keyword-only."""
    with pytest.raises(TypeError):
        binned_metrics([0.1], [0.1], [0.1], [0.0, 1.0])


GOOD = [0.1, 0.5, 1.2]

INVALID = [
    pytest.param({"by": [0.1, 0.5]}, r"by must have the same shape as z_true", id="by-length"),
    pytest.param({"by": [[0.1, 0.5, 1.2]]}, r"by must be 1-D", id="by-2d"),
    pytest.param({"by": [0.1, np.nan, np.nan]}, r"by contains 2 NaN value", id="by-nan"),
    pytest.param({"bins": [0.0]}, r"at least 2 edges, got 1", id="one-edge"),
    pytest.param({"bins": []}, r"at least 2 edges, got 0", id="no-edges"),
    pytest.param({"bins": [0.0, 1.0, 1.0]}, r"strictly increasing", id="repeated-edge"),
    pytest.param({"bins": [2.0, 1.0, 0.0]}, r"strictly increasing", id="decreasing"),
    pytest.param({"bins": [0.0, np.nan]}, r"bins must be finite", id="nan-edge"),
    pytest.param({"bins": [0.0, np.inf]}, r"bins must be finite", id="inf-edge"),
    pytest.param({"bins": [[0.0, 1.0]]}, r"bins must be 1-D", id="bins-2d"),
    pytest.param({"threshold": -0.1}, r"threshold must be a finite number >= 0", id="threshold"),
    pytest.param({"z_pred": [0.1, 0.5]}, r"same shape", id="z-shape"),
    pytest.param({"z_true": [0.1, -1.0, 1.2]}, r"z_true must be > -1", id="z-minus-1"),
    pytest.param({"z_pred": [0.1, np.nan, 1.2]}, r"z_pred contains 1 value", id="z-nan"),
]


@pytest.mark.parametrize(("override", "message"), INVALID)
def test_invalid_arguments_raise(override, message):
    """Invalid inputs raise ValueError with a clear message."""
    kwargs = {"z_true": GOOD, "z_pred": GOOD, "by": GOOD, "bins": [0.0, 1.0, 2.0], **override}
    z_true = kwargs.pop("z_true")
    z_pred = kwargs.pop("z_pred")
    with pytest.raises(ValueError, match=message):
        binned_metrics(z_true, z_pred, **kwargs)
