"""Source detection and deblending on the detection image: one code path for NumPy and CuPy.

sep's recipe (``sep.extract`` with ``clean=False``) in whole-array operations of the input's
array module (``ndimage`` filters and labelling, gathers, ``bincount``, sorts, ``searchsorted``):
a CuPy image never leaves the GPU, only scalars reach the host (loop conditions). Sorts have
unique keys or read only values that ties cannot change, so NumPy and CuPy give the same rows.

1. **Matched filter** (sep's 3 x 3 kernel ``k``): ``snr = (I * k) / sqrt(V * k**2)``, zero
   padded; masked, non-finite and zero-variance pixels get zero weight and are not detected.
   ``F = (I * k) / sum|k|`` is sep's filtered image: deblending and moments use it, as in sep.
2. **Footprints**: 8-connected regions of ``snr > threshold_sigma`` of ``>= min_area`` pixels.
3. **Deblending**: SExtractor's multi-threshold test, evaluated at the saddles of a watershed
   instead of on ``deblend_nthresh`` re-labelled levels.

   * Every pixel points to its highest 8-neighbour in ``F`` (ties: larger index); pointer
     jumping takes it to its local maximum: the *basins*. Two touching basins meet at their
     *saddle*, the highest ``min(F_p, F_q)`` over touching pixel pairs.
   * Flooding from the top, two components meeting at a saddle remain separate only if both
     are *significant* at the next level ``t`` above it (``deblend_nthresh`` levels spaced
     exponentially from sep's lowest, ``threshold_sigma`` x the pixel noise, to the peak):
     ``>= min(min_area, 3)`` pixels above ``t`` and ``sum(F - t) > deblend_cont sum(F)``.
   * Events run in parallel rounds (Borůvka-like), each component looking across its highest
     saddle: an insignificant one merges at once (exact: no split needs it); a significant
     one splits off if its partner is significant at the partner's own highest saddle (a
     lower bound), else waits. Every round unites components; ~3 rounds on survey images.
   * Pixels joining a split footprint later go to the source across their saddle (SExtractor
     draws them by Gaussian-profile odds); sources under ``min_area`` pixels join the
     neighbour across their highest saddle (sep keeps them).

4. **Measurements** (``bincount`` over segments): sep's barycentre (of the core above the split
   for a split source) and second moments about it, weighted by ``F``, with sep's guard for
   singular (line-like) moments; ``isophotal_flux`` sums the unfiltered image.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .backend import array_module, ndimage_module
from .flags import SourceFlag

__all__ = ["SEP_DEFAULT_KERNEL", "Detections", "detect_sources", "sextractor_threshold"]

#: sep's (and SExtractor's) default 3 x 3 detection filter.
SEP_DEFAULT_KERNEL = ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0))
_HALF = ((0, 1), (1, -1), (1, 0), (1, 1))  # every neighbour pair once
_EIGHT = _HALF + tuple((-dy, -dx) for dy, dx in _HALF)
_BRANCH_AREA = 3  # sep's MAXDEBAREA: a deblending branch needs min(min_area, 3) pixels
_MAX_JUMPS = 64  # pointer jumping doubles the path length covered per step


def sextractor_threshold(detect_thresh: float, kernel: Any | None = None) -> float:
    """The ``threshold_sigma`` that detects what SExtractor's ``DETECT_THRESH`` detects.

    SExtractor (and sep with ``filter_type="conv"``) thresholds the filtered image normalised
    by ``sum|k|`` at ``DETECT_THRESH`` times the noise of the *unfiltered* image; we threshold
    the matched-filter S/N ``(I * k) / sqrt(V * k**2)``. With a uniform noise sigma the two
    agree when ``threshold_sigma = DETECT_THRESH * sum|k| / sqrt(sum k**2)``: x 8/3 for the
    default 3 x 3 filter, so DETECT_THRESH = 1.5 is ``threshold_sigma = 4.0``.

    Parameters
    ----------
    detect_thresh
        SExtractor's DETECT_THRESH [background sigma], > 0.
    kernel
        The detection filter (default :data:`SEP_DEFAULT_KERNEL`).

    Returns
    -------
    float
        The equivalent threshold on the matched-filter S/N.
    """
    if not 0 < detect_thresh < np.inf:
        raise ValueError(f"detect_thresh must be finite and > 0, got {detect_thresh}")
    k = np.asarray(SEP_DEFAULT_KERNEL if kernel is None else kernel, dtype=np.float64)
    if k.ndim != 2 or not np.all(np.isfinite(k)) or not np.any(k):
        raise ValueError("kernel must be a finite, non-zero 2-D array")
    return float(detect_thresh * np.abs(k).sum() / np.sqrt((k * k).sum()))


@dataclass(frozen=True)
class Detections:
    """Detected sources, one row each, ordered by the flat index of their peak pixel in ``F``.

    Every array is on the input's device. ``segmentation`` (y, x) int32: 0 = background,
    ``k + 1`` = pixel of source ``k``. ``x``, ``y``: isophotal barycentre [pix, 0-based: pixel
    (0, 0) spans -0.5..0.5, as in sep]. ``a``, ``b`` [pix], ``theta`` [rad, from +x towards +y]:
    from the isophotal second moments. ``area`` (int64): pixels in the segment.
    ``isophotal_flux``: sum of the detection image over the segment. ``peak_snr``: highest
    matched-filter S/N in the segment. ``flags`` (int32): :class:`SourceFlag` bits ``BLENDED``
    (split from a shared footprint) and ``FOOTPRINT_TRUNCATED`` (the segment touches the image
    edge or a masked pixel).

    For SExtractor's CLEAN (:mod:`.clean`), in the units of the filtered image ``F``:
    ``filtered_flux`` (sum of ``F`` over the segment), ``threshold`` (mean detection threshold
    over the segment, ``threshold_sigma x F / snr``), ``clean_excess`` (SExtractor's
    ``mthresh``: the ``min_area``-th largest ``F - threshold`` in the segment) and ``abcor``
    (SExtractor's profile correction from the isophotal areas at the threshold and halfway to
    the peak, at most 1); all four None when ``detect_sources`` was not asked for them.
    """

    segmentation: Any
    x: Any
    y: Any
    a: Any
    b: Any
    theta: Any
    area: Any
    isophotal_flux: Any
    peak_snr: Any
    flags: Any
    filtered_flux: Any
    threshold: Any
    clean_excess: Any
    abcor: Any

    def __len__(self) -> int:
        return int(self.x.shape[0])


def detect_sources(
    image: Any,
    variance: Any,
    *,
    threshold_sigma: float = 1.5,
    min_area: int = 5,
    deblend_cont: float = 0.005,
    deblend_nthresh: int = 32,
    mask: Any | None = None,
    kernel: Any | None = None,
    clean_inputs: bool = True,
) -> Detections:
    """Detect, deblend and measure sources on a background-subtracted detection image.

    Parameters
    ----------
    image
        (y, x) NumPy or CuPy array, background-subtracted [e-].
    variance
        Its per-pixel variance [e-^2], same shape; 0 or NaN marks pixels without data.
    threshold_sigma
        Detection threshold on the matched-filter S/N map.
    min_area
        Minimum number of pixels of a footprint and of a deblended source.
    deblend_cont
        Minimum flux fraction of a deblended source, in (0, 1]; 1 switches deblending off.
    deblend_nthresh
        Number of exponentially spaced deblending levels.
    mask
        Optional (y, x) array, true (non-zero) on pixels to ignore.
    kernel
        2-D detection filter; default :data:`SEP_DEFAULT_KERNEL`.
    clean_inputs
        Also measure what SExtractor's CLEAN reads (``filtered_flux``, ``threshold``,
        ``clean_excess``, ``abcor``: three sorts of the footprint pixels, some 10 % of the
        detection time); False leaves them None.

    Returns
    -------
    Detections
        One row per source; no rows if nothing is detected.

    Raises
    ------
    ValueError
        On mismatched or non-2-D shapes, negative variances or out-of-range options.
    """
    xp = array_module(image, variance, mask)
    ndi = ndimage_module(xp)
    image = xp.asarray(image, dtype=xp.float64)
    variance = xp.asarray(variance, dtype=xp.float64)
    kernel = xp.asarray(SEP_DEFAULT_KERNEL if kernel is None else kernel, dtype=xp.float64)
    _validate(xp, image, variance, mask, kernel, threshold_sigma, min_area, deblend_cont)
    if deblend_nthresh < 1:
        raise ValueError(f"deblend_nthresh must be >= 1, got {deblend_nthresh}")
    bad = ~(xp.isfinite(image) & xp.isfinite(variance) & (variance > 0))
    if mask is not None:
        bad |= xp.asarray(mask).astype(bool)
    filtered, snr = _matched_filter(xp, ndi, image, variance, bad, kernel)
    pix, footprint = _footprints(xp, ndi, snr > threshold_sigma, min_area)
    shape = image.shape
    if pix.size == 0:
        return _empty(xp, shape)
    # from here on only the footprint pixels' values are used: drop the full-size float64 maps
    # (a full 9216 x 9232 tile: 680 MB each)
    f, image_pix, variance_pix, snr_pix = (
        values.ravel()[pix] for values in (filtered, image, variance, snr)
    )
    del filtered, image, variance, snr
    index_type = xp.int32 if bad.size < 2**31 else xp.int64
    lookup = xp.full(bad.size, -1, dtype=index_type)  # flat index -> footprint pixel, or -1
    lookup[pix] = xp.arange(pix.size, dtype=index_type)
    grid = (pix // shape[1], pix % shape[1], shape, lookup)
    basin, roots = _basins(xp, f, grid)
    nb = roots.size
    peak_rank = _ranks(xp, _dense(xp, f[roots]) * nb + xp.arange(nb))  # by (F, index): unique
    fp = footprint[roots]
    _, top = _argmax_by_group(xp, fp, peak_rank)  # every footprint's highest basin
    if deblend_cont >= 1.0:
        owner, core_level = top[fp], xp.full(nb, -xp.inf)
    else:
        count = xp.bincount(footprint).astype(xp.float64)
        sigma = xp.bincount(footprint, weights=xp.sqrt(variance_pix)) / count
        total = xp.bincount(footprint, weights=f)
        levels = (threshold_sigma * sigma, f[roots[top]], deblend_cont * total, deblend_nthresh)
        edges = _edges(xp, f, basin, grid, nb)
        owner, core_level = _deblend(xp, f, basin, edges, fp, levels, min(min_area, _BRANCH_AREA))
        owner = _absorb(xp, owner, basin, edges, min_area)
    core = xp.where(f > core_level[basin], f, 0.0)  # a split source's core: pixels above the split
    sources = _sources(xp, roots, basin, owner, peak_rank)
    levels = (threshold_sigma, min_area) if clean_inputs else None
    return _measure(xp, image_pix, snr_pix, bad, grid, f, core, sources, footprint, levels)


def _validate(xp, image, variance, mask, kernel, threshold, min_area, cont) -> None:
    if image.ndim != 2 or image.shape != variance.shape:
        raise ValueError(f"image {image.shape} and variance {variance.shape}: need one 2-D shape")
    if mask is not None and tuple(mask.shape) != image.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the image's shape {image.shape}")
    if kernel.ndim != 2 or not bool(xp.all(xp.isfinite(kernel))) or not bool(xp.any(kernel)):
        raise ValueError("kernel must be a finite, non-zero 2-D array")
    if not 0 < threshold < np.inf:
        raise ValueError(f"threshold_sigma must be finite and > 0, got {threshold}")
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1, got {min_area}")
    if not 0 < cont <= 1:
        raise ValueError(f"deblend_cont must be in (0, 1], got {cont}")
    if bool(xp.any(variance < 0)):
        raise ValueError("variance must be >= 0 (use 0 or NaN for pixels without data)")


def _matched_filter(xp: ModuleType, ndi: ModuleType, image, variance, bad, kernel):
    """Filtered image ``F`` (sep's ``cdvalue``) and S/N map (0 where undefined)."""
    if bool(bad.any()):
        image, variance = xp.where(bad, 0.0, image), xp.where(bad, 0.0, variance)
    num = ndi.correlate(image, kernel, mode="constant", cval=0.0)
    den = ndi.correlate(variance, kernel**2, mode="constant", cval=0.0)
    good = ~bad & (den > 0)
    # snr = num / sqrt(den) where good, else 0; in den's buffer: no full-size temporaries
    snr = den
    snr[~good] = 1.0
    xp.sqrt(snr, out=snr)
    xp.divide(num, snr, out=snr)
    snr[~good] = 0.0
    num /= float(xp.abs(kernel).sum())
    return num, snr


def _footprints(xp: ModuleType, ndi: ModuleType, detected, min_area: int):
    """Flat indices of the pixels of footprints of >= min_area pixels, and their footprint."""
    labels, _ = ndi.label(detected, structure=xp.ones((3, 3), dtype=bool))
    above = xp.flatnonzero(detected)  # work on the detected pixels only, not the whole image
    label = labels.ravel()[above]
    keep = xp.bincount(label) >= min_area
    number = xp.cumsum(keep) - 1  # kept labels renumbered 0, 1, ... in label order
    big = keep[label]
    return above[big], number[label[big]]


def _neighbour(xp: ModuleType, grid, dy: int, dx: int):
    """Footprint-pixel index of every footprint pixel's (dy, dx) neighbour, or -1."""
    py, px, shape, lookup = grid
    ny, nx = py + dy, px + dx
    inside = (ny >= 0) & (ny < shape[0]) & (nx >= 0) & (nx < shape[1])
    return xp.where(inside, lookup[xp.where(inside, ny * shape[1] + nx, 0)], -1)


def _basins(xp: ModuleType, f, grid):
    """Basin of every pixel (steepest ascent + pointer jumping) and every basin's peak pixel."""
    best, best_f = xp.arange(f.size), f
    for dy, dx in _EIGHT:
        q = _neighbour(xp, grid, dy, dx)
        fq = f[xp.maximum(q, 0)]
        up = (q >= 0) & ((fq > best_f) | ((fq == best_f) & (q > best)))
        best, best_f = xp.where(up, q, best), xp.where(up, fq, best_f)
    roots, basin = xp.unique(_jump(xp, best), return_inverse=True)
    return basin.ravel(), roots


def _edges(xp: ModuleType, f, basin, grid, nb: int):
    """Touching basins ``u < v`` and their saddles, sorted by (saddle, u, v): index = rank."""
    u, v, s = [], [], []
    for dy, dx in _HALF:
        q = _neighbour(xp, grid, dy, dx)
        p = xp.nonzero((q >= 0) & (basin[xp.maximum(q, 0)] != basin))[0]
        q = q[p]
        u.append(xp.minimum(basin[p], basin[q]))
        v.append(xp.maximum(basin[p], basin[q]))
        s.append(xp.minimum(f[p], f[q]))
    u, v, s = xp.concatenate(u), xp.concatenate(v), xp.concatenate(s)
    if u.size == 0:
        return u, v, s
    pairs, pair = xp.unique(u * nb + v, return_inverse=True)
    saddle = s[_argmax_by_group(xp, pair.ravel(), _ranks(xp, s))[1]]
    order = xp.argsort(_dense(xp, saddle) * pairs.size + xp.arange(pairs.size))
    return (pairs // nb)[order], (pairs % nb)[order], saddle[order]


def _ranks(xp: ModuleType, values):
    """Position of every value in sorted order (ties in any order: use where they cannot matter)."""
    ranks = xp.empty(values.size, dtype=xp.int64)
    ranks[xp.argsort(values)] = xp.arange(values.size)
    return ranks


def _dense(xp: ModuleType, values):
    """Dense ranks: equal values get equal ranks."""
    return xp.unique(values, return_inverse=True)[1].ravel()


def _argmax_by_group(xp: ModuleType, group, rank, scale: int | None = None):
    """Groups present (ascending) and, for each, the index of its highest-ranked element.

    The (group, rank) pairs must be unique, with ``0 <= rank < scale`` (default ``rank.size``).
    """
    order = xp.argsort(group * (rank.size if scale is None else scale) + rank)
    g = group[order]
    last = xp.concatenate([g[1:] != g[:-1], xp.ones(min(g.size, 1), dtype=bool)])
    return g[last], order[last]


def _jump(xp: ModuleType, pointer):
    """Follow pointers (a forest) to the roots; path lengths covered double per step."""
    for _ in range(_MAX_JUMPS):
        after = pointer[pointer]
        if not bool(xp.any(after != pointer)):  # one bool to the host per step
            break
        pointer = after
    return pointer


def _level_index(xp: ModuleType, f, basin, nb: int):
    """Pixels sorted by (basin, F) and running sums of F, to integrate above a level per basin."""
    by_value = xp.argsort(f)
    rank = xp.empty(f.size, dtype=xp.int64)
    rank[by_value] = xp.arange(f.size)
    key = basin * f.size + rank
    order = xp.argsort(key)
    running = xp.concatenate([xp.zeros(1), xp.cumsum(f[order])])
    return f[by_value], key[order], running, xp.cumsum(xp.bincount(basin, minlength=nb))


def _above(xp: ModuleType, index, level):
    """Pixels above ``level[b]`` and their flux ``sum(F - level[b])`` in every basin ``b``."""
    f_sorted, key, running, stop = index
    rank = xp.searchsorted(f_sorted, level, side="right")
    start = xp.searchsorted(key, xp.arange(stop.size) * f_sorted.size + rank)
    count = stop - start
    flux = running[stop] - running[start] - count * xp.where(count > 0, level, 0.0)
    return count.astype(xp.float64), flux


def _next_level(xp: ModuleType, saddle, t0, peak, nthresh: int):
    """The lowest of the levels ``t0 (peak / t0)**(k / nthresh)`` above ``saddle``."""
    span = xp.log(xp.maximum(peak / t0, 1.0))
    k = xp.floor(xp.log(saddle / t0) / xp.where(span > 0, span, 1.0) * nthresh) + 1
    level = t0 * xp.exp(span * xp.clip(k, 0, nthresh) / nthresh)
    return xp.where(span > 0, level, xp.inf)


def _best_edges(xp: ModuleType, cu, cv, u, v, e, n: int, n_edges: int):
    """Per component: the component, edge and far basin across its highest saddle (else -1)."""
    ends = (xp.concatenate([cv, cu]), xp.concatenate([e, e]), xp.concatenate([v, u]))
    group, best = _argmax_by_group(xp, xp.concatenate([cu, cv]), ends[1], n_edges)
    out = [xp.full(n, -1, dtype=xp.int64) for _ in ends]
    for array, values in zip(out, ends, strict=True):
        array[group] = values[best]
    return out


def _deblend(xp: ModuleType, f, basin, edges, fp, levels, branch_area: int):
    """Source (a representative basin) of every basin, flooding with sep's split criterion.

    Components (``comp``: representative per basin) carry ``ok`` (nothing split off yet, as in
    SExtractor). A split turns its ``ok`` sides into sources (``frozen``); an insignificant
    component merging is ``link``-ed to the basin across its saddle, so it ends up with the
    source on that side; a footprint that never splits is one source.
    """
    t0, peak, min_flux, nthresh = (a[fp] if i < 3 else a for i, a in enumerate(levels))
    u, v, s = edges
    nb = fp.size
    index = _level_index(xp, f, basin, nb)
    ids = xp.arange(nb)
    comp, ok = ids, xp.ones(nb, dtype=bool)
    frozen, link = xp.full(nb, -1, dtype=xp.int64), xp.full(nb, -1, dtype=xp.int64)
    core = xp.full(nb, xp.inf)
    e = xp.arange(u.size)
    while True:  # every round unites components: at most nb rounds, about 3 in practice
        e = e[comp[u[e]] != comp[v[e]]]
        if e.size == 0:
            break
        to, edge, far = _best_edges(xp, comp[u[e]], comp[v[e]], u[e], v[e], e, nb, u.size)
        has = to >= 0
        level = _next_level(xp, xp.where(has, s[xp.maximum(edge, 0)], t0), t0, peak, nthresh)
        level = xp.where(has, level, xp.inf)
        count, flux = _above(xp, index, level[comp])
        count = xp.bincount(comp, weights=count, minlength=nb)
        flux = xp.bincount(comp, weights=flux, minlength=nb)
        sig = has & (count >= branch_area) & (flux > min_flux)
        to = xp.where(has, to, ids)
        split = sig & sig[to]
        merge = has & ~sig
        parent = xp.where(split | merge, to, ids)
        parent = xp.where((parent[parent] == ids) & (parent < ids), ids, parent)  # 2-cycles
        hit = split | (xp.bincount(to[split], minlength=nb) > 0)
        freeze = (frozen < 0) & (ok & hit)[comp]
        frozen, core = xp.where(freeze, comp, frozen), xp.where(freeze, level[comp], core)
        moved = merge & (parent != ids)  # of a mutual pair, only the side that moves links
        link = xp.where((link < 0) & moved[comp], far[comp], link)
        root = _jump(xp, parent)
        ok = xp.bincount(root[~(ok & ~hit)], minlength=nb) == 0
        comp = root[comp]
    whole = (frozen < 0) & ok[comp]  # footprints that never split
    frozen, core = xp.where(whole, comp, frozen), xp.where(whole, -xp.inf, core)
    return _jump(xp, xp.where(frozen >= 0, frozen, xp.where(link >= 0, link, ids))), core


def _absorb(xp: ModuleType, owner, basin, edges, min_area: int):
    """Merge sources of fewer than ``min_area`` pixels into the source across their top saddle."""
    u, v, _ = edges
    ids = xp.arange(owner.size)
    size = xp.bincount(basin, minlength=owner.size).astype(xp.float64)
    e = xp.arange(u.size)
    while True:  # every round removes a source
        e = e[owner[u[e]] != owner[v[e]]]
        if e.size == 0:
            return owner
        area = xp.bincount(owner, weights=size, minlength=owner.size)
        to, _, _ = _best_edges(xp, owner[u[e]], owner[v[e]], u[e], v[e], e, owner.size, u.size)
        move = (to >= 0) & (area < min_area)
        if not bool(xp.any(move)):
            return owner
        parent = xp.where(move, to, ids)
        parent = xp.where((parent[parent] == ids) & (parent < ids), ids, parent)
        owner = _jump(xp, parent)[owner]


def _shape(xp: ModuleType, sums, cx, cy):
    """a, b, theta from the sums of w, wx, wy, wxx, wyy, wxy, about (cx, cy), as sep."""
    w, wx, wy, wxx, wyy, wxy = sums
    mx, my = wx / w, wy / w
    x2, y2 = wxx / w + cx * cx - 2 * mx * cx, wyy / w + cy * cy - 2 * my * cy
    xy = wxy / w + cx * cy - mx * cy - cx * my
    singular = x2 * y2 - xy * xy < 0.00694  # sep/SExtractor: a line, or a single pixel
    x2, y2 = x2 + singular / 12.0, y2 + singular / 12.0
    diff = x2 - y2
    theta = xp.where(diff != 0, 0.5 * xp.arctan2(2.0 * xy, diff), np.pi / 4)
    root, mean = xp.sqrt(0.25 * diff * diff + xy * xy), 0.5 * (x2 + y2)
    return xp.sqrt(mean + root), xp.sqrt(xp.maximum(mean - root, 0.0)), theta


def _sources(xp: ModuleType, roots, basin, owner, peak_rank):
    """Source number of every pixel, by flat index of the peak pixel, and those peak pixels."""
    reps, top = _argmax_by_group(xp, owner, peak_rank)  # each source's highest basin
    order = xp.argsort(roots[top])  # footprint pixels are in flat order: unique keys
    number = xp.zeros(owner.size, dtype=xp.int64)
    number[reps[order]] = xp.arange(reps.size)
    return number[owner[basin]], roots[top][order]


def _measure(xp, image_pix, snr_pix, bad, grid, f, core, sources, footprint, levels):
    """Measure every source: moments, areas, fluxes, peak S/N, flags, segmentation map.

    ``image_pix``, ``snr_pix``, ``f`` and ``core`` hold the footprint pixels' values only;
    ``levels`` (threshold, min_area) are those of CLEAN's inputs, None to skip them.
    """
    py, px, shape, _ = grid
    src, peak = sources
    n = int(peak.size)
    x0, y0 = px[peak].astype(xp.float64), py[peak].astype(xp.float64)
    dx, dy = px - x0[src], py - y0[src]  # moments about the peak: no round-off on big images
    weights = (f, f * dx, f * dy, f * dx * dx, f * dy * dy, f * dx * dy)
    sums = [xp.bincount(src, weights=w, minlength=n) for w in weights]
    # sep: a split source's barycentre is its core's; second moments are about it
    w, wx, wy = (xp.bincount(src, weights=w, minlength=n) for w in (core, core * dx, core * dy))
    mx = xp.where(w > 0, wx / xp.where(w > 0, w, 1.0), sums[1] / sums[0])
    my = xp.where(w > 0, wy / xp.where(w > 0, w, 1.0), sums[2] / sums[0])
    a, b, theta = _shape(xp, sums, mx, my)
    edge = (px == 0) | (py == 0) | (px == shape[1] - 1) | (py == shape[0] - 1)
    pix = py * shape[1] + px
    if bool(bad.any()):  # a footprint pixel next to (or on) an unusable pixel
        edge |= _touches(xp, bad, py, px)
    truncated = xp.bincount(src, weights=edge.astype(xp.float64), minlength=n) > 0
    blended = xp.bincount(footprint[peak])[footprint[peak]] > 1
    flags = xp.where(blended, int(SourceFlag.BLENDED), 0) | xp.where(
        truncated, int(SourceFlag.FOOTPRINT_TRUNCATED), 0
    )
    segmentation = xp.zeros(bad.size, dtype=xp.int32)
    segmentation[pix] = (src + 1).astype(xp.int32)
    clean = dict.fromkeys(("filtered_flux", "threshold", "clean_excess", "abcor"))
    if levels is not None:
        clean = _clean_inputs(xp, image_pix, snr_pix, f, src, n, a, b, levels)
    return Detections(
        segmentation=segmentation.reshape(shape),
        x=x0 + mx,
        y=y0 + my,
        a=a,
        b=b,
        theta=theta,
        area=xp.bincount(src, minlength=n).astype(xp.int64),
        isophotal_flux=xp.bincount(src, weights=image_pix, minlength=n),
        peak_snr=snr_pix[_argmax_by_group(xp, src, _ranks(xp, snr_pix))[1]],
        flags=flags.astype(xp.int32),
        **clean,
    )


def _clean_inputs(xp, image_pix, snr_pix, f, src, n: int, a, b, levels) -> dict[str, Any]:
    """Per source, what SExtractor's CLEAN reads (sep's ``analyse`` and ``analysemthresh``)."""
    threshold_sigma, min_area = levels
    area = xp.bincount(src, minlength=n).astype(xp.float64)
    filtered_flux = xp.bincount(src, weights=f, minlength=n)
    pixel_threshold = threshold_sigma * f / snr_pix  # snr > threshold > 0 on footprints
    threshold = xp.bincount(src, weights=pixel_threshold, minlength=n) / area
    # mthresh: the min_area-th largest excess F - threshold in each segment (0 if smaller)
    excess = f - pixel_threshold
    order = xp.argsort(src * excess.size + _ranks(xp, -excess))  # by source, excess falling
    start = xp.searchsorted(src[order], xp.arange(n))
    pick = xp.minimum(start + (min_area - 1), excess.size - 1)
    clean_excess = xp.where(area >= min_area, excess[order[pick]], 0.0)
    # abcor: isophotal areas above the threshold and above halfway to the peak (unfiltered)
    peak = image_pix[_argmax_by_group(xp, src, _ranks(xp, image_pix))[1]]  # every source has pixels
    halfway = 0.5 * (threshold + peak)
    above = xp.bincount(src, weights=(image_pix > threshold[src]).astype(xp.float64), minlength=n)
    above2 = xp.bincount(src, weights=(image_pix > halfway[src]).astype(xp.float64), minlength=n)
    ratio = threshold / halfway
    darea = above2 - above
    log_ratio = xp.log(xp.where((ratio > 0) & (ratio < 1.0), ratio, 0.99))
    abcor = xp.where(darea < 0, darea, -1.0) / (2 * np.pi * log_ratio * a * b)
    abcor = xp.where(ratio > 0, xp.minimum(abcor, 1.0), 1.0)
    return {
        "filtered_flux": filtered_flux,
        "threshold": threshold,
        "clean_excess": clean_excess,
        "abcor": abcor,
    }


def _touches(xp: ModuleType, bad, py, px):
    """Whether each pixel (py, px) is, or has an 8-connected neighbour that is, ``bad``."""
    ny, nx = bad.shape
    flat = bad.ravel()
    hit = flat[py * nx + px]
    for dy, dx in _EIGHT:
        y, x = py + dy, px + dx
        inside = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
        hit |= inside & flat[xp.where(inside, y * nx + x, 0)]
    return hit


def _empty(xp: ModuleType, shape) -> Detections:
    """Detections without rows."""
    names = ("x", "y", "a", "b", "theta", "isophotal_flux", "peak_snr", "filtered_flux")
    names += ("threshold", "clean_excess", "abcor")
    columns = {name: xp.zeros(0, dtype=xp.float64) for name in names}
    return Detections(
        segmentation=xp.zeros(shape, dtype=xp.int32),
        area=xp.zeros(0, dtype=xp.int64),
        flags=xp.zeros(0, dtype=xp.int32),
        **columns,
    )
