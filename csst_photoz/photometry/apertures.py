"""Aperture photometry and Kron radii of many sources in many bands, on NumPy or CuPy.

The seven-band measurement shares one geometry: for each batch of sources
(:mod:`.windows`), the pixel windows of every band are gathered once, the exact pixel overlaps
of each aperture (:mod:`.overlap`) are computed once, and every band is summed with them.

Conventions (those of sep and photutils, against which the tests check):

* flux = sum over pixels of ``overlap x image``; variance = sum of ``overlap x variance`` (the
  fractional-area convention of both sep and photutils' exact method);
* unusable pixels (``valid`` False: see :func:`.pixels.usable_pixels`) get zero weight and no
  correction for the lost area; the source is flagged :attr:`~.SourceFlag.MASKED`; a band with
  no usable pixel in the aperture gives NaN flux and error and
  :attr:`~.SourceFlag.BAND_MISSING`; both bits are also given per band (``band_flags``);
* pixels outside the image count as unusable and flag :attr:`~.SourceFlag.EDGE`;
* pixels of other sources (the segmentation map) flag :attr:`~.SourceFlag.NEIGHBOURS` and get
  zero weight if ``mask_neighbours``;
* negative fluxes are kept.

The Kron radius follows sep's ``kron_radius`` (SExtractor's first moment): within the ellipse of
``integration_radius x (a, b)``, tested at pixel centres, ``k_R = sum(r I) / sum(I)`` with ``r``
the elliptical radius in units of ``(a, b)``; a non-positive sum gives 0 and
:attr:`~.SourceFlag.KRON_FAILED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backend import array_module, to_numpy
from .flags import SourceFlag
from .overlap import ellipse_overlap
from .windows import (
    DEFAULT_MAX_WINDOW_PIXELS,
    gather_windows,
    plan_windows,
    window_index,
    window_offsets,
    window_size_for,
)

__all__ = ["ApertureFluxes", "ellipse_half_extent", "kron_radius", "sum_ellipses"]


@dataclass(frozen=True)
class ApertureFluxes:
    """Aperture sums of ``n`` sources in ``n_bands`` bands for ``n_apertures`` apertures.

    Attributes
    ----------
    flux, flux_err
        float64 (n_apertures, n_bands, n), in the unit of the image (NaN where a band has no
        usable pixel in the aperture).
    flags
        int32 (n_apertures, n) :class:`~.SourceFlag` bits (any band).
    band_flags
        int32 (n_apertures, n_bands, n): per band, the bits :attr:`~.SourceFlag.MASKED` and
        :attr:`~.SourceFlag.BAND_MISSING` of that band alone.
    """

    flux: Any
    flux_err: Any
    flags: Any
    band_flags: Any


def ellipse_half_extent(semi_a: Any, semi_b: Any, theta: Any) -> Any:
    """Half-width of an ellipse's bounding box along x or y, whichever is larger [pixels]."""
    xp = array_module(semi_a)
    cos2, sin2 = xp.cos(theta) ** 2, xp.sin(theta) ** 2
    half_x = xp.sqrt(semi_a**2 * cos2 + semi_b**2 * sin2)
    half_y = xp.sqrt(semi_a**2 * sin2 + semi_b**2 * cos2)
    return xp.maximum(half_x, half_y)


def _check_stack(name: str, array: Any, shape: tuple[int, ...]) -> None:
    if array is not None and tuple(array.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(array.shape)}, expected {shape}")


def _check_centres(x: Any, y: Any) -> None:
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be 1-D of one length")


def _all_positive_finite(xp: Any, *arrays: Any) -> bool:
    return all(bool(xp.all((v > 0) & xp.isfinite(v))) for v in arrays)


def _as_2d(value: Any, xp: Any, n: int) -> Any:
    value = xp.asarray(value, dtype=xp.float64)
    value = value[None] if value.ndim == 1 else value
    if value.ndim != 2 or value.shape[1] != n:
        raise ValueError(f"aperture parameters must have shape (n,) or (k, n) with n = {n}")
    return value


