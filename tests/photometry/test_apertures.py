"""Aperture sums and Kron radii against sep and photutils: values, flags, masks and batching.

Both references use the exact pixel overlap (sep ``subpix=0``, photutils ``method='exact'``)
and the fractional-area convention (flux = sum of overlap x pixel, variance = sum of overlap x
variance). Measured over seeds 0-4 of the random scenes below (150 apertures x 3 bands, a third
cut by the image edge), against the asked 1e-4 relative or 0.01 of the aperture noise (fluxes)
and 1% (errors):

* photutils: fluxes to 1.4e-13 of the noise (2e-15 relative), errors to 2e-15 relative, with
  NaN/inf pixels masked as well;
* sep: fluxes to 8e-7 of the noise (6e-8 relative), errors to 7e-8 relative: sep reads pixels
  and noise as float32;
* Kron radii: sep to 4e-15 (on float32-valued images, which sep reads exactly).
"""

import numpy as np
import pytest
import sep
from photutils.aperture import CircularAperture, EllipticalAperture, aperture_photometry

from csst_photoz.photometry.apertures import ellipse_half_extent, kron_radius, sum_ellipses
from csst_photoz.photometry.flags import SourceFlag

SHAPE = (3, 84, 104)  # bands, ny, nx
EDGE = int(SourceFlag.EDGE)
MASKED = int(SourceFlag.MASKED)
SATURATED = int(SourceFlag.SATURATED)
NEIGHBOURS = int(SourceFlag.NEIGHBOURS)
KRON_FAILED = int(SourceFlag.KRON_FAILED)
BAND_MISSING = int(SourceFlag.BAND_MISSING)


def scene(rng, shape=SHAPE, level=20.0):
    """A band stack (sloped sky plus noise, different per band) and a non-uniform variance."""
    n_bands, ny, nx = shape
    yy, xx = np.indices((ny, nx), dtype=float)
    image = np.stack(
        [
            level * (1 + band) + 0.1 * xx - 0.05 * yy + rng.normal(0.0, 5.0, (ny, nx))
            for band in range(n_bands)
        ]
    )
    variance = rng.uniform(1.0, 60.0, shape) * (1.0 + xx / nx)
    return image, variance


def random_apertures(rng, n, shape=SHAPE, circle_fraction=0.25):
    """Ellipses (a >= b, theta in [-pi/2, pi/2] as sep needs) and circles (a = b), centred in
    the image, 0.2-15 px, a third of them within 4 px of an edge (so often cut by it)."""
    ny, nx = shape[-2:]
    x = rng.uniform(-0.5, nx - 0.5, n)
    y = rng.uniform(-0.5, ny - 0.5, n)
    near = rng.random(n) < 1 / 3
    side = rng.integers(0, 4, n)
    x = np.where(near & (side == 0), rng.uniform(-0.5, 3.5, n), x)
    x = np.where(near & (side == 1), rng.uniform(nx - 4.5, nx - 0.5, n), x)
    y = np.where(near & (side == 2), rng.uniform(-0.5, 3.5, n), y)
    y = np.where(near & (side == 3), rng.uniform(ny - 4.5, ny - 0.5, n), y)
    a = np.exp(rng.uniform(np.log(0.2), np.log(15.0), n))
    b = a * rng.uniform(0.05, 1.0, n)
    circle = rng.random(n) < circle_fraction
    b = np.where(circle, a, b)
    theta = np.where(circle, 0.0, rng.uniform(-np.pi / 2, np.pi / 2, n))
    return x, y, a, b, theta, circle


def photutils_aperture(x, y, a, b, theta):
    if a == b:
        return CircularAperture((x, y), a)
    return EllipticalAperture((x, y), a, b, theta=theta)


def photutils_sums(image, variance, x, y, a, b, theta, mask=None):
    """aperture_photometry, exact method, one aperture at a time; ``mask`` 2-D or per aperture."""
    flux = np.empty(x.size)
    err = np.empty(x.size)
    for i in range(x.size):
        table = aperture_photometry(
            image,
            photutils_aperture(x[i], y[i], a[i], b[i], theta[i]),
            error=np.sqrt(variance),
            mask=mask[i] if mask is not None and mask.ndim == 3 else mask,
            method="exact",
        )
        flux[i] = table["aperture_sum"][0]
        err[i] = table["aperture_sum_err"][0]
    return flux, err


def photutils_touched(x, y, a, b, theta, shape):
    """(n, ny, nx) bool: in-image pixels with non-zero exact overlap, by photutils."""
    touched = np.zeros((x.size, *shape), dtype=bool)
    for i in range(x.size):
        mask = photutils_aperture(x[i], y[i], a[i], b[i], theta[i]).to_mask(method="exact")
        touched[i] = mask.to_image(shape) > 0
    return touched


def sep_sums(image, variance, x, y, a, b, theta, circle):
    flux = np.empty(x.size)
    err = np.empty(x.size)
    data = np.ascontiguousarray(image, dtype=np.float64)
    noise = np.ascontiguousarray(np.sqrt(variance), dtype=np.float64)
    e = ~circle
    flux[e], err[e], _ = sep.sum_ellipse(
        data, x[e], y[e], a[e], b[e], theta[e], err=noise, subpix=0
    )
    c = circle
    flux[c], err[c], _ = sep.sum_circle(data, x[c], y[c], a[c], err=noise, subpix=0)
    return flux, err


