"""Exact ellipse-pixel overlap against photutils' exact masks, areas, shortcuts and dtypes.

photutils computes the same exact areas by a different algorithm (a circle-polygon clip in a
scaled frame); measured over the 400 random ellipses below the largest per-pixel difference is
4e-13 (ellipses and circles alike), far within the 1e-10 asked for.
"""

import numpy as np
import pytest
from photutils.aperture import CircularAperture, EllipticalAperture

from csst_photoz.photometry.overlap import ellipse_overlap, exact_ellipse_overlap

TOLERANCE = 1e-10
EPS32 = float(np.finfo(np.float32).eps)


def random_ellipse(rng, family):
    """Semi-axes and angle of one of four families of awkward ellipses."""
    if family == "tiny":  # minor axis far below a pixel
        a = rng.uniform(0.3, 3.0)
        b = rng.uniform(0.005, 0.3)
    elif family == "large":
        a = rng.uniform(10.0, 35.0)
        b = rng.uniform(5.0, a)
    elif family == "elongated":
        a = rng.uniform(3.0, 15.0)
        b = a / rng.uniform(5.0, 40.0)
    else:
        a = np.exp(rng.uniform(np.log(0.1), np.log(8.0)))
        b = a * rng.uniform(0.1, 1.0)
    return a, b, rng.uniform(-2 * np.pi, 2 * np.pi)


def photutils_grid(aperture, pad=2):
    """Pixel-centre offsets and photutils' exact weights on the aperture's box, padded by zeros.

    The padding checks that pixels just outside photutils' bounding box get zero weight too.
    """
    mask = aperture.to_mask(method="exact")
    box = mask.bbox
    x, y = aperture.positions
    rows = np.arange(box.iymin - pad, box.iymax + pad, dtype=float)
    cols = np.arange(box.ixmin - pad, box.ixmax + pad, dtype=float)
    dx, dy = np.meshgrid(cols - x, rows - y)
    return dx, dy, np.pad(mask.data, pad)


FAMILIES = ("tiny", "large", "elongated", "general")


@pytest.mark.parametrize("family", FAMILIES)
def test_elliptical_overlap_matches_photutils(family):
    rng = np.random.default_rng(FAMILIES.index(family))
    worst = 0.0
    for _ in range(100):
        a, b, theta = random_ellipse(rng, family)
        x, y = rng.uniform(20.0, 60.0, 2)  # sub-pixel centres
        dx, dy, reference = photutils_grid(EllipticalAperture((x, y), a, b, theta=theta))
        for overlap in (exact_ellipse_overlap, ellipse_overlap):
            weight = overlap(dx, dy, a, b, theta)
            assert weight.shape == dx.shape
            assert weight.min() >= 0.0
            assert weight.max() <= 1.0
            worst = max(worst, float(np.abs(weight - reference).max()))
    assert worst < TOLERANCE


def test_circular_overlap_matches_photutils():
    rng = np.random.default_rng(11)
    for radius in np.exp(rng.uniform(np.log(0.02), np.log(30.0), 100)):
        x, y = rng.uniform(-20.0, 20.0, 2)  # negative coordinates too
        theta = rng.uniform(-np.pi, np.pi)  # irrelevant for a circle
        dx, dy, reference = photutils_grid(CircularAperture((x, y), radius))
        for overlap in (exact_ellipse_overlap, ellipse_overlap):
            weight = overlap(dx, dy, radius, radius, theta)
            np.testing.assert_allclose(weight, reference, rtol=0, atol=TOLERANCE)


def window_around(a, x, y, pad=3):
    """Offsets (1, W) and (W, 1) of a square of pixel centres around (x, y) holding the ellipse."""
    half = int(np.ceil(a)) + pad
    steps = np.arange(-half, half + 1, dtype=float)
    return (steps - x)[None, :], (steps - y)[:, None]


@pytest.mark.parametrize("family", FAMILIES)
def test_total_weight_is_the_ellipse_area(family):
    rng = np.random.default_rng(20 + FAMILIES.index(family))
    for _ in range(50):
        a, b, theta = random_ellipse(rng, family)
        dx, dy = window_around(a, *rng.uniform(-0.5, 0.5, 2))
        for overlap in (exact_ellipse_overlap, ellipse_overlap):
            total = overlap(dx, dy, a, b, theta).sum()
            assert total == pytest.approx(np.pi * a * b, rel=1e-11, abs=1e-13)


