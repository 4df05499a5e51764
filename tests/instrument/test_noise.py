"""Tests for csst_photoz.instrument.noise against hand-computed numbers and each other."""

import numpy as np
import pytest

from csst_photoz.instrument import aperture_snr, background_noise_per_pixel, limiting_signal

# -- background_noise_per_pixel --------------------------------------------------------------


def test_background_noise_hand_computed():
    # (0.3 + 0.1) e-/s * 100 s * 4 = 160 e-; 3^2 * 4 = 36 e-^2; sqrt(196) = 14
    got = background_noise_per_pixel(
        sky_e_per_s=0.3, dark_e_per_s=0.1, exposure_time_s=100.0, n_exposures=4, read_noise_e=3.0
    )
    assert got == pytest.approx(14.0, rel=1e-15)


def test_background_noise_paper_g_band():
    # sqrt((0.142 + 0.02) * 150 * 2 + 25 * 2) = sqrt(98.6) = 9.92975...
    got = background_noise_per_pixel(
        sky_e_per_s=0.142, dark_e_per_s=0.02, exposure_time_s=150, n_exposures=2, read_noise_e=5
    )
    assert got == pytest.approx(9.929753269845127, rel=1e-14)
    assert round(float(got), 2) == 9.93


def test_background_noise_limits():
    # read noise only: RN * sqrt(N); Poisson only: sqrt(rate * t * N)
    assert background_noise_per_pixel(
        sky_e_per_s=0, dark_e_per_s=0, exposure_time_s=150.0, n_exposures=9, read_noise_e=5.0
    ) == pytest.approx(15.0, rel=1e-15)
    assert background_noise_per_pixel(
        sky_e_per_s=0.5, dark_e_per_s=0.0, exposure_time_s=50.0, n_exposures=2, read_noise_e=0.0
    ) == pytest.approx(np.sqrt(50.0), rel=1e-15)


def test_background_noise_with_integer_inputs_is_float():
    got = background_noise_per_pixel(
        sky_e_per_s=1, dark_e_per_s=0, exposure_time_s=3, n_exposures=1, read_noise_e=0
    )
    assert got == pytest.approx(np.sqrt(3.0), rel=1e-15)
    assert np.asarray(got).dtype == np.float64


def test_background_noise_broadcasts():
    sky = np.array([0.0023, 0.018, 0.142, 0.187, 0.187, 0.118, 0.035])
    n_exp = np.array([4, 2, 2, 2, 2, 2, 4])
    got = background_noise_per_pixel(
        sky_e_per_s=sky,
        dark_e_per_s=0.02,
        exposure_time_s=150.0,
        n_exposures=n_exp,
        read_noise_e=5.0,
    )
    # the paper's Table 1, NUV..y
    np.testing.assert_allclose(got, [10.65, 7.84, 9.93, 10.59, 10.59, 9.56, 11.53], atol=0.01)

    grid = background_noise_per_pixel(
        sky_e_per_s=np.array([[0.0], [0.1], [0.2]]),
        dark_e_per_s=0.0,
        exposure_time_s=np.array([100.0, 400.0]),
        n_exposures=1,
        read_noise_e=0.0,
    )
    assert grid.shape == (3, 2)
    np.testing.assert_allclose(
        grid,
        [[0.0, 0.0], [np.sqrt(10.0), np.sqrt(40.0)], [np.sqrt(20.0), np.sqrt(80.0)]],
        rtol=1e-15,
    )


# -- aperture_snr ----------------------------------------------------------------------------


def test_aperture_snr_hand_computed():
    # 36 / sqrt(36 + 4 * 4^2) = 36 / 10
    assert aperture_snr(36.0, n_pixels=4, background_noise_e=4.0) == pytest.approx(3.6, rel=1e-15)
    # no background: Poisson only, sqrt(S)
    assert aperture_snr(400.0, n_pixels=0, background_noise_e=10.0) == pytest.approx(20.0)
    # background-limited: S / (sigma * sqrt(n_pix))
    assert aperture_snr(1.0, n_pixels=1e6, background_noise_e=10.0) == pytest.approx(1e-4, rel=1e-6)


