"""The photometry catalogue of a tile as an Arrow table (the catalog contract of DESIGN.md).

Per source: ``object_id`` (``tile_id * 2**32 + row``; rows come in the detection's
deterministic order, so ids are stable across reruns and devices), ``tile_id``, ``ra``, ``dec``
(from the tile's WCS), pixel position and aperture shape, ``detection_snr``, ``flags``, and per
band the Kron-aperture flux in electrons (``counts_<b>``, ``counts_err_<b>``) and in nJy
(``flux_<b>``, ``flux_err_<b>``), the AB magnitude and its error (NaN for non-positive fluxes),
and the circular-aperture fluxes (``flux_ap<r>_<b>`` [nJy], radius ``r`` in arcsec with ``p``
for the decimal point). Units and descriptions are field metadata; the schema metadata records
the photometry settings and the package version. ``flags`` holds the
:class:`~.SourceFlag` bits of the source (any band); ``flags_<b>`` the bits MASKED and
BAND_MISSING of band ``b`` alone, so that a band's clean photometry is selected by
``(flags_<b> & (MASKED | BAND_MISSING)) == 0``.

`flux_input_columns` maps a network's declared input (a flux unit and definition, see
:class:`~csst_photoz.io.checkpoint_file.FluxInput`) to the catalogue's columns: electrons in
the Kron aperture are ``counts_<b>``, nJy ``flux_<b>``, circles ``flux_ap<r>_<b>``.

This is the one place where per-source arrays leave the device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa

from .. import __version__
from ..constants import AB_ZERO_POINT_NJY
from ..fields import described_field as _field
from ..tile import Tile
from .backend import to_numpy
from .flags import SourceFlag
from .measure import PhotometryConfig, SourceMeasurements

__all__ = [
    "OBJECTS_PER_TILE",
    "STAMP_UNIT",
    "aperture_column",
    "circle_aperture",
    "flux_input_columns",
    "kron_aperture",
    "object_ids",
    "photometry_schema",
    "photometry_table",
]

#: Object ids are ``tile_id * OBJECTS_PER_TILE + row``.
OBJECTS_PER_TILE = 2**32
#: Unit of the stamps cut beside the catalogue (the tile's pixels).
STAMP_UNIT = "electron"
_MAG_PER_LN = 2.5 / np.log(10.0)

_SOURCE_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "object_id": (pa.int64(), "", "unique, stable source id: tile_id * 2**32 + row"),
    "tile_id": (pa.int64(), "", "tile the source was detected on"),
    "ra": (pa.float64(), "deg", "right ascension of the isophotal centroid (tile WCS)"),
    "dec": (pa.float64(), "deg", "declination of the isophotal centroid (tile WCS)"),
    "x": (pa.float64(), "pix", "column of the centroid, 0-based (pixel 0 spans -0.5..0.5)"),
    "y": (pa.float64(), "pix", "row of the centroid, 0-based"),
    "a": (pa.float64(), "pix", "second-moment semi-major axis on the detection image"),
    "b": (pa.float64(), "pix", "second-moment semi-minor axis"),
    "theta": (pa.float64(), "rad", "angle of the major axis from +x towards +y"),
    "kron_radius": (pa.float64(), "", "Kron radius in units of (a, b); 0 if undefined"),
    "aperture_a": (pa.float64(), "pix", "semi-major axis of the Kron aperture"),
    "aperture_b": (pa.float64(), "pix", "semi-minor axis of the Kron aperture"),
    "isophotal_area": (pa.int64(), "pix", "pixels in the source's segment"),
    "detection_snr": (pa.float64(), "", "Kron-aperture flux / error on the detection image"),
    "flags": (pa.int32(), "", "csst_photoz.photometry.SourceFlag bits"),
}


def aperture_column(radius_arcsec: float, band: str) -> str:
    """Column name of a circular-aperture flux, e.g. ``flux_ap0p50_g`` for 0.5" in g."""
    return f"flux_ap{radius_arcsec:.2f}".replace(".", "p") + f"_{band}"