def assert_fluxes_agree(flux, err, ref_flux, ref_err):
    """The issue's tolerance: 1e-4 relative or 0.01 of the aperture noise; errors to 1%."""
    assert np.all(np.isfinite(flux)) and np.all(np.isfinite(err))
    allowed = np.maximum(1e-4 * np.abs(ref_flux), 0.01 * ref_err)
    assert np.all(np.abs(flux - ref_flux) <= allowed), np.max(np.abs(flux - ref_flux) / ref_err)
    np.testing.assert_allclose(err, ref_err, rtol=0.01)


def bounding_box_edge(x, y, a, b, theta, shape):
    """Independent EDGE criterion: the ellipse's bounding box leaves the image."""
    ny, nx = shape[-2:]
    cos2, sin2 = np.cos(theta) ** 2, np.sin(theta) ** 2
    half_x = np.sqrt(a**2 * cos2 + b**2 * sin2)
    half_y = np.sqrt(a**2 * sin2 + b**2 * cos2)
    margin = np.stack(
        [x - half_x + 0.5, nx - 0.5 - x - half_x, y - half_y + 0.5, ny - 0.5 - y - half_y]
    )
    # an ellipse poking out by ~1e-8 px overlaps the outside by ~1e-12 px^2, the round-off cut
    assert np.all(np.abs(margin) > 1e-6), "ambiguous test aperture"
    return (margin < 0).any(axis=0)


# ----------------------------------------------------------------------------- sums


def test_fluxes_match_sep_exact_overlap():
    rng = np.random.default_rng(0)
    image, variance = scene(rng)
    x, y, a, b, theta, circle = random_apertures(rng, 150)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    assert result.flux.shape == (1, SHAPE[0], 150)
    assert result.flux.dtype == np.float64
    assert result.flags.dtype == np.int32
    for band in range(SHAPE[0]):
        ref_flux, ref_err = sep_sums(image[band], variance[band], x, y, a, b, theta, circle)
        assert_fluxes_agree(result.flux[0, band], result.flux_err[0, band], ref_flux, ref_err)


def test_fluxes_match_photutils_exact():
    rng = np.random.default_rng(1)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 150)
    # photutils takes any angle (sep only [-pi/2, pi/2])
    theta = theta + np.pi * rng.integers(-2, 3, 150)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    for band in range(SHAPE[0]):
        ref_flux, ref_err = photutils_sums(image[band], variance[band], x, y, a, b, theta)
        assert_fluxes_agree(result.flux[0, band], result.flux_err[0, band], ref_flux, ref_err)
        # far better in fact: the same exact areas
        np.testing.assert_allclose(result.flux[0, band], ref_flux, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(result.flux_err[0, band], ref_err, rtol=1e-10)


def test_edge_flag_is_the_bounding_box_leaving_the_image():
    """sep's APER_TRUNC tests a rounded pixel box and is not used as reference."""
    rng = np.random.default_rng(2)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 300)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    expected = bounding_box_edge(x, y, a, b, theta, SHAPE)
    assert 0.2 < expected.mean() < 0.6  # the test exercises both outcomes
    np.testing.assert_array_equal((result.flags[0] & EDGE) != 0, expected)
    assert np.all(result.flags[0] & ~EDGE == 0)  # nothing else applies to a clean image


