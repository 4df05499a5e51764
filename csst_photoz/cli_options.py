"""Command-line options shared by the ``csst-photoz`` commands, written once.

- `positive_int`: the argparse type of counts (``--n``, ``--workers``, ``--epochs``, ...);
- `add_cluster_options` / `cluster_arguments`: ``--workers``, ``--memory-limit`` and
  ``--scheduler-file`` for the commands that start or join a Dask cluster;
- `add_config_options` / `project_overrides`: ``--config`` (the project TOML file) and
  ``--set section.key=value``, the one way to override a configuration key from the command
  line (``docs/configuration.md``); a command's dedicated flags (``--device``, ``--threads``,
  ...) are shorthands of named keys, applied after ``--set``.

Nothing heavy is imported here, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "add_cluster_options",
    "add_config_options",
    "cluster_arguments",
    "positive_int",
    "project_overrides",
    "toml_assignment",
]


def positive_int(text: str) -> int:
    """Argparse type: an integer > 0 (else an argparse error naming the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--workers``, ``--memory-limit`` and ``--scheduler-file`` to ``parser``.

    Read them back with `cluster_arguments`, the keywords of
    :func:`~csst_photoz.pipeline.connect`.
    """
    parser.add_argument(
        "--workers", type=positive_int, help="local Dask workers (default: one per core)"
    )
    parser.add_argument(
        "--memory-limit",
        default="auto",
        help="memory per local worker, e.g. 16GB (default: the machine's, shared; a full "
        "9216 x 9232 tile needs about 12 GB)",
    )
    parser.add_argument(
        "--scheduler-file", type=Path, help="use a running Dask cluster (instead of workers)"
    )


def cluster_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`~csst_photoz.pipeline.connect` from `add_cluster_options`'s."""
    return {
        "scheduler_file": args.scheduler_file,
        "n_workers": args.workers,
        "memory_limit": args.memory_limit,
    }


def add_config_options(parser: argparse.ArgumentParser, *, sections: str) -> None:
    """Add ``--config PATH`` and the repeatable ``--set SECTION.KEY=VALUE`` to ``parser``.

    Parameters
    ----------
    parser
        The command's parser.
    sections
        The sections the command reads, for the help text (e.g. ``"[training]"``).
    """
    parser.add_argument(
        "--config",
        type=Path,
        help=f"project TOML file (docs/configuration.md); this command reads its {sections}",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key (a TOML value; repeatable; after --config)",
    )


def toml_assignment(key: str, value: Any) -> str:
    """``key=value`` with ``value`` written as a TOML literal (the form ``--set`` takes).

    Parameters
    ----------
    key
        ``section.key``.
    value
        A bool, int, float, str or path.
    """
    if isinstance(value, bool):
        literal = "true" if value else "false"
    elif isinstance(value, int | float):
        literal = repr(value)
    elif isinstance(value, str | Path):
        literal = json.dumps(str(value))
    else:
        raise TypeError(f"no TOML literal for {key}={value!r}")
    return f"{key}={literal}"


def project_overrides(
    args: argparse.Namespace, shorthands: Mapping[str, Any] | None = None
) -> list[str]:
    """The overrides of a command: its ``--set`` strings, then its dedicated flags.

    Parameters
    ----------
    args
        Parsed arguments of a parser with `add_config_options`.
    shorthands
        ``section.key`` -> the value of the flag that is its shorthand; None values (flags not
        given) are skipped. They come last, so a dedicated flag wins over ``--set``.

    Returns
    -------
    list of str
        ``section.key=value`` strings for
        :func:`~csst_photoz.project_config.load_project_config`.
    """
    flags = [toml_assignment(k, v) for k, v in (shorthands or {}).items() if v is not None]
    return [*args.set, *flags]
