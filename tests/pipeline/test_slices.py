"""Slices for job arrays: the union of ``--slice k/COUNT`` runs is the single run of the seed."""

import argparse
import itertools
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from distributed import Client, LocalCluster

from csst_photoz.cli import main
from csst_photoz.io.paths import slice_folder, tile_store_path, tile_truth_path
from csst_photoz.io.tile_zarr import read_tile_zarr
from csst_photoz.io.training_sets import TrainingSetMergeError, merge_training_sets
from csst_photoz.pipeline.slices import SliceSpec, parse_slice

N_TILES, TILE_SIZE = 3, 48
N_STAMPS, STAMP_SIZE, STAMP_SLICES = 12, 16, 3


@pytest.mark.parametrize(("n", "count"), [(3, 2), (12, 3), (7, 7), (10, 4), (1, 1)])
def test_slices_are_contiguous_and_cover_every_item_once(n, count):
    bounds = [SliceSpec(k, count).bounds(n) for k in range(count)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    lengths = [stop - start for start, stop in bounds]
    assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0", "1/2/3"])
def test_bad_slices_are_usage_errors(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_slice(text)


def test_more_slices_than_items_is_an_error():
    assert parse_slice(" 1 / 4 ") == SliceSpec(1, 4)
    with pytest.raises(ValueError, match="only 3 items for 4 slices"):
        SliceSpec(3, 4).bounds(3)


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory):
    """An in-process one-worker cluster the CLI joins by ``--scheduler-file`` (no spawning)."""
    path = tmp_path_factory.mktemp("cluster") / "scheduler.json"
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
            host="127.0.0.1", dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.write_scheduler_file(str(path))
        yield path


def _simulate(what, *args, scheduler_file):
    code = main(["simulate", what, *map(str, args), "--scheduler-file", str(scheduler_file)])
    assert code == 0


def test_tile_slices_equal_the_single_run(tmp_path, scheduler_file, capsys):
    common = ["--n-tiles", N_TILES, "--size", TILE_SIZE, "--seed", 4]
    _simulate("tiles", *common, "--out", tmp_path / "single", scheduler_file=scheduler_file)
    for k in range(2):  # tile ids 0 and 1..2
        _simulate(
            "tiles", *common, "--out", tmp_path / "sliced", "--slice", f"{k}/2",
            scheduler_file=scheduler_file,
        )  # fmt: skip
    assert "slice 1/2: tile ids 1..2" in capsys.readouterr().out
    names_of_runs = ("single", "sliced")
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "sliced").iterdir())
    assert len(names) == 2 * N_TILES
    for tile_id in range(N_TILES):
        single = read_tile_zarr(tile_store_path(tmp_path / "single", tile_id))
        sliced = read_tile_zarr(tile_store_path(tmp_path / "sliced", tile_id))
        for plane in ("image", "variance", "mask"):
            np.testing.assert_array_equal(getattr(single, plane), getattr(sliced, plane))
        truth = [pq.read_table(tile_truth_path(tmp_path / d, tile_id)) for d in names_of_runs]
        assert truth[0].equals(truth[1], check_metadata=True)


@pytest.fixture(scope="module")
def stamp_runs(tmp_path_factory, scheduler_file):
    """A single 12-stamp run (seed 6, 16 px) and the same run in three slices."""
    root = tmp_path_factory.mktemp("stamps")
    common = ["--n", N_STAMPS, "--size", STAMP_SIZE, "--seed", 6]
    _simulate("stamps", *common, "--out", root / "single", scheduler_file=scheduler_file)
    for k in range(STAMP_SLICES):
        _simulate(
            "stamps", *common, "--out", root / "sliced", "--slice", f"{k}/{STAMP_SLICES}",
            scheduler_file=scheduler_file,
        )  # fmt: skip
    return root / "single", root / "sliced"


def _stamps(folder):
    return zarr.open_group(folder / "stamps.zarr", mode="r")


def test_stamp_slices_record_their_rows(stamp_runs):
    single, sliced = stamp_runs
    full = pq.read_table(single / "stamps.parquet")
    for k in range(STAMP_SLICES):
        folder = slice_folder(sliced, k)
        table = pq.read_table(folder / "stamps.parquet")
        start, stop = 4 * k, 4 * k + 4
        record = {"index": k, "count": STAMP_SLICES, "start": start, "stop": stop, "n": N_STAMPS}
        assert json.loads(table.schema.metadata[b"csst_photoz.slice"]) == record
        assert _stamps(folder).attrs["slice"] == record
        np.testing.assert_array_equal(table["stamp_index"].to_numpy(), np.arange(start, stop))
        for name in ("galaxy_id", "redshift", "kron_flux_i", "n_neighbours"):
            np.testing.assert_array_equal(
                table[name].to_numpy(), full[name].to_numpy()[start:stop], err_msg=name
            )
        np.testing.assert_array_equal(
            _stamps(folder)["stamps"][:], _stamps(single)["stamps"][start:stop]
        )


def test_merged_slices_are_the_single_run(stamp_runs, tmp_path, capsys):
    single, sliced = stamp_runs
    out = tmp_path / "merged"
    parts = [slice_folder(sliced, k) for k in (2, 0, 1)]  # any order: sorted by slice index
    assert main(["simulate", "merge", *map(str, parts), "--out", str(out)]) == 0
    assert f"merged {N_STAMPS} stamps" in capsys.readouterr().out

    expected = pq.read_table(single / "stamps.parquet")
    merged = pq.read_table(out / "stamps.parquet")
    assert merged.schema.equals(expected.schema, check_metadata=True)
    assert merged.equals(expected, check_metadata=True)
    a, b = _stamps(single), _stamps(out)
    assert dict(b.attrs) == dict(a.attrs)
    assert b["stamps"].chunks == a["stamps"].chunks
    assert b["stamps"].compressors == a["stamps"].compressors
    np.testing.assert_array_equal(b["stamps"][:], a["stamps"][:])


def test_renumber_mode_treats_slices_as_independent_sets(stamp_runs, tmp_path):
    _, sliced = stamp_runs
    parts = [slice_folder(sliced, k) for k in range(STAMP_SLICES)]
    table = merge_training_sets(parts, tmp_path / "merged", mode="renumber", progress=False)
    np.testing.assert_array_equal(table["galaxy_id"].to_numpy(), np.arange(N_STAMPS))
    assert table["part"].to_pylist() == list(np.repeat(np.arange(STAMP_SLICES), 4))
    assert b"csst_photoz.slice" not in table.schema.metadata
    assert "slice" not in _stamps(tmp_path / "merged").attrs


def test_a_missing_or_foreign_slice_is_refused(stamp_runs, tmp_path):
    single, sliced = stamp_runs
    parts = [slice_folder(sliced, k) for k in range(STAMP_SLICES)]
    with pytest.raises(TrainingSetMergeError, match=r"missing \[1\]"):
        merge_training_sets([parts[0], parts[2]], tmp_path / "a", mode="slices", progress=False)
    with pytest.raises(TrainingSetMergeError, match=r"not slices: .*single"):
        merge_training_sets([*parts, single], tmp_path / "b", mode="slices", progress=False)
    twice = shutil.copytree(parts[1], tmp_path / "again")
    with pytest.raises(TrainingSetMergeError, match=r"repeated \[1\]"):
        merge_training_sets([*parts, twice], tmp_path / "c", progress=False)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))
