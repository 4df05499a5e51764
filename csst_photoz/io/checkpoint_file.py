"""Checkpoint files: a state dict plus its metadata in one file, never unpickled.

File formats (chosen on writing, recognised on reading by their first bytes):

* safetensors, when the ``safetensors`` package is installed: the tensors, with the metadata
  JSON under the header key ``"csst_photoz"``;
* otherwise ``torch.save`` of ``{"csst_photoz": <metadata JSON>, "tensors": {name: tensor}}``,
  read back with ``torch.load(..., weights_only=True)``, which accepts only tensors and plain
  containers, never arbitrary objects.

The metadata is a :class:`~csst_photoz.io.checkpoint_metadata.CheckpointMetadata` (version 1
upgraded on reading); `read_checkpoint` checks the tensors against its SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .atomic import atomic_destination
from .checkpoint_metadata import CheckpointError, CheckpointMetadata
from .paths import TRAINING_STATE_SUFFIX, is_training_state

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["FileFormat", "read_checkpoint", "state_dict_digest", "write_checkpoint"]

FileFormat = Literal["auto", "safetensors", "torch"]
_METADATA_KEY = "csst_photoz"
_ZIP_MAGIC = b"PK\x03\x04"


def state_dict_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _have_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def write_checkpoint(
    path: str | os.PathLike[str],
    metadata: CheckpointMetadata,
    tensors: Mapping[str, Tensor],
    *,
    file_format: FileFormat = "auto",
) -> CheckpointMetadata:
    """Write tensors and metadata to one file, atomically (temporary name, then rename).

    Parameters
    ----------
    path
        Destination file.
    metadata
        The metadata; its ``state_dict_sha256`` is set here from ``tensors``.
    tensors
        Name -> tensor (copied to the CPU).
    file_format
        ``"safetensors"``, ``"torch"``, or ``"auto"`` (safetensors when installed).

    Returns
    -------
    CheckpointMetadata
        The metadata as written (with the digest).
    """
    import torch

    if file_format == "auto":
        file_format = "safetensors" if _have_safetensors() else "torch"
    if file_format not in ("safetensors", "torch"):
        raise ValueError(f"file_format must be 'auto', 'safetensors' or 'torch': {file_format!r}")
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = metadata.model_copy(update={"state_dict_sha256": state_dict_digest(cpu)})
    text = metadata.to_json()
    with atomic_destination(Path(path)) as temporary:
        if file_format == "safetensors":
            from safetensors.torch import save_file

            save_file(cpu, str(temporary), metadata={_METADATA_KEY: text})
        else:
            torch.save({_METADATA_KEY: text, "tensors": cpu}, temporary)
    return metadata


def read_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[CheckpointMetadata, dict[str, Tensor]]:
    """Metadata and tensors of a checkpoint file, checked against the stored digest.

    Parameters
    ----------
    path
        A file written by `write_checkpoint` (any format version up to the current one).

    Returns
    -------
    (CheckpointMetadata, dict)
        The validated (and, for version 1, upgraded) metadata and the tensors on the CPU.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    CheckpointError
        Naming the file: unreadable, truncated, corrupted (digest mismatch), not a checkpoint,
        a newer format, or invalid metadata.
    """
    path = Path(path)
    if is_training_state(path) and path.is_file():
        best = path.name.removesuffix(TRAINING_STATE_SUFFIX) + ".pt"
        raise CheckpointError(
            f"{path}: a training state, not a model checkpoint; the model is written to "
            f"{path.with_name(best)} when training ends (rerun the same train command to resume "
            "or finish it)"
        )
    text, tensors = _read_payload(path)
    metadata = CheckpointMetadata.from_json(text, path)
    if metadata.state_dict_sha256 != state_dict_digest(tensors):
        raise CheckpointError(f"{path}: tensor digest mismatch, the file is corrupted")
    return metadata, tensors


def _read_payload(path: Path) -> tuple[str, dict[str, Tensor]]:
    import torch
    from torch import Tensor

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    with path.open("rb") as stream:
        head = stream.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"
    try:
        if head[:4] == _ZIP_MAGIC:
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:  # objects other than tensors: refused, never run
                raise CheckpointError(
                    "refused: it holds Python objects other than tensors (code that loading "
                    "would run); nothing was executed. Re-save it with "
                    "csst_photoz.models.save_model from a trusted source"
                ) from None
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
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except Exception as error:  # any parse failure of a damaged file
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated, corrupted or not a checkpoint): "
            f"{type(error).__name__}: {error}"
        ) from error
    return text, tensors


def _read_safetensors(path: Path) -> tuple[Any, dict[str, Tensor]]:
    if not _have_safetensors():
        raise CheckpointError("a safetensors file; install 'safetensors' to read it")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as stream:
        header = stream.metadata() or {}
        tensors = {name: stream.get_tensor(name) for name in stream.keys()}
    return header.get(_METADATA_KEY), tensors
