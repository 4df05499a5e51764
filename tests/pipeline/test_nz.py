"""n(z) partition by partition (in-process and on a Dask cluster) equals the concatenated table."""

from __future__ import annotations

import argparse
import contextlib
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

import csst_photoz.pipeline as pipeline
from csst_photoz.pipeline.nz import catalog_partitions, compute_nz
from csst_photoz.pz import PzGrid
from csst_photoz.pz.columns import compact_column, photoz_columns
from csst_photoz.pz.nz import bootstrap_weights, nz_partial, nz_summary

GRID = PzGrid(0.0, 4.0, 200)
TOMO = np.array([0.2, 0.6, 1.0, 2.0])
FINE = np.linspace(0.0, 4.0, 201)


def _catalogue(folder, n=300, parts=3, seed=0):
    """Galaxies with Gaussian p(z) around a noisy truth, split into Parquet partitions."""
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.1, 2.5, n)
    sigma = 0.05 * (1 + z_true)
    centre = z_true + sigma * rng.standard_normal(n)
    probabilities = np.diff(
        stats.norm.cdf(GRID.edges[None], centre[:, None], sigma[:, None]), axis=1
    )
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    table = pa.table({
        "object_id": pa.array(rng.permutation(10 * n)[:n].astype(np.int64)),
        "z_mlp": pa.array(centre.astype(np.float32)),
        "redshift": pa.array(np.where(rng.random(n) < 0.9, z_true, np.nan)),
    })  # fmt: skip
    for field, values in photoz_columns(SimpleNamespace(pz=probabilities, pz_grid=GRID), "mlp"):
        table = table.append_column(field, values)
    folder.mkdir()
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for k in range(parts):
        pq.write_table(
            table.slice(bounds[k], bounds[k + 1] - bounds[k]), folder / f"tile{k}.parquet"
        )
    pq.write_table(table.slice(0, 0), folder / "tile_empty.parquet")  # an empty partition
    return table


def _whole(table):
    return nz_partial(
        table["z_mlp"].to_numpy().astype(np.float64), compact_column(table, "mlp"),
        table["object_id"].to_numpy(), tomo_edges=TOMO, grid_edges=FINE, replicates=20,
        seed=5, z_true=table["redshift"].to_numpy(),
    )  # fmt: skip


def _assert_same(a, b):
    for name in (
        "count",
        "stack",
        "boot_count",
        "boot_stack",
        "truth_count",
        "truth_sum",
        "truth_hist",
    ):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-12)


def _by_partition(folder, client=None):
    return compute_nz(
        catalog_partitions(folder), model="mlp", tomo_edges=TOMO, grid_edges=FINE,
        client=client, truth_column="redshift", replicates=20, seed=5,
    )  # fmt: skip


def test_partition_by_partition_equals_the_concatenated_table(tmp_path):
    table = _catalogue(tmp_path / "cat")
    _assert_same(_by_partition(tmp_path / "cat"), _whole(table))


@pytest.mark.slow
def test_on_a_dask_cluster_too(tmp_path):
    distributed = pytest.importorskip("distributed")
    table = _catalogue(tmp_path / "cat")
    with distributed.Client(
        processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    ) as client:
        total = _by_partition(tmp_path / "cat", client)
    _assert_same(total, _whole(table))


def test_summary_against_numpy_and_the_truth(tmp_path):
    table = _catalogue(tmp_path / "cat", n=2000, parts=2, seed=1)
    summary = nz_summary(_by_partition(tmp_path / "cat"))
    point, truth = table["z_mlp"].to_numpy(), table["redshift"].to_numpy()
    for t in range(3):
        member = (point >= TOMO[t]) & (point < TOMO[t + 1])
        assert summary["galaxies"][t] == member.sum()
        known = member & np.isfinite(truth)
        assert summary["true_mean_z"][t] == pytest.approx(truth[known].mean())
        # the p(z) are centred on the point estimates: stacked mean = their mean
        assert summary["mean_z"][t] == pytest.approx(point[member].mean(), abs=2e-3)
        assert 0 < summary["mean_z_err"][t] < 0.02
    assert np.all(np.isfinite(summary["mean_bias"]))


def test_bootstrap_weights_are_poisson_and_depend_on_the_id_only():
    ids = np.arange(50_000, dtype=np.int64) * 13
    weights = bootstrap_weights(ids, 3, seed=1)
    assert weights.mean() == pytest.approx(1.0, abs=0.02) and weights.var() == pytest.approx(
        1.0, abs=0.03
    )
    np.testing.assert_array_equal(bootstrap_weights(ids[::-1], 3, seed=1), weights[:, ::-1])
    assert not np.array_equal(bootstrap_weights(ids, 3, seed=2), weights)


