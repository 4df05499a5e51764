"""The tile store: one zarr v3 group per tile, written atomically and read with validation.

Layout of ``tile_<id>.zarr``:

- arrays ``image`` (float32), ``variance`` (float32) and ``mask`` (uint16), shape
  (band, y, x), chunked one band at a time in spatial chunks of at most 1024 x 1024 pixels
  (4 MB of float32; a 2048 x 2048 tile has 4 chunks per band), compressed with Blosc zstd
  level 5 and bit-shuffle (float32 sky noise barely compresses, ~98% of its raw size;
  variance and mask planes shrink to almost nothing). Every chunk is written, even an
  all-zero one, so a chunk file lost from disk is an error on reading, not silent zeros;
- group attributes: ``format`` ("csst_photoz.tile"), ``format_version``, ``tile_id``,
  ``bands``, ``zero_point_rate``, ``exposure_time``, ``pixel_scale_arcsec``, ``wcs_header``
  and ``meta`` (see :class:`csst_photoz.tile.Tile`).

A tile is written to a temporary sibling folder and renamed into place, so a reader never sees
half a tile. Bands can also be streamed one at a time (:class:`TileZarrWriter`) so that a full
9216 x 9232 CSST detector never needs all seven bands in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray

from ..tile import MaskBit, Tile, TileDataError
from .atomic import with_default_mode

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TileFormatError",
    "TileZarrWriter",
    "read_tile_zarr",
    "tile_size_on_disk",
    "write_tile_zarr",
]

FORMAT = "csst_photoz.tile"
FORMAT_VERSION = 1
_CHUNK_SIDE = 1024
# all-zero chunks are stored too (a few bytes each), so a lost chunk file is detectable
_WRITE_CONFIG = {"write_empty_chunks": True}
_PLANES = {"image": np.float32, "variance": np.float32, "mask": np.uint16}
_REQUIRED_ATTRS = (
    "tile_id",
    "bands",
    "zero_point_rate",
    "exposure_time",
    "pixel_scale_arcsec",
    "wcs_header",
)


class TileFormatError(TileDataError):
    """A tile on disk is missing, incomplete, corrupt or not in the expected format."""


def _compressor() -> zarr.codecs.BloscCodec:
    return zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class TileZarrWriter:
    """Write a tile band by band, then publish it atomically with :meth:`commit`.

    The writer holds only paths, so it can be sent to other processes: bands may be written by
    different Dask tasks (each band is its own set of chunks), and :meth:`commit` checks that
    every band arrived before it renames the staging folder into place.

    Parameters
    ----------
    path
        Final location of the tile's zarr group.
    shape
        (n_bands, ny, nx).
    attrs
        The tile's attributes (``tile_id``, ``bands``, ``zero_point_rate``, ...).

    Examples
    --------
    >>> writer = TileZarrWriter(path, shape, attrs)      # doctest: +SKIP
    >>> for b, image, variance, mask in planes:          # doctest: +SKIP
    ...     writer.write_band(b, image, variance, mask)
    >>> writer.commit()                                  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int], attrs: Mapping[str, Any]):
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.staging = with_default_mode(
            tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        )
        try:
            group = zarr.open_group(self.staging, mode="w", zarr_format=3)
            chunks = (1, min(_CHUNK_SIDE, self.shape[1]), min(_CHUNK_SIDE, self.shape[2]))
            for name, dtype in _PLANES.items():
                group.create_array(
                    name,
                    shape=self.shape,
                    chunks=chunks,
                    dtype=dtype,
                    compressors=_compressor(),
                    config=_WRITE_CONFIG,
                )
            group.attrs.update(
                {"format": FORMAT, "format_version": FORMAT_VERSION, **_json_safe(dict(attrs))}
            )
        except BaseException:
            self.abort()
            raise

    def _marker(self, band_index: int) -> Path:
        return self.staging / f"band_{band_index}.written"

    def write_band(
        self,
        band_index: int,
        image: NDArray[np.float32],
        variance: NDArray[np.float32],
        mask: NDArray[np.uint16],
    ) -> None:
        """Store one band's planes (from any process)."""
        if not 0 <= band_index < self.shape[0]:
            raise ValueError(f"{self.path}: band index {band_index} outside 0..{self.shape[0] - 1}")
        for name, plane in (("image", image), ("variance", variance), ("mask", mask)):
            if plane.shape != self.shape[1:]:
                raise ValueError(
                    f"{self.path}: band {band_index} {name} has shape {plane.shape}, "
                    f"expected {self.shape[1:]}"
                )
            array = zarr.open_array(self.staging / name, mode="r+").with_config(_WRITE_CONFIG)
            array[band_index] = plane.astype(_PLANES[name], copy=False)
        self._marker(band_index).touch()

    def commit(self) -> Path:
        """Publish the tile at its final path (replacing any previous version whole)."""
        missing = [b for b in range(self.shape[0]) if not self._marker(b).exists()]
        if missing:
            self.abort()
            raise ValueError(f"{self.path}: bands {missing} were never written")
        for b in range(self.shape[0]):
            self._marker(b).unlink()
        if self.path.exists():
            retired = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, retired)
            os.replace(self.staging, self.path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(self.staging, self.path)
        return self.path

    def abort(self) -> None:
        """Discard what was written."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _tile_attrs(tile: Tile) -> dict[str, Any]:
    names = ("tile_id", "bands", "zero_point_rate", "exposure_time", "pixel_scale_arcsec")
    return {
        **{name: getattr(tile, name) for name in names},
        "wcs_header": dict(tile.wcs_header),
        "meta": dict(tile.meta),
    }


def write_tile_zarr(tile: Tile, path: str | Path) -> Path:
    """Write a tile as a zarr v3 group (atomically; an existing tile is replaced whole).

    Parameters
    ----------
    tile
        The tile.
    path
        Destination folder, conventionally ``tile_<id>.zarr``
        (:func:`csst_photoz.io.paths.tile_store_path`).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    writer = TileZarrWriter(path, tile.image.shape, _tile_attrs(tile))
    try:
        for b in range(len(tile.bands)):
            writer.write_band(b, tile.image[b], tile.variance[b], tile.mask[b])
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def _read_plane(array: zarr.Array, name: str, where: str) -> np.ndarray:
    stored = array.nchunks_initialized
    if stored != array.nchunks:
        raise TileFormatError(
            f"{where}: array {name!r} has {stored} of its {array.nchunks} chunks on disk "
            "(chunk files missing: truncated copy?)"
        )
    try:
        return array[...]
    except Exception as exc:  # zarr/numcodecs raise many types for damaged chunks
        raise TileFormatError(
            f"{where}: array {name!r} cannot be read (truncated or corrupt chunk?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def read_tile_zarr(path: str | Path, *, expected_bands: Sequence[str] | None = None) -> Tile:
    """Read and validate a tile written by :func:`write_tile_zarr`.

    Non-finite pixels are not used silently: their image is set to 0, their variance to inf,
    ``MaskBit.NONFINITE`` is set, and the count per band goes to ``meta["nonfinite_pixels"]``.

    Parameters
    ----------
    path
        The tile's zarr group.
    expected_bands
        If given, the tile's bands must be exactly these, in this order.

    Returns
    -------
    Tile

    Raises
    ------
    TileFormatError
        Naming the path and the problem: missing, not a tile, missing arrays or attributes,
        wrong dtype or shape, bands missing or out of order, unreadable chunks.
    """
    path = Path(path)
    where = f"tile store {path}"
    if not path.exists():
        raise TileFormatError(f"{where}: does not exist")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as exc:
        raise TileFormatError(f"{where}: not a zarr group ({type(exc).__name__}: {exc})") from exc
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT:
        raise TileFormatError(f"{where}: not a csst_photoz tile (format={attrs.get('format')!r})")
    missing_attrs = [key for key in _REQUIRED_ATTRS if key not in attrs]
    if missing_attrs:
        raise TileFormatError(f"{where}: missing attribute(s) {', '.join(missing_attrs)}")
    where = f"tile {attrs['tile_id']} ({path})"
    bands = tuple(attrs["bands"])
    if expected_bands is not None and bands != tuple(expected_bands):
        absent = [band for band in expected_bands if band not in bands]
        extra = [band for band in bands if band not in expected_bands]
        raise TileFormatError(
            f"{where}: bands {bands} do not match the expected {tuple(expected_bands)}"
            + (f"; missing {absent}" if absent else "")
            + (f"; unexpected {extra}" if extra else "")
            + ("; same bands in another order" if not absent and not extra else "")
        )
    planes = {}
    for name, dtype in _PLANES.items():
        if name not in group.array_keys():
            raise TileFormatError(f"{where}: array {name!r} is missing")
        array = group[name]
        if array.dtype != dtype:
            raise TileFormatError(
                f"{where}: array {name!r} has dtype {array.dtype}, expected {np.dtype(dtype)}"
            )
        if array.ndim != 3 or array.shape[0] != len(bands):
            raise TileFormatError(
                f"{where}: array {name!r} has shape {array.shape}, expected ({len(bands)}, y, x)"
            )
        planes[name] = _read_plane(array, name, where)
    shapes = {name: plane.shape for name, plane in planes.items()}
    if len(set(shapes.values())) != 1:
        raise TileFormatError(f"{where}: planes differ in shape: {shapes}")
    image, variance, mask = planes["image"], planes["variance"], planes["mask"]
    bad = ~np.isfinite(image) | np.isnan(variance) | (variance < 0)
    meta = dict(attrs.get("meta", {}))
    if bad.any():
        image[bad] = 0.0
        variance[bad] = np.inf
        mask[bad] |= np.uint16(MaskBit.NONFINITE)
    meta["nonfinite_pixels"] = bad.sum(axis=(1, 2)).tolist()
    try:
        return Tile(
            tile_id=attrs["tile_id"],
            bands=bands,
            image=image,
            variance=variance,
            mask=mask,
            zero_point_rate=tuple(attrs["zero_point_rate"]),
            exposure_time=tuple(attrs["exposure_time"]),
            pixel_scale_arcsec=attrs["pixel_scale_arcsec"],
            wcs_header=attrs["wcs_header"],
            meta=meta,
        )
    except ValueError as exc:
        raise TileFormatError(f"{where}: {exc}") from exc


def tile_size_on_disk(path: str | Path) -> int:
    """Bytes used by a tile's files."""
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())
