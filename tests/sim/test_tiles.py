"""Simulated tiles: noise model, determinism, WCS, defects, and recovery of truth by sep."""

import numpy as np
import pytest
import sep
from astropy.stats import sigma_clipped_stats

from csst_photoz.sim.population import PopulationConfig, surface_density
from csst_photoz.sim.render import RenderSettings
from csst_photoz.sim.tiles import (
    DetectorEffects,
    TileSpec,
    simulate_tile,
    tile_grid,
    tile_truth,
)
from csst_photoz.tile import MaskBit


@pytest.fixture(scope="module")
def tile_and_truth(instrument):
    return simulate_tile(TileSpec(tile_id=5, nx=384, ny=320, seed=21), instrument=instrument)


def test_tile_has_the_data_contract(tile_and_truth, instrument):
    tile, truth = tile_and_truth
    assert tile.image.shape == (7, 320, 384) and tile.image.dtype == np.float32
    assert tile.variance.dtype == np.float32 and tile.mask.dtype == np.uint16
    assert tile.bands == ("NUV", "u", "g", "r", "i", "z", "y")
    assert tile.meta["seed"] == 21 and tile.meta["n_galaxies"] == truth.num_rows
    np.testing.assert_allclose(
        tile.zero_point_rate, instrument.per_band(instrument.zero_point_rate)
    )
    ids = truth["galaxy_id"].to_numpy()
    assert np.all(ids >> 32 == 5) and np.unique(ids).size == ids.size


def test_galaxy_count_follows_the_population_density(instrument):
    config = PopulationConfig()
    area = (1024 * 0.075 / 3600) ** 2
    expected = surface_density(config) * area
    counts = [
        tile_truth(TileSpec(t, 1024, 1024, 3), instrument=instrument).num_rows for t in range(4)
    ]
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / len(counts))


def test_background_noise_matches_the_instrument_model(tile_and_truth, instrument):
    """Sigma-clipped pixel scatter equals the paper's noise per pixel to a few per cent."""
    tile, _ = tile_and_truth
    for b, band in enumerate(tile.bands):
        _, median, std = sigma_clipped_stats(tile.image[b], sigma=3.0, maxiters=10)
        assert abs(median) < 0.05 * std
        assert std == pytest.approx(instrument.background_noise(band), rel=0.03)
        empty = np.median(tile.variance[b])
        assert np.sqrt(empty) == pytest.approx(instrument.background_noise(band), rel=0.01)


def test_tile_is_reproducible_and_depends_on_seed_and_id(instrument, tile_and_truth):
    tile, truth = tile_and_truth
    again, truth_again = simulate_tile(TileSpec(5, 384, 320, 21), instrument=instrument)
    np.testing.assert_array_equal(tile.image, again.image)
    assert truth.equals(truth_again)
    other, _ = simulate_tile(TileSpec(6, 384, 320, 21), instrument=instrument)
    assert not np.array_equal(tile.image, other.image)


def test_wcs_maps_truth_pixels_to_truth_sky(tile_and_truth):
    tile, truth = tile_and_truth
    ra, dec = tile.wcs.all_pix2world(truth["x"].to_numpy(), truth["y"].to_numpy(), 0)
    np.testing.assert_allclose(ra, truth["ra"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(dec, truth["dec"].to_numpy(), atol=1e-9)
    scale = tile.wcs.proj_plane_pixel_scales()
    assert scale[0].to_value("arcsec") == pytest.approx(0.075)


def test_tile_grid_tiles_do_not_overlap():
    specs = tile_grid(10, nx=1000, ny=800, seed=4, columns=4)
    assert [s.tile_id for s in specs] == list(range(10))
    dec_step = specs[4].centre_deg[1] - specs[0].centre_deg[1]
    assert dec_step == pytest.approx(800 * 0.075 / 3600)
    ra_step = (specs[1].centre_deg[0] - specs[0].centre_deg[0]) * np.cos(np.radians(2.2))
    assert ra_step == pytest.approx(1000 * 0.075 / 3600)


def test_noiseless_tile_holds_the_truth_flux(instrument):
    """No noise, galaxies well inside: the image sums to the truth fluxes."""
    tile, truth = simulate_tile(
        TileSpec(1, 256, 256, 8), instrument=instrument, effects=DetectorEffects(noise=False)
    )
    x, y = truth["x"].to_numpy(), truth["y"].to_numpy()
    inside = (x > 60) & (x < 196) & (y > 60) & (y < 196)
    assert np.all(tile.image >= -1e-6)
    i_flux = truth["flux_i"].to_numpy()
    # only galaxies well inside the tile: flux of edge galaxies is partly outside
    assert tile.image[4].sum() <= i_flux.sum() * 1.001
    assert tile.image[4].sum() >= i_flux[inside].sum()


def test_defects_are_flagged(instrument):
    effects = DetectorEffects(cosmic_rays_per_mpix=2000.0, hot_pixel_fraction=1e-3, bright_stars=2)
    tile, _ = simulate_tile(TileSpec(2, 256, 256, 9), instrument=instrument, effects=effects)
    for bit in (MaskBit.COSMIC_RAY, MaskBit.HOT_PIXEL, MaskBit.SATURATED):
        assert np.any(tile.mask & bit), bit.name
    saturated = (tile.mask[4] & MaskBit.SATURATED) > 0
    assert tile.image[4][saturated].max() == pytest.approx(tile.image[4][saturated].min())


def test_paper_setup_tile_has_no_colour_gradients(instrument):
    spec = TileSpec(3, 128, 128, 10)
    noiseless = DetectorEffects(noise=False)
    paper, _ = simulate_tile(
        spec, instrument=instrument, render=RenderSettings(paper_setup=True), effects=noiseless
    )
    normal, _ = simulate_tile(spec, instrument=instrument, effects=noiseless)
    assert not np.allclose(paper.image, normal.image)
    # the paper's setup has no PSF: its images are sharper
    assert paper.image[6].max() > normal.image[6].max()


def test_sep_recovers_bright_truth_objects(instrument):
    """Completeness > 95% at SNR > 20 and positions within 0.5 px (sep on the g+r+i+z stack)."""
    tile, truth = simulate_tile(TileSpec(7, 1024, 1024, 12), instrument=instrument)
    stack = tile.image[[2, 3, 4, 5]].sum(axis=0).astype(np.float64)
    noise = np.sqrt(tile.variance[[2, 3, 4, 5]].sum(axis=0)).astype(np.float64)
    objects = sep.extract(stack, 1.5, err=noise, minarea=5, deblend_cont=0.005)
    x, y = truth["x"].to_numpy(), truth["y"].to_numpy()
    bright = (truth["snr_i"].to_numpy() > 20) & (x > 5) & (x < 1018) & (y > 5) & (y < 1018)
    assert bright.sum() > 15
    distance = np.hypot(x[bright, None] - objects["x"][None], y[bright, None] - objects["y"][None])
    nearest = distance.min(axis=1)
    found = nearest < 3.0
    assert found.mean() > 0.95
    assert np.median(nearest[found]) < 0.2
    assert np.percentile(nearest[found], 90) < 0.5
