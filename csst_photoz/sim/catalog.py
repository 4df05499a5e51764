"""The truth catalogue: a mock population with its synthetic CSST photometry, as Arrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import __version__
from ..fields import described_field
from ..instrument import Instrument
from .population import BPZ_CLASSES, Population, PopulationConfig, sample_population
from .selection import kron_like_snr, select_snr
from .synthetic_photometry import SyntheticPhotometer
from .templates import type_weights

__all__ = ["TRUTH_COLUMNS", "simulate_catalog", "truth_schema"]

SIMULATOR_VERSION = "1"

#: Per-galaxy columns: name -> (Arrow type, unit, description). Per-band columns follow.
TRUTH_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "galaxy_id": (pa.int64(), "", "unique id within the catalogue (id_offset + row)"),
    "redshift": (pa.float64(), "", "true redshift"),
    "mag_ref": (pa.float64(), "mag(AB)", "true total AB magnitude in the reference band"),
    "bpz_class": (pa.string(), "", "Benitez (2000) prior class: E/S0, Sbc/Scd or Irr"),
    "spectral_type": (pa.float64(), "", "continuous type: 0 E, 1 Sbc, 2 Scd, 3 Im (CWW)"),
    "ebv": (pa.float64(), "mag", "stellar E(B-V), Calzetti et al. (2000) law"),
    "bulge_fraction": (pa.float64(), "", "bulge share of the reference-band flux (B/T)"),
    "bulge_type": (pa.float64(), "", "continuous type of the bulge SED"),
    "disk_type": (pa.float64(), "", "continuous type of the disk SED"),
    "bulge_sersic_n": (pa.float64(), "", "Sersic index of the bulge"),
    "disk_sersic_n": (pa.float64(), "", "Sersic index of the disk"),
    "bulge_hlr": (pa.float64(), "arcsec", "half-light radius of the bulge (major axis)"),
    "disk_hlr": (pa.float64(), "arcsec", "half-light radius of the disk (major axis)"),
    "bulge_q": (pa.float64(), "", "axis ratio b/a of the bulge"),
    "disk_q": (pa.float64(), "", "axis ratio b/a of the disk"),
    "position_angle": (pa.float64(), "deg", "position angle of both components"),
}
_BAND_COLUMNS: dict[str, tuple[str, str]] = {
    "flux_bulge_{b}": ("electron", "bulge flux in the band's summed image"),
    "flux_disk_{b}": ("electron", "disk flux in the band's summed image"),
    "flux_{b}": ("electron", "total flux in the band's summed image"),
    "mag_{b}": ("mag(AB)", "true total AB magnitude"),
    "snr_{b}": ("", "expected SNR in the 1 x Kron-like aperture (see sim.selection)"),
}


def truth_schema(band_names: tuple[str, ...]) -> pa.Schema:
    """Arrow schema of a truth catalogue for the given bands (units in field metadata)."""
    columns = [(name, *spec) for name, spec in TRUTH_COLUMNS.items()]
    for template, (unit, description) in _BAND_COLUMNS.items():
        columns += [
            (template.format(b=band), pa.float64(), unit, f"{description} ({band})")
            for band in band_names
        ]
    columns.append(("selected", pa.bool_(), "", "passes SNR > 10 in g or i (the paper's cut)"))
    return pa.schema([described_field(*column, nullable=False) for column in columns])


def _component_electrons(
    population: Population, instrument: Instrument, photometer: SyntheticPhotometer, ref: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bulge and disk electrons per band, scaled so the reference band matches mag_ref."""
    z, ebv = population.redshift, population.ebv
    template_counts = photometer.template_counts(z, ebv)
    max_type = photometer.templates.max_type
    bulge_w = type_weights(population.bulge_type, max_type)
    disk_w = type_weights(population.disk_type, max_type)
    bulge = np.einsum("nk,nkb->nb", bulge_w, template_counts)
    disk = np.einsum("nk,nkb->nb", disk_w, template_counts)
    disk += photometer.line_counts(z, ebv, disk_w, population.disk_star_forming)
    # relative counts are rates; each band's image sums its own number of exposures
    exposure = instrument.per_band(instrument.exposure_time)
    bulge *= exposure
    disk *= exposure
    ref_index = photometer.band_names.index(ref)
    total_ref = instrument.mag_to_electrons(population.mag_ref, ref)
    bt = population.bulge_fraction
    bulge *= (bt * total_ref / bulge[:, ref_index])[:, None]
    disk *= ((1.0 - bt) * total_ref / disk[:, ref_index])[:, None]
    return bulge, disk


