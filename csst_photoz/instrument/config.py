"""Typed, immutable configuration of the CSST survey camera, loadable from TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from ..config_files import format_validation_error, read_sections
from ..constants import CSST_BANDS as CSST_BAND_ORDER

__all__ = [
    "CSST_BAND_ORDER",
    "BandConfig",
    "InstrumentConfig",
    "ThroughputFigures",
    "config_from_section",
    "default_config_path",
    "load_config",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ThroughputFigures(_Frozen):
    """The figures a smooth throughput model is pinned to (see ``throughput_model``)."""

    blue_half_max_angstrom: float = Field(gt=0)
    red_half_max_angstrom: float = Field(gt=0)
    pivot_angstrom: float = Field(gt=0)
    peak_throughput: float = Field(gt=0, le=1)
    edge_softness: float = Field(default=0.005, gt=0, le=0.01)

    @model_validator(mode="after")
    def _ordered(self) -> ThroughputFigures:
        if not self.blue_half_max_angstrom < self.pivot_angstrom < self.red_half_max_angstrom:
            raise ValueError(
                "need blue_half_max_angstrom < pivot_angstrom < red_half_max_angstrom, got "
                f"{self.blue_half_max_angstrom}, {self.pivot_angstrom}, "
                f"{self.red_half_max_angstrom}"
            )
        return self


class BandConfig(_Frozen):
    """One band: exposures, sky, and its throughput (smooth model or a two-column file)."""

    n_exposures: int = Field(gt=0, description="number of exposures summed in the image")
    sky_e_per_s: float = Field(ge=0, description="sky background [e-/s/pixel]")
    throughput: ThroughputFigures | None = None
    throughput_file: Path | None = Field(
        default=None, description="two-column file: wavelength [Angstrom], throughput"
    )

    @model_validator(mode="after")
    def _one_throughput(self) -> BandConfig:
        if (self.throughput is None) == (self.throughput_file is None):
            raise ValueError(
                "give exactly one of 'throughput' (model figures) or 'throughput_file'"
            )
        return self


class InstrumentConfig(_Frozen):
    """The CSST survey camera. Defaults live in the packaged ``csst.toml``."""

    aperture_diameter_m: float = Field(gt=0)
    central_obscuration: float = Field(ge=0, lt=1)
    pixel_scale_arcsec: float = Field(gt=0)
    exposure_time_s: float = Field(gt=0, description="one exposure [s]")
    dark_current_e_per_s: float = Field(ge=0, description="[e-/s/pixel]")
    read_noise_e: float = Field(ge=0, description="[e-/pixel/exposure]")
    psf_jitter_fwhm_arcsec: float = Field(ge=0)
    bands: Mapping[str, BandConfig]

    @field_validator("bands", mode="after")
    @classmethod
    def _read_only_bands(cls, bands: Mapping[str, BandConfig]) -> Mapping[str, BandConfig]:
        if not bands:
            raise ValueError("the instrument needs at least one band")
        return MappingProxyType(dict(bands))

    @field_serializer("bands")
    def _bands_as_dict(self, bands: Mapping[str, BandConfig]) -> dict[str, BandConfig]:
        return dict(bands)


def default_config_path() -> Path:
    """Path of the packaged default configuration (the paper's CSST values)."""
    return Path(str(resources.files("csst_photoz.instrument") / "data" / "csst.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; a band's ``throughput_file`` replaces its model figures."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            if "throughput_file" in value:
                merged[key] = {k: v for k, v in merged[key].items() if k != "throughput"}
            if "throughput" in value:
                merged[key] = {k: v for k, v in merged[key].items() if k != "throughput_file"}
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_section(
    section: Mapping[str, Any] | None = None,
    *,
    source: str = "the packaged defaults",
    **overrides: Any,
) -> InstrumentConfig:
    """The instrument configuration: packaged defaults, then a settings table, then keywords.

    Parameters
    ----------
    section
        Keys of an ``[instrument]`` section (or of a file in the packaged ``csst.toml``'s
        shape), merged over the defaults: tables are merged, so ``[bands.y] n_exposures = 6``
        changes only that value, and a band's ``throughput_file`` replaces its model figures.
        Relative ``throughput_file`` paths are taken relative to the working directory
        (:func:`~csst_photoz.config_files.read_sections` makes a file's relative to the file).
    source
        Where ``section`` came from, for error messages.
    **overrides
        Top-level keys (e.g. ``pixel_scale_arcsec=0.074``) or ``bands={...}`` merged last.

    Returns
    -------
    InstrumentConfig

    Raises
    ------
    ValueError
        For unknown keys or out-of-range values, naming the source and the key.
    """
    data = _read_toml(default_config_path())
    if section:
        if not isinstance(section.get("bands", {}), Mapping):
            raise ValueError(f"instrument configuration {source}: 'bands' must be a table of bands")
        data = _merge(data, section)
    if overrides:
        data = _merge(data, overrides)
        source += " with keyword overrides " + ", ".join(sorted(overrides))
    try:
        return InstrumentConfig.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(
            exc, source=f"instrument configuration (from {source})", section="instrument"
        ) from None


def load_config(path: str | Path | None = None, **overrides: Any) -> InstrumentConfig:
    """Load the instrument configuration: packaged defaults, then a TOML file, then keywords.

    Parameters
    ----------
    path
        Optional TOML file: a project file, whose ``[instrument]`` section is read (a file
        without one gives the defaults), or a file with the packaged ``csst.toml``'s layout
        (keys at the top level). Its keys override the defaults (see `config_from_section`);
        relative ``throughput_file`` paths are taken relative to this file.
    **overrides
        Top-level keys (e.g. ``pixel_scale_arcsec=0.074``) or ``bands={...}`` merged last.

    Returns
    -------
    InstrumentConfig

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For unknown keys or tables, out-of-range values or malformed TOML, naming the file and
        the key.

    """
    if path is None:
        return config_from_section(None, **overrides)
    sections = read_sections(path, what="instrument")
    return config_from_section(sections.get("instrument"), source=str(path), **overrides)
