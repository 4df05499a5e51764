"""The evaluation figures: z_phot vs z_true density, metrics in bins, PIT histograms.

Figures are built on `matplotlib.figure.Figure` with an explicit Agg canvas, never through
`matplotlib.pyplot`: no global state, no display needed, safe in worker threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.table import Table
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from csst_photoz.metrics import OUTLIER_THRESHOLD, expected_coverage, pit_histogram

__all__ = ["plot_binned_metrics", "plot_pit_histogram", "plot_redshift_density"]

_DPI = 110
_METRIC_LABELS = {
    "sigma_nmad": r"$\sigma_\mathrm{NMAD}$",
    "outlier_fraction": r"outlier fraction $\eta$",
    "bias": r"bias (median $\Delta z / (1 + z)$)",
}


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI)
    return path


def _metric_text(metrics: Mapping[str, object]) -> str:
    """Two or three lines of the model's overall metrics for a figure corner."""
    lines = [f"N = {metrics.get('n', 0)}"]
    if metrics.get("sigma_nmad") is not None:
        nmad, eta, bias = (float(metrics[k]) for k in ("sigma_nmad", "outlier_fraction", "bias"))
        lines.append(
            rf"$\sigma_\mathrm{{NMAD}}$ = {nmad:.4f}   $\eta$ = {100 * eta:.2f}%   "
            f"bias = {bias:+.4f}"
        )
    return "\n".join(lines)


def plot_redshift_density(
    z_true: npt.ArrayLike,
    z_pred: npt.ArrayLike,
    path: str | Path,
    *,
    title: str,
    metrics: Mapping[str, object] | None = None,
    threshold: float = OUTLIER_THRESHOLD,
    z_max: float | None = None,
) -> Path:
    """2-D histogram of ``z_pred`` against ``z_true`` with the 1:1 and outlier lines.

    Parameters
    ----------
    z_true, z_pred : array_like
        Finite redshifts of the galaxies to show, 1-D, same shape.
    path : str or pathlib.Path
        PNG to write (folders are created).
    title : str
        Figure title (the model's name).
    metrics : mapping, optional
        Overall metrics (``n``, ``sigma_nmad``, ``outlier_fraction``, ``bias``) printed in a
        corner.
    threshold : float, optional
        Outlier threshold: lines at ``z_true ± threshold * (1 + z_true)``. Default 0.15.
    z_max : float, optional
        Upper limit of both axes; default 1.05 times the largest true or predicted redshift.

    Returns
    -------
    pathlib.Path
        The written PNG.

    """
    true = np.asarray(z_true, dtype=np.float64)
    pred = np.asarray(z_pred, dtype=np.float64)
    # the range holds every point (true and predicted), so a non-empty sample never gives an
    # empty histogram (whose log colour scale has no range)
    upper = (
        float(z_max)
        if z_max is not None
        else 1.05 * max(float(np.max(true, initial=1.0)), float(np.max(pred, initial=1.0)))
    )
    lower = min(0.0, float(np.min(true, initial=0.0)), float(np.min(pred, initial=0.0)))
    n_bins = int(np.clip(math.sqrt(true.size) / 2, 20, 150))

    fig = Figure(figsize=(5.6, 5.0))
    ax = fig.add_subplot()
    inside = (pred >= lower) & (pred <= upper) & (true >= lower) & (true <= upper)
    if inside.any():
        *_, image = ax.hist2d(
            true,
            pred,
            bins=n_bins,
            range=[[lower, upper], [lower, upper]],
            norm=LogNorm(),
            cmin=1,
            cmap="viridis",
        )
        fig.colorbar(image, ax=ax, label="galaxies per cell")
    line = np.linspace(lower, upper, 2)
    ax.plot(line, line, color="k", lw=1, label="1:1")
    ax.plot(line, line + threshold * (1 + line), color="r", lw=1, ls="--")
    ax.plot(
        line,
        line - threshold * (1 + line),
        color="r",
        lw=1,
        ls="--",
        label=rf"$|\Delta z| = {threshold:g}(1 + z)$",
    )
    ax.set(
        xlim=(lower, upper),
        ylim=(lower, upper),
        xlabel=r"$z_\mathrm{true}$",
        ylabel=r"$z_\mathrm{phot}$",
        title=title,
        aspect="equal",
    )
    ax.legend(loc="lower right", fontsize=8)
    if metrics is not None:
        ax.text(0.03, 0.97, _metric_text(metrics), transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_binned_metrics(
    tables: Mapping[str, Table],
    path: str | Path,
    *,
    xlabel: str,
    min_count: int = 10,
) -> Path:
    """Sigma_NMAD, outlier fraction and bias against a binned quantity, one line per model.

    Parameters
    ----------
    tables : mapping of str to astropy.table.Table
        Per model, the output of `csst_photoz.metrics.binned_metrics` (all on the same bins).
    path : str or pathlib.Path
        PNG to write.
    xlabel : str
        Label of the binned quantity.
    min_count : int, optional
        Bins with fewer galaxies are not drawn (their metrics are noise). Default 10.

    Returns
    -------
    pathlib.Path
        The written PNG.

    """
    fig = Figure(figsize=(5.6, 8.0))
    axes = fig.subplots(3, 1, sharex=True)
    for name, table in tables.items():
        centre = 0.5 * (np.asarray(table["bin_low"]) + np.asarray(table["bin_high"]))
        enough = np.asarray(table["n"]) >= min_count
        for ax, metric in zip(axes, _METRIC_LABELS, strict=True):
            values = np.where(enough, np.asarray(table[metric], dtype=np.float64), np.nan)
            ax.plot(centre, values, marker="o", ms=3, label=name)
    for ax, label in zip(axes, _METRIC_LABELS.values(), strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].axhline(0.0, color="k", lw=0.8)
    axes[2].set_xlabel(xlabel)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"metrics vs {xlabel} (bins with N >= {min_count})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_pit_histogram(
    pit: npt.ArrayLike,
    path: str | Path,
    *,
    title: str,
    metrics: Mapping[str, object] | None = None,
    bins: int = 20,
) -> Path:
    """Density histogram of the PIT values with the flat line of a calibrated model.

    Parameters
    ----------
    pit : array_like
        PIT values in ``[0, 1]`` (NaN ignored).
    path : str or pathlib.Path
        PNG to write.
    title : str
        Figure title (the model's name).
    metrics : mapping, optional
        Calibration metrics (``coverage_68``, ``coverage_95``, ``pit_ks``, ``crps``) printed
        in the figure.
    bins : int, optional
        Number of bins. Default 20.

    Returns
    -------
    pathlib.Path
        The written PNG.

    """
    density, edges = pit_histogram(pit, bins=bins)
    fig = Figure(figsize=(5.6, 4.0))
    ax = fig.add_subplot()
    ax.stairs(np.nan_to_num(density), edges, fill=True, alpha=0.6, label="PIT")
    ax.axhline(1.0, color="k", lw=1, ls="--", label="calibrated")
    top = float(np.nanmax(density, initial=1.0))
    ax.set(xlim=(0, 1), ylim=(0, 1.15 * max(top, 1.5)), xlabel="PIT", ylabel="density")
    ax.set_title(title)
    if metrics is not None and metrics.get("coverage_68") is not None:
        ax.text(
            0.5,
            0.97,
            f"68% coverage {metrics['coverage_68']:.3f} (ideal {expected_coverage(1):.3f})\n"
            f"95% coverage {metrics['coverage_95']:.3f} (ideal {expected_coverage(2):.3f})\n"
            f"KS distance {metrics['pit_ks']:.3f}   CRPS {metrics['crps']:.4f}",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=8,
        )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