def test_several_apertures_at_once_equal_separate_calls():
    rng = np.random.default_rng(3)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 80)
    scale = np.array([0.5, 1.0, 2.5])[:, None]  # e.g. several Kron factors
    extra_theta = rng.uniform(-np.pi, np.pi, 80)
    params = (
        np.vstack([scale * a, [np.full(80, 3.0)]]),
        np.vstack([scale * b, [np.full(80, 3.0)]]),
        np.vstack([np.repeat(theta[None], 3, axis=0), [extra_theta]]),
    )
    together = sum_ellipses(image, variance, x, y, *params)
    assert together.flux.shape == (4, SHAPE[0], 80)
    assert together.flags.shape == (4, 80)
    for k in range(4):
        alone = sum_ellipses(image, variance, x, y, *(p[k] for p in params))
        np.testing.assert_allclose(together.flux[k], alone.flux[0], rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(together.flux_err[k], alone.flux_err[0], rtol=1e-12)
        np.testing.assert_array_equal(together.flags[k], alone.flags[0])
        edge = bounding_box_edge(x, y, params[0][k], params[1][k], params[2][k], SHAPE)
        np.testing.assert_array_equal((together.flags[k] & EDGE) != 0, edge)


def test_negative_fluxes_are_kept():
    rng = np.random.default_rng(4)
    image, variance = scene(rng, level=-60.0)
    x, y, a, b, theta, _ = random_apertures(rng, 60)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    assert np.all(result.flux < 0)
    assert np.all(result.flags[0] & ~EDGE == 0)
    ref_flux, ref_err = photutils_sums(image[0], variance[0], x, y, a, b, theta)
    assert_fluxes_agree(result.flux[0, 0], result.flux_err[0, 0], ref_flux, ref_err)


def test_float32_images_are_summed_to_float32_rounding():
    # float32 tiles are summed in float32 (no float64 copy of the windows): the sums agree with
    # float64 ones to float32 rounding, far below 1e-4 of the aperture noise
    rng = np.random.default_rng(5)
    image, variance = (v.astype(np.float32) for v in scene(rng))
    x, y, a, b, theta, _ = random_apertures(rng, 60)
    single = sum_ellipses(image, variance, x, y, a, b, theta)
    double = sum_ellipses(image.astype(float), variance.astype(float), x, y, a, b, theta)
    assert single.flux.dtype == np.float64
    noise = double.flux_err
    np.testing.assert_array_less(np.abs(single.flux - double.flux), 1e-4 * noise)
    np.testing.assert_allclose(single.flux_err, double.flux_err, rtol=1e-6)
    assert not np.array_equal(single.flux, double.flux)  # really summed in float32


def test_a_2d_image_is_one_band():
    rng = np.random.default_rng(6)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 50)
    flat = sum_ellipses(image[1], variance[1], x, y, a, b, theta)
    stack = sum_ellipses(image, variance, x, y, a, b, theta)
    assert flat.flux.shape == (1, 1, 50)
    np.testing.assert_array_equal(flat.flux[:, 0], stack.flux[:, 1])
    np.testing.assert_array_equal(flat.flux_err[:, 0], stack.flux_err[:, 1])
    np.testing.assert_array_equal(flat.flags, stack.flags)


def test_small_apertures_centred_on_pixel_centres_and_corners():
    """Integer and half-integer centres: tiny apertures then lie within one pixel, or are
    split exactly between two or four."""
    rng = np.random.default_rng(7)
    image, variance = scene(rng)
    grid = np.arange(10.0, 70.0, 4.0)
    x = np.concatenate([grid, grid + 0.5, grid, grid + 0.5])
    y = np.concatenate([grid, grid, grid + 0.5, grid + 0.5]) * 0.9
    a = np.tile(np.linspace(0.1, 3.0, grid.size), 4)
    b = a * 0.6
    theta = np.tile(np.linspace(-1.5, 1.5, grid.size), 4)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    ref_flux, ref_err = photutils_sums(image[0], variance[0], x, y, a, b, theta)
    assert_fluxes_agree(result.flux[0, 0], result.flux_err[0, 0], ref_flux, ref_err)


# ----------------------------------------------------------------------------- masks, flags


def nonfinite_scene(rng):
    """The scene with NaN/inf scattered in images and variances; returns the bad-pixel map."""
    image, variance = scene(rng)
    bad_image = rng.random(SHAPE) < 0.02
    bad_variance = rng.random(SHAPE) < 0.01
    image[bad_image] = np.where(rng.random(bad_image.sum()) < 0.5, np.nan, np.inf)
    image[0][bad_image[0]] = -np.inf
    variance[bad_variance] = np.nan
    return image, variance, bad_image | bad_variance


def expected_masked_and_missing(touched, bad):
    """MASKED: a touched pixel is bad in some band; missing (band, n): every touched one is."""
    masked = np.array([np.any(bad[:, t]) for t in touched])
    missing = np.array([[not np.any(~bad[band][t]) for t in touched] for band in range(len(bad))])
    return masked, missing


def test_nonfinite_pixels_get_zero_weight_and_flag_masked():
    rng = np.random.default_rng(10)
    image, variance, bad = nonfinite_scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 100)
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    touched = photutils_touched(x, y, a, b, theta, SHAPE[1:])
    masked, missing = expected_masked_and_missing(touched, bad)
    assert masked.sum() > 20  # a real test
    np.testing.assert_array_equal((result.flags[0] & MASKED) != 0, masked)
    np.testing.assert_array_equal((result.flags[0] & BAND_MISSING) != 0, missing.any(axis=0))
    for band in range(SHAPE[0]):
        ref_flux, ref_err = photutils_sums(
            image[band], variance[band], x, y, a, b, theta, mask=bad[band]
        )
        lost = missing[band]
        assert np.all(np.isnan(result.flux[0, band, lost]))
        assert np.all(np.isnan(result.flux_err[0, band, lost]))
        assert_fluxes_agree(
            result.flux[0, band, ~lost],
            result.flux_err[0, band, ~lost],
            ref_flux[~lost],
            ref_err[~lost],
        )


