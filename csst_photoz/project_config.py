"""The project configuration: one TOML file with one section per subsystem, one loader.

::

    from csst_photoz.project_config import load_project_config

    project = load_project_config("project.toml", overrides=["training.seed=3"])
    project.training.batch_size, project.pipeline.photometry.kron_factor

Every section is optional (its model's defaults, which reproduce the paper's setup) and is
validated by its subsystem's model; unknown sections and unknown keys are errors naming the
file, the section and the key. ``docs/configuration.md`` lists the sections and their keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .config_files import (
    SECTIONS,
    apply_assignments,
    format_validation_error,
    read_sections,
)
from .instrument.config import InstrumentConfig, config_from_section
from .photometry import PhotometryConfig
from .pipeline.config import PipelineConfig, pipeline_config_from_sections
from .sim.tiles import SimulationConfig
from .training.config import TrainingConfig

__all__ = ["SECTIONS", "ProjectConfig", "load_project_config", "project_config_from_sections"]


class ProjectConfig(BaseModel):
    """All settings of a project, one validated section per subsystem.

    Attributes
    ----------
    instrument
        The camera (``[instrument]``, over the packaged ``csst.toml``).
    simulation
        Tile rendering and detector effects (``[simulation]``).
    photometry
        Detection, apertures and stamps (``[photometry]``); the same object as
        ``pipeline.photometry``.
    training
        The training recipe (``[training]``).
    pipeline
        The batch processor (``[pipeline]``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    instrument: InstrumentConfig
    simulation: SimulationConfig = SimulationConfig()
    photometry: PhotometryConfig = PhotometryConfig()
    training: TrainingConfig = TrainingConfig()
    pipeline: PipelineConfig = PipelineConfig()

    @model_validator(mode="after")
    def _one_photometry(self) -> ProjectConfig:
        if self.pipeline.photometry != self.photometry:
            raise ValueError("pipeline.photometry must be the photometry section")
        return self


def _validated(model: type[BaseModel], table: Mapping[str, Any], source: str, section: str) -> Any:
    try:
        return model.model_validate(table)
    except ValidationError as error:
        raise format_validation_error(error, source=source, section=section) from None


def project_config_from_sections(
    sections: Mapping[str, Mapping[str, Any]], *, source: str = "the command line"
) -> ProjectConfig:
    """A validated `ProjectConfig` from section tables (absent sections take their defaults).

    Parameters
    ----------
    sections
        Section name (one of `SECTIONS`) -> table of keys.
    source
        Where the tables came from, for error messages.

    Returns
    -------
    ProjectConfig

    Raises
    ------
    ValueError
        Unknown sections or keys, or invalid values, naming the source, the section and the key.
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    pipeline = pipeline_config_from_sections(
        sections.get("pipeline", {}), sections.get("photometry"), source=source
    )
    return ProjectConfig(
        instrument=config_from_section(sections.get("instrument"), source=source),
        simulation=_validated(
            SimulationConfig, sections.get("simulation", {}), source, "simulation"
        ),
        photometry=pipeline.photometry,
        training=_validated(TrainingConfig, sections.get("training", {}), source, "training"),
        pipeline=pipeline,
    )


def load_project_config(
    path: str | Path | None = None, *, overrides: Iterable[str] = ()
) -> ProjectConfig:
    """Load the project configuration: model defaults, then a TOML file, then ``--set`` overrides.

    Parameters
    ----------
    path
        A project TOML file with any of the sections ``[instrument]``, ``[simulation]``,
        ``[photometry]``, ``[training]``, ``[pipeline]``; None: the defaults. Older files load
        too: an instrument file with its keys at the top level (read as ``[instrument]``), a
        file with only ``[training]`` or only ``[pipeline]`` (with ``[pipeline.photometry]``).
        Relative paths in it (``throughput_file``, ``mlp_checkpoint``, ``cnn_checkpoint``) are
        relative to the file's folder.
    overrides
        ``section.key=value`` strings (the CLI's ``--set``; see
        :func:`~csst_photoz.config_files.parse_assignment`), applied in order over the file.

    Returns
    -------
    ProjectConfig

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Invalid TOML, unknown sections or keys, invalid values or malformed overrides, naming
        the file, the section and the key.
    """
    sections = read_sections(path) if path is not None else {}
    overrides = list(overrides)
    sections = apply_assignments(sections, overrides)
    source = str(path) if path is not None else "the defaults"
    if overrides:
        source += " with --set " + " ".join(overrides)
    return project_config_from_sections(sections, source=source)
