"""``detect_thresh`` is SExtractor's DETECT_THRESH: the same pixels as sep's SExtractor mode.

sep is the reference for SExtractor's behaviour: with a scalar noise (or ``filter_type="conv"``)
it thresholds the filtered image at DETECT_THRESH x the unfiltered noise, as SExtractor does;
with a noise array and its default ``filter_type="matched"`` it thresholds the matched-filter
S/N, which is our ``threshold_sigma``.
"""

import numpy as np
import pytest
import sep

from csst_photoz.photometry.detection import detect_sources, sextractor_threshold
from csst_photoz.photometry.measure import PhotometryConfig


def galaxies(seed, shape=(160, 200), n=20):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    image = rng.normal(0.0, 1.0, shape)
    for _ in range(n):
        x0, y0 = rng.uniform(8, shape[1] - 8), rng.uniform(8, shape[0] - 8)
        flux, sigma = rng.uniform(20, 400), rng.uniform(1.0, 3.0)
        profile = np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sigma**2)
        image += flux * profile / (2 * np.pi * sigma**2)
    return image


def detected_pixels_sep(image, thresh, filter_type, err):
    _, segmentation = sep.extract(
        image, thresh, err=err, filter_type=filter_type, clean=False, deblend_cont=1.0,
        segmentation_map=True,
    )  # fmt: skip
    return segmentation > 0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("detect_thresh", [1.5, 3.0])
def test_detect_thresh_finds_sextractors_pixels(seed, detect_thresh):
    image = galaxies(seed)
    ours = detect_sources(
        image, np.ones_like(image), threshold_sigma=sextractor_threshold(detect_thresh),
        deblend_cont=1.0,
    )  # fmt: skip
    np.testing.assert_array_equal(
        ours.segmentation > 0, detected_pixels_sep(image, detect_thresh, "conv", 1.0)
    )
    # sep with a scalar noise and its default filter type does the same
    np.testing.assert_array_equal(
        ours.segmentation > 0, detected_pixels_sep(image, detect_thresh, "matched", 1.0)
    )


def test_threshold_sigma_is_seps_matched_filter_with_a_noise_map():
    image = galaxies(2)
    ours = detect_sources(image, np.ones_like(image), threshold_sigma=1.5, deblend_cont=1.0)
    theirs = detected_pixels_sep(image, 1.5, "matched", np.ones_like(image))
    np.testing.assert_array_equal(ours.segmentation > 0, theirs)


def test_the_mapping_of_the_default_filter():
    assert sextractor_threshold(1.5) == pytest.approx(4.0)
    assert sextractor_threshold(1.0, [[1.0]]) == 1.0
    assert PhotometryConfig(detect_thresh=1.5).detection_threshold() == pytest.approx(4.0)
    assert PhotometryConfig().detection_threshold() == 1.5
    with pytest.raises(ValueError, match="not both"):
        PhotometryConfig(detect_thresh=1.5, threshold_sigma=2.0)
    with pytest.raises(ValueError, match="detect_thresh"):
        sextractor_threshold(0.0)
