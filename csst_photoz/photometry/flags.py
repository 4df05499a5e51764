"""Per-source quality flags of the photometry catalogue (the ``flags`` column, int32).

One bit per condition so that users can select clean samples with a mask such as
``(flags & (SourceFlag.EDGE | SourceFlag.SATURATED)) == 0``. Flags are set, never used to drop
rows: every detected source keeps its row.

``flags`` holds the bits of the Kron aperture over all bands; ``flags_<band>`` holds, per band,
the bits of that band alone (:attr:`SourceFlag.MASKED`, :attr:`SourceFlag.BAND_MISSING`), so
clean photometry in a band is ``(flags_<band> & (MASKED | BAND_MISSING)) == 0``. Clean, isolated
photometry: ``(flags & (NEIGHBOURS | BLENDED | MASKED | EDGE | SATURATED)) == 0``.
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
    #: The Kron aperture contains unusable pixels (masked, non-finite, zero variance: one rule,
    #: :func:`csst_photoz.photometry.pixels.usable_pixels`) in some band; they got zero weight.
    MASKED = 4
    #: An aperture contains saturated pixels.
    SATURATED = 8
    #: The Kron aperture contains pixels of another source of the catalogue (the segments of
    #: kept sources only: noise peaks dropped by the S/N cut are no neighbours); such pixels
    #: get zero weight if ``mask_neighbours``.
    NEIGHBOURS = 16
    #: The Kron aperture was enlarged to the minimum radius.
    MIN_APERTURE = 32
    #: The Kron radius was undefined (no positive flux within the integration region).
    KRON_FAILED = 64
    #: The stamp extends beyond the tile or holds unusable pixels (a masked band included); they
    #: are replaced by noise at the band's background level.
    STAMP_PADDED = 128
    #: The detection footprint touches the tile edge or a masked region.
    FOOTPRINT_TRUNCATED = 256
    #: At least one band has no usable pixel in the Kron aperture (its flux is NaN; which one:
    #: ``flags_<band>``).
    BAND_MISSING = 512
