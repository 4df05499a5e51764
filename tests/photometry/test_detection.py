"""detect_sources: sep's detection recipe in array code, checked against sep itself.

sep computes the isophotal moments with the *filtered* image as weights, and so does
detect_sources: on the same footprint pixels both give the same numbers to float32 precision.
sep's ``clean`` step is not part of detect_sources, so sep runs with ``clean=False`` here.
"""

import numpy as np
import pytest
import scipy.ndimage
import sep

from csst_photoz.photometry.detection import SEP_DEFAULT_KERNEL, Detections, detect_sources
from csst_photoz.photometry.flags import SourceFlag

NOISE = 5.0
BLENDED = int(SourceFlag.BLENDED)
TRUNCATED = int(SourceFlag.FOOTPRINT_TRUNCATED)
COLUMNS = ("x", "y", "a", "b", "theta", "area", "isophotal_flux", "peak_snr", "flags")


def gaussian(shape, x0, y0, flux, sigma_a, sigma_b=None, angle=0.0):
    """A 2-D Gaussian of total ``flux`` drawn within 6 sigma of its centre (0-based pixels)."""
    sigma_b = sigma_a if sigma_b is None else sigma_b
    image = np.zeros(shape)
    r = int(np.ceil(6 * sigma_a))
    y_lo, y_hi = max(int(y0) - r, 0), min(int(y0) + r + 1, shape[0])
    x_lo, x_hi = max(int(x0) - r, 0), min(int(x0) + r + 1, shape[1])
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi]
    c, s = np.cos(angle), np.sin(angle)
    u = (xs - x0) * c + (ys - y0) * s
    v = -(xs - x0) * s + (ys - y0) * c
    norm = flux / (2 * np.pi * sigma_a * sigma_b)
    image[y_lo:y_hi, x_lo:x_hi] = norm * np.exp(-0.5 * (u**2 / sigma_a**2 + v**2 / sigma_b**2))
    return image


def noisy(clean, seed):
    rng = np.random.default_rng(seed)
    return clean + rng.normal(0.0, NOISE, clean.shape), np.full(clean.shape, NOISE**2)


def run_sep(image, variance, mask=None, **kwargs):
    options = {"minarea": 5, "clean": False, "segmentation_map": True, **kwargs}
    return sep.extract(
        np.ascontiguousarray(image, dtype=np.float64),
        1.5,
        err=np.sqrt(np.ascontiguousarray(variance, dtype=np.float64)),
        mask=mask,
        **options,
    )


def within(det, x0, y0, radius):
    return np.flatnonzero(np.hypot(det.x - x0, det.y - y0) < radius)


def match_rows(det, objects):
    """Row of ``objects`` (sep) nearest to each row of ``det``."""
    distance = np.hypot(det.x[:, None] - objects["x"], det.y[:, None] - objects["y"])
    return np.argmin(distance, axis=1)


@pytest.fixture(scope="module")
def isolated():
    """12 isolated elliptical Gaussians, one per 64 x 64 cell, on noise."""
    rng = np.random.default_rng(7)
    n = 12
    cells_x, cells_y = np.meshgrid(np.arange(4), np.arange(3))
    x = 64 * cells_x.ravel() + 32 + rng.uniform(-8, 8, n)
    y = 64 * cells_y.ravel() + 32 + rng.uniform(-8, 8, n)
    truth = np.column_stack(
        [
            x,
            y,
            10 ** rng.uniform(3.5, 4.5, n),
            rng.uniform(1.5, 3.0, n),
            rng.uniform(0.35, 1.0, n),
            rng.uniform(-np.pi / 2, np.pi / 2, n),
        ]
    )
    shape = (192, 256)
    clean = sum(gaussian(shape, xi, yi, f, s, s * q, t) for xi, yi, f, s, q, t in truth)
    return (*noisy(clean, 8), truth)