def kron_aperture(kron_factor: float) -> str:
    """Name of the flux definition "``kron_factor`` x the Kron radius", e.g. ``"kron_1"``."""
    return f"kron_{kron_factor:g}"


def circle_aperture(radius_arcsec: float) -> str:
    """Name of the flux definition "circle of ``radius_arcsec``", e.g. ``"circle_0.5"``."""
    return f"circle_{radius_arcsec:g}"


def _provided(band: str, config: PhotometryConfig) -> dict[tuple[str, str], tuple[str, str]]:
    """(unit, aperture) -> (flux column, error column) of one band in the catalogue."""
    kron = kron_aperture(config.kron_factor)
    provided = {
        ("electron", kron): (f"counts_{band}", f"counts_err_{band}"),
        ("nJy", kron): (f"flux_{band}", f"flux_err_{band}"),
    }
    for radius in config.circular_radii_arcsec:
        flux = aperture_column(radius, band)
        provided["nJy", circle_aperture(radius)] = (flux, flux.replace("flux_", "flux_err_", 1))
    return provided


def flux_input_columns(
    band: str, *, unit: str, aperture: str, config: PhotometryConfig
) -> tuple[str, str]:
    """The catalogue columns holding one band's flux in ``unit`` and ``aperture``.

    Parameters
    ----------
    band
        Band name.
    unit
        ``"electron"`` or ``"nJy"``.
    aperture
        The flux definition: ``kron_aperture(k)`` or ``circle_aperture(r)``.
    config
        The photometry settings the catalogue is measured with (Kron factor, circle radii).

    Returns
    -------
    (str, str)
        The flux and flux-error column names.

    Raises
    ------
    ValueError
        If the catalogue has no such flux, listing what it has.
    """
    provided = _provided(band, config)
    try:
        return provided[unit, aperture]
    except KeyError:
        offered = ", ".join(f"{a} in {u}" for u, a in provided)
        raise ValueError(
            f"the photometry catalogue has no {band} flux in {unit!r} in aperture "
            f"{aperture!r} (it measures {offered})"
        ) from None


def object_ids(tile_id: int, n: int) -> np.ndarray:
    """The ``n`` object ids of a tile (int64)."""
    if n >= OBJECTS_PER_TILE:
        raise ValueError(f"tile {tile_id}: {n} sources exceed the id range of a tile")
    return np.int64(tile_id) * OBJECTS_PER_TILE + np.arange(n, dtype=np.int64)


def photometry_schema(bands: Sequence[str], radii_arcsec: Sequence[float]) -> pa.Schema:
    """Arrow schema of a tile's photometry catalogue (units in field metadata)."""
    return _schema(tuple(bands), tuple(float(r) for r in radii_arcsec))


@lru_cache(maxsize=16)
def _schema(bands: tuple[str, ...], radii_arcsec: tuple[float, ...]) -> pa.Schema:
    """`photometry_schema`, built once per (bands, radii): a few ms, a small tile's fixed cost."""
    fields = [_field(name, *spec) for name, spec in _SOURCE_COLUMNS.items()]
    for band in bands:
        fields += [
            _field(f"counts_{band}", pa.float64(), "electron", f"Kron-aperture flux ({band})"),
            _field(f"counts_err_{band}", pa.float64(), "electron", f"its 1-sigma error ({band})"),
            _field(f"flux_{band}", pa.float64(), "nJy", f"Kron-aperture flux density ({band})"),
            _field(f"flux_err_{band}", pa.float64(), "nJy", f"its 1-sigma error ({band})"),
            _field(f"mag_{band}", pa.float64(), "mag(AB)", f"Kron-aperture AB magnitude ({band})"),
            _field(f"mag_err_{band}", pa.float64(), "mag", f"its 1-sigma error ({band})"),
            _field(f"flags_{band}", pa.int32(), "",
                   f"SourceFlag bits MASKED, BAND_MISSING of the Kron aperture in {band} alone"),
        ]  # fmt: skip
        for radius in radii_arcsec:
            fields += [
                _field(aperture_column(radius, band), pa.float64(), "nJy",
                       f'flux density in a circle of radius {radius}" ({band})'),
                _field(aperture_column(radius, band).replace("flux_", "flux_err_", 1),
                       pa.float64(), "nJy", f'its 1-sigma error ({band})'),
            ]  # fmt: skip
    return pa.schema(fields)


