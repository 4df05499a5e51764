"""A trained checkpoint and its training data, checked against each other.

The one place that decides whether checkpoints may be applied to a training set, shared by
``csst-photoz predict --data``, ``calibrate`` and ``pz fit``:

* `load_checkpoints`: the networks, with their training records (a checkpoint without one is
  refused: its split cannot be redrawn);
* `columns_of`: the table columns they read (their declared flux inputs, the band anywhere in
  the names);
* `check_split`: the split redrawn from the recorded seed and fractions, its SHA-256 equal to
  the recorded one, the same for every checkpoint, on data of the recorded hash or, under
  another hash, data on which each network reproduces its recorded validation metrics;
* `checkpoint_training_set`: one checkpoint's network, training set and split;
* `stamps_for`: the stamps of some table rows, centre-cropped to a network's size.

Anything else is refused with a `PredictionError` naming the file.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..io.checkpoint_metadata import CheckpointMetadata, TrainingRecord

__all__ = [
    "LoadedCheckpoint",
    "PredictionError",
    "check_split",
    "checkpoint_training_set",
    "column_name",
    "columns_of",
    "load_checkpoints",
    "stamps_for",
]

#: Recorded validation metrics a network must reproduce on data of another hash.
_REPRODUCED = ("loss", "sigma_nmad", "outlier_fraction", "nll")


class PredictionError(ValueError):
    """Checkpoints that cannot be applied to the data as asked (the message names the file)."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded checkpoint: its file, network, metadata, training record and column name."""

    path: Path
    model: Any
    metadata: CheckpointMetadata
    training: TrainingRecord
    name: str


def column_name(variant: str, taken: set[str]) -> str:
    """The ``z_<name>`` stem of a network or baseline, unique among ``taken`` (added to it).

    ``variant`` with ``_`` for ``-``, suffixed ``_2``, ``_3``, ... while ``taken`` has it.
    """
    name = variant.replace("-", "_")
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def load_checkpoints(paths: Sequence[str | os.PathLike[str]]) -> list[LoadedCheckpoint]:
    """The checkpoints, each with a unique column name; refused without a training record."""
    from csst_photoz.models.checkpoint import load_model

    if not paths:
        raise ValueError("predict needs at least one checkpoint")
    loaded, taken = [], {"true"}
    for entry in paths:
        path = Path(entry)
        model = load_model(path)
        metadata = model.checkpoint_metadata
        training = metadata.training
        if training is None:
            raise PredictionError(
                f"{path}: records no training data or split (not written by train_model): its "
                "test set cannot be reconstructed"
            )
        name = column_name(str(model.variant), taken)
        loaded.append(LoadedCheckpoint(path, model, metadata, training, name))
    return loaded


def _declared_template(item: LoadedCheckpoint, names: Sequence[str]) -> str:
    """The ``{band}`` template of the column names a checkpoint declares, one per band.

    The band may stand anywhere in the names (``flux_{band}``, ``mag_{band}_lsst``); where
    several templates fit every band, the one with ``{band}`` furthest right is taken.
    """
    bands = item.model.bands
    common: set[str] | None = None
    for name, band in zip(names, bands, strict=True):
        fits = {
            name[:i] + "{band}" + name[i + len(band) :]
            for i in range(len(name) - len(band) + 1)
            if name.startswith(band, i)
        }
        common = fits if common is None else common & fits
    if not common:
        raise PredictionError(
            f"{item.path}: declares input columns {list(names)}, not one name per band that "
            "differs only by the band ('flux_{band}', 'mag_{band}_lsst', ...)"
        )
    return max(common, key=lambda template: template.index("{band}"))


def columns_of(loaded: Sequence[LoadedCheckpoint]) -> Any:
    """The table columns to read: the declared flux inputs and the recorded redshift column."""
    from .config import DataColumns

    first = loaded[0]
    recorded = dict(first.training.config.get("columns") or {})
    reading = [item for item in loaded if item.metadata.inputs.fluxes]
    if reading:  # the flux columns the checkpoints declare
        inputs = reading[0].metadata.inputs
        recorded["flux"] = _declared_template(reading[0], inputs.flux_columns)
        recorded["flux_err"] = _declared_template(reading[0], inputs.error_columns)
    for other in reading[1:]:
        if other.metadata.inputs.fluxes != reading[0].metadata.inputs.fluxes:
            raise PredictionError(
                f"{other.path}: reads other table columns than {reading[0].path} "
                f"({other.metadata.inputs.flux_columns} vs "
                f"{reading[0].metadata.inputs.flux_columns})"
            )
    for other in loaded[1:]:
        if other.training.config.get("columns") != first.training.config.get("columns"):
            raise PredictionError(
                f"{other.path}: read other table columns than {first.path} "
                f"({other.training.config.get('columns')} vs "
                f"{first.training.config.get('columns')})"
            )
    return DataColumns.model_validate(recorded)


