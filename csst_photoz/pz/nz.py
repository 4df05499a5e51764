"""Tomographic n(z) by stacking p(z), as sums that add up partition by partition.

A galaxy belongs to tomographic bin ``t`` when its point estimate lies in
``[edges[t], edges[t + 1])``; the bin's n(z) is the sum of its galaxies' p(z) on a fine grid.
`nz_partial` computes, for one table of galaxies, every sum the result needs; `NzSums` add
(``a + b``), so a catalogue is reduced partition by partition and the total equals the sums of
the concatenated table (up to floating-point order). `nz_summary` turns the totals into the
table: galaxies, mean, median and width (standard deviation) of each stacked n(z), their
bootstrap uncertainties, and where true redshifts are given the true n(z)'s mean and the bias
``|<z>_est - <z>_true| / (1 + <z>_true)``.

The bootstrap is a Poisson bootstrap (each galaxy enters replicate ``r`` with weight
``Poisson(1)``) whose weights are a hash of ``(seed, replicate, object_id)``: they do not depend
on how the catalogue is partitioned or on which worker reads a partition.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from scipy import stats

from .compact import dense_pz

__all__ = ["NzSums", "bootstrap_weights", "nz_partial", "nz_summary", "tomographic_bins"]

_POISSON_CDF = stats.poisson(1.0).cdf(np.arange(20))


def tomographic_bins(point: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Tomographic bin of each galaxy (-1 outside ``[edges[0], edges[-1])`` or not finite)."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"tomographic edges must increase, at least 2 of them; got {edges}")
    point = np.asarray(point, dtype=np.float64)
    index = np.searchsorted(edges, point, side="right") - 1
    inside = np.isfinite(point) & (index >= 0) & (index < edges.size - 1)
    return np.where(inside, index, -1)


def _splitmix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def bootstrap_weights(
    object_id: npt.ArrayLike, replicates: int, seed: int
) -> npt.NDArray[np.float64]:
    """(replicates, n) Poisson(1) weights, a hash of ``(seed, replicate, object_id)``."""
    ids = np.asarray(object_id).astype(np.int64).view(np.uint64)
    rows = []
    for replicate in range(replicates):
        key = _splitmix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(replicate))
        u = (_splitmix64(ids ^ key) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        rows.append(np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64))
    return np.asarray(rows).reshape(replicates, ids.size)


@dataclass(frozen=True)
class NzSums:
    """The additive sums of a tomographic n(z) (one partition's, or a catalogue's).

    Attributes
    ----------
    tomo_edges, grid_edges
        Tomographic edges (on the point estimate) and the fine grid of the stacks.
    count
        (T,) galaxies per tomographic bin.
    stack
        (T, G) sum of the galaxies' p(z) on the grid.
    boot_count, boot_stack
        (R, T) and (R, T, G): the same with the bootstrap weights of each replicate.
    truth_count, truth_sum, truth_hist
        (T,), (T,) and (T, G): galaxies with a true redshift, its sum and its histogram on
        the grid (zeros without truth).
    """

    tomo_edges: npt.NDArray[np.float64]
    grid_edges: npt.NDArray[np.float64]
    count: npt.NDArray[np.float64]
    stack: npt.NDArray[np.float64]
    boot_count: npt.NDArray[np.float64]
    boot_stack: npt.NDArray[np.float64]
    truth_count: npt.NDArray[np.float64]
    truth_sum: npt.NDArray[np.float64]
    truth_hist: npt.NDArray[np.float64]

    def __add__(self, other: NzSums) -> NzSums:
        """The sums of both (same edges and replicates required)."""
        if not (
            np.array_equal(self.tomo_edges, other.tomo_edges)
            and np.array_equal(self.grid_edges, other.grid_edges)
            and self.boot_stack.shape == other.boot_stack.shape
        ):
            raise ValueError("n(z) sums with other edges or bootstrap replicates cannot be added")
        summed = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
            if f.name not in ("tomo_edges", "grid_edges")
        }
        return NzSums(tomo_edges=self.tomo_edges, grid_edges=self.grid_edges, **summed)


def nz_partial(
    point: npt.ArrayLike,
    codes: npt.ArrayLike,
    object_id: npt.ArrayLike,
    *,
    tomo_edges: npt.ArrayLike,
    grid_edges: npt.ArrayLike,
    replicates: int = 100,
    seed: int = 0,
    z_true: npt.ArrayLike | None = None,
) -> NzSums:
    """The n(z) sums of one table of galaxies.

    Parameters
    ----------
    point
        (n,) point estimates that choose the tomographic bin.
    codes
        (n, 100) compact p(z) (:mod:`csst_photoz.pz.compact`).
    object_id
        (n,) stable identifiers (the bootstrap weights hash them).
    tomo_edges, grid_edges
        Tomographic edges and the grid of the stacks.
    replicates, seed
        Bootstrap replicates (>= 2) and seed.
    z_true
        (n,) true redshifts, or None; NaN where unknown.
    """
    tomo_edges = np.asarray(tomo_edges, dtype=np.float64)
    grid_edges = np.asarray(grid_edges, dtype=np.float64)
    if replicates < 2:
        raise ValueError(f"the bootstrap needs >= 2 replicates, got {replicates}")
    tomo = tomographic_bins(point, tomo_edges)
    n_tomo, n_grid = tomo_edges.size - 1, grid_edges.size - 1
    probabilities = dense_pz(codes, grid_edges) if tomo.size else np.zeros((0, n_grid))
    if probabilities.shape[0] != tomo.size or np.asarray(object_id).shape != tomo.shape:
        raise ValueError(
            f"point estimates ({tomo.size}), p(z) ({probabilities.shape[0]}) and object ids "
            f"({np.asarray(object_id).shape}) differ in length"
        )
    member = (tomo[None, :] == np.arange(n_tomo)[:, None]).astype(np.float64)  # (T, n)
    weights = bootstrap_weights(object_id, replicates, seed)  # (R, n)
    truth = np.full(tomo.size, np.nan) if z_true is None else np.asarray(z_true, np.float64)
    known = np.isfinite(truth)
    truth_member = member * known[None, :]
    truth_grid = np.zeros((tomo.size, n_grid))
    slot = np.searchsorted(grid_edges, truth, side="right") - 1
    on_grid = known & (slot >= 0) & (slot < n_grid)
    truth_grid[np.flatnonzero(on_grid), slot[on_grid]] = 1.0
    return NzSums(
        tomo_edges=tomo_edges,
        grid_edges=grid_edges,
        count=member.sum(axis=1),
        stack=member @ probabilities,
        boot_count=weights @ member.T,
        boot_stack=np.stack([(weights * m) @ probabilities for m in member], axis=1),
        truth_count=truth_member.sum(axis=1),
        truth_sum=truth_member @ np.where(known, truth, 0.0),
        truth_hist=truth_member @ truth_grid,
    )


def _moments(stack: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> tuple:
    """Mean, median and standard deviation of stacked bin probabilities (last axis)."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    total = stack.sum(axis=-1, keepdims=True)
    p = np.divide(stack, total, out=np.full_like(stack, np.nan), where=total > 0)
    mean = p @ centres
    width2 = np.diff(edges) ** 2 / 12.0
    std = np.sqrt(np.clip(p @ centres**2 + p @ width2 - mean**2, 0.0, None))
    cdf = np.cumsum(p, axis=-1)
    median = np.empty(mean.shape)
    for index in np.ndindex(mean.shape):
        row = cdf[index]
        median[index] = (
            np.interp(0.5, np.concatenate([[0.0], row]), edges) if total[index] > 0 else np.nan
        )
    return mean, median, std


