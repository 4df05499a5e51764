"""The training recipe as one typed, frozen configuration, with the paper's defaults.

Zhou et al. (2022) train every network with the mean absolute error (MAE) on z and Adam at a
learning rate of 1e-4. The MLP runs up to 150 epochs and keeps the best validation model; the
CNN and the hybrids divide the learning rate by 10 after 5 epochs without improvement of the
validation loss and stop after 10, keeping the best model. The paper does not state a batch
size (the authors' later work used 512-2048); 512 is the default here.

Beyond the paper, every network has an uncertainty head trained alongside with
:func:`~csst_photoz.models.gaussian_nll` (on detached residuals, so the point estimate's
training is unchanged), weighted by ``uncertainty_weight``.

A configuration is loaded from the ``[training]`` table of a TOML file (`load_config`); unknown
keys anywhere are errors. Per-network schedules live in sub-tables::

    [training]
    seed = 2022
    batch_size = 512

    [training.cnn]
    max_epochs = 120

    [training.columns]
    flux = "kron_flux_{band}"
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..config_files import format_validation_error, read_sections

if TYPE_CHECKING:  # torch is imported on first use
    from ..models.pz_head import PzConfig

__all__ = [
    "EARLY_STOPPING_PATIENCE",
    "DataColumns",
    "Schedule",
    "ScheduleName",
    "TrainingConfig",
    "load_config",
]

#: The per-network schedules of a `TrainingConfig` (a network's `Recipe` names its own).
ScheduleName = Literal["mlp", "cnn", "hybrid"]
_SCHEDULES: tuple[ScheduleName, ...] = ("mlp", "cnn", "hybrid")
#: Early-stopping patience of the paper's CNN and hybrids, and of ``train mlp --table``.
EARLY_STOPPING_PATIENCE = 10
# settings that may change between an interrupted run and its resumption
_RESUMABLE_CHANGES = ("max_epochs", "progress", "eval_batch_size", "mixed_precision")
# settings added after 0.1.0, left out of the fingerprint at their defaults so that a run
# interrupted under 0.1.0 still resumes; with those defaults its network (the "propagate" feature
# layout recorded in its state, which band dropout does not apply to) trains as under 0.1.0
# (a 0.1.0 state's network has no p(z) head, so the p(z) settings do not change its training)
_ADDED_SINCE_0_1 = {
    "augment": True,
    "band_dropout": 0.05,
    "pz_head": "mixture",
    "pz_bins": 200,
    "pz_weight": 1.0,
}
_COLUMNS_ADDED_SINCE_0_1 = {"unit": None, "id": None}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Schedule(_Frozen):
    """Epoch budget, learning-rate schedule and early stopping of one network.

    Attributes
    ----------
    max_epochs
        Most epochs to run.
    lr_patience
        Epochs without improvement of the validation loss before the learning rate is
        multiplied by `TrainingConfig.lr_factor` (``ReduceLROnPlateau``); None (``false`` in
        TOML, which has no null): constant rate.
    early_stopping_patience
        Epochs without improvement before training stops; None (``false`` in TOML): run all
        ``max_epochs``.
    """

    max_epochs: int = Field(gt=0)
    lr_patience: int | None = Field(default=None, ge=0)
    early_stopping_patience: int | None = Field(default=None, gt=0)

    @field_validator("lr_patience", "early_stopping_patience", mode="before")
    @classmethod
    def _false_is_off(cls, value: Any) -> Any:
        return None if value is False else value


class DataColumns(_Frozen):
    """Which table columns hold the bands' fluxes, their errors, unit, the redshift and the ids.

    Attributes
    ----------
    bands
        Band names in model input order; None: from the table's ``csst_photoz.bands`` schema
        metadata, else the stamp array's ``bands`` attribute.
    flux, flux_err
        A column-name template with a ``{band}`` field, or one column name per band (the
        simulator's 1 x Kron photometry in electrons by default). With ``unit = "ABmag"``
        they are AB magnitudes and magnitude errors.
    unit
        Unit of the flux and error columns (:mod:`csst_photoz.units`): ``"electron"``,
        ``"nJy"`` (or another flux density astropy knows) or ``"ABmag"``; None: the flux
        column's own unit (Parquet field metadata ``unit``, FITS/ECSV column unit), else
        electrons (the simulator's ``kron_flux_<b>``).
    redshift
        True-redshift column.
    detected
        Boolean column; rows where it is False are dropped (ignored if the table lacks it).
    id
        Identifier column copied into predictions (None: none; ``galaxy_id`` is copied when
        present).
    """

    bands: tuple[str, ...] | None = None
    flux: str | tuple[str, ...] = "kron_flux_{band}"
    flux_err: str | tuple[str, ...] = "kron_flux_err_{band}"
    unit: str | None = None
    redshift: str = "redshift"
    detected: str = "detected"
    id: str | None = None

    @field_validator("flux", "flux_err", mode="before")
    @classmethod
    def _template_or_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, str) and "{band}" not in value:
            names = tuple(name.strip() for name in value.split(","))
            if len(names) == 1:
                raise ValueError(
                    f"column template {value!r} needs a '{{band}}' field (or give one column "
                    "name per band, comma-separated)"
                )
            value = names
        if isinstance(value, tuple) and (len(value) == 0 or len(set(value)) != len(value)):
            raise ValueError(f"column names must be non-empty and distinct, got {value}")
        return value

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        from ..units import normalise_unit

        return None if unit is None else normalise_unit(unit)

    @field_validator("bands", mode="before")
    @classmethod
    def _distinct_bands(cls, bands: Any) -> Any:
        if isinstance(bands, str):
            bands = tuple(b.strip() for b in bands.split(","))
        if bands is not None and (len(bands) == 0 or len(set(bands)) != len(bands)):
            raise ValueError(f"bands must be non-empty and distinct, got {bands}")
        return bands

    def _names(self, spec: str | tuple[str, ...], bands: tuple[str, ...]) -> list[str]:
        if isinstance(spec, str):
            return [spec.format(band=b) for b in bands]
        if len(spec) != len(bands):
            raise ValueError(f"{len(spec)} column names {list(spec)} for bands {list(bands)}")
        return list(spec)

    def flux_columns(self, bands: tuple[str, ...]) -> list[str]:
        """Flux column names of ``bands``."""
        return self._names(self.flux, bands)

    def error_columns(self, bands: tuple[str, ...]) -> list[str]:
        """Flux-error column names of ``bands``."""
        return self._names(self.flux_err, bands)


class TrainingConfig(_Frozen):
    """Everything that decides how a network is trained (the paper's recipe by default).

    Attributes
    ----------
    seed
        Seeds the split, the initial weights, the batch order and the augmentation.
    batch_size
        Samples per optimiser step, summed over all processes of a distributed run (each of
        ``N`` processes takes ``batch_size // N``). Not stated in the paper.
    learning_rate
        Adam's initial learning rate (1e-4).
    loss
        Point-estimate loss; the paper's mean absolute error.
    max_epochs
        Overrides every schedule's ``max_epochs`` (the CLI's ``--epochs``).
    mlp, cnn, hybrid
        Schedules; ``hybrid`` serves both hybrids. MLP: 150 epochs, keep the best (the
        paper's; ``csst-photoz train mlp --table`` stops after `EARLY_STOPPING_PATIENCE`
        epochs without improvement instead, as the paper's other networks, unless the
        ``[training.mlp]`` table is given or ``--recipe paper``). CNN and hybrids: learning
        rate x ``lr_factor`` after 5 epochs without improvement, stop after 10; 200 epochs at
        most (the paper's CNN peaked at 82, the hybrids at 30-47).
    lr_factor
        ``ReduceLROnPlateau`` factor (0.1).
    flux_realisations
        Augmented copies of each training galaxy per epoch for the MLP and the hybrids (50):
        each copy draws fresh fluxes ``F + N(0, sigma_F)`` (hybrids: paired with a random
        dihedral transform of the stamp); see :mod:`csst_photoz.training.augment`.
    augment
        False: no augmentation at all (one unperturbed copy of each galaxy per epoch, no
        flux noise, no rotations); ``--no-augment``.
    band_dropout
        With flux augmentation, the probability of removing each present band of a training
        sample (its flux set to NaN, never a row's last band), so the network learns to
        predict with missing bands; only for networks whose features carry missing-band
        indicators (``MLPConfig.missing = "indicator"``, what training builds). 0 turns it off.
        Default 0.05, measured with ``benchmarks/band_dropout.py`` (6,781 simulated galaxies,
        25 epochs): against 0 it lowers sigma_NMAD / eta with u missing from 0.066 / 12.5 % to
        0.056 / 8.7 % and with NUV and u missing from 0.089 / 19.8 % to 0.068 / 13.4 %, with
        every band 0.049 / 7.2 % -> 0.045 / 6.5 %; 0.15 was worse with every band.
    dihedral_copies
        Copies of each stamp per epoch for the CNN (8: each of the eight rotations/flips once).
    uncertainty_weight
        Weight of the uncertainty head's Gaussian NLL beside the MAE.
    pz_head
        The p(z) head of a new network (:mod:`csst_photoz.models.pz_head`): ``"mixture"``
        (5 Gaussians, negative log-likelihood; the default), ``"softmax"`` (bin
        probabilities, cross-entropy) or ``"none"``. Chosen with ``benchmarks/pz_heads.py``
        (DC2, MLP, 40 epochs, recalibrated, test file): mixture PIT KS 0.010, coverage
        0.674 / 0.948, CRPS 0.0415 (Gaussian 0.0423); softmax 0.021, 0.676 / 0.957, 0.0464.
        It reads the detached last hidden layer, so the point estimate is trained exactly as
        without it. A hybrid transfer takes
        it from here too; a resumed run keeps the head its state was built with.
    pz_bins
        Bins of the p(z) grid over 0 <= z <= 4.
    pz_weight
        Weight of the p(z) head's loss beside the MAE.
    test_fraction, validation_fraction
        Test share of the table's rows (0 allowed: no test set), and validation share of the
        rest: 0.25 and 0.1 give the paper's 10,000 test / 27,000 train / 3,000 validation for
        40,000 galaxies. ``csst-photoz train --table`` holds back no test rows unless
        ``test_fraction`` is set. Training prints the rows of each set.
    columns
        Table columns (`DataColumns`).
    limiting_flux
        Per-band limiting flux for the MLP's features (the paper: 5-sigma depths), in the flux
        columns' unit; None: 5 x the median flux error of the training rows.
    background_rms
        Per-band background noise per pixel [e-] of the stamps; None: estimated from the stamps'
        borders.
    stamp_size, stamp_scaling
        CNN input side (32) and scaling (``"asinh"`` or the paper's ``"none"``).
    mlp_checkpoint, cnn_checkpoint
        Trained MLP and CNN (hybrid transfer only); relative paths in a TOML file are relative
        to that file.
    mixed_precision
        bfloat16 autocast on CUDA (ignored on CPU).
    eval_batch_size
        Rows per forward pass during validation.
    progress
        Show a progress bar per epoch.
    """

    seed: int = 0
    batch_size: int = Field(default=512, gt=0)
    learning_rate: float = Field(default=1e-4, gt=0)
    loss: Literal["mae"] = "mae"
    max_epochs: int | None = Field(default=None, gt=0)
    mlp: Schedule = Schedule(max_epochs=150)
    cnn: Schedule = Schedule(
        max_epochs=200, lr_patience=5, early_stopping_patience=EARLY_STOPPING_PATIENCE
    )
    hybrid: Schedule = Schedule(
        max_epochs=200, lr_patience=5, early_stopping_patience=EARLY_STOPPING_PATIENCE
    )
    lr_factor: float = Field(default=0.1, gt=0, lt=1)
    flux_realisations: int = Field(default=50, gt=0)
    augment: bool = True
    band_dropout: float = Field(default=0.05, ge=0, lt=1)
    dihedral_copies: int = Field(default=8, ge=1, le=8)
    uncertainty_weight: float = Field(default=1.0, ge=0)
    pz_head: Literal["softmax", "mixture", "none"] = "mixture"
    pz_bins: int = Field(default=200, gt=1)
    pz_weight: float = Field(default=1.0, ge=0)
    test_fraction: float = Field(default=0.25, ge=0, lt=1)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)
    columns: DataColumns = DataColumns()
    limiting_flux: tuple[float, ...] | None = None
    background_rms: tuple[float, ...] | None = None
    stamp_size: int = Field(default=32, ge=8)
    stamp_scaling: Literal["asinh", "none"] = "asinh"
    mlp_checkpoint: Path | None = None
    cnn_checkpoint: Path | None = None
    mixed_precision: bool = True
    eval_batch_size: int = Field(default=4096, gt=0)
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _schedules_update_the_defaults(cls, data: Any) -> Any:
        """A partial schedule table (``[training.cnn] max_epochs = 120``) changes only its keys."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("mlp", "cnn", "hybrid"):
            given = data.get(name)
            if isinstance(given, dict):
                default = cls.model_fields[name].default
                data[name] = {**default.model_dump(), **given}
        return data

    @field_validator("limiting_flux", "background_rms")
    @classmethod
    def _positive(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if values is not None and not all(v > 0 and v < float("inf") for v in values):
            raise ValueError(f"values must be positive and finite, got {values}")
        return values

    def schedule(self, name: ScheduleName) -> Schedule:
        """The schedule ``name`` (``"mlp"``, ``"cnn"`` or ``"hybrid"``), `max_epochs` applied.

        A network's schedule is ``recipe(kind).schedule(config)``
        (:mod:`~csst_photoz.training.recipes`).

        Raises
        ------
        ValueError
            For another name.
        """
        if name not in _SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose one of {list(_SCHEDULES)}")
        schedule: Schedule = getattr(self, name)
        if self.max_epochs is None:
            return schedule
        return schedule.model_copy(update={"max_epochs": self.max_epochs})

    def with_updates(self, **updates: Any) -> TrainingConfig:
        """A validated copy with some fields replaced (None values are skipped)."""
        data = self.model_dump()
        data.update({k: v for k, v in updates.items() if v is not None})
        return TrainingConfig.model_validate(data)

    def pz_config(self) -> PzConfig | None:
        """The p(z) head of a new network (None for ``pz_head = "none"``)."""
        from ..models.pz_head import PzConfig

        if self.pz_head == "none":
            return None
        return PzConfig(kind=self.pz_head, bins=self.pz_bins)

    def fingerprint_dict(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one (JSON-ready)."""
        data = self.model_dump(mode="json")
        for name in _RESUMABLE_CHANGES:
            data.pop(name, None)
        for name in _SCHEDULES:
            data[name].pop("max_epochs", None)
        for added, legacy in (
            (data, _ADDED_SINCE_0_1),
            (data["columns"], _COLUMNS_ADDED_SINCE_0_1),
        ):
            for name, value in legacy.items():
                if added.get(name) == value:
                    del added[name]
        return data

    def fingerprint(self) -> str:
        """SHA-256 of `fingerprint_dict`."""
        text = json.dumps(self.fingerprint_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def load_config(path: str | Path) -> TrainingConfig:
    """Read a `TrainingConfig` from the ``[training]`` table of a TOML file.

    Parameters
    ----------
    path
        A project file (``docs/configuration.md``) with a ``[training]`` table; its other
        sections are not read, unknown tables and unknown keys inside ``[training]`` are
        errors. Relative ``mlp_checkpoint`` / ``cnn_checkpoint`` paths are taken relative to
        the file's folder.

    Returns
    -------
    TrainingConfig

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On invalid TOML, a missing ``[training]`` table, unknown keys or invalid values; the
        message names the file, the section and the key.
    """
    path = Path(path)
    sections = read_sections(path, top_level_instrument=False, what="training")
    if "training" not in sections:
        raise ValueError(f"{path}: no [training] table")
    try:
        return TrainingConfig.model_validate(sections["training"])
    except ValidationError as error:
        raise format_validation_error(error, source=str(path), section="training") from None
