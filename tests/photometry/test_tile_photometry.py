"""The measurement chain on small tiles: sep reference, catalogue contract, bad input."""

import json

import numpy as np
import pytest

from csst_photoz.photometry import measure_kron_photometry
from csst_photoz.photometry.catalog import OBJECTS_PER_TILE, aperture_column, photometry_schema
from csst_photoz.photometry.flags import SourceFlag
from csst_photoz.photometry.measure import PhotometryConfig, measure_sources
from csst_photoz.photometry.tile_photometry import measure_tile
from csst_photoz.tile import MaskBit

from .scenes import BAND_SCALE, BANDS, SOURCES, replace, scene_tile

#: the scenes' sources are bright: a high S/N cut keeps rare noise peaks out of the counts
BRIGHT = PhotometryConfig(min_detection_snr=20.0)
#: the sep reference uses no background subtraction; our scenes have none either
PLAIN = BRIGHT.model_copy(update={"subtract_background": False})


def nearest(table, x, y, max_distance=1.0):
    distance = np.hypot(np.asarray(table["x"]) - x, np.asarray(table["y"]) - y)
    row = int(np.argmin(distance))
    assert distance[row] < max_distance, f"no source near ({x}, {y})"
    return row


def test_isolated_sources_match_the_sep_reference():
    tile = scene_tile(seed=3)
    table = measure_tile(tile, config=PLAIN).table
    # subpix=0: sep's exact overlap (its default 5x5 sampling is off by ~0.6% here)
    reference = measure_kron_photometry(tile.image, tile.variance, bands=tile.bands, subpix=0)
    assert table.num_rows == len(SOURCES)
    for x, y, *_ in SOURCES:
        ours, theirs = nearest(table, x, y), nearest(reference, x, y)
        for name in ("x", "y", "a", "b", "kron_radius"):
            got, expected = table[name][ours].as_py(), reference[name][theirs]
            assert got == pytest.approx(expected, rel=0.02, abs=0.02), name
        for band in BANDS:
            got = table[f"counts_{band}"][ours].as_py()
            error = table[f"counts_err_{band}"][ours].as_py()
            expected = reference[f"flux_{band}"][theirs]
            assert got == pytest.approx(expected, abs=0.01 * error), band
            assert error == pytest.approx(reference[f"flux_err_{band}"][theirs], rel=1e-3)


def test_catalogue_contract():
    tile = scene_tile(seed=4)
    config = PhotometryConfig(circular_radii_arcsec=(0.3, 1.0))
    table = measure_tile(tile, config=config).table
    assert table.schema.equals(photometry_schema(BANDS, (0.3, 1.0)))
    ids = table["object_id"].to_numpy()
    np.testing.assert_array_equal(ids, tile.tile_id * OBJECTS_PER_TILE + np.arange(len(ids)))
    meta = table.schema.metadata
    assert json.loads(meta[b"csst_photoz.photometry"])["circular_radii_arcsec"] == [0.3, 1.0]
    assert table.schema.field("flux_g").metadata[b"unit"] == b"nJy"
    per_njy = tile.electrons_per_njy()
    for k, band in enumerate(BANDS):
        counts = table[f"counts_{band}"].to_numpy()
        flux = table[f"flux_{band}"].to_numpy()
        np.testing.assert_allclose(flux, counts / per_njy[k])
        mag = table[f"mag_{band}"].to_numpy()
        np.testing.assert_allclose(mag, -2.5 * np.log10(flux / 3631e9))
        err = table[f"mag_err_{band}"].to_numpy()
        np.testing.assert_allclose(err, 2.5 / np.log(10) * table[f"flux_err_{band}"] / flux)
    row = nearest(table, *SOURCES[2][:2])
    wide = table[aperture_column(1.0, "r")][row].as_py()
    narrow = table[aperture_column(0.3, "r")][row].as_py()
    assert 0 < narrow < wide
    ra, dec = tile.wcs.pixel_to_world_values(table["x"][row].as_py(), table["y"][row].as_py())
    assert table["ra"][row].as_py() == pytest.approx(float(ra))
    assert table["dec"][row].as_py() == pytest.approx(float(dec))


def test_two_runs_give_identical_tables():
    tile = scene_tile(seed=5)
    assert measure_tile(tile).table.equals(measure_tile(tile).table)


def test_stage_timer_sees_every_stage_in_order_and_changes_nothing():
    from contextlib import contextmanager

    from csst_photoz.photometry.measure import MEASURE_STAGES

    seen = []

    @contextmanager
    def stage(name):
        seen.append(("enter", name))
        yield
        seen.append(("exit", name))

    tile = scene_tile(seed=5)
    timed = measure_tile(tile, stage=stage)
    names = ["to_device", *MEASURE_STAGES, "catalogue"]
    assert seen == [(event, name) for name in names for event in ("enter", "exit")]
    assert timed.table.equals(measure_tile(tile).table)


