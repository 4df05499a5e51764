"""Per-band FITS tiles: round trips with the zarr store and the bad-input cases."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from csst_photoz.io import (
    TileFormatError,
    read_tile_fits,
    read_tile_zarr,
    tile_fits_path,
    write_tile_fits,
    write_tile_zarr,
)
from csst_photoz.tile import MaskBit

_spec = importlib.util.spec_from_file_location(
    "zarr_tests", Path(__file__).with_name("test_tile_zarr.py")
)
_zarr_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_zarr_tests)
make_tile = _zarr_tests.make_tile


def _assert_same(a, b):
    for name in ("image", "variance", "mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.tile_id == b.tile_id and a.bands == b.bands
    assert a.zero_point_rate == pytest.approx(b.zero_point_rate)
    assert a.exposure_time == pytest.approx(b.exposure_time)
    assert a.pixel_scale_arcsec == pytest.approx(b.pixel_scale_arcsec)
    ra_a, dec_a = a.wcs.all_pix2world([0, 10], [0, 20], 0)
    ra_b, dec_b = b.wcs.all_pix2world([0, 10], [0, 20], 0)
    np.testing.assert_allclose(ra_a, ra_b, atol=1e-10)
    np.testing.assert_allclose(dec_a, dec_b, atol=1e-10)


def test_fits_round_trip_in_any_file_order(tmp_path):
    tile = make_tile()
    paths = write_tile_fits(tile, tmp_path)
    assert [p.name for p in paths] == [f"tile4_{b}.fits" for b in tile.bands]
    back = read_tile_fits(list(reversed(paths)))
    _assert_same(tile, back)


def test_zarr_to_fits_to_tile_equals_the_original(tmp_path):
    tile = make_tile(tile_id=9)
    from_zarr = read_tile_zarr(write_tile_zarr(tile, tmp_path / "t.zarr"))
    _assert_same(tile, read_tile_fits(write_tile_fits(from_zarr, tmp_path / "fits")))


def test_weight_extension_stands_in_for_variance(tmp_path):
    tile = make_tile()
    paths = write_tile_fits(tile, tmp_path)
    with fits.open(paths[2], mode="update") as hdus:
        weight = 1.0 / hdus["VARIANCE"].data
        weight[0, :5] = 0.0
        del hdus["VARIANCE"]
        hdus.append(fits.ImageHDU(weight.astype(np.float32), name="WEIGHT"))
    back = read_tile_fits(paths)
    np.testing.assert_allclose(back.variance[2, 1:], tile.variance[2, 1:], rtol=1e-6)
    assert np.all(np.isinf(back.variance[2, 0, :5]))
    assert np.all(back.mask[2, 0, :5] & MaskBit.BAD)


def test_missing_and_duplicate_bands_are_named(tmp_path):
    paths = write_tile_fits(make_tile(), tmp_path)
    with pytest.raises(TileFormatError, match=r"bands \['y'\] missing"):
        read_tile_fits(paths[:-1])
    with pytest.raises(TileFormatError, match=r"band g given twice: .*tile4_g\.fits"):
        read_tile_fits([*paths, paths[2]])


def test_band_with_another_shape_or_wcs_is_named(tmp_path):
    paths = write_tile_fits(make_tile(), tmp_path)
    other = write_tile_fits(make_tile(shape=(40, 52)), tmp_path / "other")
    with pytest.raises(TileFormatError, match=r"tile4_r\.fits: shape \(40, 52\)"):
        read_tile_fits([*paths[:3], other[3], *paths[4:]])
    with fits.open(paths[5], mode="update") as hdus:
        hdus[0].header["CRVAL1"] += 1e-3
    with pytest.raises(TileFormatError, match=r"tile4_z\.fits: WCS differs from .*: CRVAL"):
        read_tile_fits(paths)


def test_truncated_or_missing_files_are_named(tmp_path):
    paths = write_tile_fits(make_tile(), tmp_path)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) // 2])
    with pytest.raises(TileFormatError, match=r"tile4_i\.fits"):
        read_tile_fits(paths)
    paths = write_tile_fits(make_tile(), tmp_path)
    with pytest.raises(TileFormatError, match=r"nothere\.fits: file not found"):
        read_tile_fits([*paths, tmp_path / "nothere.fits"])


def test_file_without_variance_or_keywords_is_named(tmp_path):
    path = tile_fits_path(tmp_path, 1, "g")
    fits.PrimaryHDU(np.zeros((4, 4), dtype=np.float32)).writeto(path)
    with pytest.raises(TileFormatError, match=r"tile1_g\.fits: no VARIANCE or WEIGHT"):
        read_tile_fits([path], bands=("g",))
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(np.zeros((4, 4), np.float32)),
            fits.ImageHDU(np.ones((4, 4)), name="VARIANCE"),
        ]
    )
    hdus.writeto(path, overwrite=True)
    with pytest.raises(TileFormatError, match=r"tile1_g\.fits: header keyword BAND"):
        read_tile_fits([path], bands=("g",))


def test_nonfinite_pixels_are_masked(tmp_path):
    tile = make_tile()
    tile.image[6, 3, 3] = np.nan
    back = read_tile_fits(write_tile_fits(tile, tmp_path))
    assert back.image[6, 3, 3] == 0 and np.isinf(back.variance[6, 3, 3])
    assert back.mask[6, 3, 3] & MaskBit.NONFINITE
    assert back.meta["nonfinite_pixels"] == [0, 0, 0, 0, 0, 0, 1]


def test_band_with_another_pixel_matrix_is_named(tmp_path):
    paths = write_tile_fits(make_tile(), tmp_path)  # the writer stores the WCS as PC + CDELT
    with fits.open(paths[1], mode="update") as hdus:
        hdus[0].header["CDELT1"] = 1.001
    with pytest.raises(TileFormatError, match=r"tile4_u\.fits: WCS differs .*CD"):
        read_tile_fits(paths)


def test_files_of_another_tile_or_unit_are_named(tmp_path):
    paths = write_tile_fits(make_tile(), tmp_path)
    other = write_tile_fits(make_tile(tile_id=5), tmp_path / "other")
    with pytest.raises(TileFormatError, match=r"tile5_r\.fits: TILEID=5 differs"):
        read_tile_fits([*paths[:3], other[3], *paths[4:]])
    with pytest.raises(TileFormatError, match=r"tile4_NUV\.fits: TILEID=4, but tile_id=9"):
        read_tile_fits(paths, tile_id=9)
    with fits.open(paths[2], mode="update") as hdus:
        hdus[0].header["BUNIT"] = "ADU"
    with pytest.raises(TileFormatError, match=r"tile4_g\.fits: BUNIT is 'ADU'"):
        read_tile_fits(paths)


def test_mapping_band_must_match_the_band_keyword(tmp_path):
    tile = make_tile()
    paths = dict(zip(tile.bands, write_tile_fits(tile, tmp_path), strict=True))
    paths["u"], paths["g"] = paths["g"], paths["u"]
    with pytest.raises(TileFormatError, match=r"tile4_g\.fits: given as band 'u' but its BAND"):
        read_tile_fits(paths)
