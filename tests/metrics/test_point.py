"""Tests for csst_photoz.metrics.point against hand-computed and reference values."""

import statistics

import numpy as np
import pytest

from csst_photoz.metrics import (
    OUTLIER_THRESHOLD,
    bias,
    outlier_fraction,
    point_metrics,
    sigma_nmad,
)

# Hand-worked 5-galaxy example; every number is exactly representable in binary.
#   z_true           = [0,     1,     3,     0,    1   ]   -> 1 + z = [1, 2, 4, 1, 2]
#   z_pred           = [0.125, 0.5,   4.0,   0.0,  1.5 ]
#   dz               = [0.125, -0.5,  1.0,   0.0,  0.5 ]
#   dz / (1 + z)     = [0.125, -0.25, 0.25,  0.0,  0.25]
#   bias             = median(sorted [-0.25, 0, 0.125, 0.25, 0.25]) = 0.125
#   outliers (>0.15) = -0.25, 0.25, 0.25 (|.| is used)            -> eta = 3/5 = 0.6
#   median(dz)       = median(sorted [-0.5, 0, 0.125, 0.5, 1.0])  = 0.125
#   |dz - 0.125|     = [0, 0.625, 0.875, 0.125, 0.375]
#   ... / (1 + z)    = [0, 0.3125, 0.21875, 0.125, 0.1875]
#   median           = median(sorted [0, 0.125, 0.1875, 0.21875, 0.3125]) = 0.1875
#   sigma_NMAD       = 1.48 * 0.1875 = 0.2775
# (Centring on median(dz / (1 + z)) instead of median(dz) would give 1.48 * 0.125 = 0.185,
# so the example tells the two definitions apart.)
Z_TRUE = [0.0, 1.0, 3.0, 0.0, 1.0]
Z_PRED = [0.125, 0.5, 4.0, 0.0, 1.5]


def test_hand_computed_example():
    """The 5-galaxy example worked out by hand above."""
    assert sigma_nmad(Z_TRUE, Z_PRED) == pytest.approx(0.2775, rel=1e-14)
    assert outlier_fraction(Z_TRUE, Z_PRED) == 0.6
    assert bias(Z_TRUE, Z_PRED) == 0.125


def test_point_metrics_matches_individual_functions():
    """point_metrics bundles the three metrics and the sample size."""
    result = point_metrics(Z_TRUE, Z_PRED)
    assert result == {
        "n": 5,
        "sigma_nmad": sigma_nmad(Z_TRUE, Z_PRED),
        "outlier_fraction": outlier_fraction(Z_TRUE, Z_PRED),
        "bias": bias(Z_TRUE, Z_PRED),
    }
    assert isinstance(result["n"], int)
    assert all(isinstance(result[key], float) for key in ("sigma_nmad", "outlier_fraction", "bias"))


def test_default_threshold_is_015():
    """The default outlier threshold is 0.15."""
    assert OUTLIER_THRESHOLD == 0.15
    assert outlier_fraction(Z_TRUE, Z_PRED) == outlier_fraction(Z_TRUE, Z_PRED, threshold=0.15)


def test_threshold_is_strict_at_default():
    """A galaxy exactly at |dz| / (1 + z) = 0.15 is not an outlier."""
    # z_true = 0 makes |dz| / (1 + z) exactly the float 0.15 (0.15 - 0 and / 1 are exact).
    z_true = [0.0, 0.0, 0.0, 0.0]
    z_pred = [0.15, -0.15, 0.0, 0.5]
    assert outlier_fraction(z_true, z_pred) == 0.25  # only the 0.5 one


def test_threshold_is_strict_with_exact_values():
    """Strictness with values that are exact in binary."""
    # |dz| / (1 + z) = 0.5 / 2 = 0.25 and 1.0 / 4 = 0.25 exactly: on the threshold, not outliers.
    z_true = [1.0, 3.0, 1.0, 3.0]
    z_pred = [1.5, 2.0, 1.5078125, 4.0]
    assert outlier_fraction(z_true, z_pred, threshold=0.25) == 0.25  # only 0.5078125 / 2
    assert outlier_fraction(z_true, z_pred, threshold=0.0) == 1.0


