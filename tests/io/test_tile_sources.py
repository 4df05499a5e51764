"""Tile sources: paths, folders, globs, manifests and FITS band sets, resolved lazily."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csst_photoz.io import TileFormatError, write_tile_fits, write_tile_zarr
from csst_photoz.io.tile_sources import TileSource, iter_tile_sources
from csst_photoz.sim.tiles import TileSpec, tile_wcs_header
from csst_photoz.tile import Tile

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
SHAPE = (16, 16)
SCALE = 0.075


def make_tile(tile_id: int, seed: int = 0) -> Tile:
    rng = np.random.default_rng(seed + 1000 * tile_id)
    n = len(BANDS)
    spec = TileSpec(tile_id, nx=SHAPE[1], ny=SHAPE[0], centre_deg=(150.0 + tile_id * 0.01, 2.0))
    return Tile(
        tile_id=tile_id,
        bands=BANDS,
        image=rng.normal(0.0, 5.0, (n, *SHAPE)).astype(np.float32),
        variance=rng.uniform(20.0, 30.0, (n, *SHAPE)).astype(np.float32),
        mask=rng.integers(0, 4, (n, *SHAPE)).astype(np.uint16),
        zero_point_rate=tuple(1.0e10 + 1.0e8 * np.arange(n)),
        exposure_time=(600.0, 300.0, 300.0, 300.0, 300.0, 300.0, 600.0),
        pixel_scale_arcsec=SCALE,
        wcs_header=tile_wcs_header(spec, SCALE),
    )


@pytest.fixture(scope="module")
def zarr_dir(tmp_path_factory) -> Path:
    """A folder of three zarr tile stores (ids 3, 1, 2), written out of name order."""
    root = tmp_path_factory.mktemp("zarr_tiles")
    for tile_id in (3, 1, 2):
        write_tile_zarr(make_tile(tile_id), root / f"tile_{tile_id}.zarr")
    return root


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory) -> Path:
    """A folder holding the 7 band files of tiles 5 and 12."""
    root = tmp_path_factory.mktemp("fits_tiles")
    for tile_id in (12, 5):
        write_tile_fits(make_tile(tile_id), root)
    return root


def _zarr_paths(sources):
    assert all(s.kind == "zarr" for s in sources)
    return [Path(s.path).name for s in sources]


# -- single paths, folders and globs ---------------------------------------------------------


def test_single_zarr_path_gives_one_absolute_source(zarr_dir, monkeypatch):
    monkeypatch.chdir(zarr_dir)
    sources = list(iter_tile_sources("tile_1.zarr"))
    assert sources == [TileSource("zarr", str(zarr_dir.resolve() / "tile_1.zarr"))]
    assert Path(sources[0].path).is_absolute()
    assert sources[0].tile_id is None
    assert sources[0].key == sources[0].path
    assert len(sources[0].digest) == 16
    # the record is what Dask tasks carry: picklable and equal after the round trip
    assert pickle.loads(pickle.dumps(sources[0])) == sources[0]


def test_read_round_trips_the_zarr_tile(zarr_dir):
    (source,) = iter_tile_sources(zarr_dir / "tile_2.zarr")
    tile = source.read()
    original = make_tile(2)
    assert tile.tile_id == 2 and tile.bands == BANDS
    np.testing.assert_array_equal(tile.image, original.image)
    np.testing.assert_array_equal(tile.variance, original.variance)
    np.testing.assert_array_equal(tile.mask, original.mask)


def test_folder_of_stores_is_listed_in_sorted_order(zarr_dir):
    sources = list(iter_tile_sources(zarr_dir))
    assert _zarr_paths(sources) == ["tile_1.zarr", "tile_2.zarr", "tile_3.zarr"]


def test_glob_is_expanded_in_sorted_order(zarr_dir):
    sources = list(iter_tile_sources(str(zarr_dir / "tile_[23].zarr")))
    assert _zarr_paths(sources) == ["tile_2.zarr", "tile_3.zarr"]
    sources = list(iter_tile_sources(str(zarr_dir / "*.zarr")))
    assert _zarr_paths(sources) == ["tile_1.zarr", "tile_2.zarr", "tile_3.zarr"]


def test_glob_matching_nothing_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing_*.zarr")
    with pytest.raises(FileNotFoundError, match="nothing_"):
        list(iter_tile_sources(pattern))
    with pytest.raises(FileNotFoundError) as info:
        list(iter_tile_sources(pattern))
    assert pattern in str(info.value)


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "absent.zarr"
    with pytest.raises(FileNotFoundError) as info:
        list(iter_tile_sources(missing))
    assert "absent.zarr" in str(info.value)


def test_folder_without_tiles_and_unknown_file_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no tiles"):
        list(iter_tile_sources(tmp_path / "empty"))
    other = tmp_path / "notes.csv"
    other.write_text("x\n")
    with pytest.raises(ValueError, match="not a tile"):
        list(iter_tile_sources(other))


def test_fits_file_with_a_bad_name_is_refused(tmp_path):
    bad = tmp_path / "image_r.fits"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match=r"tile<id>_<band>\.fits"):
        list(iter_tile_sources(bad))


# -- duplicates and pass-through -------------------------------------------------------------


def test_a_tile_named_twice_is_yielded_once(zarr_dir, monkeypatch):
    monkeypatch.chdir(zarr_dir)
    items = [
        zarr_dir / "tile_3.zarr",
        "tile_3.zarr",  # relative spelling of the same store
        str(zarr_dir / "*.zarr"),  # the glob names tile_3 again
        zarr_dir / "tile_1.zarr",
    ]
    sources = list(iter_tile_sources(items))
    assert _zarr_paths(sources) == ["tile_3.zarr", "tile_1.zarr", "tile_2.zarr"]
    assert len({s.key for s in sources}) == 3


def test_tile_sources_pass_through_and_deduplicate(zarr_dir):
    given = TileSource("zarr", str(zarr_dir.resolve() / "tile_2.zarr"))
    invented = TileSource("fits", "/nowhere", 77)  # passed through without checks
    sources = list(iter_tile_sources([given, invented, zarr_dir / "tile_2.zarr", given]))
    assert sources == [given, invented]
    assert sources[0] is given
    assert list(iter_tile_sources(given)) == [given]


# -- text and Parquet manifests --------------------------------------------------------------


def test_text_manifest_with_comments_blank_lines_and_relative_paths(zarr_dir, tmp_path):
    tiles = tmp_path / "sub" / "tiles"
    tiles.mkdir(parents=True)
    for name in ("tile_2.zarr", "tile_3.zarr"):
        shutil.copytree(zarr_dir / name, tiles / name)
    manifest = tmp_path / "sub" / "run.txt"
    manifest.write_text(
        "# tiles of the run\n"
        "\n"
        "tiles/tile_3.zarr   # relative to the manifest's folder\n"
        "   \n"
        f"{zarr_dir / 'tile_1.zarr'}\n"  # absolute
        "tiles/tile_2.zarr\n"
        "tiles/tile_3.zarr\n"  # duplicate
    )
    sources = list(iter_tile_sources(manifest))
    assert [s.path for s in sources] == [
        str((tiles / "tile_3.zarr").resolve()),
        str((zarr_dir / "tile_1.zarr").resolve()),
        str((tiles / "tile_2.zarr").resolve()),
    ]
    # a .lst manifest is read the same way
    listing = manifest.with_suffix(".lst")
    listing.write_text(manifest.read_text())
    assert list(iter_tile_sources(listing)) == sources


def test_text_manifest_errors_name_the_manifest_line(zarr_dir, tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"# header\n{zarr_dir / 'tile_1.zarr'}\n\nmissing.zarr\n")
    with pytest.raises(FileNotFoundError) as info:
        list(iter_tile_sources(manifest))
    assert f"{manifest}:4" in str(info.value)
    assert "missing.zarr" in str(info.value)

    (tmp_path / "inner.txt").write_text("")
    manifest.write_text("inner.txt\n")  # a manifest may name tiles only, not manifests
    with pytest.raises(ValueError) as info:
        list(iter_tile_sources(manifest))
    assert f"{manifest}:1" in str(info.value)


def test_manifest_is_read_lazily(zarr_dir, tmp_path):
    manifest = tmp_path / "lazy.txt"
    manifest.write_text(
        f"{zarr_dir / 'tile_1.zarr'}\n{zarr_dir / 'tile_2.zarr'}\n{tmp_path / 'gone.zarr'}\n"
    )
    iterator = iter_tile_sources(manifest)
    assert Path(next(iterator).path).name == "tile_1.zarr"
    assert Path(next(iterator).path).name == "tile_2.zarr"
    with pytest.raises(FileNotFoundError, match=r"lazy\.txt:3"):
        next(iterator)


def test_iterable_of_items_is_consumed_lazily(zarr_dir):
    consumed = []

    def items():
        for name in ("tile_1.zarr", "tile_2.zarr"):
            consumed.append(name)
            yield zarr_dir / name

    iterator = iter_tile_sources(items())
    next(iterator)
    assert consumed == ["tile_1.zarr"]


def test_parquet_manifest_with_a_path_column(zarr_dir, tmp_path):
    shutil.copytree(zarr_dir / "tile_3.zarr", tmp_path / "tile_3.zarr")
    manifest = tmp_path / "tiles.parquet"
    table = pa.table(
        {
            "tile": [3, 1, 3],
            "path": ["tile_3.zarr", str(zarr_dir / "tile_1.zarr"), "tile_3.zarr"],
        }
    )
    pq.write_table(table, manifest)
    sources = list(iter_tile_sources(manifest))
    assert [s.path for s in sources] == [
        str((tmp_path / "tile_3.zarr").resolve()),
        str((zarr_dir / "tile_1.zarr").resolve()),
    ]


def test_parquet_manifest_errors(zarr_dir, tmp_path):
    no_column = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"file": [str(zarr_dir / "tile_1.zarr")]}), no_column)
    with pytest.raises(ValueError, match="'path' column"):
        list(iter_tile_sources(no_column))

    with_null = tmp_path / "null.parquet"
    pq.write_table(pa.table({"path": [str(zarr_dir / "tile_1.zarr"), None]}), with_null)
    iterator = iter_tile_sources(with_null)
    assert next(iterator).path.endswith("tile_1.zarr")
    with pytest.raises(ValueError, match="row 2"):
        next(iterator)

    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"path": ["a.zarr"]}), missing)
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet row 1"):
        list(iter_tile_sources(missing))

    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet manifest"):
        list(iter_tile_sources(garbage))


# -- FITS band sets --------------------------------------------------------------------------


def test_fits_band_files_group_into_one_source_per_tile(fits_dir):
    files = sorted(fits_dir.glob("tile*_*.fits"))
    assert len(files) == 14
    sources = list(iter_tile_sources(str(fits_dir / "tile*_*.fits")))
    # sorted file names: tile12_* before tile5_*
    assert [(s.kind, s.tile_id) for s in sources] == [("fits", 12), ("fits", 5)]
    assert all(s.path == str(fits_dir.resolve()) for s in sources)
    assert sources[1].key == str(fits_dir.resolve() / "tile5_*.fits")
    # the folder names the same two tiles; one band file names its whole tile
    assert list(iter_tile_sources(fits_dir)) == sources
    assert list(iter_tile_sources(fits_dir / "tile5_g.fits")) == [sources[1]]
    assert list(iter_tile_sources([fits_dir / "tile5_g.fits", fits_dir / "tile5_r.fits"])) == [
        sources[1]
    ]


def test_fits_source_reads_the_tile(fits_dir):
    (source,) = iter_tile_sources(fits_dir / "tile5_NUV.fits")
    tile = source.read()
    original = make_tile(5)
    assert tile.tile_id == 5 and tile.bands == BANDS
    np.testing.assert_array_equal(tile.image, original.image)
    np.testing.assert_array_equal(tile.mask, original.mask)


def test_fits_tile_with_a_missing_band_fails_on_read(fits_dir, tmp_path):
    for file in fits_dir.glob("tile5_*.fits"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "tile5_i.fits").unlink()
    (source,) = iter_tile_sources(tmp_path)  # naming the tile does not read it
    assert source.tile_id == 5
    with pytest.raises(TileFormatError) as info:
        source.read()
    message = str(info.value)
    assert "'i'" in message and "missing" in message
    for present in ("'NUV'", "'u'", "'g'", "'r'", "'z'", "'y'"):
        assert present not in message


def test_folder_with_stores_and_fits_lists_stores_first(zarr_dir, fits_dir, tmp_path):
    shutil.copytree(zarr_dir / "tile_2.zarr", tmp_path / "tile_2.zarr")
    for file in fits_dir.glob("tile5_*.fits"):
        shutil.copy(file, tmp_path / file.name)
    sources = list(iter_tile_sources(tmp_path))
    assert [(s.kind, s.tile_id) for s in sources] == [("zarr", None), ("fits", 5)]


# -- identity (issue 19: resume by tile, not by path) ----------------------------------------


def test_a_moved_tile_keeps_its_identity_and_another_tile_differs(tmp_path, zarr_dir, fits_dir):
    zarr_source = next(iter_tile_sources(zarr_dir / "tile_1.zarr"))
    shutil.copytree(zarr_dir / "tile_1.zarr", tmp_path / "moved" / "tile_1.zarr")
    moved = next(iter_tile_sources(tmp_path / "moved" / "tile_1.zarr"))
    identity = zarr_source.identity(BANDS)
    assert identity == moved.identity(BANDS)
    assert (identity.tile_id, identity.shape, identity.pixels) == (1, SHAPE, SHAPE[0] * SHAPE[1])
    assert next(iter_tile_sources(zarr_dir / "tile_2.zarr")).identity(BANDS) != identity
    fits = sorted(iter_tile_sources(fits_dir), key=lambda s: s.tile_id)
    shutil.copytree(fits_dir, tmp_path / "fits_moved")
    moved_fits = sorted(iter_tile_sources(tmp_path / "fits_moved"), key=lambda s: s.tile_id)
    assert [s.identity(BANDS) for s in fits] == [s.identity(BANDS) for s in moved_fits]
    assert fits[0].identity(BANDS).shape == SHAPE and fits[0].identity(BANDS).tile_id == 5
    assert fits[0].identity(BANDS).checksum != fits[1].identity(BANDS).checksum


def test_an_unreadable_identity_names_the_file(tmp_path, zarr_dir):
    broken = tmp_path / "tile_9.zarr"
    shutil.copytree(zarr_dir / "tile_1.zarr", broken)
    (broken / "zarr.json").write_text("{")
    with pytest.raises(TileFormatError, match=rf"{broken}: metadata unreadable"):
        TileSource("zarr", str(broken)).identity(BANDS)
