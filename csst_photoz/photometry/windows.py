"""Square pixel windows around many sources at once: planning and gathering.

Aperture photometry, Kron radii and stamps all need, per source, the pixels of a small square
around it. Instead of a Python loop over sources (thousands of tiny kernels on a GPU), sources
are grouped by the window size they need, and each group is gathered in one fancy-indexing call
into an ``(n, W, W)`` block (``(planes, n, W, W)`` for a band stack). Pixels outside the image
are fetched from a clipped index and reported by an ``inside`` mask, so callers can give them
zero weight, flag them, or replace them. Batches are capped at ``max_window_pixels`` pixels per
plane to bound memory.

Planning runs on the host on per-source sizes (a few kB even for a full tile); the pixels never
leave the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import array_module, to_numpy

__all__ = [
    "DEFAULT_MAX_WINDOW_PIXELS",
    "WindowBatch",
    "WindowIndex",
    "gather_windows",
    "plan_windows",
    "window_index",
    "window_offsets",
    "window_size_for",
]

#: Window sides tried in order: 6, 8, ..., 16, 20, ..., 32, 40, ... (steps of at most 25%, so a
#: window holds at most ~1.6x the pixels needed, and few distinct sizes mean few batches).
_BASE_SIZES = tuple(
    sorted(
        {
            size
            for octave in range(3, 12)
            for size in range(2**octave, 2 ** (octave + 1), 2 ** (octave - 2))
        }
        | {6}
    )
)

#: Default cap on pixels per plane in one batch (4 Mpix: 16 MB per float32 plane).
DEFAULT_MAX_WINDOW_PIXELS = 1 << 22

#: A group of windows is widened to the next larger size when that costs at most this many
#: extra pixels per plane: on one CPU core a batch's fixed cost (some 40-100 array operations
#: whatever its size) is about that of 4k window pixels (measured at 256^2 to 1024^2: 1 << 12
#: beat 0, 1 << 14 and 1 << 16). One value for every array module, so that a CuPy run batches
#: as a NumPy run does (on a GPU, where launches dominate, a larger one would cut more).
DEFAULT_MERGE_PIXELS = 1 << 12


@dataclass(frozen=True)
class WindowBatch:
    """Sources sharing one window side.

    Attributes
    ----------
    rows
        Host int64 indices of the sources in this batch.
    size
        Window side ``W`` [pixels].
    """

    rows: np.ndarray
    size: int


def window_size_for(half_extent: float) -> int:
    """Smallest window side whose window around a source covers ``half_extent`` pixels.

    A window of side ``W`` starts ``W // 2`` pixels before the pixel containing the centre, so
    it reaches at least ``W // 2 - 1`` pixels (from the centre) on every side.
    """
    needed = 2 * (int(np.ceil(half_extent)) + 1)
    for size in _BASE_SIZES:
        if size >= needed:
            return size
    return needed + needed % 2


def _window_sizes(half_extent: np.ndarray) -> np.ndarray:
    """`window_size_for` of every entry, vectorised."""
    needed = 2 * (np.ceil(half_extent).astype(np.int64) + 1)
    table = np.asarray(_BASE_SIZES, dtype=np.int64)
    slot = np.searchsorted(table, needed)
    fits = slot < table.size
    sizes = np.where(fits, table[np.minimum(slot, table.size - 1)], needed + needed % 2)
    return sizes.astype(np.int64)


def plan_windows(
    half_extent: Any,
    *,
    max_window_pixels: int = DEFAULT_MAX_WINDOW_PIXELS,
    merge_pixels: int = DEFAULT_MERGE_PIXELS,
) -> Iterator[WindowBatch]:
    """Group sources by window side and split the groups into bounded batches.

    Each source needs the window side :func:`window_size_for` its half extent. Going up the
    sizes, the group so far is widened to the next size when that adds at most
    ``merge_pixels`` window pixels (``n_group x (W_next**2 - W**2)``): a few dozen small
    sources then share a batch instead of making one each (on a simulated 256 x 256 image the
    Kron radii's 11 batches become 7 and the detection S/N's 8 become 3). A larger window only
    adds pixels outside the apertures (the sums may round differently in float32).

    Parameters
    ----------
    half_extent
        Per source, the largest distance [pixels] from its centre, along x or y, that its
        window must cover (NumPy or CuPy; brought to the host, it is small).
    max_window_pixels
        Cap on ``n x W x W`` per batch (at least one source per batch).
    merge_pixels
        Extra pixels (per plane) one widening may cost; 0 gives every window size its own
        batches.

    Yields
    ------
    WindowBatch
        Batches in increasing window size; every source appears in exactly one, with a side
        of at least its own ``window_size_for``.
    """
    extent = to_numpy(half_extent).astype(np.float64)
    if extent.ndim != 1 or not np.all(np.isfinite(extent)) or np.any(extent < 0):
        raise ValueError("half_extent must be a 1-D array of finite values >= 0")
    per_source = _merged_sizes(_window_sizes(extent), merge_pixels)
    for size in np.unique(per_source):
        rows = np.flatnonzero(per_source == size)
        step = max(1, max_window_pixels // int(size * size))
        for start in range(0, rows.size, step):
            yield WindowBatch(rows=rows[start : start + step], size=int(size))


def _merged_sizes(sizes: np.ndarray, merge_pixels: int) -> np.ndarray:
    """Each source's window side after widening groups (see :func:`plan_windows`)."""
    distinct, counts = np.unique(sizes, return_counts=True)
    widened = distinct.copy()
    start, members = 0, 0  # the group being built: its first size and its sources
    for k in range(distinct.size):
        step = int(distinct[k]) ** 2 - int(distinct[k - 1]) ** 2 if k else 0
        if k and members * step > merge_pixels:  # too dear: the group ends below this size
            start, members = k, 0
        members += int(counts[k])
        widened[start : k + 1] = distinct[k]
    return widened[np.searchsorted(distinct, sizes)]