def _magnitudes(flux_njy: np.ndarray, error_njy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positive = flux_njy > 0
    safe = np.where(positive, flux_njy, 1.0)
    mag = np.where(positive, -2.5 * np.log10(safe / AB_ZERO_POINT_NJY), np.nan)
    mag_err = np.where(positive, _MAG_PER_LN * error_njy / safe, np.nan)
    return mag, mag_err


def photometry_table(
    measurements: SourceMeasurements, tile: Tile, config: PhotometryConfig
) -> pa.Table:
    """The tile's photometry catalogue (host memory).

    Parameters
    ----------
    measurements
        The output of :func:`~.measure.measure_sources` on ``tile`` (NumPy or CuPy).
    tile
        The measured tile (ids, WCS, calibration).
    config
        The settings used (recorded in the schema metadata; gives the circular radii).

    Returns
    -------
    pyarrow.Table
        One row per source; an empty tile gives an empty table with the full schema.
    """
    bands = tile.bands
    radii = config.circular_radii_arcsec
    schema = photometry_schema(bands, radii)
    n = len(measurements)
    host = {name: to_numpy(getattr(measurements, name)) for name in (
        "x", "y", "a", "b", "theta", "kron_radius", "aperture_scale", "area",
        "detection_snr", "flux", "flux_err", "circular_flux", "circular_flux_err", "flags",
        "band_flags",
    )}  # fmt: skip
    ra, dec = (np.zeros(0), np.zeros(0)) if n == 0 else tile.wcs.pixel_to_world_values(
        host["x"], host["y"]
    )  # fmt: skip
    columns: dict[str, np.ndarray] = {
        "object_id": object_ids(tile.tile_id, n),
        "tile_id": np.full(n, tile.tile_id, dtype=np.int64),
        "ra": np.asarray(ra, dtype=np.float64) % 360.0,
        "dec": np.asarray(dec, dtype=np.float64),
        "x": host["x"], "y": host["y"], "a": host["a"], "b": host["b"], "theta": host["theta"],
        "kron_radius": host["kron_radius"],
        "aperture_a": host["aperture_scale"] * host["a"],
        "aperture_b": host["aperture_scale"] * host["b"],
        "isophotal_area": host["area"].astype(np.int64),
        "detection_snr": host["detection_snr"],
        "flags": host["flags"].astype(np.int32),
    }  # fmt: skip
    per_njy = tile.electrons_per_njy()
    for k, band in enumerate(bands):
        counts, counts_err = host["flux"][k], host["flux_err"][k]
        flux, flux_err = counts / per_njy[k], counts_err / per_njy[k]
        columns[f"counts_{band}"], columns[f"counts_err_{band}"] = counts, counts_err
        columns[f"flux_{band}"], columns[f"flux_err_{band}"] = flux, flux_err
        columns[f"mag_{band}"], columns[f"mag_err_{band}"] = _magnitudes(flux, flux_err)
        columns[f"flags_{band}"] = host["band_flags"][k].astype(np.int32)
        for j, radius in enumerate(radii):
            name = aperture_column(radius, band)
            columns[name] = host["circular_flux"][j, k] / per_njy[k]
            columns[name.replace("flux_", "flux_err_", 1)] = (
                host["circular_flux_err"][j, k] / per_njy[k]
            )
    metadata = {
        "csst_photoz.version": __version__,
        "csst_photoz.photometry": config.model_dump_json(),
        "csst_photoz.flags": json.dumps({flag.name: int(flag) for flag in SourceFlag}),
        "csst_photoz.tile_id": str(tile.tile_id),
    }
    arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(metadata))
