"""The paper's photometry recipe on CPU with sep: the reference implementation.

Zhou et al. (2022) detect sources on the g+r+i+z stack and measure every band in one elliptical
aperture of 1 x the Kron radius; fluxes and errors are in electrons and negative fluxes are kept.
This module does exactly that with `sep <https://sep.readthedocs.io>`_ (SExtractor's algorithms
as a library) on the CPU. It is the **reference** that the project's own array-library agnostic
(NumPy/CuPy) photometry is tested against, so it favours plain, documented conventions over
speed:

* detection image = sum of the detection bands, its per-pixel error = sqrt(sum of variances);
  ``sep.extract`` with ``err=`` (so the threshold is in units of that error), sep's default
  3 x 3 matched filter, ``minarea`` and ``deblend_cont`` as given;
* Kron radius ``k_R`` from ``sep.kron_radius`` on the detection image, integrating the first
  moment within 6 x (a, b) (SExtractor's convention); ``k_R`` is dimensionless, in units of the
  object's second-moment semi-axes ``a``, ``b`` (pixels);
* aperture: the ellipse of semi-axes ``s * (a, b)`` and angle ``theta`` with
  ``s = kron_factor * k_R`` (the paper: ``kron_factor = 1``; SExtractor's MAG_AUTO: 2.5).
  Apertures whose circular-equivalent radius ``s * sqrt(a * b)`` is below ``min_radius_pix``
  (default 1.75 px, sep's documented minimum) are enlarged, keeping their shape, to that
  circular-equivalent radius, so faint compact objects and objects with a failed (zero) Kron
  radius never get an empty aperture; such rows carry :data:`FLAG_MIN_APERTURE`;
* the same aperture in every band with ``sep.sum_ellipse(..., err=sqrt(variance))``;
  ``detection_snr`` is the aperture flux over its error on the detection image;
* ``flags``: sep's extraction flags OR its Kron-radius flags OR the aperture flags of every band
  and of the detection image (``sep.OBJ_*``, ``sep.APER_*``) OR :data:`FLAG_MIN_APERTURE`.

Pure functions: arrays in, an :class:`astropy.table.Table` out, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sep
from astropy.table import Table
from numpy.typing import NDArray

__all__ = [
    "FLAG_MIN_APERTURE",
    "KRON_INTEGRATION_RADIUS",
    "empty_photometry_table",
    "measure_kron_photometry",
]

#: First-moment integration radius of the Kron radius, in units of (a, b) (SExtractor: 6).
KRON_INTEGRATION_RADIUS = 6.0
#: Flag bit set when the aperture was enlarged to the minimum radius (above sep's own bits).
FLAG_MIN_APERTURE = 0x400

_SHAPE_COLUMNS = ("x", "y", "a", "b", "theta", "kron_radius", "detection_snr")


def empty_photometry_table(bands: Sequence[str]) -> Table:
    """A photometry table with no rows and every column of :func:`measure_kron_photometry`."""
    names = [*_SHAPE_COLUMNS, "flags"]
    dtypes: list[type] = [np.float64] * len(_SHAPE_COLUMNS) + [np.int32]
    for band in bands:
        names += [f"flux_{band}", f"flux_err_{band}"]
        dtypes += [np.float64, np.float64]
    return Table(names=names, dtype=dtypes)


def _as_sep(array: NDArray, dtype: type = np.float64) -> NDArray:
    """C-contiguous, native-endian copy (or view) of the dtype sep needs."""
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("="))


def _validate(
    images: NDArray,
    variances: NDArray,
    bands: list[str],
    detection_bands: Sequence[str],
    kron_factor: float,
    min_radius_pix: float,
    mask: NDArray | None,
) -> None:
    if images.ndim != 3 or images.shape != variances.shape or images.shape[0] != len(bands):
        raise ValueError(
            f"images {images.shape} and variances {variances.shape} must be "
            f"(band={len(bands)}, y, x) arrays of one shape"
        )
    if len(set(bands)) != len(bands):
        raise ValueError(f"band names must be unique, got {bands}")
    if len(detection_bands) == 0:
        raise ValueError("detection_bands must name at least one band")
    missing = [band for band in detection_bands if band not in bands]
    if missing:
        raise ValueError(f"detection band(s) {missing} not among the image's bands {bands}")
    if not kron_factor > 0 or not min_radius_pix > 0:
        raise ValueError(
            f"kron_factor ({kron_factor}) and min_radius_pix ({min_radius_pix}) must be > 0"
        )
    if mask is not None and mask.shape != images.shape[1:]:
        raise ValueError(f"mask {mask.shape} must be (y, x) = {images.shape[1:]}")
    if np.any(variances < 0):
        raise ValueError("variances must be >= 0")


def measure_kron_photometry(
    images: NDArray[np.floating],
    variances: NDArray[np.floating],
    *,
    bands: Sequence[str],
    detection_bands: Sequence[str] = ("g", "r", "i", "z"),
    kron_factor: float = 1.0,
    threshold_sigma: float = 1.5,
    min_area: int = 5,
    deblend_cont: float = 0.005,
    min_radius_pix: float = 1.75,
    mask: NDArray[np.bool_] | None = None,
    mask_neighbours: bool = False,
    subpix: int = 5,
) -> Table:
    """Detect on a band stack and measure Kron-aperture fluxes in every band (sep, CPU).

    Parameters
    ----------
    images
        (band, y, x) background-subtracted images [e-], float32 or float64.
    variances
        Per-pixel variances of ``images`` [e-^2], same shape.
    bands
        Band names of the first axis.
    detection_bands
        Bands summed into the detection image (the paper: g, r, i, z).
    kron_factor
        Aperture size in Kron radii (the paper: 1; SExtractor's MAG_AUTO: 2.5).
    threshold_sigma
        Detection threshold in units of the detection image's per-pixel error.
    min_area
        Minimum number of connected pixels above the threshold.
    deblend_cont
        sep's deblending contrast (1.0 switches deblending off).
    min_radius_pix
        Smallest circular-equivalent aperture radius [pixels]; smaller apertures are enlarged to
        it keeping their shape, and flagged :data:`FLAG_MIN_APERTURE`.
    mask
        Optional (y, x) boolean array of pixels to ignore, in detection and in the apertures.
        Non-finite image or variance pixels are masked as well.
    mask_neighbours
        Ignore pixels of other detected objects (sep's segmentation map) in the Kron radius and
        the apertures, like SExtractor's ``MASK_TYPE`` blanking. Off by default: the plain recipe.
    subpix
        Sub-pixel sampling of the aperture boundary.

    Returns
    -------
    astropy.table.Table
        One row per detected object: ``x``, ``y`` (0-based pixel coordinates: pixel (0, 0) spans
        -0.5..0.5), ``a``, ``b`` [pixels], ``theta`` [rad, from +x towards +y], ``kron_radius``
        (in units of ``a``, ``b``), ``detection_snr``, ``flags`` (int32), and per band
        ``flux_<b>``, ``flux_err_<b>`` [e-] (negative fluxes kept). An image without detections
        gives an empty table with all these columns. ``meta`` records the settings.

    Raises
    ------
    ValueError
        On mismatched shapes, unknown detection bands, or non-positive sizes.
    """
    images = np.asarray(images)
    variances = np.asarray(variances)
    bands = list(bands)
    _validate(images, variances, bands, detection_bands, kron_factor, min_radius_pix, mask)
    bad = ~(np.isfinite(images).all(axis=0) & np.isfinite(variances).all(axis=0))
    pixel_mask = bad if mask is None else (bad | np.asarray(mask, dtype=bool))
    if pixel_mask.any():
        images = np.where(pixel_mask, 0.0, images)
        variances = np.where(pixel_mask, 0.0, variances)
    sep_mask = _as_sep(pixel_mask, np.bool_) if pixel_mask.any() else None

    index = [bands.index(band) for band in detection_bands]
    detection = _as_sep(images[index].sum(axis=0, dtype=np.float64))
    detection_err = _as_sep(np.sqrt(variances[index].sum(axis=0, dtype=np.float64)))
    if sep.get_extract_pixstack() < detection.size:
        sep.set_extract_pixstack(int(detection.size))
    objects, segmap = sep.extract(
        detection,
        threshold_sigma,
        err=detection_err,
        mask=sep_mask,
        minarea=min_area,
        deblend_cont=deblend_cont,
        segmentation_map=True,
    )
    table = empty_photometry_table(bands)
    table.meta.update(
        {
            "detection_bands": list(detection_bands),
            "kron_factor": kron_factor,
            "threshold_sigma": threshold_sigma,
            "min_area": min_area,
            "deblend_cont": deblend_cont,
            "min_radius_pix": min_radius_pix,
            "mask_neighbours": mask_neighbours,
        }
    )
    if len(objects) == 0:
        return table

    x = objects["x"].astype(np.float64)
    y = objects["y"].astype(np.float64)
    a = objects["a"].astype(np.float64)
    b = objects["b"].astype(np.float64)
    theta = objects["theta"].astype(np.float64)
    segments: dict[str, object] = {}
    if mask_neighbours:
        # positive ids mask the pixels of *other* objects only (sep's convention)
        segments = {
            "segmap": _as_sep(segmap, np.int32),
            "seg_id": np.arange(1, len(x) + 1, dtype=np.int32),
        }
    kron_radius, kron_flags = sep.kron_radius(
        detection, x, y, a, b, theta, KRON_INTEGRATION_RADIUS, mask=sep_mask, **segments
    )
    kron_radius = np.asarray(kron_radius, dtype=np.float64)
    # apertures sep accepts: theta within [-pi/2, pi/2] (sep's float32 pi/2 exceeds the
    # float64 one), and degenerate (line-like: b = 0) shapes as the minimum circle
    theta_ap = np.clip(theta, -np.pi / 2, np.pi / 2)
    degenerate = ~(np.isfinite(a) & np.isfinite(b) & (b > 0) & (a >= b))
    a_ap, b_ap = np.where(degenerate, 1.0, a), np.where(degenerate, 1.0, b)
    theta_ap = np.where(degenerate, 0.0, theta_ap)
    scale = kron_factor * np.where(np.isfinite(kron_radius) & ~degenerate, kron_radius, 0.0)
    minimum_scale = min_radius_pix / np.sqrt(a_ap * b_ap)
    clipped = scale < minimum_scale
    scale = np.where(clipped, minimum_scale, scale)
    flags = objects["flag"].astype(np.int32) | np.asarray(kron_flags, dtype=np.int32)
    flags |= np.where(clipped, FLAG_MIN_APERTURE, 0).astype(np.int32)

    def aperture(data: NDArray, error: NDArray) -> tuple[NDArray, NDArray]:
        nonlocal flags
        flux, flux_err, flag = sep.sum_ellipse(
            data, x, y, a_ap, b_ap, theta_ap, scale, err=error, mask=sep_mask, subpix=subpix,
            **segments,
        )  # fmt: skip
        flags |= np.asarray(flag, dtype=np.int32)
        return np.asarray(flux, dtype=np.float64), np.asarray(flux_err, dtype=np.float64)

    columns: dict[str, NDArray] = {"x": x, "y": y, "a": a, "b": b, "theta": theta}
    columns["kron_radius"] = kron_radius
    det_flux, det_err = aperture(detection, detection_err)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["detection_snr"] = det_flux / det_err
    for k, band in enumerate(bands):
        flux, flux_err = aperture(_as_sep(images[k]), _as_sep(np.sqrt(variances[k])))
        columns[f"flux_{band}"], columns[f"flux_err_{band}"] = flux, flux_err
    columns["flags"] = flags
    result = Table({name: columns[name] for name in table.colnames}, meta=table.meta)
    result["flags"] = result["flags"].astype(np.int32)
    return result