def test_zero_threshold_counts_any_nonzero_error():
    """threshold=0 is allowed and flags every non-zero error."""
    assert outlier_fraction([0.5, 0.5, 0.5], [0.5, 0.5, 0.50001], threshold=0.0) == pytest.approx(
        1 / 3
    )


def test_perfect_predictions():
    """z_pred == z_true gives zero scatter, outliers and bias."""
    z = np.linspace(0.0, 4.0, 11)
    assert point_metrics(z, z) == {"n": 11, "sigma_nmad": 0.0, "outlier_fraction": 0.0, "bias": 0.0}


def test_bias_sign():
    """Overestimated redshifts give a positive bias, underestimated a negative one."""
    z_true = np.array([0.2, 0.7, 1.3, 2.0])
    assert bias(z_true, z_true + 0.05) > 0
    assert bias(z_true, z_true - 0.05) < 0


def test_constant_offset_with_equal_z_true():
    """With equal z_true a constant dz offset leaves NMAD unchanged."""
    rng = np.random.default_rng(1)
    z_true = np.full(201, 0.5)
    z_pred = z_true + rng.normal(0.0, 0.06, z_true.size)
    offset = 0.3
    # A constant shift of dz moves median(dz) by the same amount: NMAD is unchanged ...
    assert sigma_nmad(z_true, z_pred + offset) == pytest.approx(sigma_nmad(z_true, z_pred))
    # ... while the bias moves by offset / (1 + z).
    assert bias(z_true, z_pred + offset) == pytest.approx(bias(z_true, z_pred) + offset / 1.5)


def test_nmad_scales_with_error_amplitude_and_inverse_one_plus_z():
    """NMAD scales linearly with dz and with 1 / (1 + z)."""
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 1.0, 301)
    base = sigma_nmad(np.zeros(301), 0.01 * noise)
    assert sigma_nmad(np.zeros(301), 0.03 * noise) == pytest.approx(3 * base)
    assert sigma_nmad(np.full(301, 1.0), 1.0 + 0.01 * noise) == pytest.approx(base / 2)


def test_nmad_of_gaussian_errors_estimates_sigma():
    """For Gaussian errors at z = 0, sigma_NMAD estimates sigma."""
    rng = np.random.default_rng(3)
    z_true = np.zeros(20_000)
    assert sigma_nmad(z_true, rng.normal(0.0, 0.05, z_true.size)) == pytest.approx(0.05, rel=0.03)


def test_permutation_invariance():
    """Shuffling the galaxies changes nothing."""
    rng = np.random.default_rng(4)
    z_true = rng.uniform(0.0, 3.0, 100)
    z_pred = z_true + rng.normal(0.0, 0.1, 100)
    order = rng.permutation(100)
    assert point_metrics(z_true[order], z_pred[order]) == point_metrics(z_true, z_pred)


def test_accepts_lists_tuples_and_float32_computing_in_float64():
    """Array-likes are accepted and float32 input is computed in float64."""
    rng = np.random.default_rng(5)
    z_true = rng.uniform(0.0, 3.0, 50).astype(np.float32)
    z_pred = (z_true + rng.normal(0.0, 0.1, 50)).astype(np.float32)
    as64 = point_metrics(z_true.astype(np.float64), z_pred.astype(np.float64))
    assert point_metrics(z_true, z_pred) == as64
    assert point_metrics(z_true.tolist(), tuple(z_pred.tolist())) == as64


def _reference_metrics(z_true, z_pred, threshold):
    """Independent pure-Python version (statistics.median on lists)."""
    dz = [p - t for t, p in zip(z_true, z_pred, strict=True)]
    centre = statistics.median(dz)
    nmad = 1.48 * statistics.median(
        abs(d - centre) / (1 + t) for d, t in zip(dz, z_true, strict=True)
    )
    normalised = [d / (1 + t) for d, t in zip(dz, z_true, strict=True)]
    eta = sum(abs(x) > threshold for x in normalised) / len(dz)
    return {
        "n": len(dz),
        "sigma_nmad": nmad,
        "outlier_fraction": eta,
        "bias": statistics.median(normalised),
    }


