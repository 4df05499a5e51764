"""The n(z) figure: per tomographic bin the stacked p(z), its bootstrap band and the truth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .nz import NzSums, nz_summary

__all__ = ["plot_nz"]


def plot_nz(sums: NzSums, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Write a PNG of every tomographic bin's n(z) (normalised to unit area) to ``path``.

    The line is the stacked p(z), the band the 16-84 % range of the bootstrap replicates, the
    step histogram the true redshifts where known; the legend gives the bin's mean and bias.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = nz_summary(sums)
    edges = sums.grid_edges
    centres, widths = 0.5 * (edges[:-1] + edges[1:]), np.diff(edges)

    def density(stack: np.ndarray) -> np.ndarray:
        total = stack.sum(axis=-1, keepdims=True)
        return np.divide(stack, total * widths, out=np.zeros_like(stack), where=total > 0)

    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(summary["galaxies"]), 1)))
    for t, colour in enumerate(colours):
        if summary["galaxies"][t] == 0:
            continue
        label = (
            f"[{summary['z_low'][t]:.2f}, {summary['z_high'][t]:.2f}): "
            f"<z> {summary['mean_z'][t]:.3f}"
        )
        if np.isfinite(summary["mean_bias"][t]):
            label += f", true {summary['true_mean_z'][t]:.3f}, bias {summary['mean_bias'][t]:.4f}"
        axis.plot(centres, density(sums.stack[t]), color=colour, label=label)
        low, high = np.percentile(density(sums.boot_stack[:, t]), [16, 84], axis=0)
        axis.fill_between(centres, low, high, color=colour, alpha=0.3, linewidth=0)
        if sums.truth_count[t] > 0:
            axis.stairs(density(sums.truth_hist[t]), edges, color=colour, linestyle=":")
    axis.set_xlabel("z")
    axis.set_ylabel("n(z) (unit area per bin)")
    axis.set_title(title or "n(z): stacked p(z) (lines, bootstrap 16-84 %), truth (dotted)")
    axis.legend(fontsize=7)
    target = Path(path)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