@pytest.fixture(scope="module")
def crowded():
    """300 Gaussians of random flux, size and shape at random positions: blends and noise."""
    rng = np.random.default_rng(5)
    n, shape = 300, (512, 512)
    clean = np.zeros(shape)
    for x, y, flux, sigma, q, angle in zip(
        rng.uniform(0, 512, n),
        rng.uniform(0, 512, n),
        10 ** rng.uniform(2.5, 5.0, n),
        rng.uniform(1.0, 4.0, n),
        rng.uniform(0.3, 1.0, n),
        rng.uniform(-np.pi / 2, np.pi / 2, n),
        strict=True,
    ):
        clean += gaussian(shape, x, y, flux, sigma, sigma * q, angle)
    return noisy(clean, 6)


def test_isolated_sources_are_found_once_and_measured_as_sep_does(isolated):
    image, variance, truth = isolated
    det = detect_sources(image, variance)
    objects, _ = run_sep(image, variance)
    for x0, y0, _, _, q, angle in truth:
        (k,) = within(det, x0, y0, 2.0)  # found exactly once
        j = int(np.argmin(np.hypot(objects["x"] - x0, objects["y"] - y0)))
        assert abs(det.x[k] - objects["x"][j]) < 1e-4
        assert abs(det.y[k] - objects["y"][j]) < 1e-4
        assert det.a[k] == pytest.approx(objects["a"][j], rel=1e-5)
        assert det.b[k] == pytest.approx(objects["b"][j], rel=1e-5)
        assert det.area[k] == objects["npix"][j]
        assert det.isophotal_flux[k] == pytest.approx(objects["flux"][j], rel=1e-5)
        assert np.hypot(det.x[k] - x0, det.y[k] - y0) < 0.25  # and near the truth
        if q < 0.8:
            assert abs(det.theta[k] - objects["theta"][j]) < 1e-4
        if q < 0.65:
            assert abs(np.angle(np.exp(2j * (det.theta[k] - angle)))) / 2 < 0.05
        assert det.flags[k] == 0
        assert det.peak_snr[k] > 10


