"""Mesh background estimator: accuracy on known backgrounds, agreement with sep, masks, errors."""

import numpy as np
import pytest
import sep

from csst_photoz.photometry.background import (
    _box_edges,
    _count_below,
    _SortedRows,
    _spline_weights,
    estimate_background,
    subtract_background,
)

NOISE = 10.0


def smooth_background(shape):
    """A low-order polynomial sky: a gradient of ~4 NOISE across the image plus curvature."""
    y, x = np.indices(shape, dtype=np.float64)
    u, v = x / shape[1], y / shape[0]
    return 500.0 + 40.0 * u - 25.0 * v + 30.0 * (u - 0.4) ** 2 + 20.0 * u * v


def add_sources(image, rng, n_sources):
    """Add Gaussian sources, 1-300 NOISE at the peak, sigma 0.8-4 px (in place)."""
    height, width = image.shape
    for _ in range(n_sources):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.8, 4.0)
        peak = NOISE * 10 ** rng.uniform(0.0, 2.5)
        r = int(np.ceil(6 * sigma))
        ys = slice(max(int(y0) - r, 0), min(int(y0) + r + 1, height))
        xs = slice(max(int(x0) - r, 0), min(int(x0) + r + 1, width))
        yy, xx = np.mgrid[ys, xs]
        image[ys, xs] += peak * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sigma**2)


def noisy(level, shape, seed):
    rng = np.random.default_rng(seed)
    return (level + NOISE * rng.standard_normal(shape)).astype(np.float32)


def test_flat_background_level_and_rms():
    image = noisy(1000.0, (512, 512), seed=0)
    background, rms = estimate_background(image)
    error = np.abs(background - 1000.0) / NOISE
    # measured over seeds 0-5: |mean error| <= 0.005, interior max 0.02-0.047, overall max
    # 0.08-0.19 (in the corners, where the spline extrapolates an unfiltered box; sep: the same)
    assert abs(background.mean() - 1000.0) < 0.02 * NOISE
    assert error[64:-64, 64:-64].max() < 0.08
    assert error.max() < 0.25
    # measured: mean rms 0.997-1.001 NOISE; without the clipping correction 0.982-0.985
    assert abs(rms.mean() / NOISE - 1.0) < 0.007
    assert np.abs(rms / NOISE - 1.0).max() < 0.08  # measured 0.02-0.06


@pytest.mark.parametrize("seed", [1, 2])
def test_smooth_background_with_sources_matches_truth_and_sep(seed):
    shape = (1024, 1024)
    rng = np.random.default_rng(seed)
    truth = smooth_background(shape)
    image = truth + NOISE * rng.standard_normal(shape)
    add_sources(image, rng, 300)
    image = np.ascontiguousarray(image, dtype=np.float32)
    background, rms = estimate_background(image, box_size=64, filter_size=3)

    # measured over seeds 0-3: residual rms 0.032-0.033 NOISE (sep's: 0.031-0.033)
    residual = (background - truth) / NOISE
    assert np.sqrt(np.mean(residual**2)) < 0.06
    assert abs(residual.mean()) < 0.04  # faint wings bias both estimators by ~+0.018

    reference = sep.Background(image, bw=64, bh=64, fw=3, fh=3)
    # measured: max |ours - sep| 0.013-0.017 NOISE, rms 0.0024 NOISE
    difference = (background - reference.back()) / NOISE
    assert np.abs(difference).max() < 0.05
    assert np.sqrt(np.mean(difference**2)) < 0.01
    # measured: median(rms) / sep.globalrms = 1.015-1.016 (sep's rms is ~1.6% low on pure noise)
    assert np.median(rms) / reference.globalrms == pytest.approx(1.0, abs=0.03)
    assert np.median(rms) / NOISE == pytest.approx(1.0, abs=0.04)  # measured 1.019-1.023


def test_plane_reproduced_when_box_size_does_not_divide_image():
    y, x = np.indices((300, 200))
    plane = (100.0 + 0.3 * x - 0.2 * y).astype(np.float32)
    background, rms = estimate_background(plane, box_size=64)
    # sep's map of this plane is off by up to 5.7 at the far edges (partial boxes)
    np.testing.assert_allclose(background, plane, atol=1e-3)
    assert np.all(rms > 0)


