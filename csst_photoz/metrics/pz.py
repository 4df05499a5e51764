"""Metrics of p(z) on a grid: PIT, interval coverage, CRPS, CDE loss, multi-modality, odds.

Every function takes the bin-probability form of :mod:`csst_photoz.pz.grid` (``(n, bins)``
probabilities of equal bins over ``[z_min, z_max]``, uniform within a bin) and the true
redshifts:

* `pz_pit`: the PIT, each galaxy's CDF at its true redshift; uniform for calibrated p(z)
  (its KS distance: :func:`~csst_photoz.metrics.pit_ks_statistic`);
* `pz_interval_coverage`: share of true redshifts inside the central ``level`` interval;
* `crps_pz`: continuous ranked probability score ``int (F(z) - H(z - z_true))^2 dz``, exact
  for the piecewise-linear CDF, comparable with :func:`~csst_photoz.metrics.crps_gaussian`;
* `cde_loss`: the conditional density estimation loss of the DESC data challenges
  (Izbicki & Lee 2017; Schmidt et al. 2020), ``mean int p^2 dz - 2 mean p(z_true)``, lower
  is better;
* `multimodal_fraction`: share of galaxies with more than one mode (`MODE_THRESHOLD`,
  `MODE_MIN_MASS`);
* `pz_metrics`: all of them and the mean odds (:func:`csst_photoz.pz.pz_odds`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..pz.grid import PzGrid, cdf_at_edges, cdf_values, check_probabilities, quantiles
from ..pz.summary import pz_summaries
from .calibration import pit_ks_statistic

__all__ = [
    "MODE_MIN_MASS",
    "MODE_THRESHOLD",
    "cde_loss",
    "count_modes",
    "crps_pz",
    "multimodal_fraction",
    "pz_interval_coverage",
    "pz_metrics",
    "pz_pit",
]

#: A mode is a run of consecutive bins whose density is at least this share of the peak's ...
MODE_THRESHOLD = 0.2
#: ... holding at least this probability.
MODE_MIN_MASS = 0.05


def _truth(z_true: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    values = np.asarray(z_true, dtype=np.float64)
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise ValueError(f"need {n} finite true redshifts (one per p(z)), got {values.shape}")
    return values


def pz_pit(
    probabilities: npt.ArrayLike, grid: PzGrid, z_true: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """(n,) probability integral transform: each galaxy's CDF at its true redshift."""
    values = check_probabilities(probabilities, grid)
    return cdf_values(values, grid, _truth(z_true, values.shape[0]))


def pz_interval_coverage(
    probabilities: npt.ArrayLike, grid: PzGrid, z_true: npt.ArrayLike, level: float
) -> float:
    """Share of true redshifts inside each galaxy's central ``level`` credible interval.

    The interval runs from the ``(1 - level) / 2`` to the ``(1 + level) / 2`` quantile; a
    calibrated p(z) covers ``level`` of the galaxies.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    values = check_probabilities(probabilities, grid)
    truth = _truth(z_true, values.shape[0])
    bounds = quantiles(values, grid, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(np.mean((truth >= bounds[:, 0]) & (truth <= bounds[:, 1])))


def _segment_integral(start: np.ndarray, end: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Integral of the square of a linear function from ``start`` to ``end`` over ``length``."""
    return length * (start**2 + start * end + end**2) / 3.0


