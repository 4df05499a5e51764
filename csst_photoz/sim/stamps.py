"""Training stamps for the CNN: seven-band cut-outs centred on a galaxy, with neighbours.

Zhou et al. (2022) cut their stamps from HST COSMOS images, masked neighbours and replaced them by
noise. Here every stamp is simulated so that it looks like a cut-out of a simulated tile
(:mod:`csst_photoz.sim.tiles`): galaxy ``i`` of a truth catalogue is drawn at the stamp centre,
pixel ``size / 2 - 0.5`` (0-based; pixel (0, 0) spans -0.5..0.5), plus a sub-pixel offset
uniform in [-0.5, 0.5) on each axis; neighbours from the same population are placed uniformly
over the stamp plus :data:`NEIGHBOUR_MARGIN_PIX` on every side, their number Poisson-distributed
with mean ``surface_density x area``; everything is rendered with
:func:`~csst_photoz.sim.render.add_galaxies` (bulge + disk, band PSFs) and given the detector
noise of :func:`~csst_photoz.sim.detector.add_noise` with the instrument's sky, dark and read
figures exactly as :func:`~csst_photoz.sim.tiles.band_planes` computes them. Stamps are
background-subtracted electrons, float32 (n, n_bands, size, size).

The paper's photometry (detection on g+r+i+z, 1 x Kron aperture) of the central object is
measured on every stamp with the project's own :func:`csst_photoz.photometry.measure_sources`
(the code that measures survey tiles) with the variance plane of the noise model; an
undetected galaxy keeps its row with NaN fluxes and ``detected = False``, so table rows always
align with stamps.

Determinism: every random stream of stamp ``i`` comes from
``np.random.SeedSequence([seed, galaxy_id, purpose(, band)])``, so a stamp is identical whatever
batch or worker renders it. Neighbour *properties* come from
:func:`~csst_photoz.sim.simulate_catalog` in one of two ways (``neighbour_source``):

``"pool"`` (default)
    rows drawn (by the galaxy's own stream) from a pool of :data:`DEFAULT_POOL_SIZE` galaxies
    simulated once from a seed derived from ``seed`` alone (cached per process). Each
    ``simulate_catalog`` call has a fixed cost of 0.3-0.5 s (synthetic-photometry and PSF
    set-up), several times the ~0.07 s it takes to render a stamp.
``"per_galaxy"``
    a fresh ``simulate_catalog`` of the neighbours per stamp, seeded from (seed, galaxy_id):
    no neighbour is ever repeated, at 0.3-0.5 s extra per stamp.

Pure functions: tables and arrays in and out, no I/O (the pipeline writes zarr and Parquet).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from operator import attrgetter
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ..fields import described_field
from ..instrument import Instrument
from ..photometry import PhotometryConfig, measure_sources
from .catalog import simulate_catalog
from .detector import add_noise, noise_figures
from .population import PopulationConfig, surface_density
from .render import (
    MORPHOLOGY_COLUMNS,
    GalaxyMorphology,
    RenderSettings,
    add_galaxies,
    component_fluxes,
)

__all__ = [
    "DEFAULT_POOL_SIZE",
    "NEIGHBOUR_MARGIN_PIX",
    "STAMP_PHOTOMETRY",
    "NeighbourDraw",
    "StampSettings",
    "draw_neighbours",
    "mean_neighbour_count",
    "measure_stamps",
    "neighbour_pool",
    "render_stamps",
    "stamp_offset",
]

#: Neighbours are placed over the stamp plus this margin on every side [pixels].
NEIGHBOUR_MARGIN_PIX = 16
#: Galaxies in the default neighbour pool.
DEFAULT_POOL_SIZE = 20_000
#: Photometry of stamps: the paper's recipe, no background mesh (stamps are background-free and
#: smaller than a mesh box), no detection S/N cut (the central object is matched by position).
#: With no cut, ``snr_mask_neighbours`` (on for tiles since issue 18) would change only the
#: reported ``kron_detection_snr``, never a flux or a row: it stays off, so that training sets
#: simulated since v0.1 from the same seeds stay the same, value for value.
STAMP_PHOTOMETRY = PhotometryConfig(
    subtract_background=False, min_detection_snr=0.0, snr_mask_neighbours=False
)

_PURPOSE_OFFSET, _PURPOSE_NEIGHBOURS, _PURPOSE_NOISE, _PURPOSE_POOL = 0, 1, 2, 3
# galaxy ids are int64, so this key never collides with a galaxy's streams
_POOL_KEY = 2**63
NeighbourSource = Literal["pool", "per_galaxy"]


@dataclass(frozen=True)
class NeighbourDraw:
    """The random layout of one stamp's neighbours (from the galaxy's own stream).

    Attributes
    ----------
    x, y
        Neighbour centres in stamp pixel coordinates (0-based), shape (count,).
    pool_rows
        Rows of the neighbour pool (``"pool"`` source), shape (count,).
    catalog_seed
        Seed of the neighbours' own catalogue (``"per_galaxy"`` source).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    pool_rows: NDArray[np.int64]
    catalog_seed: int

    @property
    def count(self) -> int:
        """Number of neighbours."""
        return int(self.x.size)


