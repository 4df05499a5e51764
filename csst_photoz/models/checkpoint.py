"""One file per model: the state dict plus JSON metadata, saved and loaded without pickles.

File formats (chosen on save, recognised on load by their first bytes):

* safetensors, when the ``safetensors`` package is installed: tensors plus the metadata JSON
  under the header key ``"csst_photoz"``;
* otherwise ``torch.save`` of ``{"csst_photoz": <metadata JSON string>, "tensors": {name:
  tensor}}``, read back with ``torch.load(..., weights_only=True)``, which accepts only tensors
  and plain containers, never arbitrary objects.

The metadata (`CHECKPOINT_FORMAT`, version 1) records the architecture and its configuration
(hyper-parameters and input-transform constants), the bands, a readable copy of the input
transform (`PhotoZModel.input_transform_constants`), the training-data hash, validation metrics,
the package version, a SHA-256 digest of the tensors and the uncertainty calibration
(``sigma_calibration``: None, or the factor on sigma and how it was fitted; checkpoints without
the key load uncalibrated). `load_model` refuses, with a
`CheckpointError` naming the file: an unreadable, truncated or corrupted file (including a
digest mismatch), a checkpoint for other bands than those requested, or one written by a
different major version of the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

import csst_photoz

from ..io.atomic import atomic_destination
from . import cnn as _cnn  # noqa: F401  (registers the architectures)
from . import hybrid as _hybrid  # noqa: F401
from . import mlp as _mlp  # noqa: F401
from .base import PhotoZModel, config_to_dict, json_ready, model_class

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "load_model",
    "read_metadata",
    "save_model",
    "state_dict_digest",
]

#: Identifier written into every checkpoint's metadata.
CHECKPOINT_FORMAT = "csst_photoz.checkpoint"
#: Version of the metadata layout.
CHECKPOINT_FORMAT_VERSION = 1

_METADATA_KEY = "csst_photoz"
_ZIP_MAGIC = b"PK\x03\x04"
FileFormat = Literal["auto", "safetensors", "torch"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit what was asked for."""


def _package_version() -> str:
    return csst_photoz.__version__


def _major(version: str) -> int | None:
    match = re.match(r"\s*v?(\d+)", str(version))
    return int(match.group(1)) if match else None


