"""Help texts of every ``csst-photoz`` command, and refusals worded for the command line."""

import argparse
import json

import pytest

from csst_photoz.cli import build_parser, main
from csst_photoz.io.run_store import RunSettingsError, RunStore


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every command and sub-command, depth first."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*prefix, name))


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("words", list(COMMANDS), ids=[" ".join(w) or "-" for w in COMMANDS])
def test_help_has_no_doubled_percent_signs(words):
    text = COMMANDS[words].format_help()
    assert "%%" not in text
    assert "%(" not in text


def test_calibrate_help_states_the_coverage_with_one_percent_sign(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "so that 68.27% of its validation galaxies lie within +-sigma" in out


def test_simulate_merge_help_is_complete_sentences(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "merge", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "into one folder of the same layout." in out
    assert "A part given twice, or a copy of a part" in out and "is refused." in out
    assert "slices when every part is a slice of one run, otherwise renumber" in out


def _earlier_run(folder):
    """A run folder whose ``run.json`` holds settings no new run has."""
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"pipeline": {"from": "an older run"}}))
    return folder


def test_run_refusal_names_the_command_line_flag(tmp_path, capsys):
    out = _earlier_run(tmp_path / "run")
    code = main(["run", str(tmp_path / "tile.zarr"), "--out", str(out), "--no-models", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings" in err and "'pipeline'" in err
    assert "--overwrite to discard it" in err
    assert "overwrite=True" not in err


def test_run_refusal_from_python_names_the_keyword(tmp_path):
    store = RunStore(_earlier_run(tmp_path / "run"))
    with pytest.raises(RunSettingsError, match=r"other settings.*overwrite=True to discard") as e:
        store.check_settings({"pipeline": {"threshold": 2}})
    assert isinstance(e.value, ValueError)
    assert e.value.changed == ["pipeline"]
    assert "--overwrite" in str(e.value.with_option("--overwrite"))
    store.check_settings({"pipeline": {"threshold": 2}}, overwrite=True)  # discards the old run
    assert json.loads(store.settings_path.read_text()) == {"pipeline": {"threshold": 2}}