def _stream(seed: int, galaxy_id: int, purpose: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, galaxy_id, purpose, *extra]))


def stamp_offset(galaxy_id: int, *, seed: int) -> NDArray[np.float64]:
    """Sub-pixel offset (dx, dy) in [-0.5, 0.5) of a galaxy from its stamp's centre."""
    return _stream(seed, int(galaxy_id), _PURPOSE_OFFSET).uniform(-0.5, 0.5, 2)


def mean_neighbour_count(
    *, instrument: Instrument, size: int, population_config: PopulationConfig | None = None
) -> float:
    """Expected number of neighbours: surface density x (size + 2 margin)^2 pixels' area."""
    config = population_config if population_config is not None else PopulationConfig()
    side_deg = (size + 2 * NEIGHBOUR_MARGIN_PIX) * instrument.config.pixel_scale_arcsec / 3600.0
    return surface_density(config) * side_deg**2


def draw_neighbours(
    galaxy_id: int, *, seed: int, size: int, mean_count: float, pool_size: int
) -> NeighbourDraw:
    """Number, positions and pool rows of a stamp's neighbours (cheap: no rendering).

    Parameters
    ----------
    galaxy_id
        The central galaxy (its id keys the random stream).
    seed
        Master seed of the training set.
    size
        Stamp side [pixels].
    mean_count
        Poisson mean of the number of neighbours (:func:`mean_neighbour_count`).
    pool_size
        Rows of the neighbour pool (positions and counts do not depend on it).

    Returns
    -------
    NeighbourDraw
        Positions uniform over the stamp plus :data:`NEIGHBOUR_MARGIN_PIX` on every side.
    """
    rng = _stream(seed, int(galaxy_id), _PURPOSE_NEIGHBOURS)
    count = int(rng.poisson(mean_count))
    low, high = -0.5 - NEIGHBOUR_MARGIN_PIX, size - 0.5 + NEIGHBOUR_MARGIN_PIX
    x = rng.uniform(low, high, count)
    y = rng.uniform(low, high, count)
    catalog_seed = int(rng.integers(2**63))
    pool_rows = rng.integers(0, max(pool_size, 1), count)
    return NeighbourDraw(x=x, y=y, pool_rows=pool_rows, catalog_seed=catalog_seed)


def neighbour_pool(
    seed: int,
    *,
    instrument: Instrument,
    population_config: PopulationConfig | None = None,
    size: int = DEFAULT_POOL_SIZE,
) -> pa.Table:
    """The galaxies neighbours are drawn from: a truth catalogue fixed by ``seed`` and ``size``.

    Cached per process (the last four pools): the default size takes a few seconds.
    """
    config = population_config if population_config is not None else PopulationConfig()
    return _cached_pool(int(seed), instrument, config, int(size))


@lru_cache(maxsize=4)
def _cached_pool(
    seed: int, instrument: Instrument, config: PopulationConfig, size: int
) -> pa.Table:
    pool_seed = np.random.SeedSequence([seed, _POOL_KEY, _PURPOSE_POOL]).generate_state(2)
    return simulate_catalog(
        size,
        seed=int(pool_seed[0]) << 32 | int(pool_seed[1]),
        instrument=instrument,
        population_config=config,
    )


