"""Evaluation of photo-z models: the report of ``csst-photoz evaluate`` and baselines.

- :func:`evaluate` -- metrics per model overall and in bins of redshift and magnitude,
  calibration of the uncertainties, figures, and ``metrics.json`` / ``report.md`` /
  ``report.html`` (:mod:`.report`, figures in :mod:`.plots`);
- :func:`read_predictions` -- a Parquet table of ``z_<model>`` / ``z_<model>_err`` columns into
  arrays (:mod:`.columns`);
- :class:`KNNBaseline`, :class:`GradientBoostingBaseline`, :func:`fit_predict_baselines` --
  tuned scikit-learn competitors (L1 gradient-boosted trees with early stopping, a k-NN) on
  one magnitude and adjacent colours (:mod:`.baselines`);
- :mod:`.cli` -- ``add_evaluate_parser`` and ``main`` of the command.

Names are imported lazily, so that importing the package (for the command line) does not load
matplotlib, torch or scikit-learn.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

__all__ = [
    "PAPER_RESULTS",
    "EvaluationReport",
    "GradientBoostingBaseline",
    "KNNBaseline",
    "PredictionTable",
    "baseline_features",
    "evaluate",
    "fit_predict_baselines",
    "model_columns",
    "overall_markdown",
    "paper_reference",
    "read_predictions",
]

_SOURCES = {
    "PAPER_RESULTS": "report",
    "EvaluationReport": "report",
    "evaluate": "report",
    "overall_markdown": "report",
    "paper_reference": "report",
    "PredictionTable": "columns",
    "model_columns": "columns",
    "read_predictions": "columns",
    "GradientBoostingBaseline": "baselines",
    "KNNBaseline": "baselines",
    "baseline_features": "baselines",
    "fit_predict_baselines": "baselines",
}


__getattr__, __dir__ = lazy_attributes(__name__, _SOURCES, __all__)