def test_all_nan_aperture_in_one_band_is_missing_there_only():
    rng = np.random.default_rng(11)
    image, variance = scene(rng)
    image[1, 30:45, 40:60] = np.nan  # covers the first aperture wholly, in band 1 only
    x = np.array([50.2, 20.7, 80.4])
    y = np.array([37.6, 20.1, 60.3])
    a = np.array([5.0, 4.0, 3.0])
    b = np.array([3.0, 4.0, 2.0])
    theta = np.array([0.2, 0.0, -0.7])
    result = sum_ellipses(image, variance, x, y, a, b, theta)
    assert np.isnan(result.flux[0, 1, 0])
    assert np.isnan(result.flux_err[0, 1, 0])
    assert result.flags[0, 0] == MASKED | BAND_MISSING
    np.testing.assert_array_equal(result.flags[0, 1:], 0)
    for band in (0, 2):
        ref_flux, ref_err = photutils_sums(image[band], variance[band], x, y, a, b, theta)
        assert_fluxes_agree(result.flux[0, band], result.flux_err[0, band], ref_flux, ref_err)
    ref_flux, ref_err = photutils_sums(
        image[1], variance[1], x[1:], y[1:], a[1:], b[1:], theta[1:], mask=np.isnan(image[1])
    )
    assert_fluxes_agree(result.flux[0, 1, 1:], result.flux_err[0, 1, 1:], ref_flux, ref_err)


def test_invalid_pixels_behave_like_nan():
    rng = np.random.default_rng(12)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 100)
    invalid = rng.random(SHAPE) < 0.03
    nan_image = np.where(invalid, np.nan, image)
    with_nan = sum_ellipses(nan_image, variance, x, y, a, b, theta)
    with_valid = sum_ellipses(image, variance, x, y, a, b, theta, valid=~invalid)
    assert np.any(with_nan.flags & MASKED)
    np.testing.assert_array_equal(with_valid.flux, with_nan.flux)
    np.testing.assert_array_equal(with_valid.flux_err, with_nan.flux_err)
    np.testing.assert_array_equal(with_valid.flags, with_nan.flags)
    # a 2-D valid map applies to every band
    shared = invalid[0]
    with_nan = sum_ellipses(np.where(shared, np.nan, image), variance, x, y, a, b, theta)
    with_valid = sum_ellipses(image, variance, x, y, a, b, theta, valid=~shared)
    np.testing.assert_array_equal(with_valid.flux, with_nan.flux)
    np.testing.assert_array_equal(with_valid.flags, with_nan.flags)
    # and both combine: invalid or non-finite
    both = sum_ellipses(nan_image, variance, x, y, a, b, theta, valid=~shared)
    expected = sum_ellipses(np.where(invalid | shared, np.nan, image), variance, x, y, a, b, theta)
    np.testing.assert_array_equal(both.flux, expected.flux)
    np.testing.assert_array_equal(both.flags, expected.flags)


@pytest.mark.parametrize("per_band", [False, True])
def test_saturated_flag_only_when_a_saturated_pixel_is_touched(per_band):
    rng = np.random.default_rng(13 + per_band)
    image, variance = scene(rng)
    x, y, a, b, theta, _ = random_apertures(rng, 120)
    saturated = rng.random(SHAPE if per_band else SHAPE[1:]) < 0.01
    result = sum_ellipses(image, variance, x, y, a, b, theta, saturated=saturated)
    plain = sum_ellipses(image, variance, x, y, a, b, theta)
    np.testing.assert_array_equal(result.flux, plain.flux)  # saturated pixels are kept
    touched = photutils_touched(x, y, a, b, theta, SHAPE[1:])
    any_band = saturated.any(axis=0) if per_band else saturated
    expected = np.array([np.any(any_band[t]) for t in touched])
    assert 10 < expected.sum() < 110
    np.testing.assert_array_equal((result.flags[0] & SATURATED) != 0, expected)
    np.testing.assert_array_equal(result.flags[0] & ~SATURATED, plain.flags[0])


def test_saturated_edge_pixel_next_to_an_aperture_beyond_the_edge():
    """The aperture crosses the bottom edge; its in-image part (row 0, columns 8-12) misses the
    saturated pixel (0, 13), but its part beyond the edge covers (-1, 13), a pixel that does
    not exist and must not inherit the flag of the nearest edge pixel."""
    image, variance = scene(np.random.default_rng(15))
    saturated = np.zeros(SHAPE[1:], dtype=bool)
    saturated[0, 13] = True
    x, y, a, b, theta = (np.array([v]) for v in (10.0, -0.8, 3.0, 0.5, 0.0))
    touched = photutils_touched(x, y, a, b, theta, SHAPE[1:])[0]
    assert touched[0, 8:13].all() and not touched[0, 13]
    result = sum_ellipses(image, variance, x, y, a, b, theta, saturated=saturated)
    assert result.flags[0, 0] == EDGE


def segmented_scene(rng, n=40):
    """Sources with discs of their own label (later discs overwrite earlier ones) and apertures
    around them, some reaching into their neighbours' discs."""
    image, variance = scene(rng)
    ny, nx = SHAPE[1:]
    x = rng.uniform(2.0, nx - 3.0, n)
    y = rng.uniform(2.0, ny - 3.0, n)
    yy, xx = np.indices((ny, nx))
    segmentation = np.zeros((ny, nx), dtype=np.int32)
    for k in range(n):
        disc = (xx - x[k]) ** 2 + (yy - y[k]) ** 2 < rng.uniform(1.5, 5.0) ** 2
        segmentation[disc] = k + 1
    a = rng.uniform(1.0, 8.0, n)
    b = a * rng.uniform(0.3, 1.0, n)
    theta = rng.uniform(-np.pi / 2, np.pi / 2, n)
    return image, variance, segmentation, (x, y, a, b, theta)