def test_box_larger_than_image_gives_one_box():
    image = noisy(200.0, (40, 50), seed=3)
    background, rms = estimate_background(image, box_size=64)
    assert background.shape == rms.shape == (40, 50)
    assert np.ptp(background) == 0 and np.ptp(rms) == 0
    assert abs(background[0, 0] - 200.0) < 0.2 * NOISE
    assert abs(rms[0, 0] / NOISE - 1.0) < 0.1


def test_stack_equals_per_band_calls():
    levels = (100.0, 300.0, 50.0)
    shape = (256, 320)
    stack = np.stack([noisy(level, shape, seed=10 + i) for i, level in enumerate(levels)])
    stack[1] += 2.0 * np.linspace(0.0, NOISE, shape[1], dtype=np.float32)
    mask = np.zeros(stack.shape, dtype=bool)
    mask[2, 40:120, 60:200] = True
    background, rms = estimate_background(stack, mask=mask, box_size=32)
    assert background.shape == rms.shape == stack.shape
    for band in range(len(levels)):
        band_background, band_rms = estimate_background(stack[band], mask=mask[band], box_size=32)
        np.testing.assert_allclose(background[band], band_background, rtol=0, atol=1e-4)
        np.testing.assert_allclose(rms[band], band_rms, rtol=0, atol=1e-5)
    assert abs(background[0].mean() - levels[0]) < 0.05 * NOISE


def test_masked_blob_and_nan_block_do_not_bias():
    level, shape = 1000.0, (512, 512)
    image = noisy(level, shape, seed=4)
    y, x = np.indices(shape)
    blob = (y - 287.5) ** 2 + (x - 159.5) ** 2 < 70.0**2  # covers box (4, 2) entirely
    image[blob] += 20.0 * NOISE
    image[40:140, 350:450] = np.nan

    biased, _ = estimate_background(image, box_size=64)
    assert biased[blob].max() - level > 5.0 * NOISE  # the blob does bias an unmasked estimate

    for mask in (blob, blob.astype(np.uint8) * 4):  # booleans or nonzero flags
        background, rms = estimate_background(image, mask=mask, box_size=64)
        assert np.all(np.isfinite(background)) and np.all(np.isfinite(rms))
        error = np.abs(background - level) / NOISE
        # measured: interior max 0.045, overall max 0.19 (a corner, as without the blob)
        assert error[64:-64, 64:-64].max() < 0.08 and error.max() < 0.25
        assert np.abs(rms / NOISE - 1.0).max() < 0.06  # measured 0.023
        assert abs(background[blob].mean() - level) < 0.05 * NOISE  # measured 0.0007
        assert abs(background[40:140, 350:450].mean() - level) < 0.05 * NOISE  # measured 0.024


def test_clipping_rejects_sources():
    rng = np.random.default_rng(5)
    image = 100.0 + NOISE * rng.standard_normal((512, 512))
    add_sources(image, rng, 100)
    _, rms_clipped = estimate_background(image)
    _, rms_raw = estimate_background(image, clip_iterations=0)
    assert np.median(rms_clipped) / NOISE == pytest.approx(1.0, abs=0.04)  # measured 1.018-1.021
    assert np.median(rms_raw) > 1.5 * NOISE  # measured 2.7-3.0


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("length", [1, 7, 64, 100])
def test_batched_binary_search_counts_like_a_comparison(inclusive, length):
    """The clipping bounds come from a binary search on sorted rows: equal to direct counting,
    with ties, +inf padding (invalid pixels) and limits beyond either end."""
    rng = np.random.default_rng(length)
    values = rng.normal(size=(3, 4, 5, length)).astype(np.float32)
    values[1] = np.round(values[1])  # ties
    values[2, :, :, length // 2 :] = np.inf  # invalid pixels sort last
    values.sort(axis=-1)
    count = (values < np.inf).sum(axis=-1)
    for scale in (0.5, 1.0, 5.0):
        limit = (scale * rng.normal(size=values.shape[:-1])).astype(np.float32)
        limit[1, 0] = 0.0  # exactly on the ties
        got = _count_below(_SortedRows(np, values), count, limit, inclusive=inclusive)
        expected = ((values <= limit[..., None]) if inclusive else (values < limit[..., None])).sum(
            axis=-1
        )
        np.testing.assert_array_equal(got, expected)


def test_interpolation_weights_of_a_long_axis_have_no_denormals_and_keep_planes():
    """A full-tile axis (144 knots): far weights are flushed to 0 instead of turning into
    float32 denormals (slow), and a constant or linear mesh is still reproduced."""
    weights = np.asarray(_spline_weights(9232, 64), dtype=np.float64)
    tiny = np.finfo(np.float32).tiny
    assert not ((weights != 0) & (np.abs(weights) < tiny)).any()
    edges = _box_edges(9232, 64)  # 144 boxes of 64 or 65 pixels
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights @ centres, np.arange(9232), atol=5e-3)


