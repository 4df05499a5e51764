"""sep reference photometry: Kron fluxes of known Gaussian sources, errors, empty images."""

import numpy as np
import pytest

from csst_photoz.photometry import central_object, measure_kron_photometry

BANDS = ("g", "r", "i", "z")


def gaussian_scene(rng, *, sigma_px=2.0, fluxes=(2e4, 5e4, 1e5), noise=5.0, shape=(120, 160)):
    ys, xs = np.indices(shape)
    positions = [(40.3, 30.7), (100.2, 80.5), (60.6, 90.1)]
    clean = np.zeros(shape)
    for (x0, y0), flux in zip(positions, fluxes, strict=False):
        clean += (
            flux
            * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma_px**2))
            / (2 * np.pi * sigma_px**2)
        )
    image = np.stack([clean + rng.normal(0, noise, shape) for _ in BANDS]).astype(np.float32)
    variance = np.full(image.shape, noise**2, dtype=np.float32)
    return image, variance, positions[: len(fluxes)], clean


def _matched(table, positions):
    return [central_object(table, x, y, max_distance=1.0) for x, y in positions]


def test_wide_kron_aperture_recovers_total_flux():
    rng = np.random.default_rng(1)
    image, variance, positions, _ = gaussian_scene(rng)
    table = measure_kron_photometry(image, variance, bands=BANDS, kron_factor=2.5)
    rows = _matched(table, positions)
    assert all(row >= 0 for row in rows)
    for row, flux in zip(rows, (2e4, 5e4, 1e5), strict=True):
        assert table["flux_i"][row] == pytest.approx(flux, rel=0.03)


def test_one_kron_radius_holds_the_analytic_gaussian_share():
    """A Gaussian's first-moment radius is sqrt(pi/2) sigma: sep's Kron radius (in units of
    the isophotal a, b) times sqrt(a b) gives it, and 1 - exp(-pi / 4) of the flux lies inside."""
    rng = np.random.default_rng(2)
    image, variance, positions, _ = gaussian_scene(rng, noise=1.0)
    table = measure_kron_photometry(image, variance, bands=BANDS, kron_factor=1.0)
    expected_share = 1.0 - np.exp(-np.pi / 4.0)
    for row, flux in zip(_matched(table, positions), (2e4, 5e4, 1e5), strict=True):
        radius = table["kron_radius"][row] * np.sqrt(table["a"][row] * table["b"][row])
        assert radius == pytest.approx(np.sqrt(np.pi / 2) * 2.0, rel=0.03)
        assert table["flux_r"][row] / flux == pytest.approx(expected_share, rel=0.04)


def test_flux_errors_match_the_scatter_over_noise_realisations():
    rng = np.random.default_rng(3)
    fluxes = []
    errors = []
    for _ in range(200):
        image, variance, positions, _ = gaussian_scene(rng, fluxes=(5e3,))
        table = measure_kron_photometry(image, variance, bands=BANDS, kron_factor=2.5)
        row = central_object(table, *positions[0], max_distance=1.5)
        if row >= 0:
            fluxes.append(table["flux_z"][row])
            errors.append(table["flux_err_z"][row])
    assert len(fluxes) > 190
    assert np.std(fluxes) == pytest.approx(np.median(errors), rel=0.12)


def test_pure_noise_gives_an_empty_table_with_every_column():
    rng = np.random.default_rng(4)
    image = rng.normal(0, 1, (4, 50, 50)).astype(np.float32) * 0
    table = measure_kron_photometry(image, np.ones_like(image), bands=BANDS)
    assert len(table) == 0
    for column in ("x", "y", "kron_radius", "detection_snr", "flags", "flux_g", "flux_err_z"):
        assert column in table.colnames


def test_bad_arguments_are_clear_errors():
    image = np.zeros((4, 20, 20), dtype=np.float32)
    with pytest.raises(ValueError, match="must be"):
        measure_kron_photometry(image, np.ones((4, 20, 21), np.float32), bands=BANDS)
    with pytest.raises(ValueError, match=r"detection band\(s\) \['y'\]"):
        measure_kron_photometry(image, np.ones_like(image), bands=BANDS, detection_bands=("i", "y"))


def test_central_object_respects_the_distance_limit():
    rng = np.random.default_rng(5)
    image, variance, positions, _ = gaussian_scene(rng)
    table = measure_kron_photometry(image, variance, bands=BANDS)
    assert central_object(table, *positions[1], max_distance=1.0) >= 0
    assert central_object(table, 5.0, 5.0, max_distance=2.0) == -1
