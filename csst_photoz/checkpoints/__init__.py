"""Trained checkpoints shipped with the package, so the batch processor works out of the box.

One file per network (``mlp.pt``, ``cnn.pt``, ``hybrid.pt``, ``hybrid-transfer.pt``), each a
:func:`~csst_photoz.models.save_model` file carrying its input transforms and validation
metrics; ``README.md`` beside them says how each was trained and how it scores.
"""

from __future__ import annotations

from pathlib import Path

from ..io.paths import CHECKPOINT_GLOB, is_training_state

__all__ = ["SHIPPED_ORDER", "checkpoint_files", "shipped_checkpoints"]

#: The networks in the order their columns appear in the catalogue.
SHIPPED_ORDER = ("mlp", "cnn", "hybrid", "hybrid-transfer")


def checkpoint_files(directory: str | Path) -> list[Path]:
    """The model checkpoints in a folder (``*.pt``, training states ``*.last.pt`` excluded).

    Files named after a network (``mlp.pt``, ...) come first in :data:`SHIPPED_ORDER`, then
    any others by name.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {directory}")
    files = [p for p in directory.glob(CHECKPOINT_GLOB) if not is_training_state(p)]
    rank = {name: k for k, name in enumerate(SHIPPED_ORDER)}
    return sorted(files, key=lambda p: (rank.get(p.stem, len(rank)), p.name))


def shipped_checkpoints() -> list[Path]:
    """The checkpoints installed with the package (possibly none)."""
    return checkpoint_files(Path(__file__).parent)
