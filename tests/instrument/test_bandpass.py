"""Tests for csst_photoz.instrument.bandpass: validation, file reading and derived figures."""

import re
import warnings

import numpy as np
import pytest
from scipy.integrate import quad, simpson

from csst_photoz.instrument import Bandpass


def _flat_pivot(blue, red):
    """Pivot wavelength of a flat band between ``blue`` and ``red`` (closed form)."""
    return np.sqrt((red**2 - blue**2) / (2.0 * np.log(red / blue)))


def _trapezoid_curve(wave, corners):
    """Piecewise-linear throughput through ``corners`` [(wavelength, throughput), ...]."""
    x, y = zip(*corners, strict=True)
    return np.interp(wave, x, y, left=0.0, right=0.0)


# -- validation ------------------------------------------------------------------------------

GOOD_WAVE = [4000.0, 5000.0, 6000.0, 7000.0]
GOOD_THR = [0.1, 0.5, 0.6, 0.2]


@pytest.mark.parametrize(
    ("wave", "thr", "message"),
    [
        ([4000.0, 5000.0, 5000.0, 7000.0], GOOD_THR, "strictly increasing"),
        ([4000.0, 6000.0, 5000.0, 7000.0], GOOD_THR, "strictly increasing"),
        ([7000.0, 6000.0, 5000.0, 4000.0], GOOD_THR, "strictly increasing"),
        (GOOD_WAVE, [0.1, -0.01, 0.6, 0.2], r"must lie in \[0, 1\]"),
        (GOOD_WAVE, [0.1, 0.5, 1.0001, 0.2], r"must lie in \[0, 1\]"),
        (GOOD_WAVE, [0.1, np.nan, 0.6, 0.2], "NaN or inf"),
        ([4000.0, np.nan, 6000.0, 7000.0], GOOD_THR, "NaN or inf"),
        (GOOD_WAVE, [0.1, np.inf, 0.6, 0.2], "NaN or inf"),
        (GOOD_WAVE, [0.1, 0.5, 0.6], "one length"),
        ([[4000.0, 5000.0], [6000.0, 7000.0]], [[0.1, 0.5], [0.6, 0.2]], "1-D"),
        ([4000.0, 5000.0], [0.1, 0.5], "at least 3 samples, got 2"),
        ([], [], "at least 3 samples, got 0"),
        ([-10.0, 5000.0, 6000.0, 7000.0], GOOD_THR, "positive"),
        (GOOD_WAVE, [0.0, 0.0, 0.0, 0.0], "zero everywhere"),
    ],
    ids=[
        "repeated-wavelength",
        "unsorted-wavelength",
        "decreasing-wavelength",
        "negative-throughput",
        "throughput-above-one",
        "nan-throughput",
        "nan-wavelength",
        "inf-throughput",
        "shape-mismatch",
        "two-dimensional",
        "two-samples",
        "no-samples",
        "negative-wavelength",
        "all-zero",
    ],
)
def test_invalid_curves_are_rejected_with_a_reason(wave, thr, message):
    with pytest.raises(ValueError, match=message):
        Bandpass("g", wave, thr)


def test_errors_name_the_band_and_its_source():
    with pytest.raises(ValueError, match=r"band 'zz' \(lab measurement\)"):
        Bandpass("zz", GOOD_WAVE, [0.1, 0.5, 1.5, 0.2], source="lab measurement")


def test_boundary_throughputs_zero_and_one_are_accepted():
    band = Bandpass("x", GOOD_WAVE, [0.0, 1.0, 1.0, 0.0])
    assert band.peak_throughput == 1.0


def test_arrays_are_copied_and_read_only():
    wave = np.array(GOOD_WAVE)
    thr = np.array(GOOD_THR)
    band = Bandpass("x", wave, thr)
    thr[2] = 0.9  # the caller's array stays writable and does not alias the band's
    assert band.peak_throughput == 0.6
    with pytest.raises(ValueError, match="read-only"):
        band.throughput[0] = 0.3
    with pytest.raises(ValueError, match="read-only"):
        band.wavelength_angstrom[0] = 100.0


