"""The mock universe: galaxy population, spectra, and synthetic CSST photometry."""

from .catalog import TRUTH_COLUMNS, simulate_catalog, truth_schema
from .dust import calzetti_k, dust_transmission
from .emission_lines import line_fluxes
from .igm import madau_transmission
from .population import (
    BPZ_CLASSES,
    Population,
    PopulationConfig,
    bpz_class_probabilities,
    sample_population,
)
from .report import PAPER_SELECTED_NZ, catalog_summary, format_summary, plot_catalog
from .selection import kron_like_snr, select_snr
from .stamps import (
    NEIGHBOUR_MARGIN_PIX,
    NeighbourDraw,
    StampSettings,
    draw_neighbours,
    mean_neighbour_count,
    measure_stamps,
    neighbour_pool,
    render_stamps,
    stamp_offset,
)
from .synthetic_photometry import SyntheticPhotometer
from .templates import TEMPLATE_NAMES, TemplateSet, load_cww_templates, type_weights
from .tiles import SimulationConfig

__all__ = [
    "BPZ_CLASSES",
    "NEIGHBOUR_MARGIN_PIX",
    "PAPER_SELECTED_NZ",
    "TEMPLATE_NAMES",
    "TRUTH_COLUMNS",
    "NeighbourDraw",
    "Population",
    "PopulationConfig",
    "SimulationConfig",
    "StampSettings",
    "SyntheticPhotometer",
    "TemplateSet",
    "bpz_class_probabilities",
    "calzetti_k",
    "catalog_summary",
    "draw_neighbours",
    "dust_transmission",
    "format_summary",
    "kron_like_snr",
    "line_fluxes",
    "load_cww_templates",
    "madau_transmission",
    "mean_neighbour_count",
    "measure_stamps",
    "neighbour_pool",
    "plot_catalog",
    "render_stamps",
    "sample_population",
    "select_snr",
    "simulate_catalog",
    "stamp_offset",
    "truth_schema",
    "type_weights",
]
