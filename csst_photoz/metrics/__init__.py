"""Photo-z quality metrics for point estimates (Zhou et al. 2022).

With ``dz = z_pred - z_true``: `sigma_nmad` is the normalised median absolute
deviation, `outlier_fraction` the share of galaxies with
``|dz| / (1 + z_true) > threshold`` (default 0.15), and `bias` the median of
``dz / (1 + z_true)``. `point_metrics` returns all of them for one sample and
`binned_metrics` tabulates them in bins of any quantity.
"""

from csst_photoz.metrics.binned import binned_metrics
from csst_photoz.metrics.calibration import (
    calibration_metrics,
    coverage_scale,
    crps_gaussian,
    expected_coverage,
    interval_coverage,
    pit_histogram,
    pit_ks_statistic,
    pit_values,
)
from csst_photoz.metrics.point import (
    OUTLIER_THRESHOLD,
    bias,
    outlier_fraction,
    point_metrics,
    sigma_nmad,
)

__all__ = [
    "OUTLIER_THRESHOLD",
    "bias",
    "binned_metrics",
    "calibration_metrics",
    "coverage_scale",
    "crps_gaussian",
    "expected_coverage",
    "interval_coverage",
    "outlier_fraction",
    "pit_histogram",
    "pit_ks_statistic",
    "pit_values",
    "point_metrics",
    "sigma_nmad",
]