def nz_summary(sums: NzSums) -> dict[str, npt.NDArray[np.float64]]:
    """One row per tomographic bin: the n(z) table.

    Returns
    -------
    dict
        ``z_low``, ``z_high``, ``galaxies``, ``mean_z``, ``median_z``, ``width`` (of the
        stacked n(z)), ``mean_z_err``, ``width_err`` (bootstrap standard deviations),
        ``true_galaxies``, ``true_mean_z`` and ``mean_bias`` (``|<z>_est - <z>_true| /
        (1 + <z>_true)``, NaN without truth).
    """
    mean, median, std = _moments(sums.stack, sums.grid_edges)
    boot_mean, _, boot_std = _moments(sums.boot_stack, sums.grid_edges)
    true_mean = np.divide(
        sums.truth_sum, sums.truth_count,
        out=np.full_like(sums.truth_sum, np.nan), where=sums.truth_count > 0,
    )  # fmt: skip
    with warnings.catch_warnings():  # an empty bin has no bootstrap spread: NaN, said once
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_err = np.nanstd(boot_mean, axis=0, ddof=1)
        width_err = np.nanstd(boot_std, axis=0, ddof=1)
    return {
        "z_low": sums.tomo_edges[:-1],
        "z_high": sums.tomo_edges[1:],
        "galaxies": sums.count,
        "mean_z": mean,
        "median_z": median,
        "width": std,
        "mean_z_err": mean_err,
        "width_err": width_err,
        "true_galaxies": sums.truth_count,
        "true_mean_z": true_mean,
        "mean_bias": np.abs(mean - true_mean) / (1.0 + true_mean),
    }
