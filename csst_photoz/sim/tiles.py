"""Simulated CSST sky tiles with their truth tables.

Galaxies are placed at the population's density, rendered in every band with the band's PSF,
and given detector noise and optional defects.

Every random draw comes from a seed derived from (master seed, tile id, purpose[, band]), so a
tile is the same whichever worker renders it and in whatever order its bands are processed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import galsim
import numpy as np
import pyarrow as pa
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..instrument import Instrument
from ..tile import MaskBit, Tile
from .catalog import SIMULATOR_VERSION, simulate_catalog
from .detector import (
    add_cosmic_rays,
    add_hot_pixels,
    add_noise,
    apply_saturation,
    noise_figures,
)
from .population import PopulationConfig, surface_density
from .render import (
    GalaxyMorphology,
    RenderSettings,
    add_galaxies,
    component_fluxes,
    draw_clipped,
)

__all__ = [
    "DetectorEffects",
    "SimulationConfig",
    "TileSpec",
    "band_planes",
    "simulate_tile",
    "tile_attributes",
    "tile_grid",
    "tile_truth",
    "tile_wcs_header",
]

#: Default field centre: the COSMOS field.
DEFAULT_FIELD_CENTRE_DEG = (150.1, 2.2)
_PURPOSE_TRUTH, _PURPOSE_POSITIONS, _PURPOSE_NOISE, _PURPOSE_DEFECTS = 0, 1, 2, 3


class DetectorEffects(BaseModel):
    """Optional detector defects (all off by default) and the noise switch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    noise: bool = Field(True, description="add sky, dark and read noise")
    cosmic_rays_per_mpix: float = Field(
        0.0, ge=0, description="cosmic-ray hits per exposure per megapixel"
    )
    hot_pixel_fraction: float = Field(0.0, ge=0, le=0.01)
    bright_stars: int = Field(0, ge=0, description="bright (14-17 mag) stars per tile")
    full_well_e: float = Field(9.0e4, gt=0, description="full well per exposure [e-]")