def test_nz_command_writes_figure_and_table(tmp_path, monkeypatch):
    from csst_photoz.pz.cli import add_nz_parser

    _catalogue(tmp_path / "cat", n=400)
    parser = argparse.ArgumentParser()
    add_nz_parser(parser.add_subparsers())
    args = parser.parse_args([
        "nz", str(tmp_path / "cat"), "--model", "mlp", "--equal", "3", "--truth-column",
        "redshift", "--bootstrap", "10", "--out", str(tmp_path / "nz"), "--workers", "1",
    ])  # fmt: skip
    # no cluster in a unit test: the in-process reduction (the Dask path: the slow test above)
    monkeypatch.setattr(pipeline, "connect", lambda **_: contextlib.nullcontext(None))
    assert args.func(args) == 0
    assert (tmp_path / "nz" / "nz_mlp.png").stat().st_size > 10_000
    text = (tmp_path / "nz" / "nz_mlp.md").read_text()
    assert text.count("\n| [") == 3 and "bias" in text


@pytest.mark.slow
def test_pz_columns_survive_catalog_finalize_and_feed_export_and_nz(tmp_path):
    """HATS keeps the compact p(z); lsdb opens it; pz export and n(z) read the HATS folder."""
    distributed = pytest.importorskip("distributed")
    lsdb = pytest.importorskip("lsdb")
    qp = pytest.importorskip("qp")
    from csst_photoz.pipeline.finalize import finalize_catalog
    from csst_photoz.pz.cli import add_pz_parser

    table = _catalogue(tmp_path / "tiles", n=240, parts=2)
    rng = np.random.default_rng(9)
    positions = pa.table({"ra": rng.uniform(10, 11, 240), "dec": rng.uniform(-1, 1, 240)})
    for k, path in enumerate(sorted((tmp_path / "tiles").glob("tile?.parquet"))):
        part = pq.read_table(path)
        rows = positions.slice(120 * k, part.num_rows)
        part = part.append_column("ra", rows["ra"]).append_column("dec", rows["dec"])
        pq.write_table(part, path)
    (tmp_path / "tiles" / "tile_empty.parquet").unlink()
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    ) as client:
        catalogue = finalize_catalog(
            sorted((tmp_path / "tiles").glob("*.parquet")), tmp_path / "hats", client=client
        )
    frame = lsdb.read_hats(catalogue).compute().sort_values("object_id")
    order = np.argsort(table["object_id"].to_numpy())
    expected = compact_column(table, "mlp")[order]
    np.testing.assert_array_equal(np.stack(frame["z_mlp_pz"].to_numpy()), expected)
    parser = argparse.ArgumentParser()
    add_pz_parser(parser.add_subparsers())
    out = tmp_path / "p.hdf5"
    args = parser.parse_args(["pz", "export", str(catalogue), "--model", "mlp", "--out", str(out)])
    assert args.func(args) == 0 and qp.read(str(out)).npdf == 240
    _assert_same(_by_partition(catalogue), _whole(table))


def test_another_integer_id_column_gives_the_same_nz_and_a_text_one_is_refused(tmp_path):
    """``predict --table`` writes the table's own id column: ``id_column`` names it."""
    table = _catalogue(tmp_path / "cat")
    renamed = table.rename_columns(["objid" if n == "object_id" else n for n in table.column_names])
    pq.write_table(renamed, tmp_path / "renamed.parquet")
    by_name = compute_nz(
        [tmp_path / "renamed.parquet"], model="mlp", tomo_edges=TOMO, grid_edges=FINE,
        truth_column="redshift", id_column="objid", replicates=20, seed=5,
    )  # fmt: skip
    _assert_same(by_name, _whole(table))
    with pytest.raises(ValueError, match=r"renamed\.parquet: no column \['object_id'\]"):
        compute_nz([tmp_path / "renamed.parquet"], model="mlp", tomo_edges=TOMO, grid_edges=FINE)
    text_ids = renamed.set_column(0, "objid", pa.array([f"g{i}" for i in range(renamed.num_rows)]))
    pq.write_table(text_ids, tmp_path / "text.parquet")
    with pytest.raises(ValueError, match=r"text\.parquet: id column 'objid' is string"):
        compute_nz(
            [tmp_path / "text.parquet"], model="mlp", tomo_edges=TOMO, grid_edges=FINE,
            id_column="objid",
        )  # fmt: skip


def test_a_run_folder_gives_its_done_partitions_not_its_manifest_or_failures(tmp_path):
    from pathlib import Path

    run = Path(__file__).parents[1] / "fixtures" / "v0_1" / "run"
    assert catalog_partitions(run) == [run / "tiles" / "tile_00000000.parquet"]
    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "run.json").write_text((run / "run.json").read_text())
    (empty / "manifest.parquet").write_bytes((run / "manifest.parquet").read_bytes())
    with pytest.raises(FileNotFoundError, match="a run folder with no done tile"):
        catalog_partitions(empty)