def simulate_catalog(
    n: int,
    *,
    seed: int,
    instrument: Instrument | None = None,
    population_config: PopulationConfig | None = None,
    reference_band: str = "i",
    id_offset: int = 0,
) -> pa.Table:
    """Simulate a truth catalogue of ``n`` galaxies with CSST synthetic photometry.

    Parameters
    ----------
    n
        Number of galaxies.
    seed
        Master seed; the catalogue depends only on it, ``n`` and the configurations.
    instrument
        CSST camera model (default: the paper's).
    population_config
        Population parameters (default: COSMOS-like to i = 27.5, z = 4).
    reference_band
        Band in which ``mag_ref`` is the total magnitude (the BPZ prior's I band).
    id_offset
        First ``galaxy_id``.

    Returns
    -------
    pyarrow.Table
        Columns of :func:`truth_schema`; schema metadata records seed, versions and bands.

    """
    instrument = instrument if instrument is not None else Instrument.default()
    config = population_config if population_config is not None else PopulationConfig()
    if reference_band not in instrument.band_names:
        raise ValueError(f"reference band {reference_band!r} is not one of {instrument.band_names}")
    population = sample_population(n, np.random.default_rng(seed), config)
    photometer = SyntheticPhotometer.for_instrument(instrument, z_max=config.z_max)
    bulge, disk = _component_electrons(population, instrument, photometer, reference_band)
    total = bulge + disk

    bt = population.bulge_fraction
    circular_hlr = np.sqrt(
        bt * population.bulge_hlr_arcsec**2 * population.bulge_axis_ratio
        + (1.0 - bt) * population.disk_hlr_arcsec**2 * population.disk_axis_ratio
    )
    columns: dict[str, np.ndarray] = {
        "galaxy_id": id_offset + np.arange(n, dtype=np.int64),
        "redshift": population.redshift,
        "mag_ref": population.mag_ref,
        "bpz_class": np.asarray(BPZ_CLASSES, dtype=object)[population.bpz_class],
        "spectral_type": population.spectral_type,
        "ebv": population.ebv,
        "bulge_fraction": bt,
        "bulge_type": population.bulge_type,
        "disk_type": population.disk_type,
        "bulge_sersic_n": np.full(n, 4.0),
        "disk_sersic_n": np.full(n, 1.0),
        "bulge_hlr": population.bulge_hlr_arcsec,
        "disk_hlr": population.disk_hlr_arcsec,
        "bulge_q": population.bulge_axis_ratio,
        "disk_q": population.disk_axis_ratio,
        "position_angle": population.position_angle_deg,
    }
    snr = {}
    for b, band in enumerate(instrument.band_names):
        columns[f"flux_bulge_{band}"] = bulge[:, b]
        columns[f"flux_disk_{band}"] = disk[:, b]
        columns[f"flux_{band}"] = total[:, b]
        columns[f"mag_{band}"] = instrument.electrons_to_mag(total[:, b], band)
        snr[band] = kron_like_snr(
            total[:, b],
            galaxy_hlr_arcsec=circular_hlr,
            psf_hlr_arcsec=instrument.psf_ee_radius(band, 0.5),
            pixel_scale_arcsec=instrument.config.pixel_scale_arcsec,
            background_noise_e=instrument.background_noise(band),
        )
        columns[f"snr_{band}"] = snr[band]
    columns["selected"] = select_snr(snr)

    schema = truth_schema(instrument.band_names).with_metadata(
        {
            "csst_photoz.kind": "truth_catalog",
            "csst_photoz.version": __version__,
            "csst_photoz.simulator_version": SIMULATOR_VERSION,
            "csst_photoz.seed": str(seed),
            "csst_photoz.bands": ",".join(instrument.band_names),
            "csst_photoz.reference_band": reference_band,
            "csst_photoz.population_config": config.model_dump_json(),
            "csst_photoz.instrument_config": instrument.config.model_dump_json(),
        }
    )
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)
