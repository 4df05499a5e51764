"""One file per model: the state dict plus typed metadata, saved and loaded without pickles.

The file format lives in :mod:`csst_photoz.io.checkpoint_file` (safetensors or a
``torch.save`` archive read with ``weights_only=True``), the metadata model in
:mod:`csst_photoz.io.checkpoint_metadata` (a typed
:class:`~csst_photoz.io.checkpoint_metadata.CheckpointMetadata`, format version 2, version 1
still read). This module turns models into files and back: `save_model` records the architecture and
its configuration, the bands, what the network reads (``inputs``), a readable copy of the
input transform, the uncertainty calibration, the p(z) head and its recalibration
(``pz``: None for a network without one), the training provenance, validation metrics and
the package version; `load_model` rebuilds the network and hangs the metadata on it as
``model.checkpoint_metadata``, so saving it again keeps everything. `load_model` refuses, with a
`CheckpointError` naming the file: an unreadable, truncated or corrupted file (including a
digest mismatch), invalid metadata, a checkpoint for other bands than those requested, or one
written by a different major version of the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import csst_photoz

from ..io.checkpoint_file import FileFormat, read_checkpoint, state_dict_digest, write_checkpoint
from ..io.checkpoint_metadata import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    CheckpointMetadata,
    InputDeclaration,
    TrainingRecord,
)
from . import cnn as _cnn  # noqa: F401  (registers the architectures)
from . import hybrid as _hybrid  # noqa: F401
from . import mlp as _mlp  # noqa: F401
from .base import PhotoZModel, config_to_dict, json_ready, model_class

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "CheckpointMetadata",
    "default_inputs",
    "load_model",
    "read_metadata",
    "save_model",
    "state_dict_digest",
]


def _package_version() -> str:
    return csst_photoz.__version__


def _major(version: str) -> int | None:
    match = re.match(r"\s*v?(\d+)", str(version))
    return int(match.group(1)) if match else None


def default_inputs(model: PhotoZModel, training: TrainingRecord | None = None) -> InputDeclaration:
    """What ``model`` reads when nothing else is declared: the simulator's photometry.

    Parameters
    ----------
    model
        The network (its bands, whether it reads fluxes, its stamp size).
    training
        Its training record: the flux columns it was trained on (default ``kron_flux_<b>`` /
        ``kron_flux_err_<b>``).

    Returns
    -------
    InputDeclaration
        Those columns as electrons in the 1 x Kron aperture (what the simulator measures),
        and, for stamp networks, stamps of the network's size.
    """
    columns = training.columns if training is not None else None
    stamps = "stamps" in model.input_names
    return InputDeclaration.simulated(
        model.bands,
        fluxes="fluxes" in model.input_names,
        stamp_size=model.stamp_transform.size if stamps else None,
        flux_columns=list(columns.flux) if columns is not None else None,
        error_columns=list(columns.flux_err) if columns is not None else None,
    )


def _training_record(
    training: TrainingRecord | Mapping[str, Any] | None, extra: dict[str, Any]
) -> TrainingRecord | None:
    """The typed record, from ``training`` or (old keyword) ``extra["training"]``."""
    legacy = extra.pop("training", None)
    if training is None:
        training = legacy
    if training is None or isinstance(training, TrainingRecord):
        return training
    return TrainingRecord.model_validate(json_ready(dict(training)))


def save_model(
    model: PhotoZModel,
    path: str | os.PathLike[str],
    *,
    inputs: InputDeclaration | None = None,
    training: TrainingRecord | Mapping[str, Any] | None = None,
    training_data_hash: str | None = None,
    validation_metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
    file_format: FileFormat = "auto",
) -> Path:
    """Write ``model`` and its metadata to one file, atomically (temporary name, then rename).

    What the model does not say itself (inputs, training provenance, data hash, metrics,
    extra) comes from the arguments, else from ``model.checkpoint_metadata`` (a loaded or
    saved model keeps its metadata), else is empty. Afterwards ``model.checkpoint_metadata`` is
    the metadata written.

    Parameters
    ----------
    model
        Any registered model; its calibration (``model.sigma_calibration``) is saved with it.
    path
        Destination file.
    inputs
        The catalogue columns (with unit and flux definition) and stamps it reads; default:
        the training columns, else the simulator's ``kron_flux_<b>``, as electrons in the
        1 x Kron aperture (`default_inputs`).
    training
        Training provenance (a `TrainingRecord` or its dict); an ``extra["training"]`` dict is
        taken as this (the layout before format version 2).
    training_data_hash
        Identifier of the training data (default: ``training.data_hash``).
    validation_metrics
        Metrics on the validation set, e.g. ``{"sigma_nmad": 0.02, "outlier_fraction": 0.01}``.
    extra
        Further JSON-serialisable metadata.
    file_format
        ``"safetensors"``, ``"torch"``, or ``"auto"`` (safetensors when installed).

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(model, PhotoZModel) or not model.architecture:
        raise TypeError(f"save_model needs a registered PhotoZModel, got {type(model).__name__}")
    before = model.checkpoint_metadata
    extra_dict = json_ready(dict(extra)) if extra is not None else None
    record = _training_record(training, extra_dict if extra_dict is not None else {})
    if before is not None:  # what is not given is kept
        record = record if record is not None else before.training
        inputs = inputs if inputs is not None else before.inputs
        training_data_hash = training_data_hash or before.training_data_hash
        if validation_metrics is None:
            validation_metrics = before.validation_metrics
        if extra_dict is None:
            extra_dict = dict(before.extra)
    if training_data_hash is None and record is not None:
        training_data_hash = record.data_hash
    metadata = CheckpointMetadata(
        architecture=model.architecture,
        variant=model.variant,
        config=config_to_dict(model.config),
        bands=model.bands,
        inputs=inputs or default_inputs(model, record),
        input_transform=json_ready(model.input_transform_constants()),
        sigma_calibration=model.sigma_calibration,
        domain=model.domain,
        pz=model.pz_record,
        training=record,
        training_data_hash=training_data_hash,
        validation_metrics=json_ready(dict(validation_metrics or {})),
        package_version=_package_version(),
        extra=extra_dict or {},
    )
    target = Path(path)
    model.checkpoint_metadata = write_checkpoint(
        target, metadata, model.state_dict(), file_format=file_format
    )
    return target


