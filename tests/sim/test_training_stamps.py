"""Training stamps: flux, noise, neighbours, measured photometry, and batch independence."""

import numpy as np
import pytest

from csst_photoz.sim import simulate_catalog
from csst_photoz.sim.population import PopulationConfig, surface_density
from csst_photoz.sim.training_stamps import (
    NEIGHBOUR_MARGIN_PIX,
    neighbour_pool,
    render_training_stamps,
)


@pytest.fixture(scope="module")
def truth(instrument):
    table = simulate_catalog(2000, seed=4, instrument=instrument)
    return table.filter(table["selected"]).slice(0, 24)


@pytest.fixture(scope="module")
def pool(instrument):
    return neighbour_pool(4, instrument=instrument)


@pytest.fixture(scope="module")
def stamps(truth, instrument, pool):
    return render_training_stamps(truth, instrument=instrument, seed=4, pool=pool)


def test_shape_and_alignment(stamps, truth):
    images, table = stamps
    assert images.shape == (24, 7, 64, 64) and images.dtype == np.float32
    assert table.num_rows == 24
    np.testing.assert_array_equal(table["galaxy_id"].to_numpy(), truth["galaxy_id"].to_numpy())


def test_noiseless_isolated_stamp_holds_the_galaxy_flux(truth, instrument):
    small = truth.filter(
        np.maximum(truth["disk_hlr"].to_numpy(), truth["bulge_hlr"].to_numpy()) < 0.5
    )
    images, _ = render_training_stamps(
        small.slice(0, 6), instrument=instrument, seed=1, neighbours=False, noise=False
    )
    for i in range(images.shape[0]):
        total = np.array([small[f"flux_{b}"][i].as_py() for b in instrument.band_names])
        np.testing.assert_allclose(images[i].sum(axis=(1, 2)), total, rtol=0.015)


def test_background_noise_matches_the_instrument(instrument):
    empty = simulate_catalog(8, seed=2, instrument=instrument)
    # make the central galaxies vanish: noise only, no neighbours
    zeroed = empty
    for band in instrument.band_names:
        for part in ("bulge", "disk"):
            name = f"flux_{part}_{band}"
            zeroed = zeroed.set_column(zeroed.column_names.index(name), name, [np.zeros(8)])
    images, _ = render_training_stamps(zeroed, instrument=instrument, seed=2, neighbours=False)
    for b, band in enumerate(instrument.band_names):
        assert images[:, b].std() == pytest.approx(instrument.background_noise(band), rel=0.03)


def test_a_stamp_does_not_depend_on_its_batch(stamps, truth, instrument, pool):
    images, table = stamps
    part, part_table = render_training_stamps(
        truth.slice(3, 3), instrument=instrument, seed=4, pool=pool
    )
    np.testing.assert_array_equal(part, images[3:6])
    assert part_table["n_neighbours"].to_pylist() == table["n_neighbours"].to_pylist()[3:6]


def test_neighbours_follow_the_surface_density(stamps, instrument):
    _, table = stamps
    side_deg = (64 + 2 * NEIGHBOUR_MARGIN_PIX) * instrument.config.pixel_scale_arcsec / 3600
    expected = surface_density(PopulationConfig()) * side_deg**2
    counts = table["n_neighbours"].to_numpy()
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / counts.size)


def test_measured_kron_fluxes_track_the_truth(stamps):
    _, table = stamps
    detected = table["detected"].to_numpy(zero_copy_only=False)
    assert detected.mean() > 0.9
    ratio = table["kron_flux_i"].to_numpy()[detected] / table["flux_i"].to_numpy()[detected]
    assert 0.5 < np.median(ratio) < 0.8  # 1 x Kron holds ~60% of a galaxy's light
    assert np.all(np.isfinite(table["kron_flux_err_i"].to_numpy()[detected]))


def test_undetected_galaxies_keep_their_rows(truth, instrument):
    faint = truth.slice(0, 3)
    for band in instrument.band_names:
        for part in ("bulge", "disk"):
            name = f"flux_{part}_{band}"
            faint = faint.set_column(faint.column_names.index(name), name, [np.zeros(3)])
    images, table = render_training_stamps(faint, instrument=instrument, seed=3, neighbours=False)
    assert images.shape[0] == table.num_rows == 3
    assert not table["detected"].to_numpy(zero_copy_only=False).any()
    assert np.all(np.isnan(table["kron_flux_g"].to_numpy()))
