import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from csst_photoz.io import training_sets
from csst_photoz.io.training_sets import TrainingSetMergeError, merge_training_sets

N = 8  # stamps per part
SIZE = 16


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> tuple[Path, Path]:
    """Two 8-stamp training sets (16 px) from the real simulator, seeds 1 and 2 (~15 s)."""
    from distributed import Client

    from csst_photoz.pipeline import simulate_stamps

    root = tmp_path_factory.mktemp("parts")
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        for seed in (1, 2):
            simulate_stamps(
                N, root / f"part_{seed}", client=c, seed=seed, size=SIZE, progress=False
            )
    return root / "part_1", root / "part_2"


def _stamps(folder: Path) -> np.ndarray:
    return zarr.open_group(folder / "stamps.zarr", mode="r")["stamps"][:]


def _copy(part: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(part, tmp_path / name))


def test_merge_keeps_rows_stamps_and_provenance(parts, tmp_path):
    out = tmp_path / "merged"
    table = merge_training_sets(parts, out, progress=False)

    sources = [pq.read_table(p / "stamps.parquet") for p in parts]
    assert table.num_rows == 2 * N
    assert table.equals(pq.read_table(out / "stamps.parquet"))
    merged = _stamps(out)
    assert merged.shape == (2 * N, 7, SIZE, SIZE)
    for k, part in enumerate(parts):
        np.testing.assert_array_equal(merged[k * N : (k + 1) * N], _stamps(part))

    rows = np.arange(2 * N)
    np.testing.assert_array_equal(table["galaxy_id"].to_numpy(), rows)
    np.testing.assert_array_equal(table["stamp_index"].to_numpy(), rows)
    np.testing.assert_array_equal(table["part"].to_numpy(), np.repeat([0, 1], N))
    np.testing.assert_array_equal(table["source_row"].to_numpy(), np.tile(np.arange(N), 2))
    assert str(table.schema.field("part").type) == "int16"
    for name in ("source_galaxy_id", "redshift", "kron_flux_i"):
        source_name = "galaxy_id" if name == "source_galaxy_id" else name
        expected = np.concatenate([s[source_name].to_numpy() for s in sources])
        np.testing.assert_array_equal(table[name].to_numpy(), expected)


def test_merge_records_seeds_and_sources(parts, tmp_path):
    out = tmp_path / "merged"
    table = merge_training_sets(parts, out, progress=False)
    paths = [str(p.resolve()) for p in parts]

    metadata = table.schema.metadata
    assert json.loads(metadata[b"csst_photoz.seed"]) == [1, 2]
    assert json.loads(metadata[b"csst_photoz.stamp_seed"]) == [1, 2]
    assert json.loads(metadata[b"csst_photoz.merged_from"]) == paths
    assert metadata[b"csst_photoz.bands"] == b"NUV,u,g,r,i,z,y"

    group = zarr.open_group(out / "stamps.zarr", mode="r")
    source = zarr.open_group(parts[0] / "stamps.zarr", mode="r")
    assert group.attrs["seed"] == [1, 2]
    assert group.attrs["merged_from"] == paths
    for key in ("format", "bands", "size", "unit", "pixel_scale_arcsec", "instrument_config"):
        assert group.attrs[key] == source.attrs[key]
    assert group["stamps"].chunks == source["stamps"].chunks
    assert group["stamps"].compressors == source["stamps"].compressors


def test_merged_folder_loads_as_a_training_set(parts, tmp_path):
    from csst_photoz.training.data import load_training_set

    out = tmp_path / "merged"
    table = merge_training_sets(parts, out, progress=False)
    loaded = load_training_set(out, stamp_size=None)
    assert loaded.n_table_rows == 2 * N
    assert len(loaded) == int(np.sum(table["detected"].to_numpy(zero_copy_only=False)))
    np.testing.assert_array_equal(loaded.stamps, _stamps(out)[loaded.rows])


def test_copy_crosses_part_and_block_boundaries(parts, tmp_path, monkeypatch):
    monkeypatch.setattr(training_sets, "STAMP_CHUNK_OBJECTS", 3)
    monkeypatch.setattr(training_sets, "_BLOCK_CHUNKS", 2)  # blocks of 6 rows, parts of 8
    out = tmp_path / "merged"
    merge_training_sets(parts, out, progress=False)  # blocks 0-5, 6-11 (across parts), 12-15
    merged = zarr.open_group(out / "stamps.zarr", mode="r")["stamps"]
    assert merged.chunks == (3, 7, SIZE, SIZE)
    expected = np.concatenate([_stamps(parts[0]), _stamps(parts[1])])
    np.testing.assert_array_equal(merged[:], expected)


def test_existing_output_is_refused_unless_overwrite(parts, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="merged"):
        merge_training_sets(parts, out, progress=False)
    assert (out / "old.txt").exists()
    merge_training_sets(parts, out, overwrite=True, progress=False)
    assert sorted(os.listdir(out)) == ["stamps.parquet", "stamps.zarr"]
    assert os.listdir(tmp_path) == ["merged"]  # no temporary or old folder left