def read_metadata(path: str | os.PathLike[str]) -> CheckpointMetadata:
    """The metadata of a checkpoint (the file is fully read and checked).

    Raises
    ------
    CheckpointError
        On an unreadable, truncated or corrupted file, or invalid metadata.
    """
    metadata, _ = read_checkpoint(path)
    return metadata


def load_model(
    path: str | os.PathLike[str],
    *,
    bands: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> PhotoZModel:
    """Rebuild the model saved in ``path``.

    Parameters
    ----------
    path
        A file written by `save_model`.
    bands
        The bands (in order) the caller will feed; refused if the checkpoint's differ.
    map_location
        Device for the returned model.

    Returns
    -------
    PhotoZModel
        The model (class from the metadata's architecture) in evaluation mode, with its
        metadata as ``model.checkpoint_metadata`` (a `CheckpointMetadata`).

    Raises
    ------
    CheckpointError
        On an unreadable, truncated or corrupted file; invalid metadata; other bands than
        ``bands``; a different major package version; an unknown architecture or a
        configuration that does not build.
    """
    file = Path(path)
    metadata, tensors = read_checkpoint(file)
    saved_version = metadata.package_version
    current = _package_version()
    if _major(saved_version) is None or _major(saved_version) != _major(current):
        raise CheckpointError(
            f"{file}: written by csst_photoz {saved_version}, incompatible with the installed "
            f"{current} (major versions differ); retrain or use a matching package version"
        )
    saved_bands = list(metadata.bands)
    if bands is not None and list(bands) != saved_bands:
        raise CheckpointError(
            f"{file}: checkpoint bands {saved_bands} differ from the requested {list(bands)}"
        )
    try:
        model = model_class(metadata.architecture).from_config_dict(metadata.config)
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{file}: cannot rebuild the model: {error}") from error
    if list(model.bands) != saved_bands:
        raise CheckpointError(f"{file}: metadata bands {saved_bands} != config {model.bands}")
    reads = ("fluxes" in model.input_names, "stamps" in model.input_names)
    declared = (bool(metadata.inputs.fluxes), metadata.inputs.stamps is not None)
    if reads != declared:
        raise CheckpointError(
            f"{file}: a {model.variant} network reads {list(model.input_names)}, but its "
            f"declared inputs are fluxes={declared[0]}, stamps={declared[1]}"
        )
    stated, built = metadata.pz, model.pz_record
    if (stated is None) != (built is None) or (
        stated is not None
        and stated.model_copy(update={"calibration": None, "head_fit": None}) != built
    ):
        raise CheckpointError(
            f"{file}: its metadata states the p(z) {stated!r}, its network configuration "
            f"builds {built!r}"
        )
    model.set_sigma_calibration(metadata.sigma_calibration)
    model.set_pz_calibration(stated.calibration if stated is not None else None)
    model.pz_head_fit = stated.head_fit if stated is not None else None
    model.set_domain(metadata.domain)
    model.checkpoint_metadata = metadata
    return model.to(map_location).eval()
