"""Reading one named table of a TOML configuration file, with errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["read_toml_table"]


def read_toml_table(path: str | Path, table: str, *, what: str) -> dict[str, Any]:
    """The ``[table]`` of a TOML file whose only top-level entry it must be.

    Parameters
    ----------
    path
        The TOML file.
    table
        The table's name (``"training"``, ``"pipeline"``).
    what
        What the file configures, for the not-found message.

    Returns
    -------
    dict
        The table's contents (a copy).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Invalid TOML, other top-level keys, or no such table (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} configuration not found: {path}")
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML: {error}") from None
    unknown = sorted(set(document) - {table})
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; expected a [{table}] table")
    contents = document.get(table)
    if not isinstance(contents, dict):
        raise ValueError(f"{path}: no [{table}] table")
    return dict(contents)