def _galaxy_arrays(
    table: pa.Table, bands: tuple[str, ...], rows: NDArray | None = None
) -> tuple[GalaxyMorphology, NDArray, NDArray]:
    bulge, disk = component_fluxes(table, bands, rows)
    return GalaxyMorphology.from_table(table, rows), bulge, disk


@dataclass(frozen=True)
class StampSettings:
    """How training stamps are drawn and measured (the defaults make the shipped sets).

    Attributes
    ----------
    size
        Stamp side [pixels], at least 8.
    neighbours
        Add neighbours (off: an isolated galaxy).
    neighbour_source
        ``"pool"`` (default, fast) or ``"per_galaxy"`` (see the module docstring).
    noise
        Add detector noise (off: the noiseless signal, with the expected variance).
    render
        Drawing options (e.g. the paper's no-PSF, no-gradient setup).
    measure
        Measure the central object with the project's photometry (off: the measured columns
        are left out).
    max_match_distance
        Largest distance [pixels] between the galaxy's true centre and the detection matched to
        it.
    """

    size: int = 64
    neighbours: bool = True
    neighbour_source: NeighbourSource = "pool"
    noise: bool = True
    render: RenderSettings = RenderSettings()
    measure: bool = True
    max_match_distance: float = 3.0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}")
        if self.neighbour_source not in ("pool", "per_galaxy"):
            raise ValueError(
                f"neighbour_source must be 'pool' or 'per_galaxy', not {self.neighbour_source}"
            )


def render_stamps(
    truth: pa.Table,
    *,
    instrument: Instrument,
    seed: int,
    settings: StampSettings | None = None,
    population_config: PopulationConfig | None = None,
    pool: pa.Table | None = None,
    index_offset: int = 0,
    **options: Any,
) -> tuple[NDArray[np.float32], pa.Table]:
    """Render one stamp per truth row and measure its central object.

    Parameters
    ----------
    truth
        Galaxies to centre: a :func:`~csst_photoz.sim.simulate_catalog` table (or a slice or
        filter of one); needs ``galaxy_id``, the morphology and ``flux_bulge_<b>``,
        ``flux_disk_<b>`` columns.
    instrument
        The camera (bands, PSFs, pixel scale, noise figures).
    seed
        Master seed of the training set.
    settings
        Size, neighbours, noise, drawing and measurement options (default
        :class:`StampSettings`).
    population_config
        The population neighbours come from (its surface density sets their number).
    pool
        Neighbour pool for the ``"pool"`` source (default: :func:`neighbour_pool` of ``seed``).
    index_offset
        ``stamp_index`` of the first row (for batches of a larger set).
    **options
        Fields of :class:`StampSettings` (``size=``, ``neighbours=``, ``noise=``, ...) that
        replace those of ``settings``.

    Returns
    -------
    stamps : numpy.ndarray
        float32 (n, n_bands, size, size), background-subtracted electrons.
    table : pyarrow.Table
        The truth rows plus ``stamp_index``, ``n_neighbours``, ``offset_x``, ``offset_y``
        [pixels] and, if ``settings.measure``, the :func:`measure_stamps` columns; row k
        describes stamp k.

    Raises
    ------
    ValueError
        On a bad size, neighbour source, or missing truth columns.
    TypeError
        On an option that is not a :class:`StampSettings` field.
    """
    settings = _with_options(settings or StampSettings(), options)
    bands = instrument.band_names
    _check_truth(truth, bands)
    config = population_config if population_config is not None else PopulationConfig()
    if settings.neighbours and settings.neighbour_source == "pool" and pool is None:
        pool = neighbour_pool(seed, instrument=instrument, population_config=config)
    scene = _Scene(
        instrument=instrument,
        settings=settings,
        population_config=config,
        pool=pool,
        seed=seed,
        psfs=tuple(instrument.psf(band) for band in bands),
        noise_figures=tuple(noise_figures(instrument)),
        mean_neighbours=mean_neighbour_count(
            instrument=instrument, size=settings.size, population_config=config
        ),
    )
    stamps, variances, offsets, n_neighbours = _draw_stamps(truth, scene)
    table = _with_layout_columns(truth, index_offset, n_neighbours, offsets)
    if settings.measure:
        measured = measure_stamps(
            stamps,
            variances,
            bands=bands,
            centres=settings.size / 2.0 - 0.5 + offsets,
            max_match_distance=settings.max_match_distance,
            pixel_scale_arcsec=instrument.config.pixel_scale_arcsec,
        )
        for name in measured.column_names:
            table = table.append_column(measured.schema.field(name), measured[name])
    return stamps, table.replace_schema_metadata(_stamp_metadata(truth, seed, settings))


