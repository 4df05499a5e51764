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

from ..constants import CSST_BANDS
from ..tile import MaskBit, Tile
from .paths import tile_fits_path
from .tile_zarr import TileFormatError

__all__ = ["read_tile_fits", "tile_fits_path", "write_tile_fits"]

_WCS_TOLERANCE = 1e-9
_ELECTRON_UNITS = ("electron", "electrons", "e-")


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
    unit = str(header.get("BUNIT", "electron")).strip().lower()
    if unit not in _ELECTRON_UNITS:
        raise TileFormatError(f"{path}: BUNIT is {header['BUNIT']!r}, expected 'electron'")
    try:
        wcs = WCS(header).celestial
    except Exception as exc:  # astropy.wcs raises several types for bad headers
        raise TileFormatError(f"{path}: unusable WCS ({type(exc).__name__}: {exc})") from exc
    if wcs.naxis != 2:
        raise TileFormatError(f"{path}: no celestial WCS in the primary header")
    return {"header": header, "image": image, "variance": variance, "mask": mask, "wcs": wcs}


def _wcs_difference(a: WCS, b: WCS) -> str | None:
    """The first WCS element in which two bands differ, or None."""
    if list(a.wcs.ctype) != list(b.wcs.ctype):
        return f"CTYPE {list(b.wcs.ctype)} vs {list(a.wcs.ctype)}"
    for name, x, y in (
        ("CRVAL", a.wcs.crval, b.wcs.crval),
        ("CRPIX", a.wcs.crpix, b.wcs.crpix),
        ("CD", a.pixel_scale_matrix, b.pixel_scale_matrix),
    ):
        if not np.allclose(x, y, rtol=0, atol=_WCS_TOLERANCE):
            return f"{name} {np.asarray(y).tolist()} vs {np.asarray(x).tolist()}"
    return None


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
    if isinstance(paths, Mapping):
        labelled = [(str(band), Path(p)) for band, p in paths.items()]
    else:
        labelled = [(None, Path(p)) for p in paths]
    files = [path for _, path in labelled]
    by_band: dict[str, tuple[Path, dict]] = {}
    for label, path in labelled:
        if not path.is_file():
            raise TileFormatError(f"{path}: file not found")
        content = _read_band(path)
        band = str(content["header"]["BAND"])
        if label is not None and label != band:
            raise TileFormatError(f"{path}: given as band {label!r} but its BAND is {band!r}")
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
        difference = _wcs_difference(first["wcs"], content["wcs"])
        if difference is not None:
            raise TileFormatError(f"{path}: WCS differs from {first_path}: {difference}")
        for key in ("TILEID", "PIXSCALE"):
            a, b = first["header"].get(key), content["header"].get(key)
            if a != b:
                raise TileFormatError(f"{path}: {key}={b} differs from {first_path} ({a})")
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
    elif "TILEID" in header and int(header["TILEID"]) != tile_id:
        raise TileFormatError(f"{first_path}: TILEID={header['TILEID']}, but tile_id={tile_id}")
    wcs_header = dict(first["wcs"].to_header().items())
    try:
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
    except ValueError as exc:  # calibration keywords the tile refuses (e.g. EXPTIME <= 0)
        raise TileFormatError(f"{first_path}: {exc}") from exc