class SimulationConfig(BaseModel):
    """The ``[simulation]`` section: how tiles are drawn and which detector effects they get.

    One frozen object for the settings of :class:`~csst_photoz.sim.render.RenderSettings` and
    `DetectorEffects` (the defaults are theirs); ``csst-photoz simulate tiles`` reads it from
    the project file, and its ``--paper-setup``, ``--no-noise``, ``--cosmic-rays``,
    ``--hot-pixels`` and ``--bright-stars`` flags override it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    paper_setup: bool = Field(
        False, description="Zhou et al. 2022: one morphology in all bands, no PSF"
    )
    bulge_truncation: float = Field(
        5.0, gt=0, description="Sersic bulge truncation radius [half-light radii]"
    )
    max_stamp_pixels: int = Field(384, gt=0, description="largest stamp side of one galaxy")
    noise: bool = Field(True, description="add sky, dark and read noise")
    cosmic_rays_per_mpix: float = Field(
        0.0, ge=0, description="cosmic-ray hits per exposure per megapixel"
    )
    hot_pixel_fraction: float = Field(0.0, ge=0, le=0.01, description="fraction of hot pixels")
    bright_stars: int = Field(0, ge=0, description="bright (14-17 mag) stars per tile")
    full_well_e: float = Field(9.0e4, gt=0, description="full well per exposure [e-]")

    def render_settings(self) -> RenderSettings:
        """The drawing settings (GalSim's default accuracy parameters)."""
        return RenderSettings(
            paper_setup=self.paper_setup,
            bulge_truncation=self.bulge_truncation,
            max_stamp_pixels=self.max_stamp_pixels,
        )

    def detector_effects(self) -> DetectorEffects:
        """The noise switch and detector defects."""
        return DetectorEffects.model_validate(
            self.model_dump(include=set(DetectorEffects.model_fields))
        )


@dataclass(frozen=True)
class TileSpec:
    """What to simulate: a tile id, its size, where it is on the sky, and the master seed."""

    tile_id: int
    nx: int = 2048
    ny: int = 2048
    seed: int = 0
    centre_deg: tuple[float, float] = field(default=DEFAULT_FIELD_CENTRE_DEG)

    def __post_init__(self) -> None:
        if self.tile_id < 0 or self.nx <= 0 or self.ny <= 0:
            raise ValueError(f"invalid tile spec: {self}")

    def seed_for(self, purpose: int, *extra: int) -> np.random.SeedSequence:
        """Seed of one random stream of this tile (purpose, optionally band)."""
        return np.random.SeedSequence([self.seed, self.tile_id, purpose, *extra])


def tile_grid(
    n_tiles: int,
    *,
    nx: int = 2048,
    ny: int = 2048,
    seed: int = 0,
    pixel_scale_arcsec: float = 0.075,
    columns: int = 8,
    centre_deg: tuple[float, float] = DEFAULT_FIELD_CENTRE_DEG,
) -> list[TileSpec]:
    """Specs of ``n_tiles`` adjacent tiles (ids 0..n-1) in rows of ``columns`` from a centre."""
    if n_tiles < 0:
        raise ValueError(f"n_tiles must be >= 0, got {n_tiles}")
    width_deg = nx * pixel_scale_arcsec / 3600.0
    height_deg = ny * pixel_scale_arcsec / 3600.0
    specs = []
    for tile_id in range(n_tiles):
        row, column = divmod(tile_id, columns)
        dec = centre_deg[1] + row * height_deg
        ra = centre_deg[0] + column * width_deg / np.cos(np.radians(dec))
        specs.append(TileSpec(tile_id, nx, ny, seed, (float(ra), float(dec))))
    return specs


def tile_wcs_header(spec: TileSpec, pixel_scale_arcsec: float) -> dict[str, object]:
    """A TAN WCS centred on the tile: north up, east left, 0-based pixel centre at the middle."""
    scale_deg = pixel_scale_arcsec / 3600.0
    return {
        "WCSAXES": 2,
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "CRVAL1": float(spec.centre_deg[0]),
        "CRVAL2": float(spec.centre_deg[1]),
        "CRPIX1": (spec.nx + 1) / 2.0,
        "CRPIX2": (spec.ny + 1) / 2.0,
        "CD1_1": -scale_deg,
        "CD1_2": 0.0,
        "CD2_1": 0.0,
        "CD2_2": scale_deg,
        "RADESYS": "ICRS",
    }


def tile_truth(
    spec: TileSpec,
    *,
    instrument: Instrument,
    population_config: PopulationConfig | None = None,
) -> pa.Table:
    """The galaxies of a tile: the truth catalogue plus tile id, pixel and sky positions.

    The number of galaxies is Poisson-distributed around the population's surface density
    times the tile's area. Galaxy ids are ``tile_id * 2**32 + row``.
    """
    config = population_config if population_config is not None else PopulationConfig()
    scale = instrument.config.pixel_scale_arcsec
    area_deg2 = spec.nx * spec.ny * (scale / 3600.0) ** 2
    count_rng = np.random.default_rng(spec.seed_for(_PURPOSE_TRUTH))
    n = int(count_rng.poisson(surface_density(config) * area_deg2))
    truth = simulate_catalog(
        n,
        seed=int(count_rng.integers(2**63)),
        instrument=instrument,
        population_config=config,
        id_offset=spec.tile_id * 2**32,
    )
    position_rng = np.random.default_rng(spec.seed_for(_PURPOSE_POSITIONS))
    x = position_rng.uniform(-0.5, spec.nx - 0.5, size=n)
    y = position_rng.uniform(-0.5, spec.ny - 0.5, size=n)
    wcs = WCS(fits.Header(tile_wcs_header(spec, scale)))
    ra, dec = wcs.all_pix2world(x, y, 0)
    columns = {
        "tile_id": pa.array(np.full(n, spec.tile_id, dtype=np.int64)),
        "x": pa.array(x),
        "y": pa.array(y),
        "ra": pa.array(ra),
        "dec": pa.array(dec),
    }
    units = {"tile_id": "", "x": "pixel", "y": "pixel", "ra": "deg", "dec": "deg"}
    for position, (name, values) in enumerate(columns.items(), start=1):
        described = pa.field(
            name,
            values.type,
            nullable=False,
            metadata={"unit": units[name], "description": f"{name} (0-based pixel centres)"},
        )
        truth = truth.add_column(position, described, values)
    return truth


def _truth_arrays(truth: pa.Table, bands: tuple[str, ...]) -> dict[str, NDArray]:
    bulge, disk = component_fluxes(truth, bands)
    return {
        "x": truth["x"].to_numpy(),
        "y": truth["y"].to_numpy(),
        "flux_bulge": bulge,
        "flux_disk": disk,
        "morphology": GalaxyMorphology.from_table(truth),
    }


def _bright_stars(spec: TileSpec, effects: DetectorEffects) -> dict[str, NDArray]:
    rng = np.random.default_rng(spec.seed_for(_PURPOSE_DEFECTS, 99))
    n = effects.bright_stars
    return {
        "x": rng.uniform(-0.5, spec.nx - 0.5, size=n),
        "y": rng.uniform(-0.5, spec.ny - 0.5, size=n),
        "mag": rng.uniform(14.0, 17.0, size=n),
    }


def band_planes(
    spec: TileSpec,
    truth: pa.Table,
    *,
    instrument: Instrument,
    render: RenderSettings = RenderSettings(),
    effects: DetectorEffects = DetectorEffects(),
    band_indices: Sequence[int] | None = None,
) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.float32], NDArray[np.uint16]]]:
    """Render, band by band, the image, variance and mask of a tile.

    One band is in memory at a time (a full 9216 x 9232 CSST detector needs ~1.5 GB per band),
    so callers can stream bands to a tile store, or render bands in separate tasks
    (``band_indices``): each band's result depends only on the spec, never on the others.

    Yields
    ------
    band_index, image, variance, mask
        float32, float32 and uint16 arrays of shape (ny, nx).
    """
    bands = instrument.band_names
    galaxies = _truth_arrays(truth, bands)
    stars = _bright_stars(spec, effects)
    scale = instrument.config.pixel_scale_arcsec
    for b in range(len(bands)) if band_indices is None else band_indices:
        band = bands[b]
        psf = instrument.psf(band)
        signal = np.zeros((1, spec.ny, spec.nx), dtype=np.float32)
        add_galaxies(
            signal,
            x=galaxies["x"],
            y=galaxies["y"],
            morphology=galaxies["morphology"],
            flux_bulge=galaxies["flux_bulge"][:, b : b + 1],
            flux_disk=galaxies["flux_disk"][:, b : b + 1],
            psfs=[psf],
            pixel_scale_arcsec=scale,
            settings=render,
        )
        _add_stars(signal[0], stars, instrument.mag_to_electrons(stars["mag"], band), psf, scale)
        figures = noise_figures(instrument)[b]
        n_exp, sky_dark = figures["n_exposures"], figures["sky_dark_e"]
        noise_rng = (
            np.random.default_rng(spec.seed_for(_PURPOSE_NOISE, b)) if effects.noise else None
        )
        image, variance = add_noise(signal[0], noise_rng, **figures)
        del signal
        mask = np.zeros(image.shape, dtype=np.uint16)
        defect_rng = np.random.default_rng(spec.seed_for(_PURPOSE_DEFECTS, b))
        if effects.cosmic_rays_per_mpix > 0:
            hits = defect_rng.poisson(effects.cosmic_rays_per_mpix * n_exp * image.size / 1e6)
            add_cosmic_rays(image, mask, defect_rng, hits=int(hits))
        if effects.hot_pixel_fraction > 0:
            add_hot_pixels(image, mask, defect_rng, fraction=effects.hot_pixel_fraction)
        apply_saturation(image, mask, full_well_e=effects.full_well_e * n_exp - sky_dark)
        yield b, image, variance, mask