def _with_options(settings: StampSettings, options: dict[str, Any]) -> StampSettings:
    """``settings`` with the fields named in ``options`` replaced."""
    unknown = sorted(set(options) - {f.name for f in fields(StampSettings)})
    if unknown:
        raise TypeError(
            f"render_stamps() got unknown option(s) {unknown}: not StampSettings fields"
        )
    return replace(settings, **options) if options else settings


def _check_truth(truth: pa.Table, bands: tuple[str, ...]) -> None:
    """Raise a ValueError naming the columns a truth table lacks for rendering stamps."""
    required = ["galaxy_id", *MORPHOLOGY_COLUMNS]
    required += [f"flux_{kind}_{b}" for kind in ("bulge", "disk") for b in bands]
    missing = [name for name in required if name not in truth.column_names]
    if missing:
        raise ValueError(f"truth table lacks column(s) {missing}")


@dataclass(frozen=True)
class _Scene:
    """Everything shared by the stamps of one call: camera, settings, neighbours, noise."""

    instrument: Instrument
    settings: StampSettings
    population_config: PopulationConfig
    pool: pa.Table | None
    seed: int
    psfs: tuple[Any, ...]
    noise_figures: tuple[dict[str, Any], ...]
    mean_neighbours: float

    def add(
        self,
        stamp: NDArray[np.float32],
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        morphology: GalaxyMorphology,
        flux_bulge: NDArray[np.float64],
        flux_disk: NDArray[np.float64],
    ) -> None:
        """Draw galaxies at (x, y) [pixels] into the (n_bands, size, size) ``stamp``, in place."""
        add_galaxies(
            stamp,
            x=x,
            y=y,
            morphology=morphology,
            flux_bulge=flux_bulge,
            flux_disk=flux_disk,
            psfs=self.psfs,
            pixel_scale_arcsec=self.instrument.config.pixel_scale_arcsec,
            settings=self.settings.render,
        )


def _draw_stamps(
    truth: pa.Table, scene: _Scene
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float64], NDArray[np.int32]]:
    """Stamps, their variances, the galaxies' offsets from the centre and neighbour counts."""
    bands, size = scene.instrument.band_names, scene.settings.size
    n = truth.num_rows
    ids = truth["galaxy_id"].to_numpy().astype(np.int64)
    morphology, flux_bulge, flux_disk = _galaxy_arrays(truth, bands)
    stamps = np.zeros((n, len(bands), size, size), dtype=np.float32)
    variances = np.zeros_like(stamps)
    offsets = np.zeros((n, 2))
    n_neighbours = np.zeros(n, dtype=np.int32)
    centre = size / 2.0 - 0.5
    noise = scene.settings.noise
    for i in range(n):
        galaxy_id = int(ids[i])
        offsets[i] = stamp_offset(galaxy_id, seed=scene.seed)
        scene.add(
            stamps[i],
            np.array([centre + offsets[i, 0]]),
            np.array([centre + offsets[i, 1]]),
            morphology.select(np.array([i])),
            flux_bulge[[i]],
            flux_disk[[i]],
        )
        if scene.settings.neighbours:
            n_neighbours[i] = _add_neighbours(stamps[i], galaxy_id, scene)
        for b, figures in enumerate(scene.noise_figures):
            rng = _stream(scene.seed, galaxy_id, _PURPOSE_NOISE, b) if noise else None
            stamps[i, b], variances[i, b] = add_noise(stamps[i, b], rng, **figures)
    return stamps, variances, offsets, n_neighbours


