"""Photometry: background, detection, Kron and circular aperture fluxes, stamps.

One implementation for NumPy (CPU workers) and CuPy (GPU workers): every kernel takes its array
module from its input (:mod:`.backend`). The stages, each a module of pure functions:

* :mod:`.background` mesh background and RMS;
* :mod:`.detection` detection on the g+r+i+z stack, watershed deblending, isophotal shapes;
* :mod:`.overlap`, :mod:`.windows`, :mod:`.apertures`: exact-overlap aperture sums of many
  sources in many bands at once, Kron radii;
* :mod:`.stamps` seven-band stamps with device-independent noise padding;
* :mod:`.measure` the chain, :mod:`.catalog` the Arrow catalogue, :mod:`.tile_photometry` the
  tile-level entry point :func:`measure_tile`.

:mod:`.sep_kron` is the paper's recipe on sep (CPU), the reference the kernels are tested
against.
"""

from .apertures import ApertureFluxes, kron_radius, sum_ellipses
from .background import estimate_background, subtract_background
from .catalog import OBJECTS_PER_TILE, aperture_column, object_ids, photometry_schema
from .detection import Detections, detect_sources
from .flags import SourceFlag
from .measure import PhotometryConfig, SourceMeasurements, measure_sources
from .sep_kron import (
    FLAG_MIN_APERTURE,
    KRON_INTEGRATION_RADIUS,
    empty_photometry_table,
    measure_kron_photometry,
)
from .stamps import cut_stamps
from .tile_photometry import TilePhotometry, measure_tile

__all__ = [
    "FLAG_MIN_APERTURE",
    "KRON_INTEGRATION_RADIUS",
    "OBJECTS_PER_TILE",
    "ApertureFluxes",
    "Detections",
    "PhotometryConfig",
    "SourceFlag",
    "SourceMeasurements",
    "TilePhotometry",
    "aperture_column",
    "cut_stamps",
    "detect_sources",
    "empty_photometry_table",
    "estimate_background",
    "kron_radius",
    "measure_kron_photometry",
    "measure_sources",
    "measure_tile",
    "object_ids",
    "photometry_schema",
    "subtract_background",
    "sum_ellipses",
]
