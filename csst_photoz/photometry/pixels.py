"""Which pixels can be used, and the detection image built from the bands usable at each pixel.

**One rule for unusable pixels**, shared by detection, apertures and stamps
(:func:`usable_pixels`): a pixel of a band is usable when its image value and variance are finite,
its variance is strictly positive, and it carries none of the ``bad_bits`` mask flags. Everything
downstream reads the resulting boolean stack: detection ignores unusable pixels, apertures give
them zero weight and flag :attr:`~.SourceFlag.MASKED` (or :attr:`~.SourceFlag.BAND_MISSING`
when none is left), stamps replace them by noise at the band's level.

**The detection image** (:func:`detection_image`) combines, at each pixel, only the detection
bands usable there::

    D = (W / W_p) sum_b u_b w_b I_b,      V_D = (W / W_p)**2 sum_b u_b w_b**2 V_b,

with ``u_b`` the pixel's usable flag in band ``b``, ``w_b`` the band weights, ``W = sum_b w_b``
and ``W_p = sum_b u_b w_b``. Where every band is usable this is the weighted sum (with the
default unit weights the paper's g + r + i + z stack, bit for bit); where a band is missing,
``D`` is the same weighted sum estimated from the bands present and its variance follows them,
so a defect in one band lowers the depth locally instead of punching a hole (or a step) into
the galaxies crossing it. A pixel usable in no detection band has ``D = V_D = 0`` and is
unusable for detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import array_module

__all__ = ["band_noise", "detection_image", "usable_pixels"]


def usable_pixels(images: Any, variances: Any, mask: Any = None, *, bad_bits: int = 0) -> Any:
    """Usable pixels: finite image and variance, variance > 0, no ``bad_bits`` mask flag.

    Parameters
    ----------
    images, variances
        (n_bands, ny, nx) band stack and its per-pixel variance (NumPy or CuPy).
    mask
        Optional unsigned integer flags, (n_bands, ny, nx) or (ny, nx) (shared by every band).
    bad_bits
        Mask bits that make a pixel unusable.

    Returns
    -------
    array
        bool (n_bands, ny, nx) on the input's device.
    """
    xp = array_module(images, variances)
    if tuple(images.shape) != tuple(variances.shape):
        raise ValueError(
            f"images {tuple(images.shape)} and variances {tuple(variances.shape)} differ in shape"
        )
    valid = xp.isfinite(images) & xp.isfinite(variances) & (variances > 0)
    if mask is not None:
        mask = mask[None] if mask.ndim == valid.ndim - 1 else mask
        if tuple(mask.shape[-2:]) != tuple(valid.shape[-2:]):
            raise ValueError(
                f"mask {tuple(mask.shape)} does not match the images {tuple(images.shape)}"
            )
        valid &= (mask & bad_bits) == 0
    return valid


def band_noise(variances: Any, valid: Any, *, stride: int = 4) -> Any:
    """Per band, the median noise [sqrt of the variance] of its usable pixels.

    A band without a usable pixel falls back on its finite, positive variances regardless of
    the mask (a band flagged unusable still has a noise model), and is NaN only when it has
    none. The median runs over every ``stride``-th pixel in each direction: plenty for a noise
    level, and ``stride**2`` times cheaper on a full tile.

    Parameters
    ----------
    variances
        (n_bands, ny, nx) variance stack.
    valid
        bool stack of the same shape (:func:`usable_pixels`).
    stride
        Sub-sampling step.

    Returns
    -------
    array
        float64 (n_bands,) on the input's device.
    """
    xp = array_module(variances)
    sparse_var = variances[:, ::stride, ::stride]
    sparse_valid = valid[:, ::stride, ::stride]
    n_bands = variances.shape[0]
    if bool(sparse_valid.all()):  # the usual case: every band in one call, one host sync
        return xp.sqrt(xp.median(sparse_var.reshape(n_bands, -1), axis=1)).astype(xp.float64)
    noise = xp.full(n_bands, xp.nan, dtype=xp.float64)
    for k in range(n_bands):  # per band (7): one host sync each
        usable = sparse_var[k][sparse_valid[k]]
        if usable.size == 0:
            usable = sparse_var[k][xp.isfinite(sparse_var[k]) & (sparse_var[k] > 0)]
        if usable.size:
            noise[k] = xp.sqrt(xp.median(usable))
    return noise


def detection_image(
    images: Any,
    variances: Any,
    valid: Any,
    index: Sequence[int],
    *,
    weights: Sequence[float] | None = None,
) -> tuple[Any, Any, Any]:
    """Detection image and variance from the detection bands usable at each pixel.

    Parameters
    ----------
    images, variances
        (n_bands, ny, nx) stacks whose unusable pixels are 0 (image and variance).
    valid
        bool (n_bands, ny, nx) usable pixels (:func:`usable_pixels`).
    index
        Planes of the detection bands.
    weights
        Per detection band weight (> 0); default 1 each (the plain sum).

    Returns
    -------
    image, variance
        float32 (ny, nx), as the module docstring defines them (0 where no band is usable).
    usable
        bool (ny, nx): at least one detection band is usable.
    """
    xp = array_module(images)
    index = list(index)
    weights = [1.0] * len(index) if weights is None else [float(w) for w in weights]
    if len(weights) != len(index) or not all(w > 0 for w in weights):
        raise ValueError(f"need {len(index)} positive detection weights, got {weights}")
    unit = all(w == 1.0 for w in weights)
    image = _weighted_sum(images, index, None if unit else weights, xp)
    variance = _weighted_sum(variances, index, None if unit else [w * w for w in weights], xp)
    if unit and bool(valid[index].all()):  # the usual case: every band everywhere, the sum
        return image, variance, xp.ones(image.shape, dtype=bool)
    present = valid[index[0]].astype(xp.float32) * xp.float32(weights[0])
    for k, w in zip(index[1:], weights[1:], strict=True):
        present += valid[k].astype(xp.float32) * xp.float32(w)
    usable = present > 0
    total = sum(weights)
    if not bool(xp.all(present == xp.float32(total))):  # some band missing somewhere
        scale = xp.where(usable, xp.float32(total) / xp.where(usable, present, 1), 0)
        image *= scale
        variance *= scale * scale
    return image, variance, usable


def _weighted_sum(stack: Any, index: list[int], weights: list[float] | None, xp: Any) -> Any:
    """``sum_k w_k stack[index_k]`` in float32, accumulated in place (plain sum if no weights)."""
    total = stack[index[0]].astype(xp.float32, copy=True)
    if weights is not None:
        total *= xp.float32(weights[0])
    for j, k in enumerate(index[1:], start=1):
        if weights is None:
            xp.add(total, stack[k], out=total)
        else:
            total += stack[k] * xp.float32(weights[j])
    return total
