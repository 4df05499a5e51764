"""The compact p(z) column: size, fidelity, the dense grid, qp ensembles and ``pz export``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from csst_photoz.pz import PzGrid, quantiles
from csst_photoz.pz.columns import SUMMARY_SUFFIXES, compact_column, photoz_columns
from csst_photoz.pz.compact import (
    BYTES_PER_GALAXY,
    QUANTILE_LEVELS,
    decode_quantiles,
    dense_pz,
    encode_pz,
)

qp = pytest.importorskip("qp")
GRID = PzGrid(0.0, 4.0, 200)


def _bimodal(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.3, 3.5, (n, 2))
    sigma = rng.uniform(0.03, 0.3, (n, 2))
    weight = rng.uniform(0.2, 1.0, (n, 2))
    cdf = stats.norm.cdf(GRID.edges[None, None, :], mu[..., None], sigma[..., None])
    probabilities = (weight[..., None] * np.diff(cdf, axis=2)).sum(axis=1)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def _table(probabilities: np.ndarray, model: str = "mlp") -> pa.Table:
    estimate = SimpleNamespace(pz=probabilities.astype(np.float32), pz_grid=GRID)
    columns = photoz_columns(estimate, model)
    n = probabilities.shape[0]
    table = pa.table({"object_id": pa.array(np.arange(n, dtype=np.int64) * 7 + 3)})
    for field, values in columns:
        table = table.append_column(field, values)
    return table


def test_two_hundred_bytes_per_galaxy_and_monotonic_quantiles():
    codes = encode_pz(_bimodal(0, 50), GRID)
    assert BYTES_PER_GALAXY == 200 and codes.dtype == np.uint16 and codes.shape == (50, 100)
    assert np.all(np.diff(decode_quantiles(codes), axis=1) >= 0)
    np.testing.assert_allclose(
        decode_quantiles(codes), quantiles(_bimodal(0, 50), GRID, QUANTILE_LEVELS), atol=5e-5
    )


def test_dense_grid_reproduces_the_pz_and_integrates_to_one():
    probabilities = _bimodal(1, 200)
    dense = dense_pz(encode_pz(probabilities, GRID), GRID.edges)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0)
    assert np.median(np.abs(dense - probabilities).sum(axis=1)) < 0.05
    # the mean survives to well below the widths (0.03-0.3) of these two-peak p(z), on another grid
    other = np.linspace(0.0, 4.0, 801)
    fine = dense_pz(encode_pz(probabilities, GRID), other)
    np.testing.assert_allclose(
        fine @ (0.5 * (other[1:] + other[:-1])), probabilities @ GRID.centres, atol=1e-2
    )


def test_columns_carry_summaries_and_compact_pz_with_units():
    table = _table(_bimodal(2, 30))
    names = [f"z_mlp_{s}" for s in SUMMARY_SUFFIXES] + ["z_mlp_pz"]
    assert table.column_names[1:] == names
    assert table.schema.field("z_mlp_pz").type == pa.list_(pa.uint16(), 100)
    assert all(table.schema.field(n).metadata[b"unit"] == b"" for n in names)
    expected = encode_pz(_bimodal(2, 30).astype(np.float32), GRID)
    np.testing.assert_array_equal(compact_column(table, "mlp"), expected)
    assert photoz_columns(SimpleNamespace(pz=None, pz_grid=None), "old") == []
    with pytest.raises(ValueError, match="models with one: \\['mlp'\\]"):
        compact_column(table, "cnn")


def test_qp_round_trip_through_pz_export(tmp_path):
    """The catalogue column, written by ``pz export`` as qp HDF5 and read back with qp."""
    from csst_photoz.pz.cli import add_pz_parser

    probabilities = _bimodal(3, 40)
    table = _table(probabilities)
    (tmp_path / "cat").mkdir()
    pq.write_table(table.slice(0, 25), tmp_path / "cat" / "part0.parquet")
    pq.write_table(table.slice(25), tmp_path / "cat" / "part1.parquet")
    import argparse

    parser = argparse.ArgumentParser()
    add_pz_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["pz", "export", str(tmp_path / "cat"), "--model", "mlp", "--out", str(tmp_path / "p.hdf5")]
    )
    assert args.func(args) == 0
    ensemble = qp.read(str(tmp_path / "p.hdf5"))
    assert ensemble.npdf == 40
    np.testing.assert_array_equal(ensemble.ancil["object_id"], table["object_id"].to_numpy())
    np.testing.assert_allclose(ensemble.ancil["zmode"], table["z_mlp_mode"].to_numpy())
    edges = np.linspace(0, 4, 401)
    mass = np.diff(ensemble.cdf(edges), axis=1)
    np.testing.assert_allclose(mass, dense_pz(compact_column(table, "mlp"), edges), atol=1e-6)
    dense_mean = dense_pz(compact_column(table, "mlp"), edges) @ (0.5 * (edges[1:] + edges[:-1]))
    np.testing.assert_allclose(ensemble.mean().ravel(), dense_mean, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: decode_quantiles(np.zeros((2, 99), np.uint16)), "100 quantile codes"),
        (lambda: decode_quantiles(np.zeros((2, 100))), "integers"),
        (lambda: encode_pz(np.ones((1, 10)), PzGrid(0, 7, 10)), "0 <= z <= 6.5535"),
        (lambda: dense_pz(np.zeros((1, 100), np.uint16), [0.0, 0.0]), "increasing"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_pz_export_writes_the_named_id_column(tmp_path):
    """``--id-column``: a table from ``predict --table`` keeps its own identifiers."""
    import argparse

    from csst_photoz.pz.cli import add_pz_parser

    table = _table(_bimodal(4, 12))
    table = table.rename_columns(["objid" if n == "object_id" else n for n in table.column_names])
    pq.write_table(table, tmp_path / "photoz.parquet")
    parser = argparse.ArgumentParser()
    add_pz_parser(parser.add_subparsers())
    out = tmp_path / "p.hdf5"
    base = ["pz", "export", str(tmp_path / "photoz.parquet"), "--model", "mlp", "--out", str(out)]
    args = parser.parse_args(base)
    with pytest.raises(ValueError, match=r"no column \['object_id'\].*--id-column"):
        args.func(args)
    args = parser.parse_args([*base, "--id-column", "objid"])
    assert args.func(args) == 0
    np.testing.assert_array_equal(qp.read(str(out)).ancil["objid"], table["objid"].to_numpy())