def test_aperture_snr_of_negative_signal_is_negative():
    # the source term is clipped at 0: -10 / sqrt(4 * 5^2) = -1
    assert aperture_snr(-10.0, n_pixels=4, background_noise_e=5.0) == pytest.approx(-1.0)
    assert aperture_snr(0.0, n_pixels=4, background_noise_e=5.0) == 0.0


def test_aperture_snr_broadcasts():
    signal = np.array([[100.0], [400.0], [-50.0]])
    n_pix = np.array([1.0, 10.0, 100.0, 1000.0])
    got = aperture_snr(signal, n_pixels=n_pix, background_noise_e=3.0)
    assert got.shape == (3, 4)
    for i, s in enumerate(signal[:, 0]):
        for j, n in enumerate(n_pix):
            expected = s / np.sqrt(max(s, 0.0) + n * 9.0)
            assert got[i, j] == pytest.approx(expected, rel=1e-14)


# -- limiting_signal -------------------------------------------------------------------------


def test_limiting_signal_hand_computed():
    # 2 sigma, 2 pixels of 2 e-: S^2 = 4 (S + 8) -> S = 8
    assert limiting_signal(2.0, n_pixels=2, background_noise_e=2.0) == pytest.approx(8.0)
    # 5 sigma, 28 pixels of 10 e-: S^2 = 25 (S + 2800) -> S = (25 + sqrt(625 + 280000)) / 2
    assert limiting_signal(5.0, n_pixels=28, background_noise_e=10.0) == pytest.approx(
        277.370251, rel=1e-8
    )


def test_limiting_signal_limits():
    # no background: S / sqrt(S) = n -> S = n^2
    assert limiting_signal(5.0, n_pixels=0, background_noise_e=10.0) == pytest.approx(25.0)
    # background-dominated: S -> n sigma sqrt(n_pix)
    assert limiting_signal(5.0, n_pixels=1e8, background_noise_e=10.0) == pytest.approx(
        5e5, rel=1e-4
    )


def test_limiting_signal_broadcasts():
    nsigma = np.array([3.0, 5.0, 10.0])[:, None]
    n_pix = np.array([10.0, 30.0])
    sigma = np.array([5.0, 12.0])
    got = limiting_signal(nsigma, n_pixels=n_pix, background_noise_e=sigma)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            n, b = nsigma[i, 0], n_pix[j] * sigma[j] ** 2
            root = (n**2 + np.sqrt(n**4 + 4 * n**2 * b)) / 2
            assert got[i, j] == pytest.approx(root, rel=1e-14)
            assert root**2 == pytest.approx(n**2 * (root + b), rel=1e-12)


def test_limiting_signal_inverts_aperture_snr_on_random_inputs():
    rng = np.random.default_rng(20240517)
    size = 20_000
    nsigma = rng.uniform(0.5, 50.0, size)
    n_pix = 10.0 ** rng.uniform(-1.0, 4.0, size)
    sigma = 10.0 ** rng.uniform(-1.0, 2.0, size)
    signal = limiting_signal(nsigma, n_pixels=n_pix, background_noise_e=sigma)
    assert np.all(signal > 0)
    snr = aperture_snr(signal, n_pixels=n_pix, background_noise_e=sigma)
    np.testing.assert_allclose(snr, nsigma, rtol=1e-12)
    # and it is the root: 1% less signal falls short of nsigma
    short = aperture_snr(0.99 * signal, n_pixels=n_pix, background_noise_e=sigma)
    assert np.all(short < nsigma)


@pytest.mark.parametrize(
    ("n_pixels", "sigma"), [(0.0, 0.0), (0.0, 7.0), (12.0, 0.0), (1e9, 1e3), (1e-3, 1e-3)]
)
def test_limiting_signal_round_trip_at_the_extremes(n_pixels, sigma):
    nsigma = np.array([0.1, 1.0, 5.0, 100.0])
    signal = limiting_signal(nsigma, n_pixels=n_pixels, background_noise_e=sigma)
    assert np.all(signal >= nsigma**2 * (1 - 1e-12))  # never below the background-free value
    snr = aperture_snr(signal, n_pixels=n_pixels, background_noise_e=sigma)
    np.testing.assert_allclose(snr, nsigma, rtol=1e-9)
