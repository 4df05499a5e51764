"""Constants every layer shares; this module imports nothing, so any module may import it."""

from __future__ import annotations

__all__ = ["AB_ZERO_POINT_NJY", "CSST_BANDS"]

#: Flux density of an AB magnitude 0 source [nJy] (3631 Jy): ``mag = -2.5 log10(f / this)``.
AB_ZERO_POINT_NJY: float = 3631.0e9

#: The CSST survey camera's seven bands, in the order of every band axis and column list.
CSST_BANDS: tuple[str, ...] = ("NUV", "u", "g", "r", "i", "z", "y")
