"""Every command with ``--config`` reads the one project file and takes ``--set`` overrides."""

import argparse
import contextlib
import types

import pytest

import csst_photoz.pipeline
import csst_photoz.pipeline.batch
import csst_photoz.training.loop
from csst_photoz.cli import build_parser, main

PROJECT = """\
[instrument]
read_noise_e = 4.0

[simulation]
bright_stars = 2
hot_pixel_fraction = 0.001

[photometry]
kron_factor = 2.0

[training]
seed = 5
batch_size = 64

[pipeline]
batch_size = 128
threads = 2
"""


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "project.toml"
    path.write_text(PROJECT)
    return path


def _commands(parser, prefix=()):
    """(command words, parser) of every leaf command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield prefix, parser


def test_every_command_with_config_takes_set():
    with_config = []
    for words, parser in _commands(build_parser()):
        options = {option for action in parser._actions for option in action.option_strings}
        if "--config" in options:
            with_config.append(" ".join(words))
            assert "--set" in options, words
    expected = {
        "instrument",
        "simulate catalog",
        "simulate tiles",
        "simulate stamps",
        "train",
        "run",
    }
    assert set(with_config) == expected


def test_every_command_starting_a_cluster_has_the_three_cluster_options():
    for words, parser in _commands(build_parser()):
        options = {option for action in parser._actions for option in action.option_strings}
        if "--scheduler-file" in options:
            assert {"--workers", "--memory-limit"} <= options, words


def test_instrument_reads_the_project_file_and_set(project, capsys):
    assert main(["instrument", "--config", str(project)]) == 0
    from_file = capsys.readouterr().out
    assert main(["instrument"]) == 0
    assert capsys.readouterr().out != from_file  # read noise 4 e- changes the depths
    assert main(["instrument", "--set", "instrument.read_noise_e=4.0"]) == 0
    assert capsys.readouterr().out == from_file
    assert main(["instrument", "--config", str(project), "--set", "instrument.read_nois=1"]) == 2
    err = capsys.readouterr().err
    assert "project.toml" in err and "instrument.read_nois: unknown key" in err


@pytest.fixture
def simulate_tiles_calls(monkeypatch):
    calls = []

    @contextlib.contextmanager
    def connect(**kwargs):
        calls.append(("connect", kwargs))
        yield None

    def simulate_tiles(specs, out, **kwargs):
        calls.append(("simulate_tiles", kwargs))
        return []

    monkeypatch.setattr(csst_photoz.pipeline, "connect", connect, raising=False)
    monkeypatch.setattr(csst_photoz.pipeline, "simulate_tiles", simulate_tiles, raising=False)
    return calls


def test_simulate_tiles_flags_override_the_simulation_section(
    project, tmp_path, simulate_tiles_calls
):
    args = ["simulate", "tiles", "--n-tiles", "1", "--size", "32", "--seed", "1"]
    args += ["--out", str(tmp_path / "tiles"), "--config", str(project), "--workers", "2"]
    assert main([*args, "--set", "simulation.cosmic_rays_per_mpix=3", "--no-noise"]) == 0
    (_, cluster), (_, call) = simulate_tiles_calls
    assert cluster == {"scheduler_file": None, "n_workers": 2, "memory_limit": "auto"}
    effects = call["effects"]
    assert (effects.bright_stars, effects.hot_pixel_fraction) == (2, 0.001)  # the file
    assert effects.cosmic_rays_per_mpix == 3.0 and effects.noise is False
    assert call["render"].paper_setup is False
    assert call["instrument"].config.read_noise_e == 4.0

    simulate_tiles_calls.clear()
    more = ["--set", "simulation.bright_stars=9", "--bright-stars", "1", "--paper-setup"]
    assert main([*args, *more]) == 0
    call = simulate_tiles_calls[1][1]
    assert call["effects"].bright_stars == 1  # the dedicated flag wins over --set
    assert call["effects"].noise is True
    assert call["render"].paper_setup is True


def test_run_reads_pipeline_and_photometry_and_shorthands(project, tmp_path, monkeypatch):
    seen = {}

    def run(tiles, out, *, config, **kwargs):
        seen.update(config=config, **kwargs)
        return types.SimpleNamespace(tiles_failed=0)

    monkeypatch.setattr(csst_photoz.pipeline.batch, "run", run)
    args = ["run", str(tmp_path / "t.zarr"), "--out", str(tmp_path / "run"), "--no-models"]
    assert main([*args, "--config", str(project)]) == 0
    config = seen["config"]
    assert (config.batch_size, config.torch_threads) == (128, 2)
    assert config.photometry.kron_factor == 2.0
    assert seen["memory_limit"] == "auto"

    more = ["--set", "pipeline.device=cpu", "--set", "photometry.min_area=3", "--threads", "3"]
    assert main([*args, "--config", str(project), *more, "--memory-limit", "2GB"]) == 0
    config = seen["config"]
    assert (config.device, config.torch_threads, config.photometry.min_area) == ("cpu", 3, 3)
    assert seen["memory_limit"] == "2GB"
    assert main([*args, "--set", "pipeline.thread=3"]) == 2


def test_train_reads_the_training_section_and_set(project, tmp_path, monkeypatch):
    seen = {}

    def train_model(kind, data, config, out, **kwargs):
        seen["config"] = config
        return types.SimpleNamespace(history=[])

    monkeypatch.setattr(csst_photoz.training.loop, "train_model", train_model)
    args = ["train", "mlp", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]
    assert main([*args, "--config", str(project), "--set", "training.learning_rate=1e-3"]) == 0
    config = seen["config"]
    assert (config.seed, config.batch_size, config.learning_rate) == (5, 64, 1e-3)
    assert main([*args, "--set", "training.seed=8", "--seed", "9", "--epochs", "2"]) == 0
    assert (seen["config"].seed, seen["config"].max_epochs) == (9, 2)
    assert main([*args, "--set", "training.sead=8"]) == 2
