"""Per-band CSST-like FITS images in and out of the in-memory :class:`~csst_photoz.tile.Tile`.

One file per band, ``tile<id>_<band>.fits``: the primary HDU holds the image (float32,
BUNIT = electron, background-subtracted, summed over the band's exposures) with the celestial
WCS and the keywords BAND, TILEID, EXPTIME [s], ZPRATE [e-/s of an AB = 0 source] and
PIXSCALE [arcsec]; image extensions ``VARIANCE`` (float32, e-^2) and ``MASK`` (uint16,
:class:`~csst_photoz.tile.MaskBit`). On reading, a ``WEIGHT`` extension (inverse variance) is
accepted in place of ``VARIANCE``. This is how real CSST images enter the pipeline.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ..tile import MaskBit, Tile
from .tile_zarr import TileFormatError

__all__ = ["read_tile_fits", "tile_fits_path", "write_tile_fits"]

CSST_BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
_WCS_KEYS_COMPARED = ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def tile_fits_path(directory: str | Path, tile_id: int, band: str) -> Path:
    """Path of one band's FITS file: ``<directory>/tile<id>_<band>.fits``."""
    return Path(directory) / f"tile{tile_id}_{band}.fits"


def write_tile_fits(tile: Tile, directory: str | Path) -> list[Path]:
    """Write one FITS file per band (image, VARIANCE and MASK HDUs); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wcs_header = WCS(fits.Header(dict(tile.wcs_header))).to_header()
    paths = []
    for b, band in enumerate(tile.bands):
        header = fits.Header(wcs_header)
        header["BAND"] = (band, "CSST band")
        header["TILEID"] = (tile.tile_id, "tile id")
        header["EXPTIME"] = (tile.exposure_time[b], "[s] total exposure of the summed image")
        header["ZPRATE"] = (tile.zero_point_rate[b], "[e-/s] count rate of an AB = 0 source")
        header["PIXSCALE"] = (tile.pixel_scale_arcsec, "[arcsec] pixel size")
        header["BUNIT"] = "electron"
        hdus = fits.HDUList(
            [
                fits.PrimaryHDU(tile.image[b], header=header),
                fits.ImageHDU(tile.variance[b], name="VARIANCE"),
                fits.ImageHDU(tile.mask[b], name="MASK"),
            ]
        )
        path = tile_fits_path(directory, tile.tile_id, band)
        temporary = path.with_name(f".{path.name}.tmp")
        hdus.writeto(temporary, overwrite=True)
        temporary.replace(path)
        paths.append(path)
    return paths


def _read_band(path: Path) -> dict:
    try:
        with warnings.catch_warnings(), fits.open(path, memmap=False) as hdus:
            warnings.simplefilter("error", AstropyUserWarning)  # e.g. "may have been truncated"
            hdus.verify("exception")
            header = hdus[0].header
            image = np.asarray(hdus[0].data, dtype=np.float32)
            names = [hdu.name for hdu in hdus]
            mask = (
                np.asarray(hdus["MASK"].data, dtype=np.uint16)
                if "MASK" in names
                else np.zeros(image.shape, dtype=np.uint16)
            )
            if "VARIANCE" in names:
                variance = np.asarray(hdus["VARIANCE"].data, dtype=np.float32)
            elif "WEIGHT" in names:
                weight = np.asarray(hdus["WEIGHT"].data, dtype=np.float32)
                with np.errstate(divide="ignore"):
                    variance = np.where(weight > 0, 1.0 / weight, np.inf).astype(np.float32)
                mask = mask | np.where(weight > 0, 0, MaskBit.BAD).astype(np.uint16)
            else:
                raise TileFormatError(f"{path}: no VARIANCE or WEIGHT extension")
    except TileFormatError:
        raise
    except (OSError, TypeError, ValueError, fits.VerifyError, AstropyUserWarning) as exc:
        raise TileFormatError(f"{path}: not a readable FITS image ({exc})") from exc
    if image.ndim != 2:
        raise TileFormatError(f"{path}: primary image must be 2-D, got shape {image.shape}")
    if variance.shape != image.shape or mask.shape != image.shape:
        raise TileFormatError(
            f"{path}: image {image.shape}, variance {variance.shape}, mask {mask.shape} differ"
        )
    for key in ("BAND", "EXPTIME", "ZPRATE", "PIXSCALE"):
        if key not in header:
            raise TileFormatError(f"{path}: header keyword {key} is missing")
    return {"header": header, "image": image, "variance": variance, "mask": mask}


def read_tile_fits(
    paths: Sequence[str | Path] | Mapping[str, str | Path],
    *,
    tile_id: int | None = None,
    bands: Sequence[str] = CSST_BANDS,
) -> Tile:
    """Assemble a :class:`Tile` from per-band FITS files (in any order).

    Parameters
    ----------
    paths
        The files, or a mapping band -> file; each file's band is its BAND keyword.
    tile_id
        Tile id; default: the files' TILEID keyword.
    bands
        Bands the tile must have, in order.

    Returns
    -------
    Tile
        Non-finite pixels masked (``MaskBit.NONFINITE``, image 0, variance inf).

    Raises
    ------
    TileFormatError
        Naming the file: unreadable, missing HDUs or keywords, missing or duplicate bands,
        bands whose shape or WCS differ.
    """
    files = [Path(p) for p in (paths.values() if isinstance(paths, Mapping) else paths)]
    by_band: dict[str, tuple[Path, dict]] = {}
    for path in files:
        if not path.is_file():
            raise TileFormatError(f"{path}: file not found")
        content = _read_band(path)
        band = str(content["header"]["BAND"])
        if band in by_band:
            raise TileFormatError(f"band {band} given twice: {by_band[band][0]} and {path}")
        by_band[band] = (path, content)
    missing = [band for band in bands if band not in by_band]
    if missing:
        raise TileFormatError(
            f"bands {missing} missing among {[str(p) for p in files]} (found {sorted(by_band)})"
        )
    first_path, first = by_band[bands[0]]
    for band in bands[1:]:
        path, content = by_band[band]
        if content["image"].shape != first["image"].shape:
            raise TileFormatError(
                f"{path}: shape {content['image'].shape} differs from {first_path} "
                f"{first['image'].shape}"
            )
        for key in _WCS_KEYS_COMPARED:
            a, b = first["header"].get(key, 0.0), content["header"].get(key, 0.0)
            if not np.isclose(a, b, rtol=0, atol=1e-9 * max(1.0, abs(a))):
                raise TileFormatError(f"{path}: WCS {key}={b} differs from {first_path} ({a})")
    image = np.stack([by_band[b][1]["image"] for b in bands])
    variance = np.stack([by_band[b][1]["variance"] for b in bands])
    mask = np.stack([by_band[b][1]["mask"] for b in bands])
    bad = ~np.isfinite(image) | np.isnan(variance) | (variance < 0)
    image[bad], variance[bad] = 0.0, np.inf
    mask[bad] |= np.uint16(MaskBit.NONFINITE)
    header = first["header"]
    if tile_id is None:
        if "TILEID" not in header:
            raise TileFormatError(f"{first_path}: no TILEID keyword; pass tile_id")
        tile_id = int(header["TILEID"])
    wcs_header = {key: value for key, value in WCS(header).to_header().items()}
    return Tile(
        tile_id=tile_id,
        bands=tuple(bands),
        image=image,
        variance=variance,
        mask=mask,
        zero_point_rate=tuple(float(by_band[b][1]["header"]["ZPRATE"]) for b in bands),
        exposure_time=tuple(float(by_band[b][1]["header"]["EXPTIME"]) for b in bands),
        pixel_scale_arcsec=float(header["PIXSCALE"]),
        wcs_header=wcs_header,
        meta={
            "source_files": [str(by_band[b][0]) for b in bands],
            "nonfinite_pixels": bad.sum(axis=(1, 2)).tolist(),
        },
    )
