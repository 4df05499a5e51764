"""Slices of a simulation: one of ``count`` contiguous ranges of tile ids or training-set rows.

A job array simulates a large set in slices, one per array task (``jobs/simulate.sbatch``):
``csst-photoz simulate tiles|stamps ... --slice INDEX/COUNT``. Slice ``k`` of ``n`` items is the
range ``[k * n // count, (k + 1) * n // count)``, so the slices are contiguous, in order, cover
``0..n-1`` exactly once and differ in length by at most one.

Every simulated item depends only on the master seed and its own index (a tile's pixels on
(seed, tile id), a stamp and its table row on (seed, row) through the one truth catalogue drawn
from the seed), so the union of the slices equals a single run with the same seed:

* tiles: every slice writes its ``tile_<id>.zarr`` into the same folder;
* stamps: every slice writes its own folder ``OUT/slice_<k>``
  (`csst_photoz.io.paths.slice_folder`), with the slice recorded in its metadata
  (`SliceSpec.metadata`), and ``csst-photoz simulate merge`` of the
  slices concatenates them back into the single run's folder, without renumbering.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SliceSpec", "parse_slice"]

_SLICE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class SliceSpec:
    """Slice ``index`` (0-based) of ``count`` contiguous slices.

    Raises
    ------
    ValueError
        Unless ``0 <= index < count``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"slice {self.index}/{self.count}: need 0 <= INDEX < COUNT")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this slice of ``n`` items.

        Raises
        ------
        ValueError
            When there are fewer items than slices (a slice would be empty).
        """
        if n < self.count:
            raise ValueError(f"slice {self}: only {n} items for {self.count} slices")
        return self.index * n // self.count, (self.index + 1) * n // self.count

    def metadata(self, n: int) -> dict[str, Any]:
        """What a slice folder records about itself (JSON-ready)."""
        start, stop = self.bounds(n)
        return {"index": self.index, "count": self.count, "start": start, "stop": stop, "n": n}


def parse_slice(text: str) -> SliceSpec:
    """``"INDEX/COUNT"`` -> `SliceSpec` (an ``argparse`` type: bad text is a usage error)."""
    match = _SLICE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT (e.g. 0/4), got {text!r}")
    try:
        return SliceSpec(int(match[1]), int(match[2]))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
