"""Exact overlap of pixels with an ellipse: the geometric kernel of aperture photometry.

For a pixel (a unit square) and an ellipse of semi-axes ``A``, ``B`` rotated by ``theta``, the
affine map ``u = (dx cos t + dy sin t) / A``, ``v = (-dx sin t + dy cos t) / B`` sends the ellipse
to the unit circle and the square to a parallelogram, scaling every area by ``1 / (A B)``. The
area of a unit circle within a convex polygon is the sum, over the polygon's edges ``P -> Q``,
of the signed area of the circle within the triangle ``(O, P, Q)``; along the edge the segment
splits into an outside part, an inside chord and another outside part, contributing a circular
sector, a triangle and a sector. Each edge costs one square root and two ``arctan2``: no
branches, so the same code runs vectorised on NumPy and CuPy arrays of any shape.

Pixels whose centre lies more than half a pixel diagonal inside or outside the ellipse are
wholly in or out; only the pixels in between need the exact formula, which
:func:`ellipse_overlap` evaluates on that subset alone.

Written for this project (the GPU photometry is its point); it is tested against photutils'
and sep's exact overlaps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import array_module

__all__ = ["ellipse_overlap", "exact_ellipse_overlap"]

_HALF_DIAGONAL = 0.7072  # sqrt(2) / 2 rounded up: the farthest a pixel reaches from its centre
_ROUND_OFF = 1e-12  # overlaps below this are float64 round-off of zero
#: A pixel's corners about its centre, counter-clockwise.
_CORNERS_X = (-0.5, 0.5, 0.5, -0.5)
_CORNERS_Y = (-0.5, -0.5, 0.5, 0.5)
#: Up to this many pixels the four edges are evaluated in one call (the stacked temporaries,
#: 4 x 8 bytes a pixel, stay within 64 kB: larger ones fall out of the caches and, past glibc's
#: default 128 kB, are each allocated by mmap; measured: 1.7x faster at 300 pixels, 2.5x slower
#: at 3,000).
_STACK_EDGES_MAX = 2048


def _sector_or_chord(px: Any, py: Any, qx: Any, qy: Any, xp: Any) -> Any:
    """Signed area of the unit circle within the triangle (origin, P, Q)."""
    dx = qx - px
    dy = qy - py
    a = dx * dx + dy * dy
    half_b = px * dx + py * dy
    c = px * px + py * py - 1.0
    discriminant = half_b * half_b - a * c
    crosses = discriminant > 0
    root = xp.sqrt(xp.where(crosses, discriminant, 0.0))
    a_safe = xp.where(a > 0, a, 1.0)
    # the chord inside the circle runs over t in [s1, s2] of P + t (Q - P); none: s1 = s2 = 1
    s1 = xp.where(crosses, xp.clip((-half_b - root) / a_safe, 0.0, 1.0), 1.0)
    s2 = xp.where(crosses, xp.clip((-half_b + root) / a_safe, 0.0, 1.0), 1.0)
    ax, ay = px + s1 * dx, py + s1 * dy
    bx, by = px + s2 * dx, py + s2 * dy
    # the two sectors, angle(P -> A) + angle(B -> Q), with one arctan2: the argument of the
    # product conj(P) A conj(B) Q. Both runs lie outside the circle, which holds the origin, so
    # each angle has the sign of P x Q and their sum stays inside (-pi, pi).
    cross_in, dot_in = px * ay - py * ax, px * ax + py * ay
    cross_out, dot_out = bx * qy - by * qx, bx * qx + by * qy
    sectors = xp.arctan2(
        dot_in * cross_out + cross_in * dot_out, dot_in * dot_out - cross_in * cross_out
    )
    chord = ax * by - ay * bx
    return 0.5 * (sectors + chord)


def exact_ellipse_overlap(dx: Any, dy: Any, semi_a: Any, semi_b: Any, theta: Any) -> Any:
    """Area of each pixel inside an ellipse, by the exact formula for every pixel.

    Parameters
    ----------
    dx, dy
        Pixel-centre offsets from the ellipse centre [pixels], arrays of one shape.
    semi_a, semi_b
        Semi-axes [pixels] (> 0), broadcastable to ``dx``.
    theta
        Angle of the ``semi_a`` axis from +x towards +y [rad], broadcastable to ``dx``.

    Returns
    -------
    array
        Overlap area in [0, 1] (pixel units), the shape of ``dx``, in the array library and
        floating dtype of the inputs.
    """
    xp = array_module(dx, dy)
    cos_t, sin_t = xp.cos(theta), xp.sin(theta)

    def unit_circle(cx: Any, cy: Any) -> tuple[Any, Any]:  # the map that makes the ellipse a circle
        return (cx * cos_t + cy * sin_t) / semi_a, (-cx * sin_t + cy * cos_t) / semi_b

    # edge k runs from corner k - 1 to corner k (edge 0: from the last corner to the first)
    size = math.prod(np.broadcast_shapes(getattr(dx, "shape", ()), getattr(dy, "shape", ())))
    if xp is not np or size <= _STACK_EDGES_MAX:
        # the corners on a new leading axis and the four edges in one call: four times fewer
        # array operations, whose fixed costs dominate few pixels on a CPU and any number on a
        # GPU (one kernel launch each)
        shape = (4,) + (1,) * max(xp.ndim(dx), xp.ndim(dy))
        dtype = xp.result_type(dx, dy)  # float32 pixels stay float32
        u, v = unit_circle(
            dx + xp.asarray(_CORNERS_X, dtype=dtype).reshape(shape),
            dy + xp.asarray(_CORNERS_Y, dtype=dtype).reshape(shape),
        )
        edges = _sector_or_chord(xp.roll(u, 1, axis=0), xp.roll(v, 1, axis=0), u, v, xp)
    else:  # many: corner by corner, so that the temporaries stay small (in the caches)
        corners = [
            unit_circle(dx + ox, dy + oy) for ox, oy in zip(_CORNERS_X, _CORNERS_Y, strict=True)
        ]
        edges = [_sector_or_chord(*corners[k - 1], *corners[k], xp) for k in range(4)]
    area = ((edges[0] + edges[1]) + edges[2]) + edges[3]
    area = xp.clip(area * semi_a * semi_b, 0.0, 1.0)
    # round-off leaves ~1e-16 on pixels that only touch the ellipse: they are outside
    return xp.where(area < _ROUND_OFF, 0.0, area)


def ellipse_overlap(dx: Any, dy: Any, semi_a: Any, semi_b: Any, theta: Any) -> Any:
    """Area of each pixel inside an ellipse; exact, evaluated only on boundary pixels.

    Same parameters and result as :func:`exact_ellipse_overlap`; all five arguments broadcast
    together (e.g. ``dx`` (n, 1, W), ``dy`` (n, W, 1) and parameters (n, 1, 1) for ``n``
    windows). The normalising map changes distances by a factor between ``1 / max(A, B)`` and
    ``1 / min(A, B)``, so a pixel centre at elliptical radius ``rho`` with
    ``|rho - 1| >= d / min(A, B)`` (``d`` = half the pixel diagonal) lies wholly inside (weight
    1) or outside (weight 0); only the pixels in between get the exact formula. ``rho**2`` is a
    quadratic form, cheap on a window (two of its three terms are 1-D).
    """
    xp = array_module(dx, dy)
    cos_t, sin_t = xp.cos(theta), xp.sin(theta)
    inv_a2, inv_b2 = 1.0 / semi_a**2, 1.0 / semi_b**2
    cxx = cos_t**2 * inv_a2 + sin_t**2 * inv_b2
    cyy = sin_t**2 * inv_a2 + cos_t**2 * inv_b2
    cxy = 2.0 * cos_t * sin_t * (inv_a2 - inv_b2)
    rho2 = (cxx * dx * dx + cyy * dy * dy) + (cxy * dx) * dy
    margin = _HALF_DIAGONAL / xp.minimum(semi_a, semi_b)
    inner = xp.maximum(1.0 - margin, 0.0) ** 2
    outer = (1.0 + margin) ** 2
    inside = rho2 < inner  # strict: inner is 0 when min(A, B) < d, and nothing is inside
    weight = inside.astype(rho2.dtype)
    boundary = xp.nonzero(~inside & (rho2 < outer))
    if boundary[0].size:
        shape = rho2.shape
        dx, dy, semi_a, semi_b, theta = (
            xp.broadcast_to(value, shape)[boundary] for value in (dx, dy, semi_a, semi_b, theta)
        )
        weight[boundary] = exact_ellipse_overlap(dx, dy, semi_a, semi_b, theta)
    return weight
