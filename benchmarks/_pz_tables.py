"""Markdown table rows shared by the p(z) benchmarks (``pz_heads.py``, ``pz_simulated.py``)."""

from __future__ import annotations

from typing import Any

#: Header of the distribution table: one row per head and form of its distribution.
DISTRIBUTION_HEADER = [
    "| head | form | PIT KS | cov. 68 | cov. 95 | CRPS | CDE loss | multimodal | odds |",
    "|---|---|---|---|---|---|---|---|---|",
]


def point_cells(point: dict[str, float]) -> str:
    """``sigma_NMAD | outliers | bias`` cells of a point-estimate row."""
    return (
        f"{point['sigma_nmad']:.4f} | {100 * point['outlier_fraction']:.2f} % | "
        f"{point['bias']:+.4f}"
    )


def distribution_row(head: str, form: str, metrics: dict[str, float]) -> str:
    """A `DISTRIBUTION_HEADER` row; a Gaussian (no CDE loss, modes, odds) leaves those empty."""
    row = (
        f"| {head} | {form} | {metrics['pit_ks']:.3f} | {metrics['coverage_68']:.3f} | "
        f"{metrics['coverage_95']:.3f} | {metrics['crps']:.4f} |"
    )
    if "cde_loss" not in metrics:
        return row + " | | |"
    return (
        f"{row} {metrics['cde_loss']:.3f} | {metrics['multimodal_fraction']:.3f} | "
        f"{metrics['odds']:.3f} |"
    )


def nz_rows(nz: dict[str, Any], prefix: str = "") -> list[str]:
    """``[bin) | galaxies | <z> est | +- | <z> true | bias`` rows of an n(z) summary."""
    return [
        f"| {prefix}[{nz['z_low'][t]:.2f}, {nz['z_high'][t]:.2f}) | {int(nz['galaxies'][t])} | "
        f"{nz['mean_z'][t]:.4f} | {nz['mean_z_err'][t]:.4f} | {nz['true_mean_z'][t]:.4f} | "
        f"{nz['mean_bias'][t]:.4f} |"
        for t in range(len(nz["galaxies"]))
    ]
