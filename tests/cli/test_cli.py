import subprocess
import sys

import numpy as np
import pytest

from csst_photoz.cli import main
from csst_photoz.io import read_parquet_table


def test_help_runs_as_a_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "csst_photoz.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("instrument", "simulate", "demo"):
        assert command in result.stdout


def test_instrument_report_lists_every_band_beside_the_paper(capsys):
    assert main(["instrument"]) == 0
    out = capsys.readouterr().out
    for band, paper_depth in zip(
        "NUV u g r i z y".split(), (25.4, 25.4, 26.3, 26.0, 25.9, 25.2, 24.4), strict=True
    ):
        line = next(row for row in out.splitlines() if row.split()[:1] == [band])
        assert f"({paper_depth:4.1f})" in line
    assert 'radius 0.225"' in out


def test_simulate_catalog_writes_parquet_and_summary(tmp_path, capsys):
    out = tmp_path / "truth.parquet"
    plot = tmp_path / "nz.png"
    code = main(
        ["simulate", "catalog", "--n", "500", "--seed", "7", "--out", str(out), "--plot", str(plot)]
    )
    assert code == 0
    table = read_parquet_table(out, required_columns=["galaxy_id", "redshift", "flux_g"])
    assert table.num_rows == 500
    assert np.unique(table["galaxy_id"].to_numpy()).size == 500
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "selected:" in text and "paper (selected)" in text


def test_bad_config_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("pixel_scale = 0.074\n")
    assert main(["instrument", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "pixel_scale" in err


@pytest.mark.parametrize("n", ["0", "-3", "many"])
def test_invalid_galaxy_count_is_rejected(tmp_path, n):
    with pytest.raises(SystemExit):
        main(["simulate", "catalog", "--n", n, "--seed", "1", "--out", str(tmp_path / "t.parquet")])


def test_simulate_tiles_and_stamps_write_their_stores(tmp_path, capsys):
    from csst_photoz.io import read_tile_zarr, tile_store_path

    code = main(
        [
            "simulate",
            "tiles",
            "--n-tiles",
            "2",
            "--size",
            "64",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "tiles"),
            "--workers",
            "1",
        ]
    )
    assert code == 0
    tile = read_tile_zarr(tile_store_path(tmp_path / "tiles", 1))
    assert tile.image.shape == (7, 64, 64)
    assert "simulated 2 tiles" in capsys.readouterr().out

    code = main(
        [
            "simulate",
            "stamps",
            "--n",
            "6",
            "--seed",
            "3",
            "--size",
            "32",
            "--out",
            str(tmp_path / "stamps"),
            "--workers",
            "1",
        ]
    )
    assert code == 0
    import zarr

    stamps = zarr.open_group(tmp_path / "stamps" / "stamps.zarr", mode="r")["stamps"]
    table = read_parquet_table(tmp_path / "stamps" / "stamps.parquet")
    assert stamps.shape == (6, 7, 32, 32) and table.num_rows == 6
    assert np.all(table["selected"].to_numpy(zero_copy_only=False))
    assert "simulated 6 stamps" in capsys.readouterr().out
