"""The per-epoch training log: one JSON object per line.

Each line holds ``epoch``, ``train_loss`` (MAE over the epoch's batches), ``train_nll``,
``val_loss``, ``val_nll``, ``val_sigma_nmad``, ``val_outlier_fraction``, ``val_accuracy``,
``val_bias``, ``val_coverage_68``, ``lr`` (during the epoch), ``seconds`` (wall time of the
epoch, validation included), ``samples_per_second`` (training samples over training time,
all processes), ``steps`` (optimiser steps of each process), ``best`` (whether this epoch's
model was kept) and ``world_size``. A resumed run first drops the lines of epochs after the
state it resumes from, so every epoch appears once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["EpochLog", "read_log"]


def _clean(value: Any) -> Any:
    """NaN and infinities become None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a log file (empty if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class EpochLog:
    """Append-only JSON-lines log of a training run.

    Parameters
    ----------
    path
        The log file.
    enabled
        False for every process but rank 0 of a distributed run: nothing is written.
    """

    def __init__(self, path: str | os.PathLike[str], *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def start(self, *, after_epoch: int) -> None:
        """Begin writing after ``after_epoch`` (0: a fresh run, the file is emptied)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if int(r.get("epoch", 0)) <= after_epoch]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept) if after_epoch else ""
        self.path.write_text(text)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line (flushed at once)."""
        if not self.enabled:
            return
        line = json.dumps({k: _clean(v) for k, v in record.items()}, sort_keys=True)
        with self.path.open("a") as stream:
            stream.write(line + "\n")