@pytest.mark.parametrize(("seed", "size", "threshold"), [(10, 1001, 0.15), (11, 1000, 0.05)])
def test_random_input_matches_reference(seed, size, threshold):
    """Seeded random samples agree with an independent implementation."""
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.0, 4.0, size)
    scatter = rng.normal(0.01, 0.04, size) * (1 + z_true)
    catastrophic = rng.random(size) < 0.1
    z_pred = np.clip(z_true + np.where(catastrophic, rng.uniform(-2, 2, size), scatter), 0, None)
    expected = _reference_metrics(z_true.tolist(), z_pred.tolist(), threshold)
    result = point_metrics(z_true, z_pred, threshold=threshold)
    assert result["n"] == expected["n"]
    assert result["outlier_fraction"] == expected["outlier_fraction"]
    assert result["sigma_nmad"] == pytest.approx(expected["sigma_nmad"], rel=1e-12)
    assert result["bias"] == pytest.approx(expected["bias"], rel=1e-12, abs=1e-15)


def test_single_galaxy():
    """One galaxy has zero NMAD and its own normalised error as bias."""
    assert point_metrics([1.0], [1.5]) == {
        "n": 1,
        "sigma_nmad": 0.0,
        "outlier_fraction": 1.0,
        "bias": 0.25,
    }


def test_z_true_just_above_minus_one_is_allowed():
    """Negative z_true above -1 is valid."""
    assert bias([-0.5], [0.0]) == 1.0


ALL_FUNCTIONS = [sigma_nmad, outlier_fraction, bias, point_metrics]
THRESHOLD_FUNCTIONS = [outlier_fraction, point_metrics]

INVALID_REDSHIFTS = [
    pytest.param([0.1, 0.2, 0.3], [0.1, 0.2], r"same shape, got \(3,\) and \(2,\)", id="shape"),
    pytest.param([[0.1, 0.2]], [[0.1, 0.2]], r"z_true must be 1-D, got a 2-D", id="2d-true"),
    pytest.param([0.1], 0.1, r"z_pred must be 1-D, got a 0-D", id="scalar-pred"),
    pytest.param([], [], r"sample is empty", id="empty"),
    pytest.param(
        [0.1, np.nan, 0.3],
        [0.1, 0.2, 0.3],
        r"z_true contains 1 value\(s\) \(at indices \[1\]\) that are NaN or infinite",
        id="nan-true",
    ),
    pytest.param(
        [0.1, 0.2, 0.3],
        [np.inf, 0.2, -np.inf],
        r"z_pred contains 2 value\(s\) \(at indices \[0, 2\]\) that are NaN or infinite",
        id="inf-pred",
    ),
    pytest.param([0.1, -1.0], [0.1, 0.2], r"z_true must be > -1.*1 value\(s\)", id="z-minus-1"),
    pytest.param(
        [-1.5, -2.0, 0.5],
        [0.1, 0.2, 0.3],
        r"z_true must be > -1.*2 value\(s\) \(at indices \[0, 1\]\) are <= -1",
        id="z-below-minus-1",
    ),
    pytest.param(
        np.ma.array([0.1, 0.2], mask=[False, True]),
        [0.1, 0.2],
        r"z_true contains masked values",
        id="masked",
    ),
]


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("z_true", "z_pred", "message"), INVALID_REDSHIFTS)
def test_invalid_redshifts_raise(function, z_true, z_pred, message):
    """Every public function rejects invalid redshift arrays."""
    with pytest.raises(ValueError, match=message):
        function(z_true, z_pred)


@pytest.mark.parametrize("function", THRESHOLD_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("threshold", [-0.01, np.nan, np.inf])
def test_invalid_threshold_raises(function, threshold):
    """Negative or non-finite thresholds are rejected."""
    with pytest.raises(ValueError, match=r"threshold must be a finite number >= 0"):
        function(Z_TRUE, Z_PRED, threshold=threshold)


@pytest.mark.parametrize("function", THRESHOLD_FUNCTIONS, ids=lambda f: f.__name__)
def test_threshold_is_keyword_only(function):
    """The threshold argument is keyword-only."""
    with pytest.raises(TypeError):
        function(Z_TRUE, Z_PRED, 0.15)