def test_an_empty_tile_gives_an_empty_table_with_the_full_schema():
    tile = scene_tile(seed=6, sources=())
    result = measure_tile(tile)
    assert result.table.num_rows == 0
    assert result.table.schema.equals(
        photometry_schema(BANDS, PhotometryConfig().circular_radii_arcsec)
    )
    stamps, flags = result.stamps()
    assert stamps.shape == (0, len(BANDS), 64, 64) and flags.shape == (0,)


@pytest.mark.parametrize("with_bad_pixels", [False, True])
def test_in_place_measurement_equals_the_copying_one(with_bad_pixels):
    tile = scene_tile(seed=8)
    if with_bad_pixels:
        image, variance = tile.image.copy(), tile.variance.copy()
        image[2, 10:14, 20:30] = np.nan
        variance[4, 40:44, 5:9] = np.inf
        tile = replace(tile, image=image, variance=variance)
    pristine = (tile.image.copy(), tile.variance.copy())
    copying = measure_tile(tile)
    np.testing.assert_array_equal(tile.image, pristine[0])  # the caller's stacks untouched
    np.testing.assert_array_equal(tile.variance, pristine[1])
    in_place = measure_tile(tile, overwrite_input=True)
    assert in_place.table.equals(copying.table)
    np.testing.assert_array_equal(in_place.stamps()[0], copying.stamps()[0])
    # the stacks now hold the background-subtracted images, unusable pixels zeroed
    np.testing.assert_array_equal(tile.image, copying.measurements.images)
    assert not np.array_equal(tile.image, pristine[0], equal_nan=True)
    # read-only stacks (memory-mapped FITS, say) are copied, not written
    frozen = [pristine[0].copy(), pristine[1].copy()]
    for stack in frozen:
        stack.flags.writeable = False
    frozen_tile = replace(tile, image=frozen[0], variance=frozen[1])
    read_only = measure_tile(frozen_tile, overwrite_input=True)
    assert read_only.table.equals(copying.table)
    np.testing.assert_array_equal(frozen[0], pristine[0])


def test_negative_fluxes_are_kept():
    tile = scene_tile(seed=7)
    image = tile.image.copy()
    image[0] = -np.abs(image[0]) - 50.0  # NUV entirely negative
    table = measure_tile(replace(tile, image=image), config=PLAIN).table
    assert table.num_rows == len(SOURCES)
    assert (table["counts_NUV"].to_numpy() < 0).all()
    assert np.isnan(table["mag_NUV"].to_numpy()).all()


def test_nan_and_inf_pixels_are_masked_and_flagged():
    tile = scene_tile(seed=8)
    x, y = SOURCES[1][:2]
    image = tile.image.copy()
    image[4, int(y), int(x) + 1] = np.nan
    image[5, int(y) + 1, int(x)] = np.inf
    table = measure_tile(replace(tile, image=image), config=PLAIN).table
    row = nearest(table, x, y)
    assert table["flags"][row].as_py() & SourceFlag.MASKED
    assert np.isfinite(table["counts_i"][row].as_py())
    clean = measure_tile(tile, config=PLAIN).table
    others = [nearest(table, *source[:2]) for source in (SOURCES[0], SOURCES[3])]
    for other in others:
        assert not table["flags"][other].as_py() & SourceFlag.MASKED
        assert table["counts_i"][other].as_py() == pytest.approx(clean["counts_i"][other].as_py())


def test_an_all_masked_band_gives_nan_fluxes_and_band_missing():
    tile = scene_tile(seed=9)
    mask = tile.mask.copy()
    mask[0] = MaskBit.NO_DATA
    table = measure_tile(replace(tile, mask=mask), config=BRIGHT).table
    assert table.num_rows == len(SOURCES)
    assert np.isnan(table["flux_NUV"].to_numpy()).all()
    assert np.isfinite(table["flux_u"].to_numpy()).all()
    assert all(flag & SourceFlag.BAND_MISSING for flag in table["flags"].to_pylist())


def test_saturated_pixels_are_flagged_not_dropped():
    tile = scene_tile(seed=10)
    x, y = SOURCES[2][:2]
    mask = tile.mask.copy()
    mask[3, round(y), round(x)] = MaskBit.SATURATED
    table = measure_tile(replace(tile, mask=mask), config=PLAIN).table
    clean = measure_tile(tile, config=PLAIN).table
    row = nearest(table, x, y)
    assert table["flags"][row].as_py() & SourceFlag.SATURATED
    assert table["counts_r"][row].as_py() == clean["counts_r"][nearest(clean, x, y)].as_py()


def test_a_source_in_the_corner():
    corner = ((1.0, 1.5, 3e4, 2.0, 2.0, 0.0), *SOURCES[1:])
    tile = scene_tile(seed=11, sources=corner)
    result = measure_tile(tile, config=PLAIN)
    row = nearest(result.table, 1.0, 1.5, max_distance=1.5)
    flags = result.table["flags"][row].as_py()
    assert flags & SourceFlag.EDGE
    assert np.isfinite(result.table["counts_r"][row].as_py())
    _, stamp_flags = result.stamps([row])
    assert stamp_flags[0] & SourceFlag.STAMP_PADDED


