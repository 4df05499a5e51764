"""Typed, validated checkpoint metadata: one model that every reader of a checkpoint uses.

:class:`CheckpointMetadata` (``format_version`` 2) holds the network (architecture, variant,
configuration, bands), what it reads (:class:`InputDeclaration`: per band the catalogue's flux
and error columns with their unit and flux definition, and the stamps), its input transform,
the uncertainty calibration (:class:`SigmaCalibration`), the training provenance
(:class:`TrainingRecord`), validation metrics, the package version and the tensors' digest.
Every record is frozen and refuses unknown keys. Version-1 metadata (every checkpoint written
before version 2, the shipped ones included) is upgraded by `upgrade_v1`, in this one place;
its unknown keys are kept under ``extra``. The file around the metadata is
:mod:`csst_photoz.io.checkpoint_file`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "SIMULATOR_APERTURE",
    "SIMULATOR_FLUX_UNIT",
    "CheckpointError",
    "CheckpointMetadata",
    "DomainReference",
    "FluxInput",
    "InputDeclaration",
    "PzCalibration",
    "PzHeadFit",
    "PzRecord",
    "SigmaCalibration",
    "SplitRecord",
    "StampInput",
    "TrainingColumns",
    "TrainingRecord",
    "upgrade_v1",
]

#: Identifier written into every checkpoint's metadata.
CHECKPOINT_FORMAT = "csst_photoz.checkpoint"
#: Version of the metadata layout written now (version 1 is still read).
CHECKPOINT_FORMAT_VERSION = 2
#: Unit and flux definition of the simulator's photometry (``kron_flux_<b>``), which every
#: version-1 network was trained on: electrons in the 1 x Kron elliptical aperture.
SIMULATOR_FLUX_UNIT = "electron"
SIMULATOR_APERTURE = "kron_1"

_SIMULATOR_FLUX = "kron_flux_{band}"
_SIMULATOR_FLUX_ERR = "kron_flux_err_{band}"
# version 1 knew three architectures; what each read (for the upgrade's input declaration)
_V1_READS = {"mlp": (True, False), "cnn": (False, True), "hybrid": (True, True)}
_V1_STAMP_SIZE = 32


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit what was asked for (names the file)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FluxInput(_Record):
    """The catalogue columns one band's flux comes from.

    Attributes
    ----------
    band
        Band name.
    flux, flux_err
        Column names of the flux and its 1-sigma error.
    unit
        Their unit (``"electron"``: electrons in the summed exposures; ``"nJy"`` or another
        flux density astropy knows; ``"ABmag"``: AB magnitudes and magnitude errors), as
        :func:`csst_photoz.units.normalise_unit` names it.
    aperture
        The flux definition: ``"kron_<k>"`` for ``k`` x the Kron radius (elliptical),
        ``"circle_<r>"`` for a circle of radius ``r`` arcsec.
    """

    band: str
    flux: str
    flux_err: str
    unit: str = SIMULATOR_FLUX_UNIT
    aperture: str = SIMULATOR_APERTURE


class StampInput(_Record):
    """The image stamps a network reads.

    Attributes
    ----------
    bands
        Band order of the stamp planes.
    size
        Side in pixels the network was trained on (others are cropped or padded).
    unit
        Pixel unit.
    """

    bands: tuple[str, ...]
    size: int = Field(gt=0)
    unit: str = SIMULATOR_FLUX_UNIT


class InputDeclaration(_Record):
    """What a network reads: per band a flux column pair, and/or stamps.

    Attributes
    ----------
    fluxes
        One entry per band, in the network's input order (empty for stamp-only networks).
    stamps
        The stamps (None for flux-only networks).
    """

    fluxes: tuple[FluxInput, ...] = ()
    stamps: StampInput | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> InputDeclaration:
        if not self.fluxes and self.stamps is None:
            raise ValueError("an input declaration needs fluxes, stamps or both")
        bands = [entry.band for entry in self.fluxes]
        if len(set(bands)) != len(bands):
            raise ValueError(f"flux inputs name a band twice: {bands}")
        return self

    @property
    def flux_bands(self) -> tuple[str, ...]:
        """Bands of the flux inputs, in input order."""
        return tuple(entry.band for entry in self.fluxes)

    @property
    def flux_columns(self) -> list[str]:
        """Flux column names, in input order."""
        return [entry.flux for entry in self.fluxes]

    @property
    def error_columns(self) -> list[str]:
        """Flux-error column names, in input order."""
        return [entry.flux_err for entry in self.fluxes]

    @classmethod
    def simulated(
        cls,
        bands: Sequence[str],
        *,
        fluxes: bool = True,
        stamp_size: int | None = None,
        flux_columns: Sequence[str] | None = None,
        error_columns: Sequence[str] | None = None,
    ) -> InputDeclaration:
        """The simulator's photometry: electrons in the 1 x Kron aperture (and its stamps).

        Parameters
        ----------
        bands
            Band names in input order.
        fluxes
            Whether the network reads fluxes.
        stamp_size
            Stamp side of a stamp network (None: no stamps).
        flux_columns, error_columns
            Column names per band (default ``kron_flux_<b>`` / ``kron_flux_err_<b>``).
        """
        bands = tuple(str(b) for b in bands)
        flux_columns = flux_columns or [_SIMULATOR_FLUX.format(band=b) for b in bands]
        error_columns = error_columns or [_SIMULATOR_FLUX_ERR.format(band=b) for b in bands]
        if len(flux_columns) != len(bands) or len(error_columns) != len(bands):
            raise ValueError(
                f"{len(flux_columns)} flux and {len(error_columns)} error columns for "
                f"{len(bands)} bands {list(bands)}"
            )
        entries = tuple(
            FluxInput(band=band, flux=flux, flux_err=error)
            for band, flux, error in zip(bands, flux_columns, error_columns, strict=True)
        )
        stamps = None if stamp_size is None else StampInput(bands=bands, size=stamp_size)
        return cls(fluxes=entries if fluxes else (), stamps=stamps)


class SigmaCalibration(_Record):
    """Post-hoc factor on a network's ``exp(log_sigma)`` and how it was fitted.

    Attributes
    ----------
    scale
        The factor (finite, > 0).
    method, split, galaxies, data
        How, on which split, on how many galaxies and on which data it was fitted.
    coverage_68_before, coverage_95_before, coverage_68_after, coverage_95_after
        Fractions of those galaxies within 1 and 2 sigma, before and after.
    package_version
        Package version that fitted it.
    """

    scale: float
    method: str | None = None
    split: str | None = None
    galaxies: int | None = None
    data: str | None = None
    coverage_68_before: float | None = None
    coverage_95_before: float | None = None
    coverage_68_after: float | None = None
    coverage_95_after: float | None = None
    package_version: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _positive_scale(cls, data: Any) -> Any:
        scale = data.get("scale") if isinstance(data, Mapping) else None
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ValueError(f"sigma calibration needs a numeric 'scale', got {data!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"sigma calibration scale must be finite and > 0, got {scale}")
        return data


class PzCalibration(_Record):
    """Recalibration of a network's p(z), fitted on its validation split (Bordoloi et al. 2010).

    Every galaxy's cumulative distribution ``C(z)`` becomes ``G(C(z))``, with ``G`` the
    piecewise-linear map through ``(levels[i], pit_cdf[i])``: the empirical cumulative
    distribution of the probability integral transform (PIT) of the validation galaxies, so
    that their PIT becomes uniform.

    Attributes
    ----------
    levels
        Increasing knots of ``G`` in [0, 1], starting at 0 and ending at 1 (the validation
        PIT's quantiles).
    pit_cdf
        Non-decreasing values of ``G`` at ``levels`` (the fraction of validation PIT values
        below each level), from 0 to 1.
    method, split, galaxies, data
        How, on which split, on how many galaxies and on which data it was fitted.
    pit_ks_before, pit_ks_after
        KS distance of the validation PIT to uniform before and after.
    package_version
        Package version that fitted it.
    """

    levels: tuple[float, ...]
    pit_cdf: tuple[float, ...]
    method: str | None = None
    split: str | None = None
    galaxies: int | None = None
    data: str | None = None
    pit_ks_before: float | None = None
    pit_ks_after: float | None = None
    package_version: str | None = None

    @model_validator(mode="after")
    def _monotonic_map(self) -> PzCalibration:
        levels = list(self.levels)
        values = list(self.pit_cdf)
        if len(levels) < 2 or len(levels) != len(values):
            raise ValueError(
                f"p(z) calibration needs >= 2 levels and as many pit_cdf values, got "
                f"{len(levels)} and {len(values)}"
            )
        for name, knots, strict in (("levels", levels, True), ("pit_cdf", values, False)):
            if not all(math.isfinite(v) for v in knots) or knots[0] != 0.0 or knots[-1] != 1.0:
                raise ValueError(f"p(z) calibration {name} must be finite, from 0 to 1")
            steps = [b - a for a, b in itertools.pairwise(knots)]
            if any(step <= 0 if strict else step < 0 for step in steps):
                kind = "increasing" if strict else "non-decreasing"
                raise ValueError(f"p(z) calibration {name} must be {kind}")
        return self


class PzHeadFit(_Record):
    """How a p(z) head was fitted after its network, on the frozen last hidden layer.

    ``csst-photoz pz fit`` (:func:`csst_photoz.training.pz_fit.fit_pz_head`) gives a trained
    network (with or without a head) a new p(z) head, and ``csst-photoz train`` refits the
    head it trained with the network on the best network at the end: the network's weights,
    point estimate and uncertainty are unchanged, only the head is trained, on the network's
    training split.

    Attributes
    ----------
    method
        What was trained on what.
    data, data_hash
        The training set and its hash (the network's own, checked on fitting).
    galaxies, copies
        Training galaxies and augmented copies of each (flux realisations and/or stamp
        rotations, as the network's recipe draws them).
    epochs, best_epoch
        Epochs run and the epoch kept (lowest validation loss; 0: the head it started from,
        trained with the network, was kept).
    validation_loss
        The head's loss (negative log-likelihood or cross-entropy) on the validation split at
        the kept epoch.
    seed
        Seed of the head's initial weights, the augmentation and the batch order.
    package_version
        Package version that fitted it.
    """

    method: str
    data: str
    data_hash: str
    galaxies: int = Field(gt=0)
    copies: int = Field(gt=0)
    epochs: int = Field(ge=1)
    best_epoch: int = Field(ge=0)
    validation_loss: float
    seed: int
    package_version: str


class PzRecord(_Record):
    """What a network's p(z) is: its grid, its head and its recalibration.

    A checkpoint without one (``CheckpointMetadata.pz`` None, every checkpoint written before
    p(z) heads existed) gives no p(z) and no p(z) columns.

    Attributes
    ----------
    kind
        ``"softmax"`` (probabilities of the grid's bins) or ``"mixture"`` (Gaussian mixture,
        integrated over the grid's bins).
    bins
        Bins of the grid, equal width over ``[z_min, z_max]``.
    z_min, z_max
        Range of the grid.
    calibration
        Recalibration fitted on the validation split, or None.
    head_fit
        How the head was fitted after its network (:class:`PzHeadFit`), or None: trained with
        the network.
    """

    kind: Literal["softmax", "mixture"]
    bins: int = Field(gt=1)
    z_min: float = 0.0
    z_max: float = Field(gt=0)
    calibration: PzCalibration | None = None
    head_fit: PzHeadFit | None = None


class SplitRecord(_Record):
    """How to redraw a training run's train / validation / test split, and its SHA-256."""

    seed: int
    n_rows: int
    n_train: int
    n_validation: int
    n_test: int
    sha256: str


class TrainingColumns(_Record):
    """The training table's columns a network was trained on."""

    flux: tuple[str, ...]
    flux_err: tuple[str, ...]
    redshift: str


class TrainingRecord(_Record):
    """Where a network's training came from (enough to rebuild its split and test set).

    Attributes
    ----------
    kind
        The network kind trained (``"mlp"``, ``"cnn"``, ``"hybrid"``, ``"hybrid-transfer"``).
    config
        The training configuration (``TrainingConfig.model_dump(mode="json")``).
    data_source, data_hash
        The training set and its hash.
    split
        The split.
    columns
        Table columns read.
    n_selected
        Galaxies passing the selection.
    epoch, world_size, device, augmentation
        The saved epoch, processes, device type and augmentation plan (None when unknown).
    """

    kind: str
    config: dict[str, Any]
    data_source: str
    data_hash: str
    split: SplitRecord
    columns: TrainingColumns
    n_selected: int
    epoch: int | None = None
    world_size: int | None = None
    device: str | None = None
    augmentation: dict[str, Any] | None = None


class DomainReference(_Record):
    """Where a network was trained: what its per-galaxy domain flag compares a galaxy with.

    Fitted on the training rows at the end of training
    (:func:`csst_photoz.models.domain.fit_domain`, whose module documents the flag);
    checkpoints without it (written before it existed) flag only missing bands and estimates
    outside 0..4, which are left unchanged.

    Attributes
    ----------
    z_min, z_max
        Redshift range of the training rows: predictions are clamped to it.
    sigma_max
        Cap on the 1-sigma uncertainty (``z_max - z_min``).
    limiting_flux
        The flux unit's scale of ``flux_min`` (the network's limiting fluxes); None without fluxes.
    snr_min, flux_min
        The training rows' ``quantile`` of the best band's S/N and of the brightest band's
        ``flux / limiting_flux``; below either, a galaxy is outside the selection.
    colour_mean, colour_std, reference, reference_rows, k, distance_max
        Colour space: standardisation of the signed-log adjacent-band ratios, a float16
        little-endian base64 subsample of ``reference_rows`` standardised training colours,
        and the training rows' ``distance_quantile`` of the distance to their k-th nearest
        reference neighbour (the reference row itself excluded).
    quantile, distance_quantile
        The quantiles above.
    n_train
        Training rows it was fitted on.
    """

    z_min: float
    z_max: float
    sigma_max: float
    limiting_flux: tuple[float, ...] | None = None
    snr_min: float | None = None
    flux_min: float | None = None
    quantile: float | None = None
    colour_mean: tuple[float, ...] | None = None
    colour_std: tuple[float, ...] | None = None
    reference: str | None = None
    reference_rows: int = 0
    k: int | None = None
    distance_max: float | None = None
    distance_quantile: float | None = None
    n_train: int = 0


class CheckpointMetadata(_Record):
    """Everything a checkpoint says about its network; one validated model for every reader.

    Attributes
    ----------
    format, format_version
        `CHECKPOINT_FORMAT` and the layout version (2).
    architecture
        Registered architecture (``"mlp"``, ``"cnn"``, ``"hybrid"``).
    variant
        The network kind (``"mlp"``, ``"cnn"``, ``"hybrid"``, ``"hybrid-transfer"``).
    config
        The architecture's configuration (validated by its own class when the model is built).
    bands
        Bands in input order.
    inputs
        What the network reads (:class:`InputDeclaration`).
    input_transform
        Readable copy of the input-transform constants.
    sigma_calibration
        Uncertainty calibration, or None (uncalibrated).
    domain
        The training domain of the per-galaxy flag (:class:`DomainReference`), or None
        (written before it existed: only missing bands and clamping are flagged).
    pz
        The network's p(z) (:class:`PzRecord`: grid, head, recalibration), or None: a network
        without a p(z) head (every checkpoint written before they existed), which gives no
        p(z) columns.
    training
        Training provenance, or None when unknown.
    training_data_hash
        Identifier of the training data.
    validation_metrics
        Metrics on the validation set.
    package_version
        csst_photoz version that wrote the file.
    state_dict_sha256
        `state_dict_digest` of the tensors (set on writing).
    extra
        Anything else (JSON-ready).
    """

    format: Literal["csst_photoz.checkpoint"] = CHECKPOINT_FORMAT
    format_version: Literal[2] = CHECKPOINT_FORMAT_VERSION
    architecture: str
    variant: str
    config: dict[str, Any]
    bands: tuple[str, ...]
    inputs: InputDeclaration
    input_transform: dict[str, Any] = Field(default_factory=dict)
    sigma_calibration: SigmaCalibration | None = None
    domain: DomainReference | None = None
    pz: PzRecord | None = None
    training: TrainingRecord | None = None
    training_data_hash: str | None = None
    validation_metrics: dict[str, float | int | None] = Field(default_factory=dict)
    package_version: str
    state_dict_sha256: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _inputs_follow_the_bands(self) -> CheckpointMetadata:
        bands = tuple(self.bands)
        if self.inputs.fluxes and self.inputs.flux_bands != bands:
            raise ValueError(
                f"flux inputs for bands {list(self.inputs.flux_bands)}, network bands {list(bands)}"
            )
        if self.inputs.stamps is not None and tuple(self.inputs.stamps.bands) != bands:
            raise ValueError(
                f"stamp inputs for bands {list(self.inputs.stamps.bands)}, network bands "
                f"{list(bands)}"
            )
        return self

    @property
    def sigma_scale(self) -> float:
        """The calibration factor on sigma (1 when uncalibrated)."""
        return 1.0 if self.sigma_calibration is None else float(self.sigma_calibration.scale)

    def to_json(self) -> str:
        """The JSON text stored in the file (keys sorted; NaN allowed, as ``json`` writes it)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, allow_nan=True)

    def __getitem__(self, key: str) -> Any:
        """Deprecated dict access, as `read_metadata` returned before the typed model.

        The value of ``key`` in the metadata's JSON form, with the training record also under
        ``["extra"]["training"]`` where version 1 kept it. Use the attributes instead.
        """
        warnings.warn(
            f"indexing checkpoint metadata is deprecated; use its attributes (e.g. metadata.{key})",
            DeprecationWarning,
            stacklevel=2,
        )
        data = self.model_dump(mode="json")
        if data["training"] is not None:
            data["extra"] = {**data["extra"], "training": data["training"]}
        return data[key]

    @classmethod
    def from_json(cls, text: str | bytes, source: str | os.PathLike[str]) -> CheckpointMetadata:
        """Parse and validate stored metadata (version 1 is upgraded first).

        Parameters
        ----------
        text
            The JSON text.
        source
            The file it came from (for error messages).

        Raises
        ------
        CheckpointError
            Not a checkpoint's metadata, a newer format version, unknown keys (version 2) or
            invalid values, naming ``source``.
        """
        try:
            data = json.loads(text)
        except ValueError as error:
            raise CheckpointError(f"{source}: metadata is not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{source}: not a csst_photoz checkpoint (no {CHECKPOINT_FORMAT} tag)"
            )
        version = data.get("format_version")
        if version == 1:
            data = upgrade_v1(data)
        elif version != CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format version {version!r}; this csst_photoz reads "
                f"versions 1 to {CHECKPOINT_FORMAT_VERSION} (a newer package wrote it?)"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise CheckpointError(
                f"{source}: invalid checkpoint metadata: {_describe(error)}"
            ) from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "metadata"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _known(model: type[BaseModel], data: Mapping[str, Any]) -> tuple[dict, dict]:
    """``data`` split into the keys ``model`` declares and the rest."""
    fields = set(model.model_fields)
    known = {k: v for k, v in data.items() if k in fields}
    return known, {k: v for k, v in data.items() if k not in fields}


def upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """Version-1 metadata in the version-2 layout (unknown keys kept under ``extra``).

    Version 1 kept the training record in ``extra["training"]`` and declared no inputs: every
    version-1 network read the simulator's photometry, so its inputs are the recorded training
    columns (else ``kron_flux_<b>`` / ``kron_flux_err_<b>``), electrons in the 1 x Kron
    aperture, and (stamp networks) the stamps of its configured size.

    Parameters
    ----------
    data
        Parsed version-1 metadata.

    Returns
    -------
    dict
        Input for :meth:`CheckpointMetadata.model_validate`.
    """
    known, unknown = _known(CheckpointMetadata, data)
    extra = dict(known.pop("extra", None) or {})
    extra.update(unknown)
    training = extra.pop("training", None)
    if isinstance(training, Mapping):
        fields, rest = _known(TrainingRecord, training)
        try:
            known["training"] = TrainingRecord.model_validate(fields)
        except ValidationError:  # an incomplete record: keep it as it was
            rest = dict(training)
        if rest:
            extra["training"] = rest
    elif training is not None:
        extra["training"] = training
    calibration = known.get("sigma_calibration")
    if isinstance(calibration, Mapping):
        fields, rest = _known(SigmaCalibration, calibration)
        known["sigma_calibration"] = fields
        if rest:
            extra["sigma_calibration"] = rest
    known["format_version"] = CHECKPOINT_FORMAT_VERSION
    known["extra"] = extra
    known["inputs"] = _v1_inputs(known, known.get("training"))
    return known


def _v1_inputs(data: Mapping[str, Any], training: TrainingRecord | None) -> InputDeclaration:
    bands = [str(b) for b in data.get("bands") or []]
    fluxes, stamps = _V1_READS.get(str(data.get("architecture")), (True, False))
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    stamp_config = config.get("cnn", config) if isinstance(config.get("cnn"), Mapping) else config
    stamp_size = int(stamp_config.get("stamp_size", _V1_STAMP_SIZE)) if stamps else None
    columns = training.columns if training is not None else None
    recorded = columns is not None and len(columns.flux) == len(bands) == len(columns.flux_err)
    return InputDeclaration.simulated(
        bands,
        fluxes=fluxes,
        stamp_size=stamp_size,
        flux_columns=list(columns.flux) if recorded else None,
        error_columns=list(columns.flux_err) if recorded else None,
    )
