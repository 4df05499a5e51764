"""The usable-pixel rule and the detection image of the bands usable at each pixel."""

import numpy as np
import pytest

from csst_photoz.photometry.pixels import band_noise, detection_image, usable_pixels


def random_stack(seed, n_bands=4, shape=(37, 29)):
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 3.0, (n_bands, *shape)).astype(np.float32)
    variances = rng.uniform(0.5, 9.0, (n_bands, *shape)).astype(np.float32)
    valid = rng.random((n_bands, *shape)) > 0.3
    valid[:, :3, :3] = False  # a corner usable in no band
    return images * valid, variances * valid, valid


def reference_detection(images, variances, valid, weights):
    """Float64, pixel by pixel: the weighted sum over the usable bands, rescaled to all bands."""
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    present = (w * valid).sum(axis=0)
    scale = np.divide(w.sum(), present, out=np.zeros_like(present), where=present > 0)
    image = scale * (w * valid * images).sum(axis=0)
    variance = scale**2 * (w**2 * valid * variances).sum(axis=0)
    return image, variance, present > 0


@pytest.mark.parametrize("weights", [None, (0.5, 1.0, 2.0, 0.25)])
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_image_matches_a_float64_reference(seed, weights):
    images, variances, valid = random_stack(seed)
    index = [0, 1, 2, 3]
    got = detection_image(images, variances, valid, index, weights=weights)
    expected = reference_detection(images, variances, valid, weights or (1.0,) * 4)
    for ours, theirs in zip(got[:2], expected[:2], strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-5)
    np.testing.assert_array_equal(got[2], expected[2])
    assert not got[2][:3, :3].any() and (got[1][:3, :3] == 0).all()


def test_with_every_band_usable_it_is_the_plain_sum_bit_for_bit():
    images, variances, _ = random_stack(2)
    valid = np.ones(images.shape, dtype=bool)
    image, variance, usable = detection_image(images, variances, valid, [1, 3])
    np.testing.assert_array_equal(image, images[1] + images[3])
    np.testing.assert_array_equal(variance, variances[1] + variances[3])
    assert usable.all()


def test_a_missing_band_keeps_the_signal_level_and_raises_the_noise():
    """A flat source seen in 3 of 4 equal bands: same level, variance x 4/3."""
    images = np.full((4, 5, 5), 2.0, dtype=np.float32)
    variances = np.ones((4, 5, 5), dtype=np.float32)
    valid = np.ones((4, 5, 5), dtype=bool)
    valid[2, :, :2] = False
    image, variance, _ = detection_image(images * valid, variances * valid, valid, [0, 1, 2, 3])
    np.testing.assert_allclose(image, 8.0)
    np.testing.assert_allclose(variance[:, :2], 4.0 * 4.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(variance[:, 2:], 4.0)


def test_usable_pixels_one_rule():
    images = np.ones((2, 3, 4), dtype=np.float32)
    variances = np.ones((2, 3, 4), dtype=np.float32)
    images[0, 0, 0] = np.nan
    images[0, 0, 1] = np.inf
    variances[0, 0, 2] = np.nan
    variances[0, 0, 3] = 0.0
    variances[1, 1, 0] = -1.0
    mask = np.zeros((3, 4), dtype=np.uint16)
    mask[2, 3] = 4  # a bad bit, shared by both bands
    mask[2, 2] = 2  # a bit that is not bad
    valid = usable_pixels(images, variances, mask, bad_bits=5)
    expected = np.ones((2, 3, 4), dtype=bool)
    expected[0, 0, :] = False
    expected[1, 1, 0] = False
    expected[:, 2, 3] = False
    np.testing.assert_array_equal(valid, expected)


def test_band_noise_falls_back_on_the_variance_of_an_unusable_band():
    variances = np.stack([np.full((8, 8), 4.0), np.full((8, 8), 9.0), np.full((8, 8), np.nan)])
    valid = np.ones(variances.shape, dtype=bool)
    valid[1:] = False
    noise = band_noise(variances.astype(np.float32), valid)
    np.testing.assert_allclose(noise[:2], [2.0, 3.0])
    assert np.isnan(noise[2])


def test_bad_arguments():
    images, variances, valid = random_stack(3)
    with pytest.raises(ValueError, match="positive detection weights"):
        detection_image(images, variances, valid, [0, 1], weights=(1.0, 0.0))
    with pytest.raises(ValueError, match="differ in shape"):
        usable_pixels(images, variances[:2])
    with pytest.raises(ValueError, match="mask"):
        usable_pixels(images, variances, np.zeros((5, 5), dtype=np.uint16), bad_bits=1)
