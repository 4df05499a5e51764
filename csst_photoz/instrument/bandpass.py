"""Total-throughput curves of the CSST bands and the figures derived from them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Bandpass"]


@dataclass(frozen=True, eq=False)
class Bandpass:
    """A band's total system throughput (mirrors x filter x detector QE) against wavelength.

    Parameters
    ----------
    name
        Band name, e.g. ``"g"``.
    wavelength_angstrom
        Strictly increasing wavelengths [Angstrom].
    throughput
        Dimensionless throughput in [0, 1] at each wavelength; zero outside the sampled range.
    source
        Where the curve came from (a file path or a model description), for error messages
        and provenance.

    """

    name: str
    wavelength_angstrom: NDArray[np.float64]
    throughput: NDArray[np.float64]
    source: str = "array"

    def __post_init__(self) -> None:
        wave = np.array(self.wavelength_angstrom, dtype=np.float64)
        thr = np.array(self.throughput, dtype=np.float64)
        where = f"band {self.name!r} ({self.source})"
        if wave.ndim != 1 or thr.shape != wave.shape:
            raise ValueError(
                f"{where}: wavelength and throughput must be 1-D arrays of one length, "
                f"got shapes {wave.shape} and {thr.shape}"
            )
        if wave.size < 3:
            raise ValueError(f"{where}: needs at least 3 samples, got {wave.size}")
        if not (np.all(np.isfinite(wave)) and np.all(np.isfinite(thr))):
            raise ValueError(f"{where}: wavelength or throughput contains NaN or inf")
        if np.any(np.diff(wave) <= 0):
            raise ValueError(f"{where}: wavelengths must be strictly increasing")
        if wave[0] <= 0:
            raise ValueError(f"{where}: wavelengths must be positive (Angstrom)")
        if np.any(thr < 0) or np.any(thr > 1):
            raise ValueError(
                f"{where}: throughput must lie in [0, 1], got range "
                f"[{thr.min():.4g}, {thr.max():.4g}]"
            )
        if thr.max() <= 0:
            raise ValueError(f"{where}: throughput is zero everywhere")
        wave.flags.writeable = False
        thr.flags.writeable = False
        object.__setattr__(self, "wavelength_angstrom", wave)
        object.__setattr__(self, "throughput", thr)

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> Bandpass:
        """Read a two-column text file: wavelength [Angstrom] and throughput.

        Lines starting with ``#`` are comments. Extra columns are an error, so that a file in
        another format is not misread silently.

        Parameters
        ----------
        path
            The file to read.
        name
            Band name; defaults to the file's stem.

        Returns
        -------
        Bandpass

        """
        path = Path(path)
        band_name = name if name is not None else path.stem
        if not path.is_file():
            raise FileNotFoundError(f"throughput file for band {band_name!r} not found: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # numpy's "input contained no data"
                table = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
        except UserWarning:
            raise ValueError(f"throughput file {path}: contains no data rows") from None
        except ValueError as exc:
            raise ValueError(
                f"throughput file {path}: not a numeric two-column table ({exc})"
            ) from None
        if table.shape[1] != 2:
            raise ValueError(
                f"throughput file {path}: expected 2 columns (wavelength [Angstrom], "
                f"throughput), found {table.shape[1]}"
            )
        return cls(band_name, table[:, 0], table[:, 1], source=str(path))

    def __call__(self, wavelength_angstrom: ArrayLike) -> NDArray[np.float64]:
        """Throughput at the given wavelengths [Angstrom], linear interpolation, 0 outside."""
        return np.interp(
            wavelength_angstrom, self.wavelength_angstrom, self.throughput, left=0.0, right=0.0
        )

    @property
    def peak_throughput(self) -> float:
        """Maximum throughput."""
        return float(self.throughput.max())

    @property
    def photon_integral(self) -> float:
        """Integral of T(lambda) / lambda d lambda (dimensionless).

        The count rate of a source of constant f_nu is ``area * f_nu / h * photon_integral``.
        """
        return float(
            np.trapezoid(self.throughput / self.wavelength_angstrom, self.wavelength_angstrom)
        )

    @property
    def pivot_wavelength(self) -> float:
        """Pivot wavelength [Angstrom]: sqrt(int T lambda d lambda / int T / lambda d lambda)."""
        wave, thr = self.wavelength_angstrom, self.throughput
        return float(np.sqrt(np.trapezoid(thr * wave, wave) / np.trapezoid(thr / wave, wave)))

    @property
    def half_max_edges(self) -> tuple[float, float]:
        """Outermost wavelengths [Angstrom] where the throughput crosses half its peak."""
        wave, thr = self.wavelength_angstrom, self.throughput
        half = 0.5 * thr.max()
        above = np.flatnonzero(thr >= half)
        first, last = above[0], above[-1]
        blue = wave[first]
        if first > 0:
            blue = np.interp(half, thr[first - 1 : first + 1], wave[first - 1 : first + 1])
        red = wave[last]
        if last < wave.size - 1:
            # throughput decreases through the red edge: interpolate on the reversed pair
            red = np.interp(half, thr[last : last + 2][::-1], wave[last : last + 2][::-1])
        return float(blue), float(red)
