import argparse
import subprocess
import sys

import pytest
import torch

from csst_photoz.models import load_model, read_metadata
from csst_photoz.training import read_log, train_model
from csst_photoz.training.cli import add_train_parser, build_parser, main, run


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
    assert meta.sigma_calibration.split == "validation"  # calibrated after training
    assert meta.sigma_calibration.scale > 0
    assert meta.training.config["seed"] == 3  # the command line wins
    assert meta.training.config["batch_size"] == 32
    assert [r["epoch"] for r in read_log(tmp_path / "ckpt" / "mlp.log.jsonl")] == [1, 2]

    code = run(["mlp", "--data", str(stamp_set), "--out", str(out), "--config", str(config),
                "--epochs", "1", "--seed", "3", "--quiet", "--no-resume",
                "--no-calibrate"])  # fmt: skip
    assert code == 0
    assert read_metadata(out).sigma_calibration is None
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


@pytest.mark.parametrize("kind", ["mlp", "hybrid"])
def test_command_line_and_python_api_write_the_same_checkpoint(
    kind, tmp_path, write_folder, fast_config
):
    folder = write_folder(tmp_path / "set", n=60, size=32)
    api = train_model(kind, folder, fast_config, tmp_path / "api" / f"{kind}.pt")
    config = tmp_path / "train.toml"
    config.write_text(
        "[training]\nseed = 1\nbatch_size = 32\nlearning_rate = 1e-3\nflux_realisations = 2\n"
        "dihedral_copies = 2\nmax_epochs = 2\n"
    )
    out = tmp_path / "cli" / f"{kind}.pt"
    args = build_parser().parse_args(
        [kind, "--data", str(folder), "--out", str(out), "--config", str(config), "--quiet"]
    )
    assert main(args) == 0
    from_api, from_cli = load_model(api.paths.best), load_model(out)
    assert from_api.sigma_scale == from_cli.sigma_scale != 1.0  # both calibrated, alike
    assert from_api.checkpoint_metadata == from_cli.checkpoint_metadata
    weights = from_cli.state_dict()
    for name, tensor in from_api.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