def crps_pz(
    probabilities: npt.ArrayLike, grid: PzGrid, z_true: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """(n,) CRPS of each galaxy's p(z), exact for its piecewise-linear CDF.

    ``int (F(z) - [z >= z_true])^2 dz`` over the real line: on the grid, bins below the
    truth contribute ``int F^2``, bins above ``int (1 - F)^2`` and the bin holding it both
    parts; a truth outside the grid adds its distance to the grid (where ``F`` is 0 or 1).
    """
    values = check_probabilities(probabilities, grid)
    truth = _truth(z_true, values.shape[0])
    cdf = cdf_at_edges(values)
    low, high = cdf[:, :-1], cdf[:, 1:]
    width = grid.width
    position = np.clip((truth - grid.z_min) / width, 0.0, grid.bins)
    k = np.minimum(np.floor(position).astype(np.int64), grid.bins - 1)  # the truth's bin
    index = np.arange(grid.bins)[None, :]
    full = np.where(
        index < k[:, None],
        _segment_integral(low, high, width),
        np.where(index > k[:, None], _segment_integral(1.0 - low, 1.0 - high, width), 0.0),
    ).sum(axis=1)
    rows = np.arange(values.shape[0])
    fraction = position - k  # in [0, 1]; 0 / 1 below / above the grid
    a, b = low[rows, k], high[rows, k]
    c = a + fraction * (b - a)  # CDF at the truth
    split = _segment_integral(a, c, fraction * width) + _segment_integral(
        1.0 - c, 1.0 - b, (1.0 - fraction) * width
    )
    outside = np.clip(grid.z_min - truth, 0.0, None) + np.clip(truth - grid.z_max, 0.0, None)
    return full + split + outside


def cde_loss(probabilities: npt.ArrayLike, grid: PzGrid, z_true: npt.ArrayLike) -> float:
    """CDE loss ``mean int p(z)^2 dz - 2 mean p(z_true)`` (``p`` = 0 off the grid)."""
    values = check_probabilities(probabilities, grid)
    truth = _truth(z_true, values.shape[0])
    values = values / values.sum(axis=1, keepdims=True)
    density = values / grid.width
    term1 = np.sum(density**2, axis=1) * grid.width
    position = (truth - grid.z_min) / grid.width
    on_grid = (position >= 0) & (position <= grid.bins)
    k = np.clip(np.floor(position).astype(np.int64), 0, grid.bins - 1)
    at_truth = np.where(on_grid, density[np.arange(values.shape[0]), k], 0.0)
    return float(np.mean(term1) - 2.0 * np.mean(at_truth))


def count_modes(
    probabilities: npt.ArrayLike,
    *,
    threshold: float = MODE_THRESHOLD,
    min_mass: float = MODE_MIN_MASS,
) -> npt.NDArray[np.int64]:
    """(n,) number of modes of each p(z).

    A mode is a run of consecutive bins whose probability is at least ``threshold`` times the
    row's highest, holding at least ``min_mass`` of the row's probability.
    """
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 1:
        raise ValueError(f"p(z) must be (n, bins), got {values.shape}")
    values = values / values.sum(axis=1, keepdims=True)
    above = values >= threshold * values.max(axis=1, keepdims=True)
    starts = above & ~np.concatenate([np.zeros((values.shape[0], 1), bool), above[:, :-1]], 1)
    run = np.cumsum(starts, axis=1) * above  # 1, 2, ... per run; 0 between runs
    n_bins = values.shape[1]
    flat = (np.arange(values.shape[0])[:, None] * (n_bins + 1) + run).ravel()
    mass = np.bincount(flat, weights=values.ravel(), minlength=values.shape[0] * (n_bins + 1))
    mass = mass.reshape(values.shape[0], n_bins + 1)[:, 1:]
    return np.sum(mass >= min_mass, axis=1)


def multimodal_fraction(
    probabilities: npt.ArrayLike,
    *,
    threshold: float = MODE_THRESHOLD,
    min_mass: float = MODE_MIN_MASS,
) -> float:
    """Share of galaxies whose p(z) has more than one mode (`count_modes`)."""
    return float(np.mean(count_modes(probabilities, threshold=threshold, min_mass=min_mass) > 1))


def pz_metrics(
    probabilities: npt.ArrayLike, grid: PzGrid, z_true: npt.ArrayLike
) -> dict[str, float]:
    """The p(z) metrics of one sample.

    Returns
    -------
    dict
        ``pit_ks`` (KS distance of the PIT to uniform), ``coverage_68``, ``coverage_95``
        (central intervals), ``crps`` (mean), ``cde_loss``, ``multimodal_fraction``,
        ``odds`` (mean odds around the mode) and ``galaxies``.
    """
    values = check_probabilities(probabilities, grid)
    truth = _truth(z_true, values.shape[0])
    if truth.size == 0:
        raise ValueError("p(z) metrics need at least one galaxy")
    return {
        "pit_ks": pit_ks_statistic(pz_pit(values, grid, truth)),
        "coverage_68": pz_interval_coverage(values, grid, truth, 0.6827),
        "coverage_95": pz_interval_coverage(values, grid, truth, 0.9545),
        "crps": float(np.mean(crps_pz(values, grid, truth))),
        "cde_loss": cde_loss(values, grid, truth),
        "multimodal_fraction": multimodal_fraction(values),
        "odds": float(np.mean(pz_summaries(values, grid)["odds"])),
        "galaxies": int(truth.size),
    }
