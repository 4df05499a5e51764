"""Training stamps for the CNN: seven-band cut-outs centred on a galaxy, with neighbours.

Each stamp shows one galaxy of a truth catalogue at the stamp centre (plus a sub-pixel offset)
with neighbours drawn from the same population at the survey's surface density, in electrons
with the instrument's noise, so stamps look like cut-outs of real tiles (the paper masked
neighbours in its COSMOS stamps; here they are part of the scene). The paper-style photometry
(sep, 1 x Kron aperture on the g+r+i+z stack) of the central object is measured on every stamp.

Every random stream of stamp ``i`` derives from (seed, galaxy_id, purpose), and neighbours come
from a pool fixed by the seed alone, so a stamp is identical whichever batch or worker renders
it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ..instrument import Instrument
from ..photometry import central_object, measure_kron_photometry
from .catalog import simulate_catalog
from .detector import add_noise
from .population import PopulationConfig, surface_density
from .render import GalaxyMorphology, RenderSettings, add_galaxies

__all__ = ["NEIGHBOUR_MARGIN_PIX", "neighbour_pool", "render_training_stamps"]

#: Neighbours are placed over the stamp plus this margin on every side.
NEIGHBOUR_MARGIN_PIX = 16
_POOL_SIZE = 20_000
_PURPOSE_OFFSET, _PURPOSE_NEIGHBOURS, _PURPOSE_NOISE = 0, 1, 2
_MORPHOLOGY_COLUMNS = (
    "bulge_hlr",
    "disk_hlr",
    "bulge_q",
    "disk_q",
    "position_angle",
    "bulge_fraction",
)


def neighbour_pool(
    seed: int, *, instrument: Instrument, population_config: PopulationConfig | None = None
) -> pa.Table:
    """The galaxies neighbours are drawn from: fixed by ``seed`` (and the configurations)."""
    return simulate_catalog(
        _POOL_SIZE,
        seed=int(np.random.SeedSequence([seed, 2**31]).generate_state(1)[0]),
        instrument=instrument,
        population_config=population_config,
    )


def _fluxes(table: pa.Table, bands: tuple[str, ...], rows: NDArray) -> tuple[NDArray, NDArray]:
    bulge = np.column_stack([table[f"flux_bulge_{b}"].to_numpy()[rows] for b in bands])
    disk = np.column_stack([table[f"flux_disk_{b}"].to_numpy()[rows] for b in bands])
    return bulge, disk


def _morphology(table: pa.Table, rows: NDArray) -> GalaxyMorphology:
    return GalaxyMorphology(*(table[name].to_numpy()[rows] for name in _MORPHOLOGY_COLUMNS))


def render_training_stamps(
    truth: pa.Table,
    *,
    instrument: Instrument,
    seed: int,
    size: int = 64,
    neighbours: bool = True,
    noise: bool = True,
    pool: pa.Table | None = None,
    population_config: PopulationConfig | None = None,
    render: RenderSettings = RenderSettings(),
) -> tuple[NDArray[np.float32], pa.Table]:
    """Render a stamp per truth row and measure its central object.

    Parameters
    ----------
    truth
        Galaxies to centre (a :func:`~csst_photoz.sim.simulate_catalog` table or a slice).
    instrument
        The camera.
    seed
        Master seed of the training set.
    size
        Stamp side [pixels].
    neighbours, noise
        Switch neighbours and noise off (tests, diagnostics).
    pool
        Neighbour pool (default: :func:`neighbour_pool` of ``seed``; pass it to reuse).
    population_config
        The population (its surface density sets the number of neighbours).
    render
        Drawing options.

    Returns
    -------
    stamps, table
        float32 (n, n_bands, size, size) electrons; and the truth rows plus ``offset_x``,
        ``offset_y``, ``n_neighbours`` and the measured ``kron_flux_<b>``,
        ``kron_flux_err_<b>``, ``kron_radius``, ``kron_flags``, ``detected`` (rows stay
        aligned with stamps; undetected galaxies keep NaN fluxes).
    """
    bands = instrument.band_names
    scale = instrument.config.pixel_scale_arcsec
    config = population_config if population_config is not None else PopulationConfig()
    if neighbours and pool is None:
        pool = neighbour_pool(seed, instrument=instrument, population_config=config)
    side = size + 2 * NEIGHBOUR_MARGIN_PIX
    mean_neighbours = surface_density(config) * (side * scale / 3600.0) ** 2
    psfs = [instrument.psf(band) for band in bands]
    sky_dark = [
        (instrument.config.bands[b].sky_e_per_s + instrument.config.dark_current_e_per_s)
        * instrument.exposure_time(b)
        for b in bands
    ]
    n_exposures = [instrument.config.bands[b].n_exposures for b in bands]
    n = truth.num_rows
    ids = truth["galaxy_id"].to_numpy()
    stamps = np.zeros((n, len(bands), size, size), dtype=np.float32)
    variances = np.zeros_like(stamps)
    offsets = np.zeros((n, 2))
    n_neighbours = np.zeros(n, dtype=np.int32)
    centre = size / 2.0 - 0.5
    central_bulge, central_disk = _fluxes(truth, bands, np.arange(n))
    for i in range(n):
        streams = [np.random.SeedSequence([seed, int(ids[i]), p]) for p in range(2)]
        offsets[i] = np.random.default_rng(streams[_PURPOSE_OFFSET]).uniform(-0.5, 0.5, 2)
        x, y = np.array([centre + offsets[i, 0]]), np.array([centre + offsets[i, 1]])
        add_galaxies(
            stamps[i],
            x=x,
            y=y,
            morphology=_morphology(truth, np.array([i])),
            flux_bulge=central_bulge[[i]],
            flux_disk=central_disk[[i]],
            psfs=psfs,
            pixel_scale_arcsec=scale,
            settings=render,
        )
        if neighbours and pool is not None:
            rng = np.random.default_rng(streams[_PURPOSE_NEIGHBOURS])
            count = int(rng.poisson(mean_neighbours))
            rows = rng.integers(0, pool.num_rows, size=count)
            low, high = -0.5 - NEIGHBOUR_MARGIN_PIX, size - 0.5 + NEIGHBOUR_MARGIN_PIX
            bulge, disk = _fluxes(pool, bands, rows)
            add_galaxies(
                stamps[i],
                x=rng.uniform(low, high, count),
                y=rng.uniform(low, high, count),
                morphology=_morphology(pool, rows),
                flux_bulge=bulge,
                flux_disk=disk,
                psfs=psfs,
                pixel_scale_arcsec=scale,
                settings=render,
            )
            n_neighbours[i] = count
        for b in range(len(bands)):
            noise_rng = (
                np.random.default_rng(
                    np.random.SeedSequence([seed, int(ids[i]), _PURPOSE_NOISE, b])
                )
                if noise
                else None
            )
            stamps[i, b], variances[i, b] = add_noise(
                stamps[i, b],
                noise_rng,
                sky_dark_e=sky_dark[b],
                read_noise_e=instrument.config.read_noise_e,
                n_exposures=n_exposures[b],
            )
    measured = _measure_centres(stamps, variances, bands, centre + offsets)
    table = truth
    extra = {
        "offset_x": offsets[:, 0],
        "offset_y": offsets[:, 1],
        "n_neighbours": n_neighbours,
        **measured,
    }
    for name, values in extra.items():
        table = table.append_column(name, pa.array(values))
    return stamps, table


def _measure_centres(
    stamps: NDArray[np.float32],
    variances: NDArray[np.float32],
    bands: tuple[str, ...],
    centres: NDArray[np.float64],
) -> dict[str, NDArray]:
    n = stamps.shape[0]
    columns: dict[str, NDArray] = {
        f"kron_{kind}_{band}": np.full(n, np.nan) for band in bands for kind in ("flux", "flux_err")
    }
    columns["kron_radius"] = np.full(n, np.nan)
    columns["kron_flags"] = np.zeros(n, dtype=np.int32)
    columns["detected"] = np.zeros(n, dtype=bool)
    for i in range(n):
        objects = measure_kron_photometry(stamps[i], variances[i], bands=bands)
        row = central_object(objects, *centres[i], max_distance=3.0)
        if row < 0:
            continue
        columns["detected"][i] = True
        columns["kron_radius"][i] = objects["kron_radius"][row]
        columns["kron_flags"][i] = objects["flags"][row]
        for band in bands:
            columns[f"kron_flux_{band}"][i] = objects[f"flux_{band}"][row]
            columns[f"kron_flux_err_{band}"][i] = objects[f"flux_err_{band}"][row]
    return columns