def window_offsets(x: Any, y: Any, size: int) -> tuple[Any, Any, Any, Any]:
    """Window origins and pixel-centre offsets for sources at (x, y).

    Parameters
    ----------
    x, y
        Source centres (n,) [pixels, 0-based; pixel (0, 0) spans -0.5..0.5].
    size
        Window side ``W``.

    Returns
    -------
    x0, y0
        (n,) int64 column and row of each window's first pixel.
    dx, dy
        (n, 1, W) and (n, W, 1) float64 offsets of the pixel centres from the source centre.
    """
    xp = array_module(x, y)
    x0 = xp.floor(x + 0.5).astype(xp.int64) - size // 2
    y0 = xp.floor(y + 0.5).astype(xp.int64) - size // 2
    steps = xp.arange(size, dtype=xp.int64)
    dx = ((x0[:, None] + steps[None, :]) - x[:, None]).astype(xp.float64)[:, None, :]
    dy = ((y0[:, None] + steps[None, :]) - y[:, None]).astype(xp.float64)[:, :, None]
    return x0, y0, dx, dy


@dataclass(frozen=True)
class WindowIndex:
    """Where a batch of windows lies in an image: reusable across the planes gathered.

    Attributes
    ----------
    flat
        (n, W, W) int64 flat pixel indices, clipped to the image.
    inside
        (n, W, W) bool: the pixel lies within the image.
    shape
        (ny, nx) of the image.
    """

    flat: Any
    inside: Any
    shape: tuple[int, int]


def window_index(x0: Any, y0: Any, size: int, shape: tuple[int, int]) -> WindowIndex:
    """The flat indices and in-image mask of ``W x W`` windows starting at (x0, y0)."""
    xp = array_module(x0, y0)
    ny, nx = shape
    steps = xp.arange(size, dtype=xp.int64)
    rows = y0[:, None] + steps[None, :]
    cols = x0[:, None] + steps[None, :]
    inside = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
    flat = xp.clip(rows, 0, ny - 1)[:, :, None] * nx + xp.clip(cols, 0, nx - 1)[:, None, :]
    return WindowIndex(flat=flat, inside=inside, shape=(int(ny), int(nx)))


def gather_windows(
    planes: Any, x0: Any, y0: Any, size: int, *, index: WindowIndex | None = None
) -> tuple[Any, Any]:
    """Copy the ``W x W`` windows starting at (x0, y0) out of a stack of planes.

    Parameters
    ----------
    planes
        (P, ny, nx) or (ny, nx) array, any dtype, NumPy or CuPy.
    x0, y0
        (n,) int window origins (may lie partly or wholly outside the image).
    size
        Window side ``W``.
    index
        The batch's :func:`window_index`, when several planes are gathered for one batch (it is
        computed here otherwise).

    Returns
    -------
    windows
        (P, n, W, W) (or (n, W, W) for a 2-D input); pixels outside the image hold the value of
        the nearest edge pixel and must be masked with ``inside``.
    inside
        (n, W, W) bool: the pixel lies within the image.
    """
    xp = array_module(planes)
    flat_input = planes.ndim == 2
    stack = planes[None] if flat_input else planes
    ny, nx = stack.shape[1:]
    if index is None:
        index = window_index(x0, y0, size, (ny, nx))
    elif index.shape != (ny, nx):
        raise ValueError(f"window index for an image of {index.shape}, planes of {(ny, nx)}")
    windows = xp.take(stack.reshape(stack.shape[0], ny * nx), index.flat, axis=1)
    return (windows[0] if flat_input else windows), index.inside
