"""Seven-band stamps around sources, cut on the device the tile lives on.

A stamp is the ``S x S`` window (:mod:`.windows`) whose pixel ``(S // 2, S // 2)`` contains the
source centre. Pixels outside the tile, or unusable inside it (the one rule of
:func:`.pixels.usable_pixels`; a fully masked band included), are replaced by Gaussian noise of
the band's background RMS (:func:`.pixels.band_noise`: from the band's variance plane even
where its pixels are masked) and the source gets :attr:`~.SourceFlag.STAMP_PADDED`.

The padding noise must not depend on the device or the batch, so it does not come from a
library generator (NumPy's and CuPy's streams differ): each padded pixel's normal deviate is a
pure function of ``(seed, source key, band, pixel)``, through the SplitMix64 integer mixer and a
Box-Muller transform, in uint64 arithmetic that NumPy and CuPy evaluate identically.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import array_module
from .flags import SourceFlag
from .windows import gather_windows, window_index

__all__ = ["cut_stamps", "hashed_normal"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def _splitmix64(value: Any, xp: Any) -> Any:
    """SplitMix64 finaliser: a bijective, well-mixing map of uint64 arrays (wrapping)."""
    value = value + xp.uint64(_GOLDEN)
    value = (value ^ (value >> xp.uint64(30))) * xp.uint64(_MIX_1)
    value = (value ^ (value >> xp.uint64(27))) * xp.uint64(_MIX_2)
    return value ^ (value >> xp.uint64(31))


def hashed_normal(keys: Any, seed: int) -> Any:
    """Standard normal deviates that are a pure function of integer keys and a seed.

    Parameters
    ----------
    keys
        uint64 array (NumPy or CuPy) of distinct keys.
    seed
        Non-negative integer.

    Returns
    -------
    array
        float32 array of ``keys``' shape, independent N(0, 1) deviates (to the quality of the
        SplitMix64 mixer), identical on NumPy and CuPy.
    """
    xp = array_module(keys)
    seed_mix = _splitmix64(xp.asarray([seed], dtype=xp.uint64), xp)  # (1,): wraps silently
    mixed = _splitmix64(keys.astype(xp.uint64) ^ seed_mix, xp)
    first = _splitmix64(mixed, xp)
    second = _splitmix64(first, xp)
    scale = 2.0**-53
    u1 = ((first >> xp.uint64(11)).astype(xp.float64) + 0.5) * scale  # in (0, 1)
    u2 = ((second >> xp.uint64(11)).astype(xp.float64) + 0.5) * scale
    return (xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * np.pi * u2)).astype(xp.float32)


def cut_stamps(
    images: Any,
    x: Any,
    y: Any,
    *,
    size: int,
    background_rms: Any,
    keys: Any,
    seed: int = 0,
    valid: Any = None,
) -> tuple[Any, Any]:
    """Cut ``(n, n_bands, size, size)`` stamps, padding with background noise where needed.

    Parameters
    ----------
    images
        (n_bands, ny, nx) background-subtracted band stack.
    x, y
        (n,) source centres [pixels, 0-based]; the centre falls in stamp pixel (size // 2,
        size // 2).
    size
        Stamp side ``S`` (>= 1).
    background_rms
        (n_bands,) noise level of the padding per band (NaN, a band without any noise model:
        padded with 0).
    keys
        (n,) non-negative integers identifying the sources (e.g. object ids): the padding of a
        stamp depends only on ``(seed, key, band, pixel)``.
    seed
        Seed of the padding noise.
    valid
        Optional (n_bands, ny, nx) or (ny, nx) bool of usable pixels; non-finite pixels are
        unusable in any case.

    Returns
    -------
    stamps
        float32 (n, n_bands, size, size) on the device of ``images``.
    flags
        int32 (n,): :attr:`~.SourceFlag.STAMP_PADDED` where any pixel was replaced.
    """
    xp = array_module(images, x)
    if images.ndim != 3:
        raise ValueError(f"images must be (band, y, x), got shape {tuple(images.shape)}")
    if int(size) != size or size < 1:
        raise ValueError(f"stamp size must be a positive integer, got {size}")
    n_bands = images.shape[0]
    rms = xp.asarray(background_rms, dtype=xp.float32).reshape(-1)
    if rms.shape[0] != n_bands:
        raise ValueError(f"background_rms needs {n_bands} values, got {rms.shape[0]}")
    rms = xp.where(xp.isfinite(rms), rms, xp.float32(0))  # a band without a noise model: 0
    x = xp.asarray(x, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    keys = xp.asarray(keys).astype(xp.uint64)
    if keys.shape != x.shape:
        raise ValueError(f"keys {keys.shape} must match the {x.shape[0]} sources")
    x0 = xp.floor(x + 0.5).astype(xp.int64) - size // 2
    y0 = xp.floor(y + 0.5).astype(xp.int64) - size // 2
    index = window_index(x0, y0, size, tuple(images.shape[1:]))
    windows, inside = gather_windows(images, x0, y0, size, index=index)  # (band, n, S, S)
    usable = inside[None] & xp.isfinite(windows)
    if valid is not None:
        valid = valid[None] if valid.ndim == 2 else valid
        usable &= gather_windows(valid, x0, y0, size, index=index)[0]
    stamps = xp.moveaxis(windows, 0, 1).astype(xp.float32)  # (n, band, S, S)
    usable = xp.moveaxis(usable, 0, 1)
    padded = ~usable.all(axis=(1, 2, 3))
    if bool(padded.any()):
        rows, bands, iy, ix = xp.nonzero(~usable)
        pixel = (bands.astype(xp.uint64) * xp.uint64(size) + iy.astype(xp.uint64)) * xp.uint64(
            size
        ) + ix.astype(xp.uint64)
        key = _splitmix64(keys[rows], xp) ^ pixel
        stamps[rows, bands, iy, ix] = hashed_normal(key, seed) * rms[bands]
    flags = xp.where(padded, int(SourceFlag.STAMP_PADDED), 0).astype(xp.int32)
    return stamps, flags
