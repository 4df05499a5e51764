"""The resumable training state (the ``last`` checkpoint) and the files of a run.

After every epoch the state is written atomically (temporary file, then rename) with
``torch.save`` of tensors and plain containers only: the model's state dict and configuration,
the optimiser's and scheduler's state dicts, the epoch, the early-stopping bookkeeping and the
random-number generators' states. It is read back with ``torch.load(..., weights_only=True)``,
which refuses anything else, so a state file from elsewhere cannot run code.

A run writing the best model to ``CKPT`` (e.g. ``mlp.pt``) keeps its state in
``mlp.last.pt`` and its log in ``mlp.log.jsonl`` beside it (`RunPaths`). The state also holds
the best epoch's weights (``"best_model"``): ``CKPT`` itself is written once, calibrated, when
training ends (`csst_photoz.training.train_model`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import atomic_destination
from ..io.paths import training_log_path, training_state_path

__all__ = [
    "STATE_FORMAT",
    "STATE_FORMAT_VERSION",
    "ResumeError",
    "RunPaths",
    "capture_rng",
    "check_resumable",
    "load_training_state",
    "restore_rng",
    "save_training_state",
]

#: Identifier and layout version of a training-state file.
STATE_FORMAT = "csst_photoz.training_state"
STATE_FORMAT_VERSION = 1


class ResumeError(ValueError):
    """A training state that does not belong to the run asked for."""


@dataclass(frozen=True)
class RunPaths:
    """The files of a training run, derived from its best-model path.

    Attributes
    ----------
    best
        The best model (`csst_photoz.models.save_model` format).
    state
        The training state after the last completed epoch.
    log
        JSON lines, one per epoch.
    """

    best: Path
    state: Path
    log: Path

    @classmethod
    def for_checkpoint(cls, path: str | os.PathLike[str]) -> RunPaths:
        """``CKPT`` -> ``CKPT``, ``<stem>.last.pt``, ``<stem>.log.jsonl`` in its folder."""
        best = Path(path)
        return cls(best=best, state=training_state_path(best), log=training_log_path(best))


def capture_rng() -> dict[str, Any]:
    """The global torch RNG states (CPU and, if initialised, every CUDA device)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what `capture_rng` captured (CUDA states only where devices match)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_training_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain containers) atomically, tagged with the format."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, **state}
    with atomic_destination(target) as temporary:
        torch.save(payload, temporary)
    return target


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by `save_training_state` (``weights_only=True``).

    Raises
    ------
    ResumeError
        If the file is unreadable or not a training state of this format version.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure of a damaged or foreign file
        raise ResumeError(
            f"{path}: unreadable training state ({type(error).__name__}: {error}); "
            "delete it or train with --no-resume"
        ) from error
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResumeError(f"{path}: not a csst_photoz training state")
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise ResumeError(
            f"{path}: training-state version {state.get('format_version')}, expected "
            f"{STATE_FORMAT_VERSION}; train with --no-resume"
        )
    return state


def check_resumable(
    path: Path, state: dict[str, Any], *, kind: str, data_hash: str, settings: dict[str, Any]
) -> None:
    """Refuse to resume from a state of another network, other data or other settings.

    ``settings`` is `TrainingConfig.fingerprint_dict` (the epoch budget may change).
    """
    if state.get("kind") != kind:
        raise ResumeError(
            f"{path}: a {state.get('kind')} run, not {kind}; choose another --out or --no-resume"
        )
    if state.get("data_hash") != data_hash:
        raise ResumeError(f"{path}: trained on other data; choose another --out or --no-resume")
    saved = json.loads(state.get("settings", "{}"))
    if saved != settings:
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise ResumeError(
            f"{path}: the interrupted run used other settings ({', '.join(changed)}); "
            "only the epoch budget may change on resume; use --no-resume to start over"
        )
