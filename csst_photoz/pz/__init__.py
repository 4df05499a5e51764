"""p(z) as data: the gridded form, summaries, recalibration, the catalogue's compact form, n(z).

- :mod:`.grid`: bin probabilities on equal bins (CDF, PIT, quantiles, recalibration);
- :mod:`.summary`: mode, median, mean, std, odds;
- :mod:`.calibration`: the validation-split recalibration stored in checkpoints.

NumPy only; :mod:`qp` (the ``qp-prob`` package) is imported where an ``Ensemble`` is made.
"""

from .calibration import fit_pz_calibration
from .grid import PzGrid, cdf_at_edges, cdf_values, quantiles, recalibrate
from .summary import ODDS_HALF_WIDTH, pz_odds, pz_summaries

__all__ = [
    "ODDS_HALF_WIDTH",
    "PzGrid",
    "cdf_at_edges",
    "cdf_values",
    "fit_pz_calibration",
    "pz_odds",
    "pz_summaries",
    "quantiles",
    "recalibrate",
]