def _add_neighbours(stamp: NDArray[np.float32], galaxy_id: int, scene: _Scene) -> int:
    """Draw the neighbours of galaxy ``galaxy_id`` into its stamp; returns how many."""
    pool = scene.pool
    draw = draw_neighbours(
        galaxy_id,
        seed=scene.seed,
        size=scene.settings.size,
        mean_count=scene.mean_neighbours,
        pool_size=pool.num_rows if pool is not None else 0,
    )
    if not draw.count:
        return 0
    if scene.settings.neighbour_source == "pool" and pool is not None:
        source, rows = pool, draw.pool_rows
    else:
        source = simulate_catalog(
            draw.count,
            seed=draw.catalog_seed,
            instrument=scene.instrument,
            population_config=scene.population_config,
        )
        rows = np.arange(draw.count)
    morphology, flux_bulge, flux_disk = _galaxy_arrays(source, scene.instrument.band_names, rows)
    scene.add(stamp, draw.x, draw.y, morphology, flux_bulge, flux_disk)
    return draw.count


def _with_layout_columns(
    truth: pa.Table, index_offset: int, n_neighbours: NDArray, offsets: NDArray
) -> pa.Table:
    """The truth rows plus ``stamp_index``, ``n_neighbours``, ``offset_x`` and ``offset_y``."""
    columns: dict[str, tuple[pa.Array, str, str]] = {
        "stamp_index": (
            pa.array(index_offset + np.arange(truth.num_rows, dtype=np.int64)),
            "",
            "row of the stamp in the stamp array",
        ),
        "n_neighbours": (
            pa.array(n_neighbours),
            "",
            f"neighbours drawn over the stamp + {NEIGHBOUR_MARGIN_PIX} px margin",
        ),
        "offset_x": (pa.array(offsets[:, 0]), "pixel", "galaxy x minus the stamp centre"),
        "offset_y": (pa.array(offsets[:, 1]), "pixel", "galaxy y minus the stamp centre"),
    }
    table = truth
    for name, (values, unit, description) in columns.items():
        table = table.append_column(described_field(name, values.type, unit, description), values)
    return table


def _stamp_metadata(truth: pa.Table, seed: int, settings: StampSettings) -> dict[bytes, bytes]:
    """The truth table's schema metadata plus the stamp settings (``csst_photoz.*`` keys)."""
    metadata = dict(truth.schema.metadata or {})
    metadata.update(
        {
            b"csst_photoz.kind": b"training_stamps",
            b"csst_photoz.stamp_seed": str(seed).encode(),
            b"csst_photoz.stamp_size": str(settings.size).encode(),
            b"csst_photoz.neighbours": str(settings.neighbours).encode(),
            b"csst_photoz.neighbour_source": settings.neighbour_source.encode(),
            b"csst_photoz.neighbour_margin_pix": str(NEIGHBOUR_MARGIN_PIX).encode(),
            b"csst_photoz.noise": str(settings.noise).encode(),
            b"csst_photoz.paper_setup": str(settings.render.paper_setup).encode(),
        }
    )
    return metadata