def test_level_only_equals_the_full_estimate():
    image = noisy(100.0, (2, 200, 150), seed=11)
    background, _ = estimate_background(image, box_size=32)
    level, no_rms = estimate_background(image, box_size=32, with_rms=False)
    assert no_rms is None
    np.testing.assert_array_equal(level, background)
    assert estimate_background(image[0], box_size=32, with_rms=False)[0].shape == (200, 150)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", [(96, 130), (2, 96, 130)])
def test_float32_output_of_the_image_shape(dtype, shape):
    image = (noisy(100.0, shape, seed=6)).astype(dtype)
    background, rms = estimate_background(image, box_size=32)
    assert background.dtype == rms.dtype == np.float32
    assert background.shape == rms.shape == shape
    subtracted, background2, rms2 = subtract_background(image, box_size=32)
    assert subtracted.dtype == np.float32 and subtracted.shape == shape
    np.testing.assert_array_equal(background2, background)
    np.testing.assert_array_equal(rms2, rms)
    np.testing.assert_allclose(subtracted, image.astype(np.float32) - background, atol=1e-4)


@pytest.mark.parametrize(
    ("image_shape", "options", "message"),
    [
        ((64,), {}, "image must be"),
        ((2, 2, 64, 64), {}, "image must be"),
        ((0, 64), {}, "empty axis"),
        ((64, 64), {"box_size": 3}, "box_size"),
        ((64, 64), {"box_size": 16.0}, "box_size"),
        ((64, 64), {"box_size": True}, "box_size"),
        ((64, 64), {"filter_size": 0}, "filter_size"),
        ((64, 64), {"filter_size": -3}, "filter_size"),
        ((64, 64), {"filter_size": 2}, "filter_size must be odd"),
        ((64, 64), {"clip_sigma": 0.0}, "clip_sigma"),
        ((64, 64), {"clip_sigma": float("nan")}, "clip_sigma"),
        ((64, 64), {"clip_iterations": -1}, "clip_iterations"),
        ((64, 64), {"mask": np.zeros((32, 64), bool)}, "mask shape"),
        ((2, 64, 64), {"mask": np.zeros((3, 64, 64), bool)}, "mask shape"),
    ],
)
def test_bad_arguments_raise(image_shape, options, message):
    image = np.ones(image_shape, dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        estimate_background(image, **options)


def test_unusable_images_raise_naming_the_problem():
    image = noisy(10.0, (2, 64, 64), seed=7)
    with pytest.raises(ValueError, match=r"band\(s\) \[0, 1\].*entirely.*masked"):
        estimate_background(image, mask=np.ones((64, 64), bool), box_size=16)
    image[1] = np.nan
    with pytest.raises(ValueError, match=r"band\(s\) \[1\].*non-finite"):
        estimate_background(image, box_size=16)
    # a single good box is enough: the others are filled from it
    sparse = np.ones((64, 64), bool)
    sparse[:16, :16] = False
    background, _ = estimate_background(image[0], mask=sparse, box_size=16)
    assert np.ptp(background) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.gpu
def test_cupy_matches_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(8)
    image = np.stack([smooth_background((512, 640)) + NOISE * rng.standard_normal((512, 640))] * 2)
    add_sources(image[0], rng, 100)
    image = image.astype(np.float32)
    mask = np.zeros(image.shape[-2:], bool)
    mask[100:200, 300:400] = True
    image[1, 10:20, 10:20] = np.nan
    expected = estimate_background(image, mask=mask)
    result = estimate_background(cupy.asarray(image), mask=cupy.asarray(mask))
    for got, want in zip(result, expected, strict=True):
        assert isinstance(got, cupy.ndarray) and got.dtype == cupy.float32
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=0, atol=1e-3 * NOISE)
