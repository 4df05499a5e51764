"""The photo-z evaluation report: metrics per model, in bins, figures, JSON, Markdown and HTML.

`evaluate` takes the true redshifts and, per model, the predicted redshifts with optional
Gaussian 1-sigma uncertainties, and writes into one folder:

* ``metrics.json``: overall metrics per model (sigma_NMAD, outlier fraction, bias; with an
  uncertainty also the 68%/95% coverage, mean CRPS, PIT KS distance and median sigma), the
  paper's numbers where the model name matches one of its networks, and the binned metrics;
* ``report.md`` and ``report.html``: the same as tables, the HTML page with the figures;
* ``zphot_vs_ztrue_<model>.png``, ``pit_<model>.png`` (models with an uncertainty),
  ``metrics_vs_redshift.png`` and ``metrics_vs_magnitude.png`` (when magnitudes are given).

Missing predictions
-------------------
A galaxy whose prediction (or uncertainty) is NaN or infinite, such as a row without
photometry, is left out of that model's metrics and counted in ``n_missing`` (``n_sigma``
counts the galaxies used for the calibration metrics). A model with no valid prediction gets
``n = 0`` and null metrics. Galaxies with a non-finite magnitude are left out of the magnitude
bins only. The true redshifts must all be finite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from csst_photoz import __version__
from csst_photoz.metrics import (
    OUTLIER_THRESHOLD,
    binned_metrics,
    calibration_metrics,
    pit_values,
    point_metrics,
)
from csst_photoz.metrics.binned import _validate_edges
from csst_photoz.metrics.point import _as_1d_float, _describe, _validate_threshold

from .plots import plot_binned_metrics, plot_pit_histogram, plot_redshift_density
from .pz_report import pz_section
from .render import overall_markdown, report_blocks, to_html, to_markdown

__all__ = [
    "CALIBRATION_KEYS",
    "PAPER_RESULTS",
    "POINT_KEYS",
    "EvaluationReport",
    "evaluate",
    "overall_markdown",
    "paper_reference",
]

#: Zhou et al. (2022), test set of 10,000 galaxies: ``{training size: {network: (sigma_NMAD,
#: outlier fraction)}}``.
PAPER_RESULTS: dict[int, dict[str, tuple[float, float]]] = {
    30_000: {
        "mlp": (0.023, 0.0143),
        "cnn": (0.025, 0.0121),
        "hybrid": (0.020, 0.0103),
        "hybrid_transfer": (0.020, 0.0090),
    },
    20_000: {
        "mlp": (0.026, 0.0167),
        "cnn": (0.027, 0.0151),
        "hybrid": (0.022, 0.0125),
        "hybrid_transfer": (0.021, 0.0106),
    },
    10_000: {
        "mlp": (0.028, 0.0239),
        "cnn": (0.030, 0.0198),
        "hybrid": (0.023, 0.0129),
        "hybrid_transfer": (0.023, 0.0129),
    },
}

#: Point-estimate keys of each model's entry in ``metrics.json``.
POINT_KEYS = ("n", "n_missing", "sigma_nmad", "outlier_fraction", "bias")
#: Calibration keys (null for a model without uncertainties).
CALIBRATION_KEYS = ("n_sigma", "coverage_68", "coverage_95", "crps", "pit_ks", "median_sigma")

_Z_STEP = 0.25
_MAG_STEP = 0.5
_PAPER_ALIASES = {"hybridtransfer": "hybrid_transfer", "hybrid_tl": "hybrid_transfer"}


def _validate_training_size(training_size: int | None) -> int | None:
    if training_size is not None and training_size not in PAPER_RESULTS:
        raise ValueError(
            f"the paper has no results for {training_size} training galaxies; "
            f"choose one of {sorted(PAPER_RESULTS)} or None"
        )
    return training_size


def paper_reference(model: str, *, training_size: int | None = 30_000) -> dict[str, float] | None:
    """The paper's sigma_NMAD and outlier fraction for a model name, if it names a network.

    Names are matched case-insensitively with ``-`` and spaces read as ``_``: ``MLP``, ``cnn``,
    ``Hybrid``, ``hybrid-transfer`` (also ``hybridtransfer``) match.

    Parameters
    ----------
    model : str
        The model's name.
    training_size : int or None, optional
        Row of the paper's table: 30000 (default), 20000 or 10000; None gives None.

    Returns
    -------
    dict or None
        ``{"sigma_nmad": ..., "outlier_fraction": ...}``, or None without a match.

    """
    if _validate_training_size(training_size) is None:
        return None
    key = re.sub(r"[\s\-]+", "_", model.strip().lower())
    key = _PAPER_ALIASES.get(key, key)
    values = PAPER_RESULTS[training_size].get(key)
    if values is None:
        return None
    return {"sigma_nmad": values[0], "outlier_fraction": values[1]}


@dataclass(frozen=True)
class EvaluationReport:
    """What `evaluate` computed and wrote.

    Attributes
    ----------
    metrics : dict
        Per model, the overall metrics (keys `POINT_KEYS`, `CALIBRATION_KEYS` and ``paper``);
        metrics that are undefined are None.
    binned_redshift : dict of str to astropy.table.Table
        Per model, `csst_photoz.metrics.binned_metrics` in bins of the true redshift.
    binned_magnitude : dict of str to astropy.table.Table
        The same in bins of magnitude (empty without magnitudes).
    paths : dict of str to pathlib.Path
        Written files: ``json``, ``markdown``, ``html``, ``metrics_vs_redshift``,
        ``metrics_vs_magnitude``, ``zphot_<model>`` and ``pit_<model>``.

    """

    metrics: dict[str, dict[str, object]]
    binned_redshift: dict[str, Table] = field(default_factory=dict)
    binned_magnitude: dict[str, Table] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"


def _grid_edges(values: np.ndarray, step: float) -> np.ndarray:
    """Edges on multiples of ``step`` spanning ``values`` (at least one bin)."""
    low = math.floor(float(values.min()) / step) * step
    high = math.ceil(float(values.max()) / step) * step
    if high <= low:
        high = low + step
    return np.round(np.arange(low, high + 0.5 * step, step), 10)


def _predictions(
    predictions: Mapping[str, object], size: int
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Validate the ``{name: z_pred or (z_pred, sigma)}`` mapping into float arrays."""
    if not isinstance(predictions, Mapping) or not predictions:
        raise ValueError("predictions must be a non-empty mapping of model name to predictions")
    result: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    slugs: dict[str, str] = {}
    for name, value in predictions.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"model names must be non-empty strings, got {name!r}")
        slug = _slug(name)
        if slug in slugs:
            raise ValueError(f"models {slugs[slug]!r} and {name!r} share the file name {slug!r}")
        slugs[slug] = name
        z_value, sigma_value = value if isinstance(value, tuple) else (value, None)
        z_pred = _as_1d_float(f"z_pred of {name!r}", z_value)
        sigma = None if sigma_value is None else _as_1d_float(f"sigma of {name!r}", sigma_value)
        for label, array in (("z_pred", z_pred), ("sigma", sigma)):
            if array is not None and array.shape != (size,):
                raise ValueError(
                    f"{label} of model {name!r} has shape {array.shape}, z_true has ({size},)"
                )
        if sigma is not None:
            bad = np.isfinite(sigma) & (sigma <= 0)
            if bad.any():
                raise ValueError(f"sigma of model {name!r} must be > 0; {_describe(bad)} are not")
        result[name] = (z_pred, sigma)
    return result


