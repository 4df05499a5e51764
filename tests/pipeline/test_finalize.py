"""Tile partitions to a HATS catalogue: nothing lost or duplicated, values kept, errors named."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from csst_photoz.pipeline.finalize import (
    _check_catalogue_rows,
    _common_schema,
    _inspect_partition,
    finalize_catalog,
)

lsdb = pytest.importorskip("lsdb")

# Deprecation noise from nested-pandas under pandas 3 (not ours).
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in NestedFrame.drop")

VERSION = b"0.1.0-test"
BANDS = ("g", "r")
# Small settings so partitions are split: ~100 rows over ~1 deg^2, 40 rows per partition at most.
SMALL = {"pixel_threshold": 40, "highest_healpix_order": 8}


def tile_table(tile_id: int, n_rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {
        "object_id": pa.array((tile_id << 32) + np.arange(n_rows, dtype=np.int64)),
        "tile_id": pa.array(np.full(n_rows, tile_id, dtype=np.int32)),
        "ra": pa.array(rng.uniform(150.0, 151.0, n_rows)),
        "dec": pa.array(rng.uniform(2.0, 3.0, n_rows)),
    }
    for band in BANDS:
        columns[f"flux_{band}"] = pa.array(rng.lognormal(5.0, 1.0, n_rows))
        columns[f"flux_err_{band}"] = pa.array(rng.uniform(1.0, 10.0, n_rows))
    columns["z_mlp"] = pa.array(rng.uniform(0.0, 4.0, n_rows).astype(np.float32))
    columns["z_mlp_err"] = pa.array(rng.uniform(0.01, 0.2, n_rows).astype(np.float32))
    return pa.table(columns).replace_schema_metadata({"csst_photoz.version": VERSION})


def write_tile(directory, tile_id: int, table: pa.Table):
    path = directory / f"tile_{tile_id:08d}.parquet"
    pq.write_table(table, path, compression="zstd")
    return path


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run") / "tiles"
    directory.mkdir()
    sizes = {3: 50, 7: 0, 11: 55}  # tile 7 is empty (valid, full schema)
    return [write_tile(directory, tid, tile_table(tid, n, seed=tid)) for tid, n in sizes.items()]


@pytest.fixture(scope="module")
def inputs(tiles) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in tiles)


@pytest.fixture(scope="module")
def catalogue(tiles, client, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("hats")
    return finalize_catalog(tiles, out_dir, client=client, **SMALL)


def test_returns_the_catalogue_folder_and_leaves_nothing_else(catalogue):
    assert catalogue.name == "catalog"
    assert sorted(p.name for p in catalogue.parent.iterdir()) == ["catalog"]
    assert not list(catalogue.rglob("intermediate"))


def test_every_object_once(catalogue, inputs):
    frame = lsdb.read_hats(catalogue).compute()
    ids = frame["object_id"].to_numpy()
    assert len(ids) == inputs.num_rows == 105
    assert len(np.unique(ids)) == len(ids)
    assert set(ids.tolist()) == set(inputs["object_id"].to_pylist())


def test_values_are_kept_per_object(catalogue, inputs):
    frame = lsdb.read_hats(catalogue).compute().set_index("object_id")
    expected = inputs.to_pandas().set_index("object_id").loc[frame.index]
    for column in ("z_mlp", "z_mlp_err", "ra", "dec", "flux_g", "tile_id"):
        np.testing.assert_array_equal(frame[column].to_numpy(), expected[column].to_numpy())
    assert str(frame["z_mlp"].dtype).startswith("float")


def test_partitions_are_healpix_pixels_sorted_within(catalogue):
    catalog = lsdb.read_hats(catalogue)
    info = catalog.hc_structure.partition_info.as_dataframe()
    assert {"Norder", "Npix"} <= set(info.columns)
    assert len(info) == catalog.npartitions > 1  # 105 rows, at most 40 per partition
    for path in sorted((catalogue / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet")):
        table = pq.read_table(path)
        keys = list(
            zip(table["_healpix_29"].to_pylist(), table["object_id"].to_pylist(), strict=True)
        )
        assert keys == sorted(keys), path


def test_schema_metadata_reaches_the_catalogue(catalogue):
    common = pq.read_schema(catalogue / "dataset" / "_common_metadata")
    assert common.metadata[b"csst_photoz.version"] == VERSION
    a_pixel = next((catalogue / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
    assert pq.read_schema(a_pixel).metadata[b"csst_photoz.version"] == VERSION


def test_same_catalogue_whatever_the_input_order_and_overwrite(tiles, client, catalogue, tmp_path):
    def pixels(root):
        files = sorted((root / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
        return [(f.relative_to(root), pq.read_table(f)) for f in files]

    again = finalize_catalog(tiles[::-1], tmp_path, client=client, **SMALL)
    reference = pixels(catalogue)
    assert [name for name, _ in pixels(again)] == [name for name, _ in reference]
    assert all(a.equals(b) for (_, a), (_, b) in zip(pixels(again), reference, strict=True))

    with pytest.raises(FileExistsError, match=re.escape(str(again))):
        finalize_catalog(tiles, tmp_path, client=client, **SMALL)
    finalize_catalog(tiles[:1], tmp_path, client=client, overwrite=True, **SMALL)
    assert len(lsdb.read_hats(again).compute()) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog"]


def test_a_failed_import_leaves_no_catalogue(tiles, client, tmp_path, monkeypatch):
    import hats_import

    def broken(arguments, dask_client):
        raise OSError("disk full")

    monkeypatch.setattr(hats_import, "pipeline_with_client", broken)
    with pytest.raises(RuntimeError, match=r"hats-import failed.*disk full"):
        finalize_catalog(tiles, tmp_path, client=client, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_row_count_check_names_the_mismatch(catalogue):
    _check_catalogue_rows(catalogue, 105)
    with pytest.raises(RuntimeError, match=r"partitions hold 106 rows.*declares 105"):
        _check_catalogue_rows(catalogue, 106)


# Errors found before any Dask work: they name the file at fault.


def test_no_partitions(client, tmp_path):
    with pytest.raises(ValueError, match="no catalogue partitions"):
        finalize_catalog([], tmp_path, client=client)


def test_all_partitions_empty(client, tmp_path):
    paths = [write_tile(tmp_path, tid, tile_table(tid, 0, seed=tid)) for tid in (1, 2)]
    with pytest.raises(ValueError, match=r"all 2 catalogue partitions are empty.*tile_00000001"):
        finalize_catalog(paths, tmp_path / "out", client=client)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("column", ["ra", "dec", "object_id"])
def test_partition_missing_a_required_column(client, tmp_path, tiles, column):
    bad = write_tile(tmp_path, 99, tile_table(99, 5, seed=1).drop_columns([column]))
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(bad))}.*lacks required column\(s\): {column}"
    ):
        finalize_catalog([tiles[0], bad], tmp_path / "out", client=client)


def test_missing_and_unreadable_partitions(client, tmp_path, tiles):
    with pytest.raises(FileNotFoundError, match="tile_00000404"):
        finalize_catalog([tiles[0], tmp_path / "tile_00000404.parquet"], tmp_path, client=client)
    junk = tmp_path / "tile_00000005.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=f"{re.escape(str(junk))} is not a readable Parquet file"):
        finalize_catalog([junk], tmp_path, client=client)


def test_partitions_with_different_schemas(client, tmp_path, tiles):
    table = tile_table(5, 5, seed=5)
    z_index = table.schema.get_field_index("z_mlp")
    odd = write_tile(
        tmp_path, 5, table.set_column(z_index, "z_mlp", table["z_mlp"].cast("float64"))
    )
    with pytest.raises(
        ValueError,
        match=rf"different schemas: {re.escape(str(odd))}.*z_mlp: double instead of float",
    ):
        finalize_catalog([tiles[0], odd], tmp_path / "out", client=client)


def test_schema_metadata_that_differs_between_partitions_is_left_out(tmp_path):
    def with_metadata(tile_id, **metadata):
        table = tile_table(tile_id, 3, seed=tile_id).replace_schema_metadata(metadata)
        return _inspect_partition(write_tile(tmp_path, tile_id, table))

    first = with_metadata(1, **{"csst_photoz.version": "1", "csst_photoz.run": "a"})
    second = with_metadata(2, **{"csst_photoz.version": "1", "csst_photoz.run": "b"})
    with pytest.warns(UserWarning, match=r"'csst_photoz.run' differs between .*tile_00000002"):
        schema = _common_schema([first, second])
    assert schema.metadata == {b"csst_photoz.version": b"1"}


def test_partition_listed_twice(client, tmp_path, tiles):
    with pytest.raises(ValueError, match="listed twice"):
        finalize_catalog([tiles[0], tiles[2], tiles[0]], tmp_path, client=client)


def test_existing_catalogue_is_kept_without_overwrite(client, tmp_path, tiles):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / "catalog"))):
        finalize_catalog(tiles, tmp_path, client=client)
    assert (tmp_path / "catalog" / "keep.txt").read_text() == "old"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"catalog_name": "../escape"}, "invalid catalog_name"),
        ({"catalog_name": ".hidden"}, "invalid catalog_name"),
        ({"pixel_threshold": 0}, "pixel_threshold"),
        ({"highest_healpix_order": 30}, "highest_healpix_order"),
    ],
)
def test_invalid_arguments(client, tmp_path, tiles, kwargs, message):
    with pytest.raises(ValueError, match=message):
        finalize_catalog(tiles, tmp_path, client=client, **kwargs)


def test_the_existing_catalogue_refusal_names_the_way_to_replace_it(tmp_path):
    from csst_photoz.pipeline.finalize import CatalogExistsError

    error = CatalogExistsError(tmp_path / "catalog")
    assert isinstance(error, FileExistsError)
    assert "pass overwrite=True" in str(error)
    assert "pass --overwrite to replace it" in str(error.with_option("--overwrite"))
