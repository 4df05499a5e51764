"""Reading the project TOML file: its sections, file-relative paths and ``--set`` overrides.

The lowest layer of the configuration (no subsystem imports, so every subsystem's loader may
use it). A project file holds up to five tables, one per subsystem::

    [instrument]   # csst_photoz.instrument.InstrumentConfig (keys override the packaged csst.toml)
    [simulation]   # csst_photoz.sim.SimulationConfig
    [photometry]   # csst_photoz.photometry.PhotometryConfig
    [training]     # csst_photoz.training.TrainingConfig
    [pipeline]     # csst_photoz.pipeline.PipelineConfig (its photometry is [photometry])

Two older shapes still load: an instrument file whose keys are at the top level (the shape of
the packaged ``csst.toml``), read as the ``[instrument]`` section where one is wanted, and a
``[pipeline.photometry]`` sub-table, read as the ``[photometry]`` section.
:mod:`csst_photoz.project_config` validates the sections with the subsystems' models.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

__all__ = [
    "SECTIONS",
    "apply_assignments",
    "format_validation_error",
    "parse_assignment",
    "read_sections",
]

#: The tables of a project file, in the order of the data flow.
SECTIONS: tuple[str, ...] = ("instrument", "simulation", "photometry", "training", "pipeline")

# Keys holding paths that are taken relative to the file's folder: (section, key path); a "*"
# stands for every key of a table.
_RELATIVE_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("instrument", ("bands", "*", "throughput_file")),
    ("training", ("mlp_checkpoint",)),
    ("training", ("cnn_checkpoint",)),
)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} configuration not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML (invalid TOML syntax: {error})") from None


def _resolve_relative_paths(table: dict[str, Any], keys: tuple[str, ...], base: Path) -> None:
    head, *rest = keys
    targets = list(table.values()) if head == "*" else [table.get(head)]
    if not rest:
        value = table.get(head)
        if head != "*" and isinstance(value, str) and not Path(value).is_absolute():
            table[head] = str(base / value)
        return
    for target in targets:
        if isinstance(target, dict):
            _resolve_relative_paths(target, tuple(rest), base)


def read_sections(
    path: str | Path, *, top_level_instrument: bool = True, what: str = "project"
) -> dict[str, dict[str, Any]]:
    """The sections of a project TOML file, as plain tables.

    Parameters
    ----------
    path
        The TOML file.
    top_level_instrument
        Read a file without any section table whose keys are at the top level as the
        ``[instrument]`` section (the shape of the packaged ``csst.toml``). If False such keys
        are errors.
    what
        What the file configures, for the not-found message.

    Returns
    -------
    dict
        Section name -> table (copies), for the sections the file holds. A
        ``[pipeline.photometry]`` sub-table is returned as the ``photometry`` section. Relative
        ``throughput_file``, ``mlp_checkpoint`` and ``cnn_checkpoint`` paths are made relative
        to the file's folder.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Invalid TOML, unknown top-level keys or tables, a section that is not a table, or the
        photometry given both as ``[photometry]`` and ``[pipeline.photometry]`` (naming the file).
    """
    path = Path(path)
    document = _read_toml(path, what)
    if top_level_instrument and document and not set(document) & set(SECTIONS):
        document = {"instrument": document}
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level key(s) {unknown}; a project file holds the tables "
            + ", ".join(f"[{name}]" for name in SECTIONS)
        )
    sections: dict[str, dict[str, Any]] = {}
    for name, table in document.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: '{name}' must be a table ([{name}]), not a value")
        sections[name] = copy.deepcopy(table)
    nested = sections.get("pipeline", {}).pop("photometry", None)
    if nested is not None:
        if "photometry" in sections:
            raise ValueError(
                f"{path}: photometry settings given twice, as [photometry] and "
                "[pipeline.photometry]; keep [photometry]"
            )
        if not isinstance(nested, dict):
            raise ValueError(f"{path}: 'pipeline.photometry' must be a table")
        sections["photometry"] = nested
    for section, keys in _RELATIVE_PATHS:
        if section in sections:
            _resolve_relative_paths(sections[section], keys, path.parent)
    return sections


def parse_assignment(text: str) -> tuple[tuple[str, ...], Any]:
    """Parse one ``--set`` override, ``section.key=value``.

    Parameters
    ----------
    text
        ``section.key[.subkey...]=value``; the value is read as a TOML value (``3``, ``1e-4``,
        ``true``, ``"cpu"``, ``[1, 2]``, ``{ max_epochs = 5 }``); a value that is not valid
        TOML is taken as a plain string (``--set pipeline.device=cpu``).

    Returns
    -------
    tuple
        The key path (section first) and the value.

    Raises
    ------
    ValueError
        Without ``=``, with an unknown section or without a key after it.
    """
    name, sep, raw = text.partition("=")
    keys = tuple(part.strip() for part in name.split("."))
    if not sep or len(keys) < 2 or not all(keys):
        raise ValueError(
            f"--set {text!r}: expected section.key=value, e.g. training.batch_size=256"
        )
    if keys[0] not in SECTIONS:
        raise ValueError(
            f"--set {text!r}: unknown section {keys[0]!r}; choose one of {list(SECTIONS)}"
        )
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    if keys[:2] == ("pipeline", "photometry"):
        keys = keys[1:]
    return keys, value


def apply_assignments(
    sections: Mapping[str, Mapping[str, Any]], assignments: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Sections with ``--set`` overrides applied (a new dict; ``sections`` is not changed).

    Parameters
    ----------
    sections
        Section name -> table, as from `read_sections`.
    assignments
        ``section.key=value`` strings (see `parse_assignment`); later ones win. Tables in the
        key path are created as needed; a key path through a value that is not a table is an
        error.

    Returns
    -------
    dict
    """
    result = copy.deepcopy({name: dict(table) for name, table in sections.items()})
    for text in assignments:
        keys, value = parse_assignment(text)
        table = result.setdefault(keys[0], {})
        for depth, key in enumerate(keys[1:-1], start=1):
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ValueError(f"--set {text!r}: {'.'.join(keys[: depth + 1])} is not a table")
        table[keys[-1]] = value
    return result


def format_validation_error(error: ValidationError, *, source: str, section: str) -> ValueError:
    """A `ValueError` listing a model's validation errors, one ``section.key: problem`` a line.

    Parameters
    ----------
    error
        What pydantic raised.
    source
        Where the settings came from (a file name, "the command line").
    section
        The project-file section.
    """
    lines = [f"{source}: invalid [{section}] settings:"]
    for item in error.errors():
        where = ".".join([section, *(str(part) for part in item["loc"])])
        problem = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {where}: {problem}")
    return ValueError("\n".join(lines))
