"""``csst-photoz run`` / ``catalog finalize`` and the demo, end to end to a HATS catalogue."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from csst_photoz.cli import main
from csst_photoz.io.run_store import RunStore
from csst_photoz.pipeline import run_demo

lsdb = pytest.importorskip("lsdb")
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in NestedFrame.drop")


def test_run_and_finalize_commands(tmp_path, field, checkpoints, capsys):
    bad = tmp_path / "bad.zarr"
    shutil.copytree(field[0], bad)
    (bad / "zarr.json").write_text("{")  # a truncated group document
    manifest = tmp_path / "tiles.txt"
    manifest.write_text(f"# two good tiles and a bad one\n{field[0]}\n{field[1]}\n{bad.name}\n")
    argv = ["run", str(manifest), "--out", str(tmp_path / "run"), "--models", str(checkpoints),
            "--workers", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 3  # a failed tile: exit status 3 (ExitStatus.TILES_FAILED)
    printed = capsys.readouterr().out
    assert "2 tiles done" in printed and "1 failed" in printed and str(bad) in printed
    assert main([argv[0], str(field[0]), *argv[2:]]) == 0  # only done tiles: success
    assert "0 tiles done, 1 skipped" in capsys.readouterr().out

    finalize = ["catalog", "finalize", str(tmp_path / "run"), "--workers", "1"]
    assert main(finalize) == 2  # the failed tile is named, and refused unless allowed
    assert "1 tiles failed" in capsys.readouterr().err
    assert main([*finalize, "--allow-failed"]) == 0
    catalog = lsdb.read_hats(tmp_path / "run" / "catalog").compute()
    partitions = RunStore(tmp_path / "run").partitions()
    ids = np.concatenate([pq.read_table(p)["object_id"].to_numpy() for p in partitions])
    assert sorted(catalog["object_id"].to_numpy()) == sorted(ids)
    assert {"z_mlp", "z_cnn", "flux_i"} <= set(catalog.columns)
    # a partition changed after its marker was written is caught before finalising
    with partitions[0].open("ab") as handle:
        handle.write(b"\0")
    assert main(["catalog", "finalize", str(tmp_path / "run"), "--overwrite"]) == 2
    assert "differs from its done-marker" in capsys.readouterr().err


def test_run_refuses_a_missing_glob_and_an_unknown_config_key(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none*.zarr"), "--out", str(tmp_path / "run")]) == 2
    assert "no tiles match" in capsys.readouterr().err
    config = tmp_path / "run.toml"
    config.write_text("[pipeline]\nbatch = 3\n")
    argv = ["run", str(tmp_path), "--out", str(tmp_path / "r"), "--config", str(config)]
    assert main(argv) == 2
    assert "invalid [pipeline] settings" in capsys.readouterr().err


def test_demo_simulates_runs_finalises_and_evaluates(tmp_path, checkpoints):
    result = run_demo(tmp_path / "demo", n_tiles=2, size=256, seed=3, models=checkpoints,
                      n_workers=2, progress=False)  # fmt: skip
    assert result.run.tiles_done == 2 and result.run.tiles_failed == 0
    catalog = lsdb.read_hats(result.catalog).compute()
    assert len(catalog) == result.run.galaxies == result.evaluation.n_detections
    assert set(result.evaluation.metrics) == {"mlp", "cnn"}
    assert (tmp_path / "demo" / "report" / "report.md").is_file()
    assert list((tmp_path / "demo" / "report").glob("*.png"))
    again = run_demo(tmp_path / "demo", n_tiles=2, size=256, seed=3, models=checkpoints,
                     n_workers=1, progress=False)  # fmt: skip
    assert (again.run.tiles_done, again.run.tiles_skipped) == (0, 2)
    assert "z_mlp" in str(again)


def test_demo_summary_gives_the_pz_and_nz_figures_of_models_with_pz():
    from csst_photoz.pipeline.demo import _pz_lines

    metrics = {
        "sigma_nmad": 0.02,
        "pz": {"pit_ks": 0.0123, "coverage_68": 0.69, "coverage_95": 0.951, "crps": 0.04567},
        "nz": {"mean_bias": [0.0012, 0.0234]},
    }
    text = "\n".join(_pz_lines(metrics))
    assert "PIT KS 0.012" in text and "0.690 / 0.951" in text and "CRPS 0.0457" in text
    assert "per bin: 0.0012, 0.0234" in text
    assert _pz_lines({"sigma_nmad": 0.02}) == []
