"""The zarr tile store: round trip, atomic writes, streaming, and every bad-input case."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import zarr

from csst_photoz.io.tile_zarr import (
    TileFormatError,
    TileZarrWriter,
    read_tile_zarr,
    tile_size_on_disk,
    write_tile_zarr,
)
from csst_photoz.tile import MaskBit, Tile

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")


def make_tile(tile_id=4, shape=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    n = len(BANDS)
    return Tile(
        tile_id=tile_id,
        bands=BANDS,
        image=rng.normal(0, 10, (n, *shape)).astype(np.float32),
        variance=np.full((n, *shape), 100.0, dtype=np.float32),
        mask=rng.integers(0, 3, (n, *shape)).astype(np.uint16),
        zero_point_rate=tuple(1e10 + np.arange(n)),
        exposure_time=(600.0, 300, 300, 300, 300, 300, 600),
        pixel_scale_arcsec=0.075,
        wcs_header={
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRVAL1": 150.1,
            "CRVAL2": 2.2,
            "CRPIX1": 25.5,
            "CRPIX2": 20.5,
            "CD1_1": -2.0833e-5,
            "CD1_2": 0.0,
            "CD2_1": 0.0,
            "CD2_2": 2.0833e-5,
        },
        meta={"seed": 3},
    )


@pytest.fixture()
def stored(tmp_path):
    tile = make_tile()
    return tile, write_tile_zarr(tile, tmp_path / "tile.zarr")


def test_round_trip_keeps_planes_and_attributes(stored):
    tile, path = stored
    back = read_tile_zarr(path, expected_bands=BANDS)
    for name in ("image", "variance", "mask"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tile, name))
        assert getattr(back, name).dtype == getattr(tile, name).dtype
    assert back.tile_id == 4 and back.bands == BANDS
    assert back.zero_point_rate == tile.zero_point_rate
    assert back.exposure_time == tile.exposure_time
    assert dict(back.wcs_header) == dict(tile.wcs_header)
    assert back.meta["seed"] == 3 and back.meta["nonfinite_pixels"] == [0] * 7
    assert tile_size_on_disk(path) > 0


def test_rewrite_replaces_the_tile_whole_and_leaves_no_temporaries(stored):
    _, path = stored
    write_tile_zarr(make_tile(seed=1), path)
    assert read_tile_zarr(path).image[0, 0, 0] == make_tile(seed=1).image[0, 0, 0]
    assert sorted(os.listdir(path.parent)) == ["tile.zarr"]


def test_streamed_writer_needs_every_band_before_commit(tmp_path):
    tile = make_tile()
    writer = TileZarrWriter(tmp_path / "t.zarr", tile.image.shape, {"tile_id": 4})
    writer.write_band(0, tile.image[0], tile.variance[0], tile.mask[0])
    with pytest.raises(ValueError, match=r"bands \[1, 2, 3, 4, 5, 6\] were never written"):
        writer.commit()
    assert os.listdir(tmp_path) == []


def test_chunks_are_one_band_of_at_most_4_mb(tmp_path):
    writer = TileZarrWriter(tmp_path / "big.zarr", (7, 2048, 2048), {"tile_id": 1})
    chunks = zarr.open_array(writer.staging / "image").chunks
    writer.abort()
    assert chunks[0] == 1 and 1e6 <= np.prod(chunks) * 4 <= 4.2e6


def test_missing_path(tmp_path):
    with pytest.raises(TileFormatError, match=r"nothere\.zarr: does not exist"):
        read_tile_zarr(tmp_path / "nothere.zarr")


def test_not_a_tile(tmp_path):
    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["format"] = "something"
    with pytest.raises(TileFormatError, match=r"other\.zarr: not a csst_photoz tile"):
        read_tile_zarr(tmp_path / "other.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(TileFormatError, match="plain"):
        read_tile_zarr(tmp_path / "plain")


def _edit_attrs(path: Path, **changes):
    meta_file = path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    for key, value in changes.items():
        if value is None:
            meta["attributes"].pop(key)
        else:
            meta["attributes"][key] = value
    meta_file.write_text(json.dumps(meta))


def test_missing_attribute(stored):
    _, path = stored
    _edit_attrs(path, exposure_time=None)
    with pytest.raises(TileFormatError, match=r"missing attribute.*exposure_time"):
        read_tile_zarr(path)


def test_bands_out_of_order_or_missing(stored):
    _, path = stored
    with pytest.raises(TileFormatError, match="same bands in another order"):
        read_tile_zarr(path, expected_bands=("u", "NUV", "g", "r", "i", "z", "y"))
    with pytest.raises(TileFormatError, match=r"missing \['w'\]"):
        read_tile_zarr(path, expected_bands=(*BANDS, "w"))


def test_missing_array(stored):
    import shutil

    _, path = stored
    shutil.rmtree(path / "variance")
    with pytest.raises(TileFormatError, match=r"tile 4 .*array 'variance' is missing"):
        read_tile_zarr(path)


def test_wrong_dtype(tmp_path):
    tile = make_tile()
    path = write_tile_zarr(tile, tmp_path / "t.zarr")
    group = zarr.open_group(path, mode="a")
    del group["mask"]
    group.create_array("mask", data=tile.mask.astype(np.int32))
    with pytest.raises(TileFormatError, match=r"'mask' has dtype int32, expected uint16"):
        read_tile_zarr(path)


def test_wrong_shape(tmp_path):
    tile = make_tile()
    path = write_tile_zarr(tile, tmp_path / "t.zarr")
    group = zarr.open_group(path, mode="a")
    del group["variance"]
    group.create_array("variance", data=tile.variance[:, :30])
    with pytest.raises(TileFormatError, match="planes differ in shape"):
        read_tile_zarr(path)
    del group["variance"]
    group.create_array("variance", data=tile.variance[:6])
    with pytest.raises(TileFormatError, match=r"'variance' has shape \(6, 40, 50\)"):
        read_tile_zarr(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_chunk_is_named(stored, damage):
    _, path = stored
    chunk = next(p for p in (path / "image").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = chunk.read_bytes()
    chunk.write_bytes(b"\x00garbage" * 10 if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(TileFormatError, match=r"tile 4 .*'image' cannot be read"):
        read_tile_zarr(path)


def test_nonfinite_pixels_are_masked_not_used(tmp_path):
    tile = make_tile()
    tile.image[2, 5, 6] = np.nan
    tile.image[3, 0, 0] = np.inf
    tile.variance[3, 1, 1] = np.nan
    back = read_tile_zarr(write_tile_zarr(tile, tmp_path / "t.zarr"))
    assert back.meta["nonfinite_pixels"] == [0, 0, 1, 2, 0, 0, 0]
    for b, y, x in ((2, 5, 6), (3, 0, 0), (3, 1, 1)):
        assert back.image[b, y, x] == 0 and np.isinf(back.variance[b, y, x])
        assert back.mask[b, y, x] & MaskBit.NONFINITE
    assert np.all(np.isfinite(back.image))


def test_missing_chunk_file_is_an_error_not_zeros(stored):
    _, path = stored
    chunk = next(p for p in (path / "mask").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()  # an all-zero mask chunk is stored too, so its loss is visible
    with pytest.raises(TileFormatError, match=r"tile 4 .*'mask' has 6 of its 7 chunks on disk"):
        read_tile_zarr(path)


def test_failed_write_leaves_no_staging_folder(tmp_path):
    tile = make_tile()
    bad = Tile(**{**tile.__dict__, "meta": {"not json": object()}})
    with pytest.raises(TypeError):
        write_tile_zarr(bad, tmp_path / "t.zarr")
    assert os.listdir(tmp_path) == []


def test_streamed_bands_store_every_chunk(tmp_path):
    tile = make_tile()
    writer = TileZarrWriter(tmp_path / "t.zarr", tile.image.shape, {"tile_id": 4})
    for b in range(len(tile.bands)):
        zeros = np.zeros(tile.shape, dtype=np.float32)
        writer.write_band(b, zeros, zeros, np.zeros(tile.shape, dtype=np.uint16))
    path = writer.commit()
    for name in ("image", "variance", "mask"):
        array = zarr.open_array(path / name)
        assert array.nchunks_initialized == array.nchunks == 7


def test_the_store_is_readable_by_others_under_the_umask(stored):
    _, path = stored
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~mask


def test_tile_written_by_v0_1_still_loads():
    import pyarrow.parquet as pq

    from csst_photoz.io.paths import tile_store_path, tile_truth_path

    folder = Path(__file__).parents[1] / "fixtures" / "v0_1" / "tiles"
    tile = read_tile_zarr(tile_store_path(folder, 0))
    assert tile.tile_id == 0 and tile.bands == ("NUV", "u", "g", "r", "i", "z", "y")
    assert tile.image.shape == tile.variance.shape == tile.mask.shape == (7, 96, 96)
    assert tile.image.dtype == np.float32 and np.isfinite(tile.image).all()
    assert pq.read_table(tile_truth_path(folder, 0)).num_rows == 6