def test_without_deblending_every_footprint_matches_sep_row_by_row(crowded):
    image, variance = crowded
    det = detect_sources(image, variance, deblend_cont=1.0)
    objects, segmap = run_sep(image, variance, deblend_cont=1.0)
    assert len(det) == len(objects) > 500
    j = match_rows(det, objects)
    assert np.array_equal(np.sort(j), np.arange(len(objects)))  # one-to-one
    assert np.abs(det.x - objects["x"][j]).max() < 1e-4
    assert np.abs(det.y - objects["y"][j]).max() < 1e-4
    np.testing.assert_allclose(det.a, objects["a"][j], rtol=1e-4)
    np.testing.assert_allclose(det.b, objects["b"][j], rtol=1e-4)
    np.testing.assert_array_equal(det.area, objects["npix"][j])
    np.testing.assert_allclose(det.isophotal_flux, objects["flux"][j], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(det.flags == TRUNCATED, (objects["flag"][j] & 2) > 0)
    same = np.zeros(len(det) + 1, dtype=int)
    same[1:] = j + 1
    np.testing.assert_array_equal(same[det.segmentation], segmap)  # the same partition


def test_deblending_splits_as_sep_does(crowded):
    image, variance = crowded
    det = detect_sources(image, variance)
    objects, segmap = run_sep(image, variance)
    assert len(det) == pytest.approx(len(objects), rel=0.01)
    n_blended = np.count_nonzero(det.flags & BLENDED)
    assert n_blended == pytest.approx(np.count_nonzero(objects["flag"] & 1), rel=0.1)
    assert n_blended > 50
    np.testing.assert_array_equal(det.segmentation > 0, segmap > 0)
    j = match_rows(det, objects)
    offset = np.hypot(det.x - objects["x"][j], det.y - objects["y"][j])
    single = (det.flags & BLENDED) == 0
    assert np.quantile(offset[single], 0.99) < 1e-4
    assert np.median(offset[~single]) < 1e-4  # a split source's barycentre is its core's


@pytest.mark.parametrize("min_area", [5, 40])  # sep's branches need only min(min_area, 3) pixels
def test_touching_sources_of_similar_flux_are_split_near_the_truth(min_area):
    truth = ((29.3, 32.2, 2e4), (36.3, 32.2, 1.5e4))  # 3.5 sigma apart
    clean = sum(gaussian((64, 64), x, y, f, 2.0) for x, y, f in truth)
    image, variance = noisy(clean, 1)
    det = detect_sources(image, variance, min_area=min_area)
    rows = [int(np.argmin(np.hypot(det.x - x, det.y - y))) for x, y, _ in truth]
    objects, _ = run_sep(image, variance, minarea=min_area)
    for row, (x, y, _) in zip(rows, truth, strict=True):
        assert np.hypot(det.x[row] - x, det.y[row] - y) < 0.25
        assert det.flags[row] & BLENDED
        # sep's barycentre of a split source is that of its core above the split: so is ours
        assert np.min(np.hypot(objects["x"] - det.x[row], objects["y"] - det.y[row])) < 1e-4
    assert det.segmentation[32, 29] != det.segmentation[32, 36]
    assert np.count_nonzero(det.flags & BLENDED) == 2  # the noise around them is not split off
    merged = detect_sources(image, variance, deblend_cont=1.0, min_area=min_area)
    (row,) = within(merged, 32.3, 32.2, 1.5)
    assert not np.any(merged.flags & BLENDED)
    parts = np.unique(det.segmentation[merged.segmentation == row + 1])
    assert set(rows) <= set(parts - 1) and parts.min() > 0  # every pixel kept, in a source
    assert merged.area[row] == det.area[parts - 1].sum()


@pytest.mark.parametrize(("deblend_cont", "split"), [(0.005, False), (1e-3, True)])
def test_a_companion_below_the_contrast_limit_stays_with_its_host(deblend_cont, split):
    # 1% of the host's flux, but less than 0.5% above the saddle: sep splits only below 0.005
    clean = gaussian((72, 72), 30.2, 31.7, 1e5, 4.0) + gaussian((72, 72), 42.2, 31.9, 1e3, 0.8)
    image, variance = noisy(clean, 2)
    det = detect_sources(image, variance, deblend_cont=deblend_cont)
    objects, _ = run_sep(image, variance, deblend_cont=deblend_cont)
    (host,) = within(det, 30.2, 31.7, 1.0)
    assert len(within(det, 42.2, 31.9, 1.0)) == int(split)
    assert np.count_nonzero(np.hypot(objects["x"] - 42.2, objects["y"] - 31.9) < 1.0) == split
    assert bool(det.flags[host] & BLENDED) == split


def test_deblended_sources_below_min_area_go_to_their_neighbour():
    clean = gaussian((72, 72), 30.2, 31.7, 1e5, 4.0) + gaussian((72, 72), 42.2, 31.9, 1e3, 0.8)
    image, variance = noisy(clean, 2)
    split = detect_sources(image, variance, deblend_cont=1e-3, min_area=20)
    (companion,) = within(split, 42.2, 31.9, 1.0)
    assert 20 <= split.area[companion] < 40 and split.flags[companion] & BLENDED
    det = detect_sources(image, variance, deblend_cont=1e-3, min_area=40)
    assert len(within(det, 42.2, 31.9, 1.0)) == 0 and det.area.min() >= 40
    (host,) = within(det, 30.2, 31.7, 1.0)
    assert det.area[host] == split.area[within(split, 30.2, 31.7, 1.0)[0]] + split.area[companion]
    assert not det.flags[host] & BLENDED


def test_hot_pixels_are_not_split_off_without_a_filter():
    # a deblending branch needs 3 pixels above its level, as in sep (here a filter spreads none)
    clean = gaussian((72, 72), 30.2, 31.7, 1e5, 4.0)
    for x, y in ((38, 31), (30, 40), (22, 24), (36, 36)):
        clean[y, x] += 1600.0
    image, variance = noisy(clean, 2)
    det = detect_sources(image, variance, kernel=np.ones((1, 1)))
    objects, _ = run_sep(image, variance, filter_kernel=None)
    assert len(det) == len(objects)
    assert not np.any(det.flags & BLENDED) and not np.any(objects["flag"] & 1)


def test_min_area_holds_for_footprints_and_deblended_sources(crowded):
    image, variance = crowded
    for min_area in (1, 5, 12):
        det = detect_sources(image, variance, min_area=min_area)
        assert det.area.min() >= min_area
        assert np.array_equal(np.bincount(det.segmentation.ravel())[1:], det.area)
    footprints = detect_sources(image, variance, min_area=12, deblend_cont=1.0)
    assert len(footprints) == len(run_sep(image, variance, minarea=12, deblend_cont=1.0)[0])


def test_masked_and_nan_pixels_are_never_detected_and_truncate_segments():
    shape = (80, 80)
    clean = (
        gaussian(shape, 20.3, 20.1, 3e4, 2.5)
        + gaussian(shape, 60.2, 20.4, 3e4, 2.5)
        + gaussian(shape, 40.1, 60.3, 3e4, 2.5)
    )
    image, variance = noisy(clean, 3)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[18:22, 17:20] = 1  # part of the first source
    image[20, 60] = np.nan  # the second source's peak
    variance[21, 61] = np.nan
    det = detect_sources(image, variance, mask=mask)
    assert not det.segmentation[mask > 0].any()
    assert det.segmentation[20, 60] == 0 and det.segmentation[21, 61] == 0
    first, second, third = (within(det, x, y, 2.0) for x, y in ((20, 20), (60, 20), (40, 60)))
    assert det.flags[first] == TRUNCATED and det.flags[second] == TRUNCATED
    assert det.flags[third] == 0
    assert det.x[third] == pytest.approx(40.1, abs=0.1)


def test_a_source_in_the_corner_is_found_truncated_and_measured_as_sep_does():
    image, variance = noisy(gaussian((48, 48), 0.7, 1.2, 2e4, 2.0), 4)
    det = detect_sources(image, variance)
    objects, _ = run_sep(image, variance)
    (row,) = within(det, 1.0, 1.5, 2.0)
    j = int(np.argmin(np.hypot(objects["x"] - det.x[row], objects["y"] - det.y[row])))
    assert det.flags[row] & TRUNCATED and objects["flag"][j] & 2
    assert det.x[row] == pytest.approx(objects["x"][j], abs=1e-4)
    assert det.y[row] == pytest.approx(objects["y"][j], abs=1e-4)
    assert det.a[row] == pytest.approx(objects["a"][j], rel=1e-4)


@pytest.mark.parametrize(
    "case", ["blank", "below threshold", "all masked", "all NaN", "zero variance"]
)
def test_nothing_detected_gives_empty_detections(case):
    image, variance = noisy(gaussian((40, 50), 20.2, 20.1, 1e4, 2.0), 5)
    mask = None
    if case == "blank":
        image = np.zeros_like(image)
    elif case == "all masked":
        mask = np.ones(image.shape, dtype=bool)
    elif case == "all NaN":
        image[:] = np.nan
    elif case == "zero variance":
        variance[:] = 0.0
    threshold = 1e6 if case == "below threshold" else 1.5
    det = detect_sources(image, variance, mask=mask, threshold_sigma=threshold)
    assert isinstance(det, Detections) and len(det) == 0
    assert det.segmentation.shape == image.shape and det.segmentation.dtype == np.int32
    assert not det.segmentation.any()
    for name in COLUMNS:
        assert getattr(det, name).shape == (0,)
    assert det.area.dtype == np.int64 and det.flags.dtype == np.int32


def test_rows_are_deterministic_and_ordered_by_peak_pixel(crowded):
    image, variance = crowded
    det = detect_sources(image.astype(np.float32), variance.astype(np.float32))
    again = detect_sources(image.astype(np.float32), variance.astype(np.float32))
    for name in ("segmentation", *COLUMNS):
        np.testing.assert_array_equal(getattr(det, name), getattr(again, name))
    kernel = np.asarray(SEP_DEFAULT_KERNEL)
    filtered = scipy.ndimage.correlate(
        image.astype(np.float32).astype(float), kernel, mode="constant"
    )
    seg = det.segmentation.ravel()
    order = np.lexsort((filtered.ravel()[seg > 0], seg[seg > 0]))
    flat = np.flatnonzero(seg)[order]
    last = np.r_[seg[flat][1:] != seg[flat][:-1], True]
    peaks = flat[last]  # the highest pixel of every segment, by segment id
    assert np.all(np.diff(peaks) > 0)


def test_segments_partition_the_footprints_without_losing_pixels(crowded):
    image, variance = crowded
    det = detect_sources(image, variance)
    seg = det.segmentation
    assert seg.dtype == np.int32 and seg.max() == len(det)
    np.testing.assert_array_equal(np.unique(seg), np.arange(len(det) + 1))
    np.testing.assert_array_equal(np.bincount(seg.ravel())[1:], det.area)
    np.testing.assert_allclose(
        np.bincount(seg.ravel(), weights=image.ravel())[1:], det.isophotal_flux, rtol=1e-12
    )
    kernel = np.asarray(SEP_DEFAULT_KERNEL)
    snr = scipy.ndimage.correlate(image, kernel, mode="constant") / np.sqrt(
        scipy.ndimage.correlate(variance, kernel**2, mode="constant")
    )
    labels, _ = scipy.ndimage.label(snr > 1.5, structure=np.ones((3, 3)))
    footprints = (np.bincount(labels.ravel()) >= 5)[labels] & (labels > 0)
    np.testing.assert_array_equal(seg > 0, footprints)
    assert det.isophotal_flux.sum() == pytest.approx(image[footprints].sum(), rel=1e-9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": np.zeros((4, 5, 6))}, "2-D"),
        ({"variance": np.ones((5, 6))}, "2-D"),
        ({"variance": -np.ones((6, 7))}, ">= 0"),
        ({"mask": np.zeros((7, 6), dtype=bool)}, "mask"),
        ({"min_area": 0}, "min_area"),
        ({"threshold_sigma": 0.0}, "threshold_sigma"),
        ({"threshold_sigma": np.inf}, "threshold_sigma"),
        ({"deblend_cont": 0.0}, "deblend_cont"),
        ({"deblend_cont": 1.5}, "deblend_cont"),
        ({"deblend_cont": np.nan}, "deblend_cont"),
        ({"deblend_nthresh": 0}, "deblend_nthresh"),
        ({"kernel": np.zeros((3, 3))}, "kernel"),
        ({"kernel": np.ones(3)}, "kernel"),
    ],
)
def test_invalid_arguments_raise(change, message):
    arguments = {"image": np.zeros((6, 7)), "variance": np.ones((6, 7)), **change}
    image, variance = arguments.pop("image"), arguments.pop("variance")
    with pytest.raises(ValueError, match=message):
        detect_sources(image, variance, **arguments)


@pytest.mark.gpu
def test_cupy_gives_the_numpy_rows_on_the_device(crowded):
    cupy = pytest.importorskip("cupy")
    image, variance = crowded
    expected = detect_sources(image, variance)
    det = detect_sources(cupy.asarray(image), cupy.asarray(variance))
    assert isinstance(det.x, cupy.ndarray) and isinstance(det.segmentation, cupy.ndarray)
    np.testing.assert_array_equal(det.segmentation.get(), expected.segmentation)
    for name in COLUMNS:
        np.testing.assert_allclose(getattr(det, name).get(), getattr(expected, name), rtol=1e-9)
