"""Training stamps: flux, noise, neighbours, batch independence, and the measured photometry."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zarr

from csst_photoz.photometry import SourceFlag
from csst_photoz.sim import simulate_catalog
from csst_photoz.sim.population import PopulationConfig, surface_density
from csst_photoz.sim.stamps import (
    NEIGHBOUR_MARGIN_PIX,
    StampSettings,
    draw_neighbours,
    mean_neighbour_count,
    measure_stamps,
    neighbour_pool,
    render_stamps,
    stamp_offset,
)

SEED = 4
N_STAMPS = 16


@pytest.fixture(scope="module")
def catalog(instrument):
    return simulate_catalog(2000, seed=SEED, instrument=instrument)


@pytest.fixture(scope="module")
def truth(catalog):
    return catalog.filter(catalog["selected"]).slice(0, N_STAMPS)


@pytest.fixture(scope="module")
def pool(instrument):
    return neighbour_pool(SEED, instrument=instrument, size=2000)


@pytest.fixture(scope="module")
def stamps(truth, instrument, pool):
    return render_stamps(truth, instrument=instrument, seed=SEED, pool=pool)


def scaled(table, factor):
    """The table with every flux column multiplied by ``factor`` (0: a blank galaxy)."""
    for k, name in enumerate(table.column_names):
        if name.startswith("flux_"):
            table = table.set_column(k, table.schema.field(name), pc.multiply(table[name], factor))
    return table


def test_shape_dtype_and_row_alignment(stamps, truth, instrument):
    images, table = stamps
    assert images.shape == (N_STAMPS, 7, 64, 64) and images.dtype == np.float32
    assert table.num_rows == N_STAMPS
    np.testing.assert_array_equal(table["galaxy_id"], truth["galaxy_id"])
    np.testing.assert_array_equal(table["stamp_index"], np.arange(N_STAMPS))
    assert table.column_names[: truth.num_columns] == truth.column_names
    expected = ["n_neighbours", "offset_x", "offset_y", "kron_radius", "kron_flags", "detected"]
    expected += [f"kron_flux_{b}" for b in instrument.band_names]
    expected += [f"kron_flux_err_{b}" for b in instrument.band_names]
    assert set(expected) <= set(table.column_names)
    offsets = np.column_stack([table["offset_x"], table["offset_y"]])
    assert np.all((offsets >= -0.5) & (offsets < 0.5))
    assert table.schema.metadata[b"csst_photoz.kind"] == b"training_stamps"


def test_noiseless_isolated_stamp_holds_the_galaxy_flux(catalog, instrument):
    hlr = np.maximum(catalog["disk_hlr"].to_numpy(), catalog["bulge_hlr"].to_numpy())
    small = catalog.filter(pa.array(hlr < 0.4)).slice(0, 6)
    images, table = render_stamps(
        small, instrument=instrument, seed=SEED, neighbours=False, noise=False, measure=False
    )
    for b, band in enumerate(instrument.band_names):
        np.testing.assert_allclose(
            images[:, b].sum(axis=(1, 2)), table[f"flux_{band}"].to_numpy(), rtol=0.01
        )
    # the galaxy sits at the stamp centre plus its offset: check the light-weighted centroid
    _, xs = np.indices(images.shape[2:])
    light = images[:, 4]
    centroid_x = (light * xs).sum(axis=(1, 2)) / light.sum(axis=(1, 2))
    np.testing.assert_allclose(centroid_x, 31.5 + table["offset_x"].to_numpy(), atol=0.02)


def test_blank_stamps_have_the_instruments_background_noise(truth, instrument):
    blank = scaled(truth.slice(0, 6), 0.0)
    images, _ = render_stamps(
        blank, instrument=instrument, seed=SEED, size=96, neighbours=False, measure=False
    )
    for b, band in enumerate(instrument.band_names):
        pixels = images[:, b]
        noise = instrument.background_noise(band)
        assert pixels.std() == pytest.approx(noise, rel=0.03)
        assert abs(pixels.mean()) < 0.02 * noise


def test_a_stamp_does_not_depend_on_its_batch(stamps, truth, instrument, pool):
    images, table = stamps
    part_images, part = render_stamps(
        truth.slice(3, 3), instrument=instrument, seed=SEED, pool=pool, index_offset=3
    )
    np.testing.assert_array_equal(part_images, images[3:6])
    assert part.equals(table.slice(3, 3))
    other_seed, _ = render_stamps(
        truth.slice(3, 1), instrument=instrument, seed=SEED + 1, pool=pool, measure=False
    )
    assert not np.array_equal(other_seed[0], images[3])


def test_per_galaxy_neighbours_do_not_depend_on_the_batch(truth, instrument):
    rows = truth.slice(0, 3)
    kwargs = {"instrument": instrument, "seed": SEED, "neighbour_source": "per_galaxy"}
    images, table = render_stamps(rows, measure=False, **kwargs)
    alone, alone_table = render_stamps(rows.slice(2, 1), measure=False, **kwargs)
    np.testing.assert_array_equal(alone[0], images[2])
    assert alone_table["n_neighbours"][0] == table["n_neighbours"][2]


def test_neighbour_counts_follow_the_surface_density(stamps, instrument):
    mean = mean_neighbour_count(instrument=instrument, size=64)
    side_deg = (64 + 2 * NEIGHBOUR_MARGIN_PIX) * instrument.config.pixel_scale_arcsec / 3600
    assert mean == pytest.approx(surface_density(PopulationConfig()) * side_deg**2)
    counts = np.array(
        [
            draw_neighbours(i, seed=SEED, size=64, mean_count=mean, pool_size=2000).count
            for i in range(2000)
        ]
    )
    assert abs(counts.mean() - mean) < 4 * np.sqrt(mean / counts.size)
    assert counts.var() == pytest.approx(mean, rel=0.15)
    # the rendered stamps used exactly these draws
    _, table = stamps
    for galaxy_id, n in zip(table["galaxy_id"].to_numpy(), table["n_neighbours"], strict=True):
        draw = draw_neighbours(galaxy_id, seed=SEED, size=64, mean_count=mean, pool_size=2000)
        assert draw.count == n.as_py()
        assert np.all((draw.x >= -16.5) & (draw.x < 79.5) & (draw.y >= -16.5) & (draw.y < 79.5))


def test_neighbours_appear_in_the_stamps(truth, instrument, pool):
    kwargs = {"instrument": instrument, "seed": SEED, "noise": False, "measure": False}
    rows = truth.slice(0, 8)
    isolated, _ = render_stamps(rows, neighbours=False, **kwargs)
    crowded, table = render_stamps(rows, pool=pool, **kwargs)
    extra = (crowded - isolated).sum(axis=(1, 2, 3))
    mean = mean_neighbour_count(instrument=instrument, size=64)
    for k, galaxy_id in enumerate(table["galaxy_id"].to_numpy()):
        draw = draw_neighbours(galaxy_id, seed=SEED, size=64, mean_count=mean, pool_size=2000)
        inside = (draw.x > 0) & (draw.x < 63) & (draw.y > 0) & (draw.y < 63)
        if draw.count == 0:
            assert extra[k] == 0.0
        if inside.any():
            assert extra[k] > 0.0
    assert np.all(extra >= -1e-3 * np.abs(isolated).sum(axis=(1, 2, 3)))


def test_undetected_galaxies_keep_their_rows_with_nan_fluxes(truth, instrument):
    rows = pa.concat_tables([truth.slice(0, 1), scaled(truth.slice(1, 1), 0.0)])
    images, table = render_stamps(
        rows, instrument=instrument, seed=SEED, neighbours=False, noise=False
    )
    assert images.shape[0] == table.num_rows == 2
    assert table["detected"].to_pylist() == [True, False]
    for band in instrument.band_names:
        assert np.isfinite(table[f"kron_flux_{band}"][0].as_py())
        assert np.isnan(table[f"kron_flux_{band}"][1].as_py())
        assert np.isnan(table[f"kron_flux_err_{band}"][1].as_py())
    assert np.isnan(table["kron_radius"][1].as_py()) and table["kron_flags"][1].as_py() == 0


def test_measured_kron_fluxes_track_the_true_fluxes(stamps):
    _, table = stamps
    bright = table.filter(pc.less(table["mag_i"], 24.0))
    assert bright.num_rows >= 8
    detected = bright["detected"].to_numpy()
    assert detected.mean() > 0.8
    measured = bright["kron_flux_i"].to_numpy()[detected]
    true = bright["flux_i"].to_numpy()[detected]
    assert 0.5 < np.median(measured / true) < 0.8
    assert np.corrcoef(np.log(np.clip(measured, 1.0, None)), np.log(true))[0, 1] > 0.9


def test_measure_stamps_reproduces_the_table_and_accepts_a_per_band_variance(
    stamps, truth, instrument, pool
):
    images, table = stamps
    bands = instrument.band_names
    centres = 31.5 + np.column_stack([table["offset_x"], table["offset_y"]])
    background = np.array([instrument.background_noise(b) ** 2 for b in bands])
    # the noise model's variance plane (noiseless signal + background) gives the table back
    signal, _ = render_stamps(
        truth.slice(0, 4), instrument=instrument, seed=SEED, pool=pool, noise=False, measure=False
    )
    variance = np.clip(signal, 0.0, None) + background.astype(np.float32)[:, None, None]
    measured = measure_stamps(images[:4], variance, bands=bands, centres=centres[:4])
    assert measured.column_names == table.column_names[-measured.num_columns :]
    assert measured.equals(table.select(measured.column_names).slice(0, 4))
    # background + max(stamp, 0) is close to, not exactly, the model's variance plane: the
    # isophotes (hence a, b and the Kron radius) move a little
    approximate = measure_stamps(images, background, bands=bands, centres=centres)
    np.testing.assert_array_equal(approximate["detected"], table["detected"])
    ok = approximate["detected"].to_numpy()
    ratio = approximate["kron_flux_i"].to_numpy()[ok] / table["kron_flux_i"].to_numpy()[ok]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)


def test_bad_arguments_are_clear_errors(truth, instrument):
    with pytest.raises(ValueError, match="neighbour_source"):
        render_stamps(truth, instrument=instrument, seed=0, neighbour_source="tile")
    with pytest.raises(ValueError, match="disk_hlr"):
        render_stamps(truth.drop(["disk_hlr"]), instrument=instrument, seed=0)
    with pytest.raises(ValueError, match="size"):
        render_stamps(truth, instrument=instrument, seed=0, size=4)
    with pytest.raises(ValueError, match="size"):
        StampSettings(size=4)
    with pytest.raises(TypeError, match=r"\['sise'\]"):
        render_stamps(truth, instrument=instrument, seed=0, sise=32)
    images = np.zeros((2, 7, 16, 16), np.float32)
    with pytest.raises(ValueError, match="variances"):
        measure_stamps(images, np.ones(6), bands=instrument.band_names)
    with pytest.raises(ValueError, match="stamps"):
        measure_stamps(images[:, :6], np.ones(7), bands=instrument.band_names)


def test_offsets_are_seeded_per_galaxy():
    np.testing.assert_array_equal(stamp_offset(7, seed=1), stamp_offset(7, seed=1))
    assert not np.array_equal(stamp_offset(7, seed=1), stamp_offset(8, seed=1))


def test_settings_and_keyword_options_are_the_same_stamps(truth, instrument, pool):
    rows = truth.slice(0, 2)
    settings = StampSettings(size=24, noise=False, max_match_distance=2.0)
    by_settings = render_stamps(
        rows, instrument=instrument, seed=SEED, pool=pool, settings=settings
    )
    by_keywords = render_stamps(
        rows, instrument=instrument, seed=SEED, pool=pool, size=24, noise=False,
        max_match_distance=2.0,
    )  # fmt: skip
    np.testing.assert_array_equal(by_settings[0], by_keywords[0])
    assert by_settings[1].schema.equals(by_keywords[1].schema, check_metadata=True)
    # a keyword replaces the field of the settings object
    wider, _ = render_stamps(
        rows, instrument=instrument, seed=SEED, pool=pool, settings=settings, size=32,
        measure=False,
    )  # fmt: skip
    assert wider.shape[-1] == 32


def test_the_v0_1_training_set_is_rendered_again_exactly(instrument):
    """Stamps and table of the frozen v0.1 training set (24 stamps, 16 px, seed 5)."""
    from csst_photoz.pipeline.training_stamps import draw_training_truth

    fixture = Path(__file__).parents[1] / "fixtures" / "v0_1" / "training_set"
    written = pq.read_table(fixture / "stamps.parquet")
    truth = draw_training_truth(24, seed=5, instrument=instrument)
    images, table = render_stamps(truth, instrument=instrument, seed=5, size=16)
    np.testing.assert_array_equal(images, zarr.open_array(fixture / "stamps.zarr" / "stamps")[:])
    assert table.schema.equals(written.schema, check_metadata=False)
    for name in written.column_names:
        now = table[name].to_numpy(zero_copy_only=False)
        then = written[name].to_numpy(zero_copy_only=False)
        if name == "kron_flags":  # issue 18: NEIGHBOURS = another kept source in the aperture
            neighbours = int(SourceFlag.NEIGHBOURS)
            assert not np.any(now & ~then & neighbours)  # only ever cleared
            now, then = now & ~neighbours, then & ~neighbours
        np.testing.assert_array_equal(now, then, err_msg=name)