def check_split(loaded: Sequence[LoadedCheckpoint], data: Any) -> Any:
    """The split all checkpoints were trained with, recomputed and checked."""
    from .split import split_rows

    split, reference = None, None
    for item in loaded:
        info, config = item.training.split, item.training.config
        if info.n_rows != data.n_table_rows:
            raise PredictionError(
                f"{item.path}: split over {info.n_rows} rows, but {data.source} has "
                f"{data.n_table_rows}"
            )
        fractions = {k: config[k] for k in ("test_fraction", "validation_fraction") if k in config}
        mine = split_rows(info.n_rows, seed=info.seed, **fractions)
        if mine.fingerprint() != info.sha256:
            raise PredictionError(
                f"{item.path}: the split redrawn from its seed {info.seed} and fractions "
                f"{fractions} does not match its recorded fingerprint"
            )
        if item.training.data_hash != data.data_hash and not _reproduces_validation(
            item, data, mine
        ):
            raise PredictionError(
                f"{item.path}: trained on other data (hash {item.training.data_hash[:12]}...) "
                f"than {data.source} (hash {data.data_hash[:12]}...), and it does not reproduce "
                "its recorded validation metrics on this data"
            )
        if split is None:
            split, reference = mine, item
        elif mine.fingerprint() != split.fingerprint():
            raise PredictionError(
                f"{item.path}: trained on another train/validation/test split (seed "
                f"{info.seed}) than {reference.path}; predict them separately"
            )
    return split


def _reproduces_validation(item: LoadedCheckpoint, data: Any, split: Any) -> bool:
    """Whether the network gives its recorded validation metrics on ``data``'s validation split.

    The data hash covers the table file's bytes, so a training set written again with the same
    values (the same seeds simulated by a later version, whose files carry other metadata)
    has another hash. The network's own predictions on the validation split (unclamped,
    uncalibrated, as training validated them) then reproduce the recorded MAE, sigma_NMAD,
    outlier fraction and NLL to 1e-5 relative only if the galaxies, inputs and redshifts are
    the same; such data is accepted, with a warning. A network trained under reduced precision
    (bfloat16 on a GPU) does not reproduce them on the CPU and needs the matching hash.
    """
    from .validation import validation_metrics

    recorded = item.metadata.validation_metrics
    keys = [k for k in _REPRODUCED if isinstance(recorded.get(k), int | float)]
    chosen = data.positions(split.validation)
    if not keys or chosen.size == 0:
        return False
    stamps = None
    if "stamps" in item.model.input_names:
        if data.stamps is not None:
            stamps = data.stamps[chosen]
        else:
            stamps = stamps_for(item, data, data.rows[chosen], {})
    model, domain = item.model, item.model.domain
    model.set_domain(None)
    try:
        estimate = model.predict(data.fluxes[chosen], data.flux_errors[chosen], stamps, pz=False)
    finally:
        model.set_domain(domain)
    metrics = validation_metrics(
        data.redshift[chosen], estimate.z, np.log(estimate.z_err / model.sigma_scale)
    )
    same = all(np.isclose(metrics[k], recorded[k], rtol=1e-5, atol=1e-9) for k in keys)
    if same:
        warnings.warn(
            f"{item.path}: {data.source} has another data hash ({data.data_hash[:12]}... vs "
            f"the recorded {item.training.data_hash[:12]}...), but the network reproduces its "
            f"recorded validation {', '.join(keys)} on it to 1e-5: taken as its training set",
            stacklevel=3,
        )
    return bool(same)


def checkpoint_training_set(
    checkpoint: str | os.PathLike[str], data: str | os.PathLike[str]
) -> tuple[Any, Any, Any]:
    """A checkpoint's network, its training set and its split, checked against each other.

    Parameters
    ----------
    checkpoint
        A checkpoint written by ``train_model``.
    data
        The training set it was trained on (loaded with the inputs the network reads, stamps
        centre-cropped to the recorded ``stamp_size``).

    Returns
    -------
    model : PhotoZModel
        The network, with its metadata.
    dataset : TrainingSet
        The training set.
    split : Split
        The train / validation / test split redrawn from the recorded seed and fractions.

    Raises
    ------
    PredictionError
        If the checkpoint records no training, reads other bands, or was trained on other
        data (hash) or another split (fingerprint).
    """
    from .config import TrainingConfig
    from .data import load_training_set

    (item,) = load_checkpoints([checkpoint])
    columns = columns_of([item])
    stamp_size = TrainingConfig.model_validate(item.training.config).stamp_size
    dataset = load_training_set(
        data, columns=columns, stamps="stamps" in item.model.input_names, stamp_size=stamp_size
    )
    if tuple(item.model.bands) != tuple(dataset.bands):
        raise PredictionError(
            f"{item.path}: bands {list(item.model.bands)} differ from the data's "
            f"{list(dataset.bands)}"
        )
    return item.model, dataset, check_split([item], dataset)


def stamps_for(
    item: LoadedCheckpoint, data: Any, table_rows: np.ndarray, cache: dict[int, Any]
) -> Any:
    """The stamps of ``table_rows``, centre-cropped to ``item``'s size (cached per size)."""
    from csst_photoz.io.training_set import open_stamps

    from .data import centre_crop

    size = item.metadata.inputs.stamps.size
    if size not in cache:
        if not Path(data.source).is_dir():
            raise PredictionError(f"{item.path}: a stamp network needs a training-set folder")
        crop = functools.partial(centre_crop, size=size)
        cache[size] = open_stamps(data.source).read(table_rows, transform=crop)
    return cache[size]
