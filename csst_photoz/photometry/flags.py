"""Per-source quality flags of the photometry catalogue (the ``flags`` column, int32).

One bit per condition so that users can select clean samples with a mask such as
``(flags & (SourceFlag.EDGE | SourceFlag.SATURATED)) == 0``. Flags are set, never used to drop
rows: every detected source keeps its row.
"""

from __future__ import annotations

import enum

__all__ = ["SourceFlag"]


class SourceFlag(enum.IntFlag):
    """Bits of the ``flags`` column."""

    #: The source was split from a detection footprint shared with other sources (deblended).
    BLENDED = 1
    #: An aperture (Kron, circular or the Kron integration region) extends beyond the tile.
    EDGE = 2
    #: An aperture contains masked or non-finite pixels; they got zero weight.
    MASKED = 4
    #: An aperture contains saturated pixels.
    SATURATED = 8
    #: An aperture contains pixels of other detected sources (masked if ``mask_neighbours``).
    NEIGHBOURS = 16
    #: The Kron aperture was enlarged to the minimum radius.
    MIN_APERTURE = 32
    #: The Kron radius was undefined (no positive flux within the integration region).
    KRON_FAILED = 64
    #: The stamp extends beyond the tile; the missing pixels are noise at the background level.
    STAMP_PADDED = 128
    #: The detection footprint touches the tile edge or a masked region.
    FOOTPRINT_TRUNCATED = 256
    #: At least one band has no usable pixel in the Kron aperture (its flux is NaN).
    BAND_MISSING = 512
