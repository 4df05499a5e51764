"""The in-memory sky tile: seven-band images, variance, mask flags and calibration.

This is the object every stage exchanges: the simulator produces it, the tile store (zarr) and
the FITS reader/writer in :mod:`csst_photoz.io` persist it, and photometry consumes it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from .constants import AB_ZERO_POINT_NJY

__all__ = ["MaskBit", "Tile", "TileDataError"]


class TileDataError(ValueError):
    """A tile whose data cannot be used (missing, corrupt, wrong format, refused by photometry).

    The batch processor records such a tile as failed (not retried) and goes on; every other
    exception is a fault for Dask to retry, then to report.
    """


class MaskBit(enum.IntFlag):
    """Bit flags of the ``mask`` plane (uint16)."""

    BAD = 1  #: unusable pixel (e.g. dead column)
    SATURATED = 2  #: saturated (bright star)
    COSMIC_RAY = 4  #: cosmic-ray hit
    HOT_PIXEL = 8  #: hot pixel
    NONFINITE = 16  #: NaN or inf in the input, replaced by 0 with infinite variance
    NO_DATA = 32  #: outside the exposed area


@dataclass(frozen=True, eq=False)
class Tile:
    """One sky tile in all bands.

    Parameters
    ----------
    tile_id
        Non-negative integer id, unique in a survey (object ids derive from it).
    bands
        Band names, in the order of the first image axis (CSST order: NUV, u, g, r, i, z, y).
    image
        float32 (band, y, x): background-subtracted signal in electrons summed over the band's
        exposures.
    variance
        float32, same shape: per-pixel variance [e-^2] (background, read noise and source
        Poisson noise).
    mask
        uint16, same shape: :class:`MaskBit` flags.
    zero_point_rate
        Per band: count rate [e-/s] of an AB = 0 source.
    exposure_time
        Per band: total exposure time of the summed image [s].
    pixel_scale_arcsec
        Pixel size [arcsec].
    wcs_header
        FITS WCS keywords (celestial TAN for simulated tiles), as a mapping.
    meta
        Free-form provenance (simulator seed and version, source files, ...); JSON-able values.
    """

    tile_id: int
    bands: tuple[str, ...]
    image: NDArray[np.float32]
    variance: NDArray[np.float32]
    mask: NDArray[np.uint16]
    zero_point_rate: tuple[float, ...]
    exposure_time: tuple[float, ...]
    pixel_scale_arcsec: float
    wcs_header: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"tile {self.tile_id}"
        if not isinstance(self.tile_id, int | np.integer) or self.tile_id < 0:
            raise ValueError(f"tile_id must be a non-negative integer, got {self.tile_id!r}")
        object.__setattr__(self, "tile_id", int(self.tile_id))
        object.__setattr__(self, "bands", tuple(self.bands))
        n_bands = len(self.bands)
        if n_bands == 0 or len(set(self.bands)) != n_bands:
            raise ValueError(f"{where}: bands must be non-empty and unique, got {self.bands}")
        for name, dtype in (("image", np.float32), ("variance", np.float32), ("mask", np.uint16)):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != dtype:
                found = getattr(array, "dtype", type(array).__name__)
                raise ValueError(
                    f"{where}: {name} must be a numpy {np.dtype(dtype)} array, got {found}"
                )
            if array.ndim != 3 or array.shape[0] != n_bands:
                raise ValueError(
                    f"{where}: {name} must have shape (band={n_bands}, y, x), got {array.shape}"
                )
        if not (self.image.shape == self.variance.shape == self.mask.shape):
            raise ValueError(
                f"{where}: image {self.image.shape}, variance {self.variance.shape} and mask "
                f"{self.mask.shape} differ in shape"
            )
        for name in ("zero_point_rate", "exposure_time"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != n_bands or not all(np.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"{where}: {name} needs {n_bands} positive values, got {values}")
            object.__setattr__(self, name, values)
        if not self.pixel_scale_arcsec > 0:
            raise ValueError(f"{where}: pixel_scale_arcsec must be > 0")

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of every band."""
        return self.image.shape[1], self.image.shape[2]

    @property
    def wcs(self) -> WCS:
        """The celestial WCS of the tile."""
        return WCS(fits.Header(dict(self.wcs_header)))

    def electrons_per_njy(self) -> NDArray[np.float64]:
        """Per band: electrons in the summed image per nJy of source flux density."""
        return np.array(self.zero_point_rate) * np.array(self.exposure_time) / AB_ZERO_POINT_NJY

    def band_index(self, band: str) -> int:
        """Position of a band on the first axis."""
        try:
            return self.bands.index(band)
        except ValueError:
            raise KeyError(
                f"tile {self.tile_id} has no band {band!r}; bands: {self.bands}"
            ) from None
