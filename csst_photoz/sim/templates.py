"""Galaxy spectral templates: the Coleman, Wu & Weedman (1980) SEDs that GalSim ships.

The four CWW templates (E, Sbc, Scd, Im; extended to the far UV and near IR by Bolzonella et al.
2000) are resampled onto one logarithmic rest-frame wavelength grid and normalised to unit
f_lambda at 5500 A. A galaxy's spectral type is a continuous number ``t`` in [0, 3]; its SED is
the linear interpolation between the two neighbouring templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import galsim
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["TEMPLATE_NAMES", "TemplateSet", "load_cww_templates", "type_weights"]

#: Template names in type order: t = 0 (E) ... 3 (Im).
TEMPLATE_NAMES: tuple[str, ...] = ("E", "Sbc", "Scd", "Im")

_NORMALISATION_ANGSTROM = 5500.0


@dataclass(frozen=True, eq=False)
class TemplateSet:
    """Rest-frame templates on a logarithmic wavelength grid.

    Attributes
    ----------
    log_step
        Grid spacing in ln(lambda).
    wavelength_angstrom
        The grid, ``lambda_0 * exp(k * log_step)`` [Angstrom].
    flux
        f_lambda of every template on the grid, shape (n_templates, n_wave), unit f_lambda at
        5500 A.
    names
        Template names.

    """

    log_step: float
    wavelength_angstrom: NDArray[np.float64]
    flux: NDArray[np.float64]
    names: tuple[str, ...]

    @property
    def max_type(self) -> float:
        """Largest spectral type (the last template)."""
        return float(len(self.names) - 1)

    def fractional_index(self, wavelength_angstrom: ArrayLike) -> NDArray[np.float64]:
        """Position of wavelengths on the grid, in grid steps (may be fractional)."""
        return np.log(np.asarray(wavelength_angstrom) / self.wavelength_angstrom[0]) / self.log_step

    def sed(self, spectral_type: float) -> NDArray[np.float64]:
        """f_lambda on the grid of one (continuous) spectral type."""
        return type_weights(np.array([spectral_type]), self.max_type)[0] @ self.flux


def type_weights(spectral_type: ArrayLike, max_type: float) -> NDArray[np.float64]:
    """Linear-interpolation weights of continuous types over the templates.

    Parameters
    ----------
    spectral_type
        Types in [0, max_type], shape (n,).
    max_type
        Index of the last template.

    Returns
    -------
    numpy.ndarray
        Shape (n, max_type + 1); each row has at most two non-zero weights summing to 1.

    """
    t = np.asarray(spectral_type, dtype=np.float64)
    if np.any(~np.isfinite(t)) or np.any(t < 0) or np.any(t > max_type):
        raise ValueError(f"spectral types must be finite and in [0, {max_type}]")
    n_templates = int(max_type) + 1
    lower = np.minimum(np.floor(t).astype(np.intp), n_templates - 2)
    frac = t - lower
    weights = np.zeros((t.size, n_templates))
    rows = np.arange(t.size)
    weights[rows, lower] = 1.0 - frac
    weights[rows, lower + 1] = frac
    return weights


def _cww_path(name: str) -> Path:
    return Path(galsim.meta_data.share_dir) / "SEDs" / f"CWW_{name}_ext.sed"


@lru_cache(maxsize=8)
def load_cww_templates(
    *, min_angstrom: float = 400.0, max_angstrom: float = 11500.0, log_step: float = 1e-3
) -> TemplateSet:
    """Load GalSim's CWW templates onto a logarithmic rest-frame grid.

    Parameters
    ----------
    min_angstrom, max_angstrom
        Grid range [Angstrom]; must lie within the files' 91-22050 A.
    log_step
        Spacing in ln(lambda) (1e-3: 1 A at 1000 A, 5.5 A at 5500 A).

    Returns
    -------
    TemplateSet

    """
    n_wave = int(np.ceil(np.log(max_angstrom / min_angstrom) / log_step)) + 1
    grid = min_angstrom * np.exp(np.arange(n_wave) * log_step)
    fluxes = []
    for name in TEMPLATE_NAMES:
        path = _cww_path(name)
        if not path.is_file():
            raise FileNotFoundError(f"GalSim template {path} is missing; reinstall galsim")
        wave, flux = np.loadtxt(path, comments="#", unpack=True)
        if grid[0] < wave[0] or grid[-1] > wave[-1]:
            raise ValueError(
                f"template grid {grid[0]:.0f}-{grid[-1]:.0f} A exceeds {path} "
                f"({wave[0]:.0f}-{wave[-1]:.0f} A)"
            )
        sampled = np.interp(grid, wave, flux)
        fluxes.append(sampled / np.interp(_NORMALISATION_ANGSTROM, wave, flux))
    flux_array = np.array(fluxes)
    flux_array.flags.writeable = False
    grid.flags.writeable = False
    return TemplateSet(log_step, grid, flux_array, TEMPLATE_NAMES)
