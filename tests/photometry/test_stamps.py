import numpy as np
import pytest

from csst_photoz.photometry.flags import SourceFlag
from csst_photoz.photometry.stamps import cut_stamps, hashed_normal


def test_hashed_normal_is_standard_normal_and_deterministic():
    keys = np.arange(200_000, dtype=np.uint64)
    z = hashed_normal(keys, seed=3)
    assert z.dtype == np.float32
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.003
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01
    np.testing.assert_array_equal(z, hashed_normal(keys, seed=3))
    assert not np.array_equal(z, hashed_normal(keys, seed=4))


def test_interior_stamps_equal_slices_with_the_centre_pixel_at_half_size():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(7, 60, 80)).astype(np.float32)
    stamps, flags = cut_stamps(
        images, np.array([40.4, 20.6]), np.array([30.2, 25.5]), size=16,
        background_rms=np.ones(7), keys=np.array([1, 2]),
    )  # fmt: skip
    assert stamps.shape == (2, 7, 16, 16) and stamps.dtype == np.float32
    np.testing.assert_array_equal(stamps[0], images[:, 22:38, 32:48])
    np.testing.assert_array_equal(stamps[1], images[:, 18:34, 13:29])  # 20.6 -> pixel 21
    np.testing.assert_array_equal(flags, 0)


def test_edge_stamps_are_padded_with_background_noise_and_flagged():
    images = np.zeros((2, 40, 40), dtype=np.float32)
    images[:, :, :] = 100.0
    rms = np.array([3.0, 7.0])
    stamps, flags = cut_stamps(
        images, np.array([0.0, 39.0]), np.array([0.0, 20.0]), size=64,
        background_rms=rms, keys=np.array([10, 11]), seed=5,
    )  # fmt: skip
    assert flags.tolist() == [int(SourceFlag.STAMP_PADDED)] * 2
    inside = stamps[0, :, 32:, 32:]  # the tile's pixels (0..31, 0..31)
    np.testing.assert_array_equal(inside, 100.0)
    padding = stamps[0, :, :32, :]
    for band, sigma in enumerate(rms):
        assert abs(padding[band].std() / sigma - 1) < 0.05
        assert abs(padding[band].mean()) < 0.1 * sigma
    again, _ = cut_stamps(
        images, np.array([0.0, 39.0]), np.array([0.0, 20.0]), size=64,
        background_rms=rms, keys=np.array([10, 11]), seed=5,
    )  # fmt: skip
    np.testing.assert_array_equal(stamps, again)
    alone, _ = cut_stamps(
        images, np.array([39.0]), np.array([20.0]), size=64, background_rms=rms,
        keys=np.array([11]), seed=5,
    )  # fmt: skip
    np.testing.assert_array_equal(alone[0], stamps[1])  # independent of the batch


def test_non_finite_and_invalid_pixels_are_replaced():
    images = np.ones((1, 30, 30), dtype=np.float32)
    images[0, 15, 15] = np.nan
    valid = np.ones((30, 30), bool)
    valid[10, 10] = False
    stamps, flags = cut_stamps(
        images, np.array([15.0]), np.array([15.0]), size=20, background_rms=[2.0],
        keys=np.array([3]), valid=valid,
    )  # fmt: skip
    assert np.isfinite(stamps).all()
    assert stamps[0, 0, 10, 10] != 1.0 and stamps[0, 0, 5, 5] != 1.0
    assert flags[0] == SourceFlag.STAMP_PADDED


def test_a_tile_smaller_than_the_stamp():
    images = np.ones((3, 10, 12), dtype=np.float32)
    stamps, flags = cut_stamps(
        images, np.array([5.0]), np.array([4.0]), size=64, background_rms=np.ones(3),
        keys=np.array([0]),
    )  # fmt: skip
    assert stamps.shape == (1, 3, 64, 64)
    assert (stamps == 1.0).sum() == 3 * 10 * 12
    assert flags[0] == SourceFlag.STAMP_PADDED


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "positive integer"),
        ({"background_rms": np.ones(2)}, "background_rms"),
        ({"keys": np.array([1, 2])}, "keys"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"size": 8, "background_rms": np.ones(3), "keys": np.array([1])}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cut_stamps(np.ones((3, 10, 10)), np.array([5.0]), np.array([5.0]), **arguments)


@pytest.mark.gpu
def test_cupy_stamps_equal_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(2)
    images = rng.normal(size=(7, 50, 50)).astype(np.float32)
    x, y = np.array([2.0, 25.0, 49.0]), np.array([3.0, 25.0, 10.0])
    options = {"size": 32, "background_rms": np.arange(1, 8.0), "keys": np.array([4, 5, 6])}
    expected, expected_flags = cut_stamps(images, x, y, **options)
    got, flags = cut_stamps(
        cupy.asarray(images), cupy.asarray(x), cupy.asarray(y),
        **{**options, "keys": cupy.asarray(options["keys"])},
    )  # fmt: skip
    np.testing.assert_allclose(got.get(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(flags.get(), expected_flags)