def test_failed_merge_leaves_nothing(parts, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        merge_training_sets(parts, tmp_path / "merged", progress=False)
    assert os.listdir(tmp_path) == []


def _set_attr(folder: Path, key: str, value) -> None:
    zarr.open_group(folder / "stamps.zarr", mode="r+").attrs[key] = value


def _rewrite_table(folder: Path, edit) -> None:
    path = folder / "stamps.parquet"
    pq.write_table(edit(pq.read_table(path)), path)


DAMAGE = {
    "bands": (
        lambda f: _set_attr(f, "bands", ["NUV", "u", "g", "r", "i", "z", "Y"]),
        TrainingSetMergeError,
        "stamp attribute 'bands'",
    ),
    "pixel scale": (
        lambda f: _set_attr(f, "pixel_scale_arcsec", 0.1),
        TrainingSetMergeError,
        "pixel_scale_arcsec",
    ),
    "rows": (
        lambda f: _rewrite_table(f, lambda t: t.slice(0, N - 1)),
        TrainingSetMergeError,
        "has 7 rows",
    ),
    "columns": (
        lambda f: _rewrite_table(f, lambda t: t.drop_columns(["kron_flux_u"])),
        TrainingSetMergeError,
        "missing \\['kron_flux_u'\\]",
    ),
    "no zarr": (
        lambda f: shutil.rmtree(f / "stamps.zarr"),
        FileNotFoundError,
        "no stamps.zarr",
    ),
    "no table": (
        lambda f: (f / "stamps.parquet").unlink(),
        FileNotFoundError,
        "no stamps.parquet",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_bad_part_is_named_in_the_error(parts, tmp_path, damage):
    edit, error, message = DAMAGE[damage]
    bad = _copy(parts[1], tmp_path, "bad_part")
    edit(bad)
    with pytest.raises(error, match=message) as caught:
        merge_training_sets([parts[0], bad], tmp_path / "merged", progress=False)
    assert "bad_part" in str(caught.value)
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("case", ["twice", "out is a part", "none"])
def test_invalid_part_lists_are_refused(parts, case):
    folders, out = {
        "twice": ([parts[0], parts[0]], parts[0].parent / "merged"),
        "out is a part": (list(parts), parts[1]),
        "none": ([], parts[0].parent / "merged"),
    }[case]
    with pytest.raises(TrainingSetMergeError):
        merge_training_sets(folders, out, overwrite=True, progress=False)
    assert all((p / "stamps.zarr").exists() for p in parts)


def _edit_one_value(folder: Path) -> None:
    """Change one table value: other bytes (another data hash), the same recorded seed."""
    _rewrite_table(
        folder,
        lambda t: t.set_column(
            t.schema.get_field_index("redshift"),
            t.schema.field("redshift"),
            [t["redshift"].to_numpy() + np.float32(1e-3)],
        ),
    )


DUPLICATES = {
    "a copy": (lambda f: None, r"same galaxies as .*part_2: seed 2, rows 0\.\.7 of the same 8-row"),
    "a re-run of the seed": (_edit_one_value, r"same galaxies as .*part_2: seed 2"),
    "the data under another seed": (
        lambda f: _set_attr(f, "seed", 99),
        r"same data as .*part_2 \(table and stamps, hash",
    ),
}


@pytest.mark.parametrize("case", list(DUPLICATES), ids=list(DUPLICATES))
def test_a_part_holding_the_same_galaxies_is_refused_naming_both(parts, tmp_path, case):
    edit, message = DUPLICATES[case]
    again = _copy(parts[1], tmp_path, "again")
    edit(again)
    with pytest.raises(TrainingSetMergeError, match=message) as caught:
        merge_training_sets([*parts, again], tmp_path / "merged", progress=False)
    assert str(caught.value).startswith(f"{again}: ")
    assert not (tmp_path / "merged").exists()


def test_cli_refuses_a_folder_and_its_copy(parts, tmp_path, capsys):
    from csst_photoz.cli import main

    again = _copy(parts[0], tmp_path, "again")
    out = tmp_path / "merged"
    assert main(["simulate", "merge", str(parts[0]), str(again), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{again}: holds the same galaxies as {parts[0]}" in err
    assert not out.exists()


def test_differing_metadata_is_dropped_with_a_warning(parts, tmp_path):
    other = _copy(parts[1], tmp_path)
    _rewrite_table(
        other,
        lambda t: t.replace_schema_metadata({**t.schema.metadata, b"csst_photoz.noise": b"False"}),
    )
    with pytest.warns(UserWarning, match="csst_photoz.noise"):
        table = merge_training_sets([parts[0], other], tmp_path / "merged", progress=False)
    assert b"csst_photoz.noise" not in table.schema.metadata


def test_cli_merges_and_refuses_an_existing_output(parts, tmp_path, capsys):
    from csst_photoz.cli import main

    out = tmp_path / "merged"
    args = ["simulate", "merge", *map(str, parts), "--out", str(out)]
    assert main(args) == 0
    assert f"merged {2 * N} stamps from 2 training sets" in capsys.readouterr().out
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
