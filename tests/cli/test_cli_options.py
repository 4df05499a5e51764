"""The command-line options written once in ``csst_photoz.cli_options``."""

import argparse
from pathlib import Path

import pytest

from csst_photoz.cli_options import (
    add_cluster_options,
    add_config_options,
    cluster_arguments,
    positive_int,
    project_overrides,
    toml_assignment,
)
from csst_photoz.config_files import parse_assignment


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("12", 12), (" 3", 3)])
def test_positive_int_accepts_positive_integers(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "many", "2.5", ""])
def test_positive_int_rejects_everything_else_with_an_argparse_error(text):
    with pytest.raises(argparse.ArgumentTypeError, match="must be a positive integer"):
        positive_int(text)


def _parser(*adders):
    parser = argparse.ArgumentParser(exit_on_error=False)
    for add in adders:
        add(parser)
    return parser


def test_cluster_options_are_the_union_of_the_old_two_versions():
    parser = _parser(add_cluster_options)
    defaults = cluster_arguments(parser.parse_args([]))
    assert defaults == {"scheduler_file": None, "n_workers": None, "memory_limit": "auto"}
    args = parser.parse_args(["--workers", "3", "--memory-limit", "16GB"])
    assert cluster_arguments(args) == {
        "scheduler_file": None,
        "n_workers": 3,
        "memory_limit": "16GB",
    }
    args = parser.parse_args(["--scheduler-file", "sched.json"])
    assert cluster_arguments(args)["scheduler_file"] == Path("sched.json")
    with pytest.raises(argparse.ArgumentError, match="positive integer"):
        parser.parse_args(["--workers", "0"])


def test_config_options_collect_repeated_set_in_order():
    parser = _parser(lambda p: add_config_options(p, sections="[training]"))
    args = parser.parse_args(["--config", "p.toml", "--set", "training.seed=1", "--set", "a.b=2"])
    assert args.config == Path("p.toml")
    assert args.set == ["training.seed=1", "a.b=2"]
    assert parser.parse_args([]).set == []
    assert "[training]" in parser.format_help()


def test_dedicated_flags_come_after_set_and_skip_flags_not_given():
    parser = _parser(lambda p: add_config_options(p, sections="[pipeline]"))
    args = parser.parse_args(["--set", "pipeline.threads=4"])
    overrides = project_overrides(args, {"pipeline.threads": 2, "pipeline.device": None})
    assert overrides == ["pipeline.threads=4", "pipeline.threads=2"]


@pytest.mark.parametrize(
    "value", [True, False, 3, 2.5e-4, "cpu", 'a "quoted" name', Path("ckpt/mlp.pt")]
)
def test_shorthand_values_round_trip_through_the_set_syntax(value):
    keys, parsed = parse_assignment(toml_assignment("training.x", value))
    assert keys == ("training", "x")
    assert parsed == (str(value) if isinstance(value, Path) else value)
    assert type(parsed) is (str if isinstance(value, Path) else type(value))


def test_shorthand_of_an_unsupported_value_is_a_type_error():
    with pytest.raises(TypeError, match="no TOML literal"):
        toml_assignment("training.x", object())
