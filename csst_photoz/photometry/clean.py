"""SExtractor's CLEAN, vectorised: drop detections explained by a brighter neighbour's wings.

At a low threshold, noise peaks on the wings of bright galaxies are detected as separate
sources, and their Kron apertures take in the neighbour's light, so a S/N cut keeps them.
SExtractor (and sep, ``clean=True``) models each detection by a Moffat profile fitted to its
isophotal data,

    ``amp = F_flux / (2 pi a b abcor)``,
    ``alpha = ((amp / threshold)**(1 / beta) - 1) pi a b / area``,
    ``model(r) = amp (1 + alpha r**2)**(-beta)``,

with ``r**2 = cxx dx**2 + cyy dy**2 + cxy dx dy`` the elliptical radius of the detection's
second moments, ``beta = clean_param``, and removes a fainter detection (smaller ``F_flux``)
within ``CLEAN_ZONE x (a_1 + a_2)`` whose ``clean_excess`` (``mthresh``: the ``min_area``-th
largest excess of the filtered image over the threshold in its segment) is below the brighter
one's model at its centroid.

SExtractor walks the list in order and lets only surviving detections eat others; here every
pair is tested at once (a detection that is eaten may still eat a fainter one), which differs
only for chains of three or more detections. Pairs come from a sort by x and ``searchsorted``
over each detection's zone, so the work grows with the number of close pairs, not ``n**2``.
All array operations of the input's array module; one integer (the number of pairs) reaches
the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import array_module

__all__ = ["CLEAN_ZONE", "clean_sources"]

#: SExtractor's CLEAN_ZONE: pairs farther apart than this x (a_1 + a_2) are not compared.
CLEAN_ZONE = 10.0


def clean_sources(
    x: Any,
    y: Any,
    a: Any,
    b: Any,
    theta: Any,
    *,
    filtered_flux: Any,
    area: Any,
    threshold: Any,
    clean_excess: Any,
    abcor: Any,
    clean_param: float = 1.0,
) -> Any:
    """Which detections survive SExtractor's CLEAN.

    Parameters
    ----------
    x, y, a, b, theta
        (n,) centroids [pixels], second-moment semi-axes [pixels] and angles [rad].
    filtered_flux, area, threshold, clean_excess, abcor
        (n,) the detections' filtered flux, segment area [pixels], mean threshold, ``mthresh``
        and profile correction (:class:`.detection.Detections`).
    clean_param
        Moffat ``beta`` (SExtractor's CLEAN_PARAM, sep's default 1.0), > 0.

    Returns
    -------
    array
        bool (n,): True for the detections that survive.
    """
    xp = array_module(x)
    if not clean_param > 0:
        raise ValueError(f"clean_param must be > 0, got {clean_param}")
    n = int(x.shape[0])
    if n < 2:
        return xp.ones(n, dtype=bool)
    eater, victim = _pairs(xp, x, a)
    dx, dy = x[victim] - x[eater], y[victim] - y[eater]
    zone = CLEAN_ZONE * (a[victim] + a[eater])
    model = _moffat(xp, a, b, theta, filtered_flux, area, threshold, abcor, clean_param)
    value = model(eater, dx, dy)
    eats = (
        (filtered_flux[eater] > filtered_flux[victim])
        & (dx * dx + dy * dy <= zone * zone)
        & (value > clean_excess[victim])
    )
    eaten = xp.bincount(victim[eats], minlength=n) > 0
    return ~eaten


def _pairs(xp: Any, x: Any, a: Any) -> tuple[Any, Any]:
    """All (eater, victim) pairs, eater != victim, whose x differ by less than the zone."""
    order = xp.argsort(x)
    xs = x[order]
    reach = CLEAN_ZONE * (a + a.max())
    lo = xp.searchsorted(xs, x - reach, side="left")
    hi = xp.searchsorted(xs, x + reach, side="right")
    counts = hi - lo
    ends = xp.cumsum(counts)
    total = int(ends[-1])  # the one host sync
    k = xp.arange(total)
    eater = xp.searchsorted(ends, k, side="right")
    victim = order[lo[eater] + k - (ends - counts)[eater]]
    other = victim != eater
    return eater[other], victim[other]


def _moffat(xp, a, b, theta, filtered_flux, area, threshold, abcor, beta):
    """The detections' Moffat models: ``model(j, dx, dy)`` is detection j's at offset (dx, dy)."""
    cos, sin = xp.cos(theta), xp.sin(theta)
    cxx = cos * cos / (a * a) + sin * sin / (b * b)
    cyy = sin * sin / (a * a) + cos * cos / (b * b)
    cxy = 2.0 * cos * sin * (1.0 / (a * a) - 1.0 / (b * b))
    unit_area = np.pi * a * b
    amp = filtered_flux / (2.0 * unit_area * abcor)
    ratio = xp.maximum(amp / threshold, 0.0)
    alpha = (ratio ** (1.0 / beta) - 1.0) * unit_area / area

    def model(j: Any, dx: Any, dy: Any) -> Any:
        r2 = cxx[j] * dx * dx + cyy[j] * dy * dy + cxy[j] * dx * dy
        base = 1.0 + alpha[j] * r2
        ok = (base > 1.0) & (base < 1e10)
        return xp.where(ok, amp[j] * xp.where(ok, base, 1.0) ** (-beta), 0.0)

    return model