def _model_metrics(
    z_true: np.ndarray,
    z_pred: np.ndarray,
    sigma: np.ndarray | None,
    threshold: float,
) -> tuple[dict[str, object], np.ndarray, np.ndarray | None]:
    """Overall metrics of one model; also its valid-row mask and its PIT values (or None)."""
    valid = np.isfinite(z_pred)
    entry: dict[str, object] = dict.fromkeys(POINT_KEYS + CALIBRATION_KEYS)
    entry["n"], entry["n_missing"] = int(valid.sum()), int((~valid).sum())
    if valid.any():
        point = point_metrics(z_true[valid], z_pred[valid], threshold=threshold)
        entry.update({k: point[k] for k in ("sigma_nmad", "outlier_fraction", "bias")})
    pit = None
    if sigma is not None:
        usable = valid & np.isfinite(sigma)
        entry["n_sigma"] = int(usable.sum())
        if usable.any():
            calibration = calibration_metrics(z_true[usable], z_pred[usable], sigma[usable])
            calibration["n_sigma"] = calibration.pop("n")
            entry.update(calibration)
            pit = pit_values(z_true[usable], z_pred[usable], sigma[usable])
    return entry, valid, pit


def _json_ready(value: object) -> object:
    """Replace NaN and infinities by None and numpy scalars by Python ones, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _table_columns(table: Table) -> dict[str, list[object]]:
    return {name: np.asarray(table[name]).tolist() for name in table.colnames}


def evaluate(
    z_true: npt.ArrayLike,
    predictions: Mapping[str, npt.ArrayLike | tuple[npt.ArrayLike, npt.ArrayLike | None]],
    *,
    out: str | Path,
    magnitude: npt.ArrayLike | None = None,
    magnitude_label: str = "magnitude",
    z_bins: npt.ArrayLike | None = None,
    magnitude_bins: npt.ArrayLike | None = None,
    threshold: float = OUTLIER_THRESHOLD,
    paper_training_size: int | None = 30_000,
    min_count: int = 10,
    pit_bins: int = 20,
    pz: Mapping[str, npt.ArrayLike] | None = None,
    tomo_bins: npt.ArrayLike | None = None,
) -> EvaluationReport:
    """Evaluate photo-z models against true redshifts and write the report into ``out``.

    Parameters
    ----------
    z_true : array_like
        True redshifts, 1-D, finite, all > -1.
    predictions : mapping
        Model name -> ``(z_pred, sigma)`` (``sigma`` the Gaussian 1-sigma uncertainty, or
        None) or a bare ``z_pred`` array. Arrays have the shape of `z_true`; NaN marks a
        missing prediction (see the module docstring); finite ``sigma`` must be > 0. Names
        become file names (characters other than letters, digits, ``_.-`` are replaced).
    out : str or pathlib.Path
        Output folder (created; existing report files are overwritten).
    magnitude : array_like, optional
        Magnitude of each galaxy (e.g. ``mag_i``) for the metrics in magnitude bins.
    magnitude_label : str, optional
        Name of the magnitude in tables and figures. Default ``"magnitude"``.
    z_bins, magnitude_bins : array_like, optional
        Bin edges (see `csst_photoz.metrics.binned_metrics`). Defaults: steps of 0.25 in
        redshift and 0.5 mag spanning the data.
    threshold : float, optional
        Outlier threshold on ``|dz| / (1 + z_true)``. Default 0.15.
    paper_training_size : int or None, optional
        Row of the paper's table to compare with (30000, 20000 or 10000), or None for no
        paper columns. Default 30000.
    min_count : int, optional
        Bins with fewer galaxies are not drawn in the binned figures (they stay in the
        tables). Default 10.
    pit_bins : int, optional
        Bins of the PIT histograms. Default 20.
    pz : mapping, optional
        Model name -> (n, 100) compact p(z) codes (``z_<model>_pz``): adds the p(z) section
        (:mod:`csst_photoz.evaluation.pz_report`: PIT histogram, QQ plot, coverage vs nominal,
        n(z) true vs estimated per tomographic bin, with their numbers; ``metrics.json``
        gets ``pz`` and ``nz`` per model).
    tomo_bins : array_like, optional
        Tomographic edges of the n(z) (default: 5 equal-count bins of each point estimate).

    Returns
    -------
    EvaluationReport
        The metrics, binned tables and written paths.

    Raises
    ------
    ValueError
        If `z_true` is not 1-D, is empty, has non-finite values or values <= -1; if a
        prediction or `magnitude` has another shape; if a finite sigma is <= 0; if model names
        are empty or collide as file names; if bins or the threshold are invalid; or if the
        paper has no row for `paper_training_size`.

    """
    limit = _validate_threshold(threshold)
    _validate_training_size(paper_training_size)
    true = _as_1d_float("z_true", z_true)
    if true.size == 0:
        raise ValueError("z_true is empty: nothing to evaluate")
    bad = ~np.isfinite(true)
    if bad.any():
        raise ValueError(f"z_true contains {_describe(bad)} that are NaN or infinite")
    if (true <= -1).any():
        raise ValueError(f"z_true must be > -1; {_describe(true <= -1)} are not")
    models = _predictions(predictions, true.size)
    mags = None
    if magnitude is not None:
        mags = _as_1d_float("magnitude", magnitude)
        if mags.shape != true.shape:
            raise ValueError(f"magnitude has shape {mags.shape}, z_true has {true.shape}")
    z_edges = _grid_edges(true, _Z_STEP) if z_bins is None else _validate_edges(z_bins)
    mag_edges = None
    if mags is not None:
        finite_mags = mags[np.isfinite(mags)]
        if magnitude_bins is not None:
            mag_edges = _validate_edges(magnitude_bins)
        elif finite_mags.size:
            mag_edges = _grid_edges(finite_mags, _MAG_STEP)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, dict[str, object]] = {}
    binned_z: dict[str, Table] = {}
    binned_mag: dict[str, Table] = {}
    paths: dict[str, Path] = {}
    density_figures, pit_figures, binned_figures = [], [], []
    for name, (z_pred, sigma) in models.items():
        entry, valid, pit = _model_metrics(true, z_pred, sigma, limit)
        entry["paper"] = paper_reference(name, training_size=paper_training_size)
        metrics[name] = entry
        binned_z[name] = binned_metrics(
            true[valid], z_pred[valid], by=true[valid], bins=z_edges, threshold=limit
        )
        if mags is not None and mag_edges is not None:
            rows = valid & np.isfinite(mags)
            binned_mag[name] = binned_metrics(
                true[rows], z_pred[rows], by=mags[rows], bins=mag_edges, threshold=limit
            )
        slug = _slug(name)
        paths[f"zphot_{name}"] = plot_redshift_density(
            true[valid],
            z_pred[valid],
            out / f"zphot_vs_ztrue_{slug}.png",
            title=name,
            metrics=entry,
            threshold=limit,
            z_max=1.05 * float(z_edges[-1]) if z_bins is None else None,
        )
        density_figures.append((f"{name}: z_phot vs z_true", paths[f"zphot_{name}"].name))
        if pit is not None:
            paths[f"pit_{name}"] = plot_pit_histogram(
                pit, out / f"pit_{slug}.png", title=name, metrics=entry, bins=pit_bins
            )
            pit_figures.append((f"{name}: PIT histogram", paths[f"pit_{name}"].name))
    paths["metrics_vs_redshift"] = plot_binned_metrics(
        binned_z, out / "metrics_vs_redshift.png", xlabel="true redshift", min_count=min_count
    )
    binned_figures.append(("metrics vs true redshift", paths["metrics_vs_redshift"].name))
    if binned_mag:
        paths["metrics_vs_magnitude"] = plot_binned_metrics(
            binned_mag,
            out / "metrics_vs_magnitude.png",
            xlabel=magnitude_label,
            min_count=min_count,
        )
        binned_figures.append((f"metrics vs {magnitude_label}", paths["metrics_vs_magnitude"].name))

    pz_metrics_, pz_blocks = pz_section(
        true,
        {name: models[name][0] for name in (pz or {})},
        {name: codes for name, codes in (pz or {}).items() if name in models},
        out,
        tomo_edges=tomo_bins,
    )
    for name, entry in pz_metrics_.items():
        metrics[name].update(entry)
        paths[f"pz_{name}"] = out / f"pz_{_slug(name)}.png"
        paths[f"nz_{name}"] = out / f"nz_{_slug(name)}.png"

    paths["json"] = out / "metrics.json"
    paths["markdown"] = out / "report.md"
    paths["html"] = out / "report.html"
    report = EvaluationReport(metrics, binned_z, binned_mag, paths)
    document = {
        "package_version": __version__,
        "n_galaxies": int(true.size),
        "threshold": limit,
        "paper_training_size": paper_training_size,
        "magnitude_label": magnitude_label if binned_mag else None,
        "models": metrics,
        "binned": {
            "redshift": {name: _table_columns(table) for name, table in binned_z.items()},
            "magnitude": {name: _table_columns(table) for name, table in binned_mag.items()},
        },
        "files": {key: path.name for key, path in paths.items()},
    }
    paths["json"].write_text(
        json.dumps(_json_ready(document), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    blocks = report_blocks(
        metrics,
        {"true redshift": binned_z, magnitude_label: binned_mag},
        density_figures + binned_figures + pit_figures,
        n_galaxies=int(true.size),
        threshold=limit,
        training_size=paper_training_size,
    )
    blocks += pz_blocks
    paths["markdown"].write_text(to_markdown(blocks), encoding="utf-8")
    paths["html"].write_text(to_html(blocks), encoding="utf-8")
    return report