def test_call_interpolates_linearly_and_is_zero_outside():
    band = Bandpass("x", [4000.0, 5000.0, 6000.0], [0.2, 0.6, 0.4])
    got = band([3999.0, 4000.0, 4500.0, 5750.0, 6000.0, 6001.0])
    np.testing.assert_allclose(got, [0.0, 0.2, 0.4, 0.45, 0.4, 0.0], rtol=0, atol=1e-15)


# -- reading files ---------------------------------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


def test_from_file_reads_two_columns_with_comments(tmp_path):
    path = _write(
        tmp_path / "myband.fil",
        "# wavelength throughput\n"
        "# another header line\n"
        "4000 0.10\n"
        "4500 0.40  # inline comment\n"
        "\n"
        "5000 0.50\n"
        "5500 0.05\n",
    )
    band = Bandpass.from_file(path)
    assert band.name == "myband"
    assert band.source == str(path)
    np.testing.assert_array_equal(band.wavelength_angstrom, [4000.0, 4500.0, 5000.0, 5500.0])
    np.testing.assert_array_equal(band.throughput, [0.10, 0.40, 0.50, 0.05])


def test_from_file_name_override_and_str_path(tmp_path):
    path = _write(tmp_path / "curve.txt", "1000 0.1\n2000 0.2\n3000 0.3\n")
    band = Bandpass.from_file(str(path), name="NUV")
    assert band.name == "NUV"
    assert band.peak_throughput == 0.3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4000 0.1 9\n4500 0.4 9\n5000 0.5 9\n", "expected 2 columns.*found 3"),
        ("4000\n4500\n5000\n", "expected 2 columns.*found 1"),
        ("wavelength throughput\n4000 0.1\n4500 0.4\n5000 0.5\n", "not a numeric"),
        ("4000,0.1\n4500,0.4\n5000,0.5\n", "not a numeric"),
        ("4000 0.1\n4500 0.4 0.3\n5000 0.5\n", "not a numeric"),
    ],
    ids=["three-columns", "one-column", "text-header", "comma-separated", "ragged"],
)
def test_from_file_bad_tables_name_the_file(tmp_path, text, message):
    path = _write(tmp_path / "bad.fil", text)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        Bandpass.from_file(path)
    assert re.search(message, str(info.value))


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n# and another\n"], ids=["empty", "comments"]
)
def test_from_file_without_data_names_the_file(tmp_path, text):
    path = _write(tmp_path / "empty.fil", text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error replaces numpy's "no data" warning
        with pytest.raises(ValueError, match=re.escape(str(path)) + ": contains no data rows"):
            Bandpass.from_file(path)


def test_from_file_invalid_curve_names_the_file(tmp_path):
    path = _write(tmp_path / "neg.fil", "4000 0.1\n4500 -0.4\n5000 0.5\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Bandpass.from_file(path)


def test_from_file_missing_file_names_the_path(tmp_path):
    path = tmp_path / "sub" / "nothing_here.fil"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        Bandpass.from_file(path)


def test_from_file_directory_is_not_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        Bandpass.from_file(tmp_path)


# -- derived figures -------------------------------------------------------------------------


@pytest.mark.parametrize(("blue", "red"), [(4000.0, 5500.0), (2500.0, 3200.0), (9200.0, 9800.0)])
def test_pivot_of_a_flat_band_matches_closed_form(blue, red):
    wave = np.linspace(blue, red, 1501)
    band = Bandpass("flat", wave, np.full_like(wave, 0.7))
    assert band.pivot_wavelength == pytest.approx(_flat_pivot(blue, red), rel=1e-4)


def test_flat_band_closed_form_is_not_the_mean():
    # guards the closed form above: for a wide band the pivot differs from the centre
    assert abs(_flat_pivot(3000.0, 9000.0) - 6000.0) > 100.0
    band = Bandpass("wide", np.linspace(3000.0, 9000.0, 3001), np.full(3001, 0.5))
    assert band.pivot_wavelength == pytest.approx(_flat_pivot(3000.0, 9000.0), rel=1e-4)


@pytest.mark.parametrize("step", [7.0, 1.0, 13.0])
def test_half_max_edges_of_a_trapezoid(step):
    corners = [(4000.0, 0.0), (4200.0, 0.8), (5800.0, 0.8), (6100.0, 0.0)]
    wave = np.arange(3900.0, 6200.0, step)
    band = Bandpass("trap", wave, _trapezoid_curve(wave, corners))
    blue, red = band.half_max_edges
    assert blue == pytest.approx(4100.0, abs=1e-9)
    assert red == pytest.approx(5950.0, abs=1e-9)


def test_half_max_edges_are_the_outermost_crossings():
    # a throughput dip below half maximum inside the band must not move the edges inwards
    corners = [
        (4000.0, 0.0),
        (4400.0, 0.6),
        (4800.0, 0.6),
        (5000.0, 0.1),
        (5200.0, 0.6),
        (5600.0, 0.6),
        (6000.0, 0.0),
    ]
    wave = np.arange(3950.0, 6050.0, 10.0)
    band = Bandpass("dip", wave, _trapezoid_curve(wave, corners))
    blue, red = band.half_max_edges
    assert blue == pytest.approx(4000.0 + 400.0 * 0.5, abs=1e-9)
    assert red == pytest.approx(6000.0 - 400.0 * 0.5, abs=1e-9)


def test_half_max_edges_clip_to_the_sampled_range():
    # a curve that is above half maximum at its first and last samples
    band = Bandpass("open", [4000.0, 5000.0, 6000.0], [0.5, 0.6, 0.4])
    assert band.half_max_edges == (4000.0, 6000.0)


def test_photon_integral_matches_quad_of_the_analytic_curve():
    def curve(lam):
        return 0.6 * np.exp(-0.5 * ((lam - 5000.0) / 300.0) ** 2)

    wave = np.arange(3000.0, 7000.0 + 1.0, 2.0)
    band = Bandpass("gauss", wave, curve(wave))
    expected, _ = quad(lambda lam: curve(lam) / lam, 3000.0, 7000.0, points=[5000.0])
    assert band.photon_integral == pytest.approx(expected, rel=1e-5)
    # and a dimension check: for a narrow band the integral is about T * width / centre
    assert expected == pytest.approx(0.6 * 300.0 * np.sqrt(2 * np.pi) / 5000.0, rel=1e-2)


@pytest.mark.parametrize("seed", range(8))
def test_pivot_matches_an_independent_float64_reference(seed):
    """Random two-Gaussian curves: trapezoid on the band's samples vs Simpson on a fine grid."""
    rng = np.random.default_rng(1000 + seed)
    centres = rng.uniform(2500.0, 10000.0, 2)
    widths = rng.uniform(60.0, 600.0, 2)
    heights = rng.uniform(0.05, 1.0, 2)

    def curve(lam):
        lam = np.asarray(lam)[..., None]
        return np.sum(heights * np.exp(-0.5 * ((lam - centres) / widths) ** 2), axis=-1)

    lo = max(100.0, float(np.min(centres - 9 * widths)))
    hi = float(np.max(centres + 9 * widths))
    fine = np.linspace(lo, hi, 400_001)
    scale = 0.95 / curve(fine).max()  # keep the peak inside [0, 1]
    reference = np.sqrt(
        simpson(scale * curve(fine) * fine, x=fine) / simpson(scale * curve(fine) / fine, x=fine)
    )

    wave = np.arange(lo, hi, widths.min() / 40.0)
    band = Bandpass("random", wave, scale * curve(wave))
    assert band.pivot_wavelength == pytest.approx(reference, rel=1e-5)
    assert band.peak_throughput == pytest.approx(0.95, rel=1e-3)