def test_neighbour_pixels_flag_and_masking():
    rng = np.random.default_rng(16)
    image, variance, segmentation, aperture = segmented_scene(rng)
    n = aperture[0].size
    others = np.array([(segmentation != 0) & (segmentation != k + 1) for k in range(n)])
    touched = photutils_touched(*aperture, SHAPE[1:])
    expected = np.array([np.any(t & o) for t, o in zip(touched, others, strict=True)])
    assert 5 < expected.sum() < n - 5
    kept = sum_ellipses(image, variance, *aperture, segmentation=segmentation)
    masked = sum_ellipses(
        image, variance, *aperture, segmentation=segmentation, mask_neighbours=True
    )
    plain = sum_ellipses(image, variance, *aperture)
    for result in (kept, masked):
        np.testing.assert_array_equal((result.flags[0] & NEIGHBOURS) != 0, expected)
        np.testing.assert_array_equal(result.flags[0] & ~NEIGHBOURS, plain.flags[0])
    np.testing.assert_array_equal(kept.flux, plain.flux)
    for band in range(SHAPE[0]):
        ref_flux, ref_err = photutils_sums(image[band], variance[band], *aperture, mask=others)
        assert_fluxes_agree(masked.flux[0, band], masked.flux_err[0, band], ref_flux, ref_err)
    clean = ~expected
    np.testing.assert_array_equal(masked.flux[:, :, clean], plain.flux[:, :, clean])


def test_results_do_not_depend_on_the_batch_size():
    rng = np.random.default_rng(17)
    image, variance, segmentation, (x, y, a, b, theta) = segmented_scene(rng)
    image[1, 10:14, 20:40] = np.nan
    valid = rng.random(SHAPE[1:]) > 0.02
    saturated = rng.random(SHAPE[1:]) < 0.01
    params = (np.vstack([a, 2 * a]), np.vstack([b, 2 * b]), np.vstack([theta, theta]))
    kwargs = dict(valid=valid, saturated=saturated, segmentation=segmentation, mask_neighbours=True)
    default = sum_ellipses(image, variance, x, y, *params, **kwargs)
    tiny = sum_ellipses(image, variance, x, y, *params, max_window_pixels=1, **kwargs)
    assert np.any(default.flags & (MASKED | NEIGHBOURS | SATURATED | EDGE))
    # measured: identical; the tolerance only allows a different summation order
    np.testing.assert_allclose(tiny.flux, default.flux, rtol=1e-13, atol=1e-11)
    np.testing.assert_allclose(tiny.flux_err, default.flux_err, rtol=1e-13)
    np.testing.assert_array_equal(tiny.flags, default.flags)


@pytest.mark.parametrize("nan_elsewhere", [False, True])
@pytest.mark.parametrize("cap", [1, 1 << 22])
def test_an_aperture_without_usable_pixels_is_missing(nan_elsewhere, cap):
    """Aperture 0 lies wholly beyond the image (outside pixels are unusable), aperture 1 wholly
    on a neighbour's pixels with mask_neighbours: no usable pixel, so NaN and BAND_MISSING,
    whether or not a non-finite pixel happens to lie in another window of the same batch."""
    image, variance = scene(np.random.default_rng(18))
    if nan_elsewhere:
        image[:, 40, 60] = np.nan
    segmentation = np.zeros(SHAPE[1:], dtype=np.int32)
    segmentation[15:26, 15:26] = 4  # source 3's pixels, around source 1
    segmentation[38:43, 58:63] = 3
    x = np.array([-6.0, 20.3, 60.2, 45.0])
    y = np.array([30.0, 19.8, 40.1, 50.0])
    r = np.full(4, 2.0)  # one window size: one batch under the default cap
    result = sum_ellipses(
        image,
        variance,
        x,
        y,
        r,
        r,
        0 * r,
        segmentation=segmentation,
        mask_neighbours=True,
        max_window_pixels=cap,
    )
    assert np.all(np.isnan(result.flux[0, :, :2]))
    assert np.all(np.isnan(result.flux_err[0, :, :2]))
    assert result.flags[0, 0] & (EDGE | BAND_MISSING) == EDGE | BAND_MISSING
    assert result.flags[0, 1] & (NEIGHBOURS | BAND_MISSING) == NEIGHBOURS | BAND_MISSING
    assert np.all(np.isfinite(result.flux[0, :, 3]))