def _have_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def state_dict_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(
    model: PhotoZModel,
    path: str | os.PathLike[str],
    *,
    training_data_hash: str | None = None,
    validation_metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
    file_format: FileFormat = "auto",
) -> Path:
    """Write ``model`` and its metadata to one file, atomically (temporary name, then rename).

    Parameters
    ----------
    model
        Any registered model.
    path
        Destination file.
    training_data_hash
        Identifier of the training data (e.g. a SHA-256 of the training table).
    validation_metrics
        Metrics on the validation set, e.g. ``{"sigma_nmad": 0.02, "outlier_fraction": 0.01}``.
    extra
        Further JSON-serialisable metadata (training recipe, flux unit, ...).
    file_format
        ``"safetensors"``, ``"torch"``, or ``"auto"`` (safetensors when installed).

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(model, PhotoZModel) or not model.architecture:
        raise TypeError(f"save_model needs a registered PhotoZModel, got {type(model).__name__}")
    if file_format == "auto":
        file_format = "safetensors" if _have_safetensors() else "torch"
    if file_format not in ("safetensors", "torch"):
        raise ValueError(f"file_format must be 'auto', 'safetensors' or 'torch': {file_format!r}")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "architecture": model.architecture,
        "variant": model.variant,
        "config": config_to_dict(model.config),
        "bands": list(model.bands),
        "input_transform": json_ready(model.input_transform_constants()),
        "training_data_hash": training_data_hash,
        "validation_metrics": json_ready(dict(validation_metrics or {})),
        "package_version": _package_version(),
        "state_dict_sha256": state_dict_digest(tensors),
        "extra": json_ready(dict(extra or {})),
        "sigma_calibration": model.sigma_calibration,
    }
    text = json.dumps(metadata, sort_keys=True, allow_nan=True)
    target = Path(path)
    with atomic_destination(target) as temporary:
        if file_format == "safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(temporary), metadata={_METADATA_KEY: text})
        else:
            torch.save({_METADATA_KEY: text, "tensors": tensors}, temporary)
    return target


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Metadata and tensors of a checkpoint file; every failure is a `CheckpointError`."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    with path.open("rb") as stream:
        head = stream.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"
    try:
        if head[:4] == _ZIP_MAGIC:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict) or set(payload) != {_METADATA_KEY, "tensors"}:
                raise CheckpointError("not a csst_photoz checkpoint (unexpected contents)")
            text, tensors = payload[_METADATA_KEY], payload["tensors"]
        elif looks_safetensors:
            text, tensors = _read_safetensors(path)
        else:
            raise ValueError("neither a torch zip archive nor a safetensors file")
        if not isinstance(text, str) or not isinstance(tensors, dict):
            raise CheckpointError("not a csst_photoz checkpoint (unexpected contents)")
        if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in tensors.items()):
            raise CheckpointError("not a csst_photoz checkpoint (non-tensor entries)")
        metadata = json.loads(text)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except Exception as error:  # any parse failure of a damaged file
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated, corrupted or not a checkpoint): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(metadata, dict) or metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a csst_photoz checkpoint (no {CHECKPOINT_FORMAT} tag)")
    return metadata, tensors


def _read_safetensors(path: Path) -> tuple[Any, dict[str, Tensor]]:
    if not _have_safetensors():
        raise CheckpointError("a safetensors file; install 'safetensors' to read it")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as stream:
        header = stream.metadata() or {}
        tensors = {name: stream.get_tensor(name) for name in stream.keys()}
    return header.get(_METADATA_KEY), tensors


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (the file is fully read and checked).

    Raises
    ------
    CheckpointError
        On an unreadable, truncated or corrupted file.
    """
    metadata, tensors = _read(Path(path))
    _check_digest(Path(path), metadata, tensors)
    return metadata


def _check_digest(path: Path, metadata: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
    expected = metadata.get("state_dict_sha256")
    if expected != state_dict_digest(tensors):
        raise CheckpointError(f"{path}: tensor digest mismatch, the file is corrupted")


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
        metadata as ``model.checkpoint_metadata``.

    Raises
    ------
    CheckpointError
        On an unreadable, truncated or corrupted file; other bands than ``bands``; a different
        major package version; an unknown architecture or a configuration that does not build.
    """
    file = Path(path)
    metadata, tensors = _read(file)
    _check_digest(file, metadata, tensors)
    saved_version = str(metadata.get("package_version"))
    current = _package_version()
    if _major(saved_version) is None or _major(saved_version) != _major(current):
        raise CheckpointError(
            f"{file}: written by csst_photoz {saved_version}, incompatible with the installed "
            f"{current} (major versions differ); retrain or use a matching package version"
        )
    saved_bands = list(metadata.get("bands") or [])
    if bands is not None and list(bands) != saved_bands:
        raise CheckpointError(
            f"{file}: checkpoint bands {saved_bands} differ from the requested {list(bands)}"
        )
    try:
        model = model_class(str(metadata.get("architecture"))).from_config_dict(metadata["config"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{file}: cannot rebuild the model: {error}") from error
    if list(model.bands) != saved_bands:
        raise CheckpointError(f"{file}: metadata bands {saved_bands} != config {model.bands}")
    try:  # absent from checkpoints written before calibration existed: uncalibrated
        model.set_sigma_calibration(metadata.get("sigma_calibration"))
    except ValueError as error:
        raise CheckpointError(f"{file}: {error}") from error
    model.checkpoint_metadata = metadata
    return model.to(map_location).eval()