def _window_flags(
    weight: Any, inside: Any, neighbour: Any, saturated: Any, cut: slice, xp: Any
) -> Any:
    """EDGE, NEIGHBOURS and SATURATED bits of one aperture over a batch of windows."""
    touched = weight > 0
    bits = xp.where((touched & ~inside).any(axis=(1, 2)), int(SourceFlag.EDGE), 0)
    if neighbour is not None:
        hit = (touched & inside & neighbour[:, cut, cut]).any(axis=(1, 2))
        bits |= xp.where(hit, int(SourceFlag.NEIGHBOURS), 0)
    if saturated is not None:
        hit = (touched[None] & inside[None] & saturated[:, :, cut, cut]).any(axis=(0, 2, 3))
        bits |= xp.where(hit, int(SourceFlag.SATURATED), 0)
    return bits


def sum_ellipses(
    images: Any,
    variances: Any,
    x: Any,
    y: Any,
    semi_a: Any,
    semi_b: Any,
    theta: Any,
    *,
    valid: Any = None,
    saturated: Any = None,
    segmentation: Any = None,
    mask_neighbours: bool = False,
    max_window_pixels: int = DEFAULT_MAX_WINDOW_PIXELS,
) -> ApertureFluxes:
    """Exact-overlap elliptical (or circular) aperture sums in every band.

    Parameters
    ----------
    images, variances
        (n_bands, ny, nx) band stack [e-] and its per-pixel variance [e-^2] (2-D arrays are
        taken as one band).
    x, y
        (n,) aperture centres [pixels, 0-based; pixel (0, 0) spans -0.5..0.5].
    semi_a, semi_b, theta
        (n,) or (n_apertures, n): semi-axes [pixels] and angle of ``semi_a`` from +x towards +y
        [rad]; a circle of radius r is ``semi_a = semi_b = r``.
    valid
        Optional bool, (n_bands, ny, nx) or (ny, nx): usable pixels. Non-finite image or
        variance pixels are unusable in any case.
    saturated
        Optional bool (n_bands, ny, nx) or (ny, nx): saturated pixels (kept, but flagged).
    segmentation
        Optional (ny, nx) int source labels, source ``k`` = ``k + 1``, 0 = none.
    mask_neighbours
        Give zero weight to pixels of other sources (needs ``segmentation``).
    max_window_pixels
        Memory cap per batch (pixels per plane).

    Returns
    -------
    ApertureFluxes
        Sums on the device of the input.
    """
    xp = array_module(images, x)
    images = images[None] if images.ndim == 2 else images
    variances = variances[None] if variances.ndim == 2 else variances
    _check_stack("variances", variances, tuple(images.shape))
    n_bands, ny, nx = images.shape
    x = xp.asarray(x, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    _check_centres(x, y)
    n = x.shape[0]
    semi_a, semi_b, theta = (_as_2d(v, xp, n) for v in (semi_a, semi_b, theta))
    if not _all_positive_finite(xp, semi_a, semi_b):
        raise ValueError("aperture semi-axes must be > 0 and finite")
    if valid is not None:
        valid = valid[None] if valid.ndim == 2 else valid
        if tuple(valid.shape) not in ((1, ny, nx), (n_bands, ny, nx)):
            raise ValueError(f"valid has shape {tuple(valid.shape)}, expected {(n_bands, ny, nx)}")
    if saturated is not None:
        saturated = saturated[None] if saturated.ndim == 2 else saturated
        if tuple(saturated.shape) not in ((1, ny, nx), (n_bands, ny, nx)):
            raise ValueError(
                f"saturated has shape {tuple(saturated.shape)}, expected {(n_bands, ny, nx)}"
            )
    if segmentation is not None:
        _check_stack("segmentation", segmentation, (ny, nx))
    elif mask_neighbours:
        raise ValueError("mask_neighbours needs a segmentation map")

    n_apertures = semi_a.shape[0]
    flux = xp.full((n_apertures, n_bands, n), xp.nan, dtype=xp.float64)
    flux_err = xp.full((n_apertures, n_bands, n), xp.nan, dtype=xp.float64)
    flags = xp.zeros((n_apertures, n), dtype=xp.int32)
    band_flags = xp.zeros((n_apertures, n_bands, n), dtype=xp.int32)
    extents = ellipse_half_extent(semi_a, semi_b, theta)
    extents_host = to_numpy(extents)
    for batch in plan_windows(extents.max(axis=0), max_window_pixels=max_window_pixels):
        rows = xp.asarray(batch.rows)
        x0, y0, dx, dy = window_offsets(x[rows], y[rows], batch.size)
        index = window_index(x0, y0, batch.size, (ny, nx))
        pixels, inside = gather_windows(images, x0, y0, batch.size, index=index)
        pixel_var, _ = gather_windows(variances, x0, y0, batch.size, index=index)
        # usable = finite (and valid); checked on the windows, not the whole image. With a
        # `valid` stack the windows are masked anyway: no host sync to ask whether they need it
        ok = xp.isfinite(pixels) & xp.isfinite(pixel_var)
        if valid is not None:
            ok &= gather_windows(valid, x0, y0, batch.size, index=index)[0]
        elif bool(ok.all()):
            ok = None
        if ok is not None:
            pixels = xp.where(ok, pixels, 0.0)
            pixel_var = xp.where(ok, pixel_var, 0.0)
        sat = None
        if saturated is not None:
            sat = gather_windows(saturated, x0, y0, batch.size, index=index)[0]
        neighbour = None
        if segmentation is not None:
            labels, _ = gather_windows(segmentation, x0, y0, batch.size, index=index)
            neighbour = (labels != 0) & (labels != (rows + 1)[:, None, None])
        for k in range(n_apertures):
            # the centred sub-window this aperture needs (windows share their centre pixel)
            size = window_size_for(float(extents_host[k, batch.rows].max()))
            cut = slice((batch.size - size) // 2, (batch.size - size) // 2 + size)
            if size >= batch.size:
                cut = slice(0, batch.size)
            weight = ellipse_overlap(
                dx[:, :, cut], dy[:, cut, :], semi_a[k, rows, None, None],
                semi_b[k, rows, None, None], theta[k, rows, None, None],
            )  # fmt: skip
            bits = _window_flags(weight, inside[:, cut, cut], neighbour, sat, cut, xp)
            weight = weight * inside[:, cut, cut]
            if mask_neighbours:
                weight = xp.where(neighbour[:, cut, cut], 0.0, weight)
            window = (slice(None), slice(None), cut, cut)
            # sums in the pixels' dtype (float32 for tiles): no float64 copy of the windows
            weight_p = weight.astype(pixels.dtype)
            band_flux = xp.einsum("nij,bnij->bn", weight_p, pixels[window]).astype(xp.float64)
            band_var = xp.einsum("nij,bnij->bn", weight_p, pixel_var[window]).astype(xp.float64)
            band_err = xp.sqrt(band_var)
            touched = weight > 0  # zero outside the image (and on masked neighbours)
            if ok is None:
                missing = xp.broadcast_to(~touched.any(axis=(1, 2)), band_flux.shape)
                per_band = xp.zeros(band_flux.shape, dtype=xp.int32)
            else:
                lost = (touched[None] & ~ok[window]).any(axis=(2, 3))  # (bands or 1, n)
                per_band = xp.broadcast_to(
                    xp.where(lost, int(SourceFlag.MASKED), 0), band_flux.shape
                )
                bits |= xp.where(lost.any(axis=0), int(SourceFlag.MASKED), 0)
                missing = ~(touched[None] & ok[window]).any(axis=(2, 3))
            per_band = per_band | xp.where(missing, int(SourceFlag.BAND_MISSING), 0)
            bits |= xp.where(missing.any(axis=0), int(SourceFlag.BAND_MISSING), 0)
            flux[k][:, rows] = xp.where(missing, xp.nan, band_flux)
            flux_err[k][:, rows] = xp.where(missing, xp.nan, band_err)
            flags[k, rows] = bits.astype(xp.int32)
            band_flags[k][:, rows] = per_band.astype(xp.int32)
    return ApertureFluxes(flux=flux, flux_err=flux_err, flags=flags, band_flags=band_flags)


def kron_radius(
    image: Any,
    x: Any,
    y: Any,
    a: Any,
    b: Any,
    theta: Any,
    *,
    integration_radius: float = 6.0,
    valid: Any = None,
    segmentation: Any = None,
    mask_neighbours: bool = False,
    max_window_pixels: int = DEFAULT_MAX_WINDOW_PIXELS,
) -> tuple[Any, Any]:
    """Kron radius (first moment of the elliptical radius) of each source.

    Parameters
    ----------
    image
        (ny, nx) detection image [e-].
    x, y, a, b, theta
        (n,) centres, second-moment semi-axes [pixels] and angles [rad].
    integration_radius
        Radius of the integration ellipse in units of (a, b) (SExtractor and sep: 6).
    valid
        Optional (ny, nx) bool: usable pixels (non-finite pixels are unusable in any case).
    segmentation, mask_neighbours
        As in :func:`sum_ellipses`.
    max_window_pixels
        Memory cap per batch (pixels).

    Returns
    -------
    kron, flags
        float64 (n,) Kron radius in units of (a, b) (0 where undefined) and int32 (n,)
        :class:`~.SourceFlag` bits (EDGE, NEIGHBOURS, KRON_FAILED).
    """
    xp = array_module(image, x)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {tuple(image.shape)}")
    x, y, a, b, theta = (xp.asarray(v, dtype=xp.float64) for v in (x, y, a, b, theta))
    _check_centres(x, y)
    if not all(v.shape == x.shape for v in (a, b, theta)):
        raise ValueError(f"a, b and theta must have the shape of x {tuple(x.shape)}")
    if not _all_positive_finite(xp, a, b):
        raise ValueError("second-moment axes a and b must be > 0 and finite")
    if segmentation is not None:
        _check_stack("segmentation", segmentation, tuple(image.shape))
    if not integration_radius > 0:
        raise ValueError(f"integration_radius must be > 0, got {integration_radius}")
    usable = xp.isfinite(image) if valid is None else (valid & xp.isfinite(image))
    if mask_neighbours and segmentation is None:
        raise ValueError("mask_neighbours needs a segmentation map")
    kron = xp.zeros(x.shape, dtype=xp.float64)
    flags = xp.zeros(x.shape, dtype=xp.int32)
    extent = ellipse_half_extent(integration_radius * a, integration_radius * b, theta)
    for batch in plan_windows(extent, max_window_pixels=max_window_pixels):
        rows = xp.asarray(batch.rows)
        x0, y0, dx, dy = window_offsets(x[rows], y[rows], batch.size)
        index = window_index(x0, y0, batch.size, tuple(image.shape))
        pixels, inside = gather_windows(image, x0, y0, batch.size, index=index)
        ok, _ = gather_windows(usable, x0, y0, batch.size, index=index)
        cos_t, sin_t = xp.cos(theta[rows, None, None]), xp.sin(theta[rows, None, None])
        inv_a2, inv_b2 = 1.0 / a[rows, None, None] ** 2, 1.0 / b[rows, None, None] ** 2
        cxx = cos_t**2 * inv_a2 + sin_t**2 * inv_b2
        cyy = sin_t**2 * inv_a2 + cos_t**2 * inv_b2
        cxy = 2.0 * cos_t * sin_t * (inv_a2 - inv_b2)
        radius = xp.sqrt((cxx * dx * dx + cyy * dy * dy) + (cxy * dx) * dy)
        region = radius <= integration_radius
        bits = xp.where((region & ~inside).any(axis=(1, 2)), int(SourceFlag.EDGE), 0)
        if segmentation is not None:
            labels, _ = gather_windows(segmentation, x0, y0, batch.size, index=index)
            neighbour = (labels != 0) & (labels != (rows + 1)[:, None, None])
            hit = (region & inside & neighbour).any(axis=(1, 2))
            bits |= xp.where(hit, int(SourceFlag.NEIGHBOURS), 0)
            if mask_neighbours:
                region &= ~neighbour
        weight = xp.where(region & ok & inside, pixels, 0.0).astype(xp.float64)
        total = weight.sum(axis=(1, 2))
        moment = (weight * radius).sum(axis=(1, 2))
        good = (total > 0) & (moment > 0)
        # with noise (negative pixels) the ratio can exceed the integration radius, which no
        # non-negative profile can: cap it there
        ratio = xp.minimum(moment / xp.where(good, total, 1.0), integration_radius)
        kron[rows] = xp.where(good, ratio, 0.0)
        flags[rows] = (bits | xp.where(good, 0, int(SourceFlag.KRON_FAILED))).astype(xp.int32)
    return kron, flags
