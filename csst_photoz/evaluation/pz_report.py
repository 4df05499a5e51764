"""The p(z) section of the evaluation report: calibration figures, n(z) per bin, numbers.

For every model with a compact p(z) column (``z_<m>_pz``, :mod:`csst_photoz.pz.compact`),
read back on 400 bins of 0.01 over 0 <= z <= 4:

* ``pz_<m>.png``: the PIT histogram, the PIT QQ plot against the uniform law, and the coverage
  of central credible intervals against their nominal level, with the numbers in the panels;
* ``nz_<m>.png``: per tomographic bin (chosen on ``z_<m>``), the stacked p(z) with its
  bootstrap band and the true n(z);
* the metrics of :func:`csst_photoz.metrics.pz.pz_metrics` and the n(z) table (mean, true
  mean, bias ``|<z>_est - <z>_true| / (1 + <z>_true)``) as report blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..metrics.pz import pz_interval_coverage, pz_metrics, pz_pit
from ..pz import PzGrid
from ..pz.compact import dense_pz
from ..pz.nz import nz_partial, nz_summary
from ..pz.nz_plot import plot_nz
from .render import Block, Heading, Images, Paragraph, TableBlock

__all__ = ["COVERAGE_LEVELS", "GRID", "plot_pz_calibration", "pz_section", "tomographic_edges"]

#: Grid the compact p(z) are read back on.
GRID = PzGrid(0.0, 4.0, 400)
#: Nominal levels of the coverage panel.
COVERAGE_LEVELS = np.linspace(0.05, 0.95, 19)


def tomographic_edges(point: npt.ArrayLike, n_bins: int = 5) -> npt.NDArray[np.float64]:
    """Edges of ``n_bins`` equal-count bins of the finite point estimates (0.5-99.5 %).

    Fewer bins where the estimates have too few distinct values: one bin around them when they
    are all equal, ``[0, 4]`` when none is finite.
    """
    values = np.asarray(point, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.array([GRID.z_min, GRID.z_max])
    edges = np.unique(np.quantile(values, np.linspace(0.005, 0.995, n_bins + 1)))
    if edges.size < 2:
        return np.array([values.min() - 0.01, values.max() + 0.01])
    return edges


def plot_pz_calibration(
    probabilities: npt.ArrayLike, z_true: npt.ArrayLike, path: str | Path, *, title: str
) -> Path:
    """PIT histogram, PIT QQ plot and coverage vs nominal level of p(z) on `GRID`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pit = pz_pit(probabilities, GRID, z_true)
    metrics = pz_metrics(probabilities, GRID, z_true)
    coverage = [pz_interval_coverage(probabilities, GRID, z_true, lv) for lv in COVERAGE_LEVELS]
    figure, (hist, qq, cover) = plt.subplots(1, 3, figsize=(12, 3.6))
    hist.hist(pit, bins=20, range=(0, 1), density=True, histtype="stepfilled", alpha=0.6)
    hist.axhline(1.0, color="k", lw=0.8)
    hist.set_xlabel("PIT")
    hist.set_title(f"PIT KS {metrics['pit_ks']:.3f}")
    levels = np.linspace(0, 1, 101)
    qq.plot(levels, np.quantile(pit, levels), lw=1.5)
    qq.plot([0, 1], [0, 1], "k--", lw=0.8)
    qq.set_xlabel("uniform quantile")
    qq.set_ylabel("PIT quantile")
    qq.set_title("PIT QQ")
    cover.plot(COVERAGE_LEVELS, coverage, "o-", ms=3)
    cover.plot([0, 1], [0, 1], "k--", lw=0.8)
    cover.set_xlabel("nominal level")
    cover.set_ylabel("share of true z inside")
    cover.set_title(f"coverage 68: {metrics['coverage_68']:.3f}, 95: {metrics['coverage_95']:.3f}")
    figure.suptitle(
        f"{title}: CRPS {metrics['crps']:.4f}, CDE loss {metrics['cde_loss']:.3f}, "
        f"multimodal {metrics['multimodal_fraction']:.3f}, odds {metrics['odds']:.3f}"
    )
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def pz_section(
    z_true: npt.ArrayLike,
    points: Mapping[str, npt.ArrayLike],
    codes: Mapping[str, npt.ArrayLike],
    out: Path,
    *,
    tomo_edges: npt.ArrayLike | None = None,
    replicates: int = 50,
) -> tuple[dict[str, dict[str, object]], list[Block]]:
    """The p(z) metrics per model and the report blocks (figures written into ``out``).

    Parameters
    ----------
    z_true
        (n,) true redshifts.
    points
        ``{model: (n,) point estimates}`` (they choose the tomographic bins).
    codes
        ``{model: (n, 100) compact p(z)}``.
    out
        Folder of the figures.
    tomo_edges
        Tomographic edges (default: 5 equal-count bins of each model's point estimates).
    replicates
        Bootstrap replicates of the n(z).

    Returns
    -------
    metrics, blocks
        ``{model: {"pz": pz_metrics, "nz": n(z) table}}`` and the report blocks (none when
        no model has a p(z)).
    """
    truth = np.asarray(z_true, dtype=np.float64)
    metrics: dict[str, dict[str, object]] = {}
    figures: list[tuple[str, str]] = []
    pz_rows, nz_rows = [], []
    for model, model_codes in codes.items():
        probabilities = dense_pz(model_codes, GRID.edges)
        entry = pz_metrics(probabilities, GRID, truth)
        slug = "".join(c if c.isalnum() or c in "_.-" else "_" for c in model)
        plot_pz_calibration(probabilities, truth, out / f"pz_{slug}.png", title=model)
        point = np.asarray(points[model], dtype=np.float64)
        edges = tomographic_edges(point) if tomo_edges is None else np.asarray(tomo_edges)
        sums = nz_partial(
            point, model_codes, np.arange(truth.size), tomo_edges=edges,
            grid_edges=GRID.edges, replicates=replicates, z_true=truth,
        )  # fmt: skip
        summary = nz_summary(sums)
        plot_nz(sums, out / f"nz_{slug}.png", title=f"{model}: n(z) per tomographic bin")
        figures += [(f"{model}: p(z) calibration", f"pz_{slug}.png"),
                    (f"{model}: n(z) per tomographic bin", f"nz_{slug}.png")]  # fmt: skip
        metrics[model] = {
            "pz": entry,
            "nz": {key: [float(v) for v in values] for key, values in summary.items()},
        }
        pz_rows.append(
            (model, f"{entry['pit_ks']:.3f}", f"{entry['coverage_68']:.3f}",
             f"{entry['coverage_95']:.3f}", f"{entry['crps']:.4f}", f"{entry['cde_loss']:.3f}",
             f"{entry['multimodal_fraction']:.3f}", f"{entry['odds']:.3f}")
        )  # fmt: skip
        for t in range(len(summary["galaxies"])):
            nz_rows.append(
                (model, f"[{summary['z_low'][t]:.3f}, {summary['z_high'][t]:.3f})",
                 f"{int(summary['galaxies'][t])}", f"{summary['mean_z'][t]:.4f}",
                 f"{summary['mean_z_err'][t]:.4f}", f"{summary['true_mean_z'][t]:.4f}",
                 f"{summary['mean_bias'][t]:.4f}")
            )  # fmt: skip
    if not metrics:
        return metrics, []
    blocks: list[Block] = [
        Heading(2, "p(z)"),
        Paragraph(
            "Compact p(z) (100 quantiles) read back on 400 bins over 0 <= z <= 4. PIT KS: "
            "distance of the PIT to the uniform law; coverage of the central 68.27 % and "
            "95.45 % credible intervals; CRPS (redshift units); CDE loss (lower is better); "
            "multimodal: share with more than one mode; odds: mean probability within "
            "0.06 (1 + mode) of the mode. n(z): tomographic bins on the point estimate, "
            "stacked p(z), bootstrap error of the mean, bias |<z>_est - <z>_true| / "
            "(1 + <z>_true)."
        ),
        TableBlock(
            ("model", "PIT KS", "cov68", "cov95", "CRPS", "CDE loss", "multimodal", "odds"),
            tuple(pz_rows),
        ),
        TableBlock(
            ("model", "bin", "galaxies", "<z> est", "±", "<z> true", "bias"), tuple(nz_rows)
        ),
        Images(tuple(figures)),
    ]
    return metrics, blocks