BAD_SUM_INPUTS = {
    "variance shape": dict(variances=np.ones((1, 20, 30))),
    "valid shape": dict(valid=np.ones((20, 31), dtype=bool)),
    "segmentation shape": dict(segmentation=np.ones((21, 30), dtype=np.int32)),
    "parameter length": dict(semi_a=np.ones(3)),
    "parameter rank": dict(theta=np.zeros((1, 1, 2))),
    "zero axis": dict(semi_a=np.array([0.0, 1.0])),
    "negative axis": dict(semi_b=np.array([1.0, -1.0])),
    "nan axis": dict(semi_b=np.array([np.nan, 1.0])),
    "mask_neighbours alone": dict(mask_neighbours=True),
    "saturated shape": dict(saturated=np.zeros((20, 31), dtype=bool)),
    "saturated bands": dict(saturated=np.zeros((3, 20, 30), dtype=bool)),
    "y shorter": dict(y=np.array([5.0])),
    "y longer": dict(y=np.array([5.0, 8.0, 9.0])),
}


@pytest.mark.parametrize("name", BAD_SUM_INPUTS)
def test_bad_aperture_inputs_raise(name):
    image, variance = scene(np.random.default_rng(19), shape=(2, 20, 30))
    r = np.array([2.0, 3.0])
    good = dict(
        images=image,
        variances=variance,
        x=np.array([5.0, 10.0]),
        y=np.array([5.0, 8.0]),
        semi_a=r,
        semi_b=r,
        theta=0 * r,
    )
    with pytest.raises(ValueError):
        sum_ellipses(**(good | BAD_SUM_INPUTS[name]))


def test_half_extent_is_the_larger_bounding_box_half_width():
    rng = np.random.default_rng(21)
    a = rng.uniform(0.1, 10.0, 200)
    b = a * rng.uniform(0.05, 1.0, 200)
    theta = rng.uniform(-2 * np.pi, 2 * np.pi, 200)
    # the ellipse's extreme x and y, sampled densely
    t = np.linspace(0.0, 2 * np.pi, 20001)[:, None]
    xs = a * np.cos(t) * np.cos(theta) - b * np.sin(t) * np.sin(theta)
    ys = a * np.cos(t) * np.sin(theta) + b * np.sin(t) * np.cos(theta)
    sampled = np.maximum(np.abs(xs).max(axis=0), np.abs(ys).max(axis=0))
    extent = ellipse_half_extent(a, b, theta)
    assert np.all(extent >= sampled - 1e-12)
    np.testing.assert_allclose(extent, sampled, rtol=1e-6)


# ----------------------------------------------------------------------------- Kron radius


def profile_image(shape, sources, rng=None, noise=0.0):
    """Gaussian (even rows) and exponential (odd) profiles of the second-moment-like axes,
    rounded to float32 (sep computes on float32 pixels)."""
    yy, xx = np.indices(shape, dtype=float)
    image = np.zeros(shape)
    for i, (x, y, a, b, theta, peak) in enumerate(zip(*sources, strict=True)):
        u = (xx - x) * np.cos(theta) + (yy - y) * np.sin(theta)
        v = -(xx - x) * np.sin(theta) + (yy - y) * np.cos(theta)
        r2 = (u / a) ** 2 + (v / b) ** 2
        image += peak * (np.exp(-0.5 * r2) if i % 2 == 0 else np.exp(-np.sqrt(r2)))
    if noise:
        image += rng.normal(0.0, noise, shape)
    return image.astype(np.float32).astype(np.float64)