def measure_stamps(
    stamps: NDArray[np.floating],
    variances: NDArray[np.floating],
    *,
    bands: tuple[str, ...] | list[str],
    centres: NDArray[np.floating] | None = None,
    max_match_distance: float = 3.0,
    pixel_scale_arcsec: float = 0.075,
    photometry: PhotometryConfig = STAMP_PHOTOMETRY,
) -> pa.Table:
    """The paper's photometry of each stamp's central object (1 x Kron on g+r+i+z).

    Measured with the project's own photometry
    (:func:`csst_photoz.photometry.measure_sources`), the code that measures survey tiles, so
    that training features and survey features come from one implementation.

    Parameters
    ----------
    stamps
        (n, n_bands, y, x) background-subtracted electrons.
    variances
        Per-pixel variances of the same shape (e.g. :func:`render_stamps`' noise model), or a
        per-band background variance of shape (n_bands,), to which the source's Poisson term
        ``max(stamp, 0)`` is added.
    bands
        Band names of axis 1.
    centres
        (n, 2) true (x, y) of each central galaxy [pixels, 0-based]; default the stamp centre.
    max_match_distance
        Largest distance [pixels] between the centre and the matched detection.
    pixel_scale_arcsec
        Pixel size (for the circular apertures of ``photometry``).
    photometry
        Photometry settings; the default :data:`STAMP_PHOTOMETRY` is the paper's recipe without
        background subtraction (stamps are background-free and too small for a mesh) and
        without the detection S/N cut (the central object is matched by position).

    Returns
    -------
    pyarrow.Table
        One row per stamp: ``kron_flux_<b>``, ``kron_flux_err_<b>`` [e-], ``kron_x``,
        ``kron_y``, ``kron_a``, ``kron_b`` [pixels], ``kron_theta`` [rad], ``kron_radius`` (in
        units of a, b), ``kron_detection_snr``, ``kron_flags``
        (:class:`~csst_photoz.photometry.SourceFlag`), ``detected``. Undetected objects keep
        NaN (flags 0, ``detected`` False).
    """
    stamps = np.asarray(stamps)
    bands = tuple(bands)
    if stamps.ndim != 4 or stamps.shape[1] != len(bands):
        raise ValueError(f"stamps {stamps.shape} must be (n, n_bands={len(bands)}, y, x)")
    variances = np.asarray(variances)
    per_band = variances.shape == (len(bands),)
    if not per_band and variances.shape != stamps.shape:
        raise ValueError(
            f"variances {variances.shape} must be {stamps.shape} or per band ({len(bands)},)"
        )
    n, _, ny, nx = stamps.shape
    if centres is None:
        centres = np.tile([nx / 2.0 - 0.5, ny / 2.0 - 0.5], (n, 1))
    centres = np.asarray(centres, dtype=np.float64)
    if centres.shape != (n, 2):
        raise ValueError(f"centres {centres.shape} must be (n={n}, 2)")

    float_columns = [f"kron_{kind}_{b}" for b in bands for kind in ("flux", "flux_err")]
    shape_columns = ["kron_x", "kron_y", "kron_a", "kron_b", "kron_theta", "kron_radius"]
    values: dict[str, NDArray] = {
        name: np.full(n, np.nan) for name in [*float_columns, *shape_columns, "kron_detection_snr"]
    }
    flags = np.zeros(n, dtype=np.int32)
    detected = np.zeros(n, dtype=bool)
    source_names: dict[str, Any] = {
        f"kron_{q}": attrgetter(q) for q in ("x", "y", "a", "b", "theta", "detection_snr")
    }
    source_names["kron_radius"] = attrgetter("kron_radius")
    for k, b in enumerate(bands):
        source_names[f"kron_flux_{b}"] = lambda m, k=k: m.flux[k]
        source_names[f"kron_flux_err_{b}"] = lambda m, k=k: m.flux_err[k]
    for i in range(n):
        variance = (
            variances[:, None, None] + np.clip(stamps[i], 0.0, None) if per_band else variances[i]
        )
        objects = measure_sources(
            stamps[i], np.asarray(variance, dtype=np.float32), bands=bands,
            pixel_scale_arcsec=pixel_scale_arcsec, config=photometry,
        )  # fmt: skip
        distance = np.hypot(objects.x - centres[i, 0], objects.y - centres[i, 1])
        if distance.size == 0 or distance.min() > max_match_distance:
            continue
        row = int(np.argmin(distance))
        detected[i] = True
        flags[i] = objects.flags[row]
        for name, source in source_names.items():
            values[name][i] = source(objects)[row]

    descriptions = {
        "kron_x": ("pixel", "x of the matched detection (0-based)"),
        "kron_y": ("pixel", "y of the matched detection (0-based)"),
        "kron_a": ("pixel", "second-moment semi-major axis on the detection image"),
        "kron_b": ("pixel", "second-moment semi-minor axis on the detection image"),
        "kron_theta": ("rad", "position angle of the major axis, from +x towards +y"),
        "kron_radius": ("", "Kron radius in units of kron_a, kron_b"),
        "kron_detection_snr": ("", "aperture SNR on the detection (g+r+i+z) image"),
    }
    for b in bands:
        descriptions[f"kron_flux_{b}"] = ("electron", f"1 x Kron aperture flux ({b})")
        descriptions[f"kron_flux_err_{b}"] = ("electron", f"error of kron_flux_{b}")
    fields = [described_field(name, pa.float64(), *descriptions[name]) for name in values]
    arrays = [pa.array(values[name]) for name in values]
    fields += [
        described_field("kron_flags", pa.int32(), "", "csst_photoz.photometry.SourceFlag bits"),
        described_field("detected", pa.bool_(), "", "a detection lies within the match distance"),
    ]
    arrays += [pa.array(flags), pa.array(detected)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
