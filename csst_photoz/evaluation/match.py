"""One-to-one positional matching of detections to the truth of a simulated tile.

Each truth galaxy is paired with its nearest detection within a radius; when several truth
galaxies claim the same detection, the closest pair wins and the others stay unmatched (a
blend). Pure arrays in, index arrays out (a KD-tree from SciPy does the neighbour search).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

__all__ = ["Match", "match_positions"]


class Match(NamedTuple):
    """Matched pairs: ``truth[i]`` <-> ``detection[j]`` at separation ``distance``."""

    truth: np.ndarray
    detection: np.ndarray
    distance: np.ndarray


def match_positions(
    truth_x: npt.ArrayLike,
    truth_y: npt.ArrayLike,
    detected_x: npt.ArrayLike,
    detected_y: npt.ArrayLike,
    *,
    radius: float,
) -> Match:
    """Pair truth positions with detections, one to one, within ``radius``.

    Parameters
    ----------
    truth_x, truth_y
        True positions (same unit as the detections, e.g. pixels of one tile).
    detected_x, detected_y
        Measured positions.
    radius
        Largest accepted separation.

    Returns
    -------
    Match
        Index arrays into the truth and the detections (each index at most once), sorted by
        truth index, and the separations.
    """
    truth = np.column_stack([np.asarray(truth_x, float), np.asarray(truth_y, float)])
    found = np.column_stack([np.asarray(detected_x, float), np.asarray(detected_y, float)])
    if not radius > 0:  # NaN too
        raise ValueError(f"radius must be positive, got {radius}")
    empty = Match(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(truth) == 0 or len(found) == 0:
        return empty
    # the tree accepts separations strictly below its bound: one ulp more keeps == radius
    bound = float(np.nextafter(radius, np.inf))
    distance, nearest = cKDTree(found).query(truth, k=1, distance_upper_bound=bound)
    candidate = np.flatnonzero(np.isfinite(distance))
    # closest pairs first; a detection already taken is not given twice
    order = candidate[np.argsort(distance[candidate], kind="stable")]
    _, first = np.unique(nearest[order], return_index=True)
    kept = np.sort(order[first])
    return Match(kept.astype(np.int64), nearest[kept].astype(np.int64), distance[kept])