def test_shortcut_overlap_equals_the_exact_formula_everywhere():
    """The inside/outside shortcuts of ellipse_overlap change nothing: pixels it sets to 1 or 0
    without the formula are wholly inside or outside (measured difference <= 4e-13: the exact
    formula's round-off on interior pixels)."""
    rng = np.random.default_rng(30)
    for family in FAMILIES:
        for _ in range(40):
            a, b, theta = random_ellipse(rng, family)
            dx, dy = window_around(a, *rng.uniform(-0.5, 0.5, 2))
            fast = ellipse_overlap(dx, dy, a, b, theta)
            exact = exact_ellipse_overlap(dx, dy, a, b, theta)
            np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-12)
            assert np.all(exact[fast == 0.0] == 0.0)


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.5, 0.5), (0.5, 0.0), (-0.5, 0.0), (0.0, 0.25)])
@pytest.mark.parametrize(("a", "b"), [(0.3, 0.3), (2.0, 0.1), (0.7, 0.5), (0.71, 0.71), (5.0, 3.0)])
def test_centres_on_pixel_centres_and_pixel_edges(offset, a, b):
    """Integer and half-integer centres, where pixel centres sit exactly on the ellipse centre
    (a degenerate case for the shortcut, whose inner margin reaches zero for axes < 0.7072) or
    pixel edges run through it."""
    theta = 0.3
    x, y = 40.0 + offset[0], 30.0 + offset[1]
    dx, dy, reference = photutils_grid(EllipticalAperture((x, y), a, b, theta=theta))
    for overlap in (exact_ellipse_overlap, ellipse_overlap):
        weight = overlap(dx, dy, a, b, theta)
        np.testing.assert_allclose(weight, reference, rtol=0, atol=TOLERANCE)
        assert weight.sum() == pytest.approx(np.pi * a * b, rel=1e-11)


def test_windows_broadcast_against_per_source_parameters():
    """dx (n, 1, W), dy (n, W, 1) and parameters (n, 1, 1): each window as if alone."""
    rng = np.random.default_rng(40)
    n, width = 25, 24
    centre = rng.uniform(-0.5, 0.5, (2, n))
    steps = np.arange(width, dtype=float) - width // 2
    dx = (steps[None, :] - centre[0][:, None])[:, None, :]
    dy = (steps[None, :] - centre[1][:, None])[:, :, None]
    a = rng.uniform(0.2, 10.0, n)
    b = a * rng.uniform(0.05, 1.0, n)
    theta = rng.uniform(-np.pi, np.pi, n)
    params = [value[:, None, None] for value in (a, b, theta)]
    for overlap in (exact_ellipse_overlap, ellipse_overlap):
        weights = overlap(dx, dy, *params)
        assert weights.shape == (n, width, width)
        for i in range(n):
            full_dx, full_dy = np.broadcast_arrays(dx[i], dy[i])
            alone = exact_ellipse_overlap(full_dx, full_dy, a[i], b[i], theta[i])
            np.testing.assert_allclose(weights[i], alone, rtol=0, atol=1e-12)
            assert weights[i].sum() == pytest.approx(np.pi * a[i] * b[i], rel=1e-11)


def test_float32_inputs_give_float32_accurate_results():
    """float32 in, float32 out, compared with float64 on the same (rounded) inputs.

    The sector angles come from cross products of near-parallel vectors in the frame where the
    ellipse is the unit circle, so the error per pixel grows with the ellipse: over 800 random
    ellipses it is at most 1.9 eps32 x max(1, A^2) (1e-4 for A ~ 35, 1e-7 typical). The same
    noise gives pixels wholly outside a large ellipse weights up to ~1e-5 (the 1e-12 round-off
    cut is float64's), so exact_ellipse_overlap's total is off by up to 4e-6 relative
    (measured), ellipse_overlap's (formula on the boundary band only) by up to 2e-7.
    """
    rng = np.random.default_rng(50)
    for family in FAMILIES:
        for _ in range(30):
            a, b, theta = (np.float32(v) for v in random_ellipse(rng, family))
            dx, dy = (v.astype(np.float32) for v in window_around(a, *rng.uniform(-0.5, 0.5, 2)))
            reference = exact_ellipse_overlap(
                dx.astype(np.float64), dy.astype(np.float64), float(a), float(b), float(theta)
            )
            bound = 4 * EPS32 * max(1.0, float(a) ** 2)
            for overlap in (exact_ellipse_overlap, ellipse_overlap):
                weight = overlap(dx, dy, a, b, theta)
                assert weight.dtype == np.float32
                assert weight.min() >= 0.0
                assert weight.max() <= 1.0
                assert np.abs(weight - reference).max() <= bound
                area = np.pi * float(a) * float(b)
                assert weight.sum(dtype=np.float64) == pytest.approx(area, rel=1e-5, abs=1e-6)


@pytest.mark.gpu
def test_cupy_overlap_matches_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(60)
    n, width = 40, 32
    centre = rng.uniform(-0.5, 0.5, (2, n))
    steps = np.arange(width, dtype=float) - width // 2
    dx = (steps[None, :] - centre[0][:, None])[:, None, :]
    dy = (steps[None, :] - centre[1][:, None])[:, :, None]
    a = rng.uniform(0.2, 14.0, (n, 1, 1))
    b = a * rng.uniform(0.05, 1.0, (n, 1, 1))
    theta = rng.uniform(-np.pi, np.pi, (n, 1, 1))
    for overlap in (exact_ellipse_overlap, ellipse_overlap):
        expected = overlap(dx, dy, a, b, theta)
        for dtype in (np.float64, np.float32):
            args = [cupy.asarray(value, dtype=dtype) for value in (dx, dy, a, b, theta)]
            weight = overlap(*args)
            assert isinstance(weight, cupy.ndarray)
            assert weight.dtype == dtype
            atol = 1e-12 if dtype == np.float64 else 4 * EPS32 * 14.0**2
            np.testing.assert_allclose(weight.get(), expected, rtol=0, atol=atol)