def _add_stars(
    image: NDArray[np.float32],
    stars: dict[str, NDArray],
    electrons: NDArray,
    psf: galsim.GSObject,
    scale: float,
) -> None:
    canvas = galsim.Image(image, xmin=1, ymin=1, scale=scale)
    for x, y, flux in zip(stars["x"], stars["y"], electrons, strict=True):
        profile = psf.withFlux(float(flux))
        draw_clipped(canvas, profile, x=float(x), y=float(y), max_stamp_pixels=512)


def simulate_tile(
    spec: TileSpec,
    *,
    instrument: Instrument | None = None,
    population_config: PopulationConfig | None = None,
    render: RenderSettings = RenderSettings(),
    effects: DetectorEffects = DetectorEffects(),
) -> tuple[Tile, pa.Table]:
    """Simulate one tile in memory: the seven-band :class:`~csst_photoz.tile.Tile` and its truth.

    Parameters
    ----------
    spec
        Tile id, size, position and master seed.
    instrument
        The camera (default: the paper's CSST).
    population_config
        The galaxy population.
    render
        Drawing options (e.g. the paper's no-PSF, no-gradient setup).
    effects
        Noise switch and optional defects.

    Returns
    -------
    tile, truth
        The tile and a table of its galaxies (truth catalogue + ``tile_id``, ``x``, ``y``,
        ``ra``, ``dec``).
    """
    instrument = instrument if instrument is not None else Instrument.default()
    truth = tile_truth(spec, instrument=instrument, population_config=population_config)
    bands = instrument.band_names
    shape = (len(bands), spec.ny, spec.nx)
    image = np.empty(shape, dtype=np.float32)
    variance = np.empty(shape, dtype=np.float32)
    mask = np.empty(shape, dtype=np.uint16)
    for b, band_image, band_variance, band_mask in band_planes(
        spec, truth, instrument=instrument, render=render, effects=effects
    ):
        image[b], variance[b], mask[b] = band_image, band_variance, band_mask
    attributes = tile_attributes(
        spec, instrument=instrument, n_galaxies=truth.num_rows, render=render, effects=effects
    )
    return Tile(image=image, variance=variance, mask=mask, **attributes), truth


def tile_attributes(
    spec: TileSpec,
    *,
    instrument: Instrument,
    n_galaxies: int,
    render: RenderSettings,
    effects: DetectorEffects,
) -> dict[str, Any]:
    """Everything of a simulated :class:`Tile` except its pixel planes."""
    return {
        "tile_id": spec.tile_id,
        "bands": instrument.band_names,
        "zero_point_rate": tuple(instrument.per_band(instrument.zero_point_rate)),
        "exposure_time": tuple(instrument.per_band(instrument.exposure_time)),
        "pixel_scale_arcsec": instrument.config.pixel_scale_arcsec,
        "wcs_header": tile_wcs_header(spec, instrument.config.pixel_scale_arcsec),
        "meta": {
            "simulator": "csst_photoz.sim",
            "simulator_version": SIMULATOR_VERSION,
            "package_version": __version__,
            "seed": spec.seed,
            "n_galaxies": n_galaxies,
            "paper_setup": render.paper_setup,
            "effects": effects.model_dump(),
            "mask_bits": {bit.name: int(bit) for bit in MaskBit},
        },
    }
