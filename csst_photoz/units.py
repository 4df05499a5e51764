"""Flux units of catalogue columns and the conversions between them (pure functions).

A network reads fluxes in one *working unit*: electrons (the simulator's ``kron_flux_<b>``) or
nJy. A catalogue column may hold

* ``"electron"``: electrons in the band's summed exposures;
* a spectral flux density: ``"nJy"`` or any unit astropy converts to it (``"uJy"``, ``"mJy"``,
  ``"Jy"``, ``"erg / (cm2 s Hz)"``, ...);
* ``"ABmag"``: AB magnitudes, with magnitude errors in the error column. The sentinels 99 and
  -99 and non-finite values (in the magnitude or its error) mean *missing*: the flux and its
  error become NaN.

Electrons and nJy convert through the band's zero point and exposure,
``electrons = nJy / 3631e9 * zero_point_rate * exposure_time``, which
`csst_electrons_per_njy` takes from :class:`csst_photoz.instrument.Instrument` for the CSST
bands; other bands have no such factor and the conversion is refused. `normalise_unit` refuses
units it does not know, naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import astropy.units as u
import numpy as np
import numpy.typing as npt

from .constants import AB_ZERO_POINT_NJY, CSST_BANDS

__all__ = [
    "AB_MAG",
    "ELECTRON",
    "MAGNITUDE_SENTINELS",
    "NJY",
    "UnitError",
    "convert_fluxes",
    "csst_electrons_per_njy",
    "magnitudes_to_fluxes",
    "normalise_unit",
    "working_unit",
]

#: Electrons in the band's summed exposures.
ELECTRON = "electron"
#: Nanojansky, the working unit of every spectral flux density.
NJY = "nJy"
#: AB magnitudes.
AB_MAG = "ABmag"
#: Magnitude values that mean "not measured".
MAGNITUDE_SENTINELS: tuple[float, ...] = (99.0, -99.0)

_ELECTRON_NAMES = {"electron", "electrons", "e-", "count", "counts", "ct"}
_MAG_NAMES = {"abmag", "mag", "mag(ab)", "ab"}


class UnitError(ValueError):
    """A unit that is unknown, or that cannot be converted to the one asked for."""


def _where(column: str | None) -> str:
    return f"column {column!r}: " if column else ""


def normalise_unit(unit: str, column: str | None = None) -> str:
    """The canonical name of a column's unit.

    Parameters
    ----------
    unit
        ``"electron"`` (also ``"e-"``, ``"counts"``), ``"ABmag"`` (also ``"mag"``, ``"AB"``),
        or a spectral flux density astropy understands (``"nJy"``, ``"uJy"``, ...).
    column
        The column it belongs to (named in errors).

    Returns
    -------
    str
        `ELECTRON`, `AB_MAG`, `NJY`, or astropy's name of another flux-density unit.

    Raises
    ------
    UnitError
        For a unit that is none of these.
    """
    text = str(unit).strip()
    if text.lower() in _ELECTRON_NAMES:
        return ELECTRON
    if text.lower() in _MAG_NAMES:
        return AB_MAG
    try:
        parsed = u.Unit(text)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.is_equivalent(u.nJy):
        return NJY if parsed == u.nJy else parsed.to_string()
    raise UnitError(
        f"{_where(column)}unknown flux unit {text!r}; known: {ELECTRON!r}, {AB_MAG!r} and "
        "spectral flux densities such as 'nJy', 'uJy'"
    )


def working_unit(unit: str) -> str:
    """The unit a network reads a column of ``unit`` in: electrons stay, all else is nJy."""
    return ELECTRON if normalise_unit(unit) == ELECTRON else NJY


def magnitudes_to_fluxes(
    magnitude: npt.ArrayLike, magnitude_error: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """AB magnitudes and their errors as fluxes and flux errors in nJy.

    ``flux = 3631e9 x 10**(-0.4 mag)`` (the project's `AB_ZERO_POINT_NJY`, as the instrument's
    zero points; astropy's ``u.ABmag`` uses 3630.78 Jy, 6e-5 less) and, to first order,
    ``flux_err = flux x ln(10) / 2.5 x mag_err``. A magnitude or error equal to a
    `MAGNITUDE_SENTINELS` value, non-finite, or a negative error, gives NaN flux and error (a
    missing band).

    Parameters
    ----------
    magnitude, magnitude_error
        Arrays of one shape.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Flux and flux error [nJy].
    """
    mag = np.asarray(magnitude, dtype=np.float64)
    err = np.asarray(magnitude_error, dtype=np.float64)
    missing = ~np.isfinite(mag) | ~np.isfinite(err) | (err < 0)
    for sentinel in MAGNITUDE_SENTINELS:
        missing |= (mag == sentinel) | (err == sentinel)
    flux = AB_ZERO_POINT_NJY * 10.0 ** (-0.4 * np.where(missing, 0.0, mag))
    flux_err = flux * np.log(10.0) / 2.5 * np.where(missing, 0.0, err)
    return np.where(missing, np.nan, flux), np.where(missing, np.nan, flux_err)


def csst_electrons_per_njy(bands: Sequence[str]) -> npt.NDArray[np.float64]:
    """Electrons per nJy of each CSST band (zero point x exposure / 3631e9), in ``bands`` order.

    Raises
    ------
    UnitError
        For a band that is not a CSST band (no zero point or exposure is known for it).
    """
    unknown = [b for b in bands if b not in CSST_BANDS]
    if unknown:
        raise UnitError(
            f"no zero point or exposure for band(s) {unknown} (known for the CSST bands "
            f"{list(CSST_BANDS)}): electrons and nJy cannot be converted"
        )
    from .instrument import Instrument

    instrument = Instrument.default()
    return np.array([instrument.electrons_per_njy(b) for b in bands], dtype=np.float64)


def _to_njy(
    flux: np.ndarray, error: np.ndarray, unit: str, per_njy: np.ndarray | None, column: str | None
) -> tuple[np.ndarray, np.ndarray]:
    if unit == AB_MAG:
        return magnitudes_to_fluxes(flux, error)
    if unit == ELECTRON:
        if per_njy is None:
            raise UnitError(f"{_where(column)}electrons need the bands' electrons per nJy")
        return flux / per_njy, error / per_njy
    factor = u.Unit(unit).to(u.nJy)
    return flux * factor, error * factor


def convert_fluxes(
    flux: npt.ArrayLike,
    flux_error: npt.ArrayLike,
    from_unit: str,
    to_unit: str,
    *,
    bands: Sequence[str] | None = None,
    column: str | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Fluxes and errors (n, bands) in ``from_unit`` converted to the working unit ``to_unit``.

    Parameters
    ----------
    flux, flux_error
        (n, bands) values, or magnitudes and magnitude errors for `AB_MAG`.
    from_unit
        Any unit `normalise_unit` knows.
    to_unit
        `ELECTRON` or `NJY` (or another flux density).
    bands
        Band names of the columns: needed between electrons and the other units (CSST bands
        only, `csst_electrons_per_njy`).
    column
        The first flux column (named in errors).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Float64 arrays in ``to_unit``; missing magnitudes are NaN.

    Raises
    ------
    UnitError
        On an unknown unit, a conversion into magnitudes, or electrons without CSST bands.
    """
    source, target = normalise_unit(from_unit, column), normalise_unit(to_unit, column)
    values = np.asarray(flux, dtype=np.float64)
    errors = np.asarray(flux_error, dtype=np.float64)
    if source == target and source != AB_MAG:
        return values, errors
    if target == AB_MAG:
        raise UnitError(f"{_where(column)}a network reads fluxes, not magnitudes")
    per_njy = None
    if ELECTRON in (source, target):
        if bands is None:
            raise UnitError(f"{_where(column)}converting electrons needs the band names")
        try:
            per_njy = csst_electrons_per_njy(bands)
        except UnitError as error:
            raise UnitError(f"{_where(column)}{error}") from None
    njy, njy_err = _to_njy(values, errors, source, per_njy, column)
    if target == ELECTRON:
        return njy * per_njy, njy_err * per_njy
    factor = u.nJy.to(u.Unit(target))
    return njy * factor, njy_err * factor