def test_a_tile_smaller_than_a_stamp():
    source = ((12.2, 10.4, 2e4, 1.8, 1.5, 0.3),)
    tile = scene_tile(seed=12, shape=(24, 30), sources=source)
    result = measure_tile(tile, config=PLAIN)
    assert result.table.num_rows == 1
    stamps, flags = result.stamps()
    assert stamps.shape == (1, len(BANDS), 64, 64) and np.isfinite(stamps).all()
    assert flags[0] & SourceFlag.STAMP_PADDED


def test_kron_factor_scales_the_aperture():
    tile = scene_tile(seed=13)
    small = measure_tile(tile, config=PLAIN).table
    large = measure_tile(tile, config=PLAIN.model_copy(update={"kron_factor": 2.5})).table
    row = nearest(small, *SOURCES[2][:2])
    ratio = large["aperture_a"][row].as_py() / small["aperture_a"][row].as_py()
    assert ratio == pytest.approx(2.5)
    # a Gaussian: 1 - exp(-pi/4) = 54% of the flux in 1 x Kron, 99.3% in 2.5 x
    total = SOURCES[2][2] * BAND_SCALE[3]
    assert small["counts_r"][row].as_py() / total == pytest.approx(0.544, abs=0.02)
    assert large["counts_r"][row].as_py() / total == pytest.approx(0.993, abs=0.02)


def test_neighbour_pixels_are_flagged_and_optionally_masked():
    pair = ((60.0, 60.0, 5e4, 3.0, 3.0, 0.0), (68.0, 60.0, 5e4, 3.0, 3.0, 0.0))
    tile = scene_tile(seed=14, sources=pair)
    config = PLAIN.model_copy(update={"kron_factor": 2.5})
    plain = measure_tile(tile, config=config).table
    masked = measure_tile(tile, config=config.model_copy(update={"mask_neighbours": True})).table
    assert plain.num_rows == 2
    assert all(flag & SourceFlag.NEIGHBOURS for flag in plain["flags"].to_pylist())
    assert all(flag & SourceFlag.BLENDED for flag in plain["flags"].to_pylist())
    assert (masked["counts_r"].to_numpy() < plain["counts_r"].to_numpy()).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bands": ("NUV", "u", "g", "r", "i", "Z", "y")}, "detection band"),
    ],
)
def test_bad_tiles_raise_errors_naming_the_tile(change, message):
    tile = replace(scene_tile(seed=15), **change)
    with pytest.raises(ValueError, match=f"tile 7: .*{message}"):
        measure_tile(tile)


def test_bad_arrays_raise_errors():
    tile = scene_tile(seed=16)
    with pytest.raises(ValueError, match="one shape"):
        measure_sources(tile.image, tile.variance[:, :-1], bands=BANDS, pixel_scale_arcsec=0.07)
    with pytest.raises(ValueError, match="band names"):
        measure_sources(tile.image, tile.variance, bands=BANDS[:-1], pixel_scale_arcsec=0.07)
    with pytest.raises(ValueError, match="pixel_scale"):
        measure_sources(tile.image, tile.variance, bands=BANDS, pixel_scale_arcsec=0.0)
    with pytest.raises(ValueError):
        PhotometryConfig(unknown_key=1)
    with pytest.raises(ValueError):
        PhotometryConfig(circular_radii_arcsec=(0.5, -1.0))


@pytest.mark.gpu
def test_cupy_gives_the_numpy_catalogue():
    cupy = pytest.importorskip("cupy")
    tile = scene_tile(seed=17)
    expected = measure_tile(tile)
    got = measure_tile(tile, xp=cupy)
    assert got.table.num_rows == expected.table.num_rows
    for name in expected.table.column_names:
        np.testing.assert_allclose(
            got.table[name].to_numpy(),
            expected.table[name].to_numpy(),
            rtol=2e-5,
            atol=1e-6,
            err_msg=name,
        )
    stamps, _ = got.stamps()
    np.testing.assert_allclose(stamps.get(), expected.stamps()[0], rtol=1e-5, atol=1e-4)


def test_measure_tile_leaves_the_callers_tile_unchanged():
    """A stack read from zarr has dtype '<f4': asarray(..., float32) of it is a new view of the
    same memory, not a copy, and must not be written (unless overwrite_input)."""
    tile = scene_tile(seed=4)
    little_endian = np.dtype(np.float32).newbyteorder("<")
    tile = replace(tile, image=tile.image.view(little_endian),
                   variance=tile.variance.view(little_endian))  # fmt: skip
    image, variance = tile.image.copy(), tile.variance.copy()
    first = measure_tile(tile).table
    np.testing.assert_array_equal(tile.image, image)
    np.testing.assert_array_equal(tile.variance, variance)
    assert measure_tile(tile).table.equals(first)