def grid_sources(rng, shape, spacing=40, margin=20, a_range=(1.2, 3.0)):
    ny, nx = shape
    xs, ys = np.meshgrid(
        np.arange(margin, nx - margin + 1, spacing, dtype=float),
        np.arange(margin, ny - margin + 1, spacing, dtype=float),
    )
    n = xs.size
    x = xs.ravel() + rng.uniform(-0.5, 0.5, n)
    y = ys.ravel() + rng.uniform(-0.5, 0.5, n)
    a = rng.uniform(*a_range, n)
    b = a * rng.uniform(0.3, 1.0, n)
    theta = rng.uniform(-np.pi / 2, np.pi / 2, n)
    return x, y, a, b, theta, rng.uniform(50.0, 500.0, n)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_kron_radius_matches_sep_on_isolated_sources(noise):
    rng = np.random.default_rng(30)
    shape = (130, 170)
    sources = grid_sources(rng, shape)
    image = profile_image(shape, sources, rng, noise)
    x, y, a, b, theta, _ = sources
    kron, flags = kron_radius(image, x, y, a, b, theta)
    ref, _ = sep.kron_radius(image, x, y, a, b, theta, 6.0)
    assert kron.dtype == np.float64
    assert flags.dtype == np.int32
    assert np.all((ref > 0) & (ref < 6.0))
    np.testing.assert_allclose(kron, ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(flags, 0)
    # the analytic first moments of the sampled profiles: sqrt(pi/2) and 2 (in units of a, b)
    gaussian = np.arange(x.size) % 2 == 0
    np.testing.assert_allclose(kron[gaussian], np.sqrt(np.pi / 2), rtol=0.05)
    cut = np.exp(-6.0)  # the exponential's first moment within r <= 6
    exponential = (2 - cut * (36 + 12 + 2)) / (1 - cut * (6 + 1))
    np.testing.assert_allclose(kron[~gaussian], exponential, rtol=0.05)


def kron_region_leaves_image(x, y, a, b, theta, shape, radius=6.0):
    """Independent EDGE criterion: a pixel centre beyond the image lies within the ellipse."""
    ny, nx = shape
    flags = []
    for xi, yi, ai, bi, ti in zip(x, y, a, b, theta, strict=True):
        reach = int(np.ceil(radius * ai)) + 2
        cols = np.arange(int(xi) - reach, int(xi) + reach + 1)
        rows = np.arange(int(yi) - reach, int(yi) + reach + 1)
        dx, dy = np.meshgrid(cols - xi, rows - yi)
        u = dx * np.cos(ti) + dy * np.sin(ti)
        v = -dx * np.sin(ti) + dy * np.cos(ti)
        within = (u / ai) ** 2 + (v / bi) ** 2 <= radius**2
        outside = ((rows < 0) | (rows >= ny))[:, None] | ((cols < 0) | (cols >= nx))[None, :]
        flags.append(np.any(within & outside))
    return np.array(flags)


def test_kron_radius_near_the_edge_sets_edge_and_matches_sep():
    rng = np.random.default_rng(31)
    shape = (60, 80)
    n = 40
    x = np.concatenate([rng.uniform(-0.5, 12.0, n // 2), rng.uniform(67.0, 79.4, n // 2)])
    y = rng.uniform(-0.5, 59.4, n)
    a = rng.uniform(1.0, 2.5, n)
    b = a * rng.uniform(0.3, 1.0, n)
    theta = rng.uniform(-np.pi / 2, np.pi / 2, n)
    # one source at a time, so that each is isolated
    kron, flags, ref = np.empty(n), np.empty(n, dtype=np.int32), np.empty(n)
    for i in range(n):
        one = [np.array([v[i]]) for v in (x, y, a, b, theta)]
        image = profile_image(shape, (*one, np.array([300.0])))
        (kron[i],), (flags[i],) = kron_radius(image, *one)
        (ref[i],), _ = sep.kron_radius(image, *one, 6.0)
    expected = kron_region_leaves_image(x, y, a, b, theta, shape)
    assert 5 < expected.sum() < n
    np.testing.assert_array_equal(flags, np.where(expected, EDGE, 0))
    np.testing.assert_allclose(kron, ref, rtol=0, atol=1e-10)


def test_kron_radius_without_positive_flux_fails():
    rng = np.random.default_rng(32)
    shape = (50, 60)
    image = np.zeros(shape)
    image[:, 30:] = -rng.uniform(1.0, 5.0, (50, 30))  # negative half
    image[40:, :5] = 7.0  # positive, beyond the apertures below
    x = np.array([12.3, 45.6, 20.0])
    y = np.array([20.1, 25.4, 30.0])
    a = np.array([2.0, 1.5, 1.0])
    b = np.array([1.0, 1.5, 0.8])
    theta = np.array([0.3, 0.0, -1.0])
    kron, flags = kron_radius(image, x, y, a, b, theta)
    np.testing.assert_array_equal(kron, 0.0)
    np.testing.assert_array_equal(flags, KRON_FAILED)
    ref, ref_flags = sep.kron_radius(image, x, y, a, b, theta, 6.0)
    np.testing.assert_array_equal(ref, 0.0)
    assert np.all(ref_flags & sep.APER_NONPOSITIVE)


def test_kron_radius_ignores_neighbours_like_sep_with_a_segmentation_map():
    rng = np.random.default_rng(33)
    shape = (70, 90)
    x = np.array([30.2, 38.7, 50.1, 60.4, 70.3])
    y = np.array([30.4, 33.1, 25.6, 40.2, 20.7])
    a = np.array([2.5, 2.0, 3.0, 1.5, 2.2])
    b = np.array([1.8, 1.5, 2.0, 1.4, 1.0])
    theta = rng.uniform(-np.pi / 2, np.pi / 2, 5)
    peak = np.array([100.0, 300.0, 80.0, 150.0, 200.0])
    image = profile_image(shape, (x, y, a, b, theta, peak))
    # label each pixel with its brightest source, where that one is above 1
    yy, xx = np.indices(shape, dtype=float)
    each = np.stack(
        [
            profile_image(shape, tuple(np.array([v[i]]) for v in (x, y, a, b, theta, peak)))
            for i in range(5)
        ]
    )
    segmentation = np.where(each.max(axis=0) > 1.0, each.argmax(axis=0) + 1, 0).astype(np.int32)
    ids = np.arange(1, 6, dtype=np.int32)
    masked, masked_flags = kron_radius(
        image, x, y, a, b, theta, segmentation=segmentation, mask_neighbours=True
    )
    ref, _ = sep.kron_radius(image, x, y, a, b, theta, 6.0, segmap=segmentation, seg_id=ids)
    np.testing.assert_allclose(masked, ref, rtol=0, atol=1e-10)
    kept, kept_flags = kron_radius(image, x, y, a, b, theta, segmentation=segmentation)
    ref, _ = sep.kron_radius(image, x, y, a, b, theta, 6.0)
    np.testing.assert_allclose(kept, ref, rtol=0, atol=1e-10)
    assert np.all(np.abs(kept - masked)[:3] > 0.5)  # the first three are a blend
    # NEIGHBOURS: a pixel centre of another label within the integration ellipse
    expected = []
    for i in range(5):
        u = (xx - x[i]) * np.cos(theta[i]) + (yy - y[i]) * np.sin(theta[i])
        v = -(xx - x[i]) * np.sin(theta[i]) + (yy - y[i]) * np.cos(theta[i])
        within = (u / a[i]) ** 2 + (v / b[i]) ** 2 <= 36.0
        expected.append(np.any(within & (segmentation != 0) & (segmentation != i + 1)))
    for flags in (masked_flags, kept_flags):
        np.testing.assert_array_equal(flags, np.where(expected, NEIGHBOURS, 0))


def test_kron_radius_skips_unusable_pixels_like_sep_with_a_mask():
    rng = np.random.default_rng(34)
    shape = (130, 170)
    sources = grid_sources(rng, shape)
    image = profile_image(shape, sources)
    x, y, a, b, theta, _ = sources
    bad = rng.random(shape) < 0.05
    ref, _ = sep.kron_radius(image, x, y, a, b, theta, 6.0, mask=bad)
    kron, flags = kron_radius(np.where(bad, np.nan, image), x, y, a, b, theta)
    np.testing.assert_allclose(kron, ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(flags, 0)
    kron, _ = kron_radius(image, x, y, a, b, theta, valid=~bad, max_window_pixels=1)
    np.testing.assert_allclose(kron, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "change",
    [
        dict(image=np.zeros((2, 20, 30))),
        dict(a=np.array([0.0, 1.0])),
        dict(b=np.array([1.0, np.nan])),
        dict(integration_radius=0.0),
        dict(mask_neighbours=True),
        dict(segmentation=np.zeros((20, 31), dtype=np.int32)),
        dict(y=np.array([5.0])),
    ],
    ids=[
        "3-D image",
        "zero a",
        "nan b",
        "zero radius",
        "mask_neighbours alone",
        "segmentation shape",
        "y shorter",
    ],
)
def test_bad_kron_inputs_raise(change):
    r = np.array([2.0, 3.0])
    good = dict(
        image=np.ones((20, 30)),
        x=np.array([5.0, 10.0]),
        y=np.array([5.0, 8.0]),
        a=r,
        b=r,
        theta=0 * r,
    )
    with pytest.raises(ValueError):
        kron_radius(**(good | change))


# ----------------------------------------------------------------------------- CuPy


def assert_close_to_float32(got, want):
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    scale = np.maximum(np.abs(want[ok]), 1.0)
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-6 * scale)


@pytest.mark.gpu
def test_cupy_sums_match_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(40)
    image, variance, segmentation, (x, y, a, b, theta) = segmented_scene(rng)
    image[0, 10:14, 20:40] = np.nan
    valid = rng.random(SHAPE[1:]) > 0.02
    saturated = rng.random(SHAPE) < 0.01
    params = (np.vstack([a, 2 * a]), np.vstack([b, 2 * b]), np.vstack([theta, theta]))
    kwargs = dict(segmentation=segmentation, mask_neighbours=True)
    want = sum_ellipses(image, variance, x, y, *params, valid=valid, saturated=saturated, **kwargs)
    gpu = {k: cupy.asarray(v) for k, v in kwargs.items() if k != "mask_neighbours"}
    for dtype in (np.float64, np.float32):
        got = sum_ellipses(
            cupy.asarray(image, dtype=dtype),
            cupy.asarray(variance, dtype=dtype),
            cupy.asarray(x),
            cupy.asarray(y),
            *(cupy.asarray(p) for p in params),
            valid=cupy.asarray(valid),
            saturated=cupy.asarray(saturated),
            mask_neighbours=True,
            **gpu,
        )
        assert isinstance(got.flux, cupy.ndarray)
        reference = want
        if dtype == np.float32:
            reference = sum_ellipses(
                image.astype(dtype),
                variance.astype(dtype),
                x,
                y,
                *params,
                valid=valid,
                saturated=saturated,
                **kwargs,
            )
        assert_close_to_float32(got.flux.get(), reference.flux)
        assert_close_to_float32(got.flux_err.get(), reference.flux_err)
        np.testing.assert_array_equal(got.flags.get(), reference.flags)


@pytest.mark.gpu
def test_cupy_kron_radius_matches_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(41)
    shape = (130, 170)
    sources = grid_sources(rng, shape)
    image = profile_image(shape, sources, rng, noise=0.05)
    x, y, a, b, theta, _ = sources
    segmentation = np.zeros(shape, dtype=np.int32)
    segmentation[::7, ::5] = 99
    want, want_flags = kron_radius(
        image, x, y, a, b, theta, segmentation=segmentation, mask_neighbours=True
    )
    got, got_flags = kron_radius(
        cupy.asarray(image, dtype=np.float32),
        *(cupy.asarray(v) for v in (x, y, a, b, theta)),
        segmentation=cupy.asarray(segmentation),
        mask_neighbours=True,
    )
    assert isinstance(got, cupy.ndarray)
    assert_close_to_float32(got.get(), want)
    np.testing.assert_array_equal(got_flags.get(), want_flags)
