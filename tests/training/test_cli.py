import argparse
import subprocess
import sys

import pytest

from csst_photoz.models import read_metadata
from csst_photoz.training import read_log
from csst_photoz.training.cli import add_train_parser, run


def test_module_entry_point_trains_with_config_and_overrides(stamp_set, tmp_path, capsys):
    config = tmp_path / "train.toml"
    config.write_text(
        "[training]\nseed = 4\nbatch_size = 32\nlearning_rate = 1e-3\nflux_realisations = 2\n"
        "[training.mlp]\nmax_epochs = 5\n"
    )
    out = tmp_path / "ckpt" / "mlp.pt"
    code = run(["mlp", "--data", str(stamp_set), "--out", str(out), "--config", str(config),
                "--epochs", "2", "--seed", "3", "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "mlp: 2 epochs" in printed and "fitted on the validation split" in printed
    meta = read_metadata(out)
    assert meta["sigma_calibration"]["split"] == "validation"  # calibrated after training
    assert meta["sigma_calibration"]["scale"] > 0
    assert meta["extra"]["training"]["config"]["seed"] == 3  # the command line wins
    assert meta["extra"]["training"]["config"]["batch_size"] == 32
    assert [r["epoch"] for r in read_log(tmp_path / "ckpt" / "mlp.log.jsonl")] == [1, 2]

    code = run(["mlp", "--data", str(stamp_set), "--out", str(out), "--config", str(config),
                "--epochs", "1", "--seed", "3", "--quiet", "--no-resume",
                "--no-calibrate"])  # fmt: skip
    assert code == 0
    assert read_metadata(out)["sigma_calibration"] is None
    assert [r["epoch"] for r in read_log(tmp_path / "ckpt" / "mlp.log.jsonl")] == [1]


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nlr = 1\n")
    args = ["mlp", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]
    assert run([*args, "--config", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err
    assert run(args) == 2
    assert "training table not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["resnet", "--data", str(tmp_path), "--out", "m.pt"])
    with pytest.raises(SystemExit):
        run(["mlp", "--data", str(tmp_path), "--out", "m.pt", "--epochs", "0"])


def test_train_parser_plugs_into_a_command_parser():
    parser = argparse.ArgumentParser(prog="csst-photoz")
    add_train_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "hybrid-transfer", "--data", "d", "--out", "o.pt",
                              "--mlp-checkpoint", "m.pt", "--cnn-checkpoint", "c.pt"])  # fmt: skip
    assert args.kind == "hybrid-transfer" and str(args.mlp_checkpoint) == "m.pt"
    assert callable(args.func) and not args.no_resume


def test_python_dash_m_shows_help():
    result = subprocess.run(
        [sys.executable, "-m", "csst_photoz.training", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "hybrid-transfer" in result.stdout and "--no-resume" in result.stdout
