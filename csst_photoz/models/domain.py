"""The per-galaxy domain flag: whether a galaxy is like those a network was trained on.

Every prediction carries a ``uint16`` flag (`DomainFlag` bits, 0 = inside the domain):

``OUTSIDE_SELECTION`` (1)
    Fainter than the training selection: the galaxy's best band S/N (``flux / error``, over its
    present bands) or its brightest band's ``flux / limiting_flux`` is below the training rows'
    1st percentile of the same quantity (`DEFAULT_QUANTILE`).
``OUTSIDE_COLOUR_SPACE`` (2)
    Its colours (signed-log adjacent-band flux ratios, standardised with the training rows'
    mean and spread) lie farther from the training set than 99 % of the training rows: the
    Euclidean distance to its k-th nearest neighbour (k = 5) among a stored random subsample of
    2,000 training colour vectors exceeds the 99th percentile of the same distance for the
    subsample's own rows (each row itself excluded). Tested only for galaxies with every band
    present (the others carry ``MISSING_BANDS``).
``MISSING_BANDS`` (4)
    At least one band is missing (:func:`~csst_photoz.models.features.missing_bands`).
``CLAMPED`` (8)
    The redshift was clamped to the trained range ``[z_min, z_max]`` or the uncertainty capped
    at ``z_max - z_min`` (a sigma wider than the whole range carries no information).

The reference (:class:`~csst_photoz.io.checkpoint_metadata.DomainReference`) is fitted at the
end of training on the training rows (`fit_domain`) and stored in the checkpoint's metadata:
for 7 bands its subsample takes 2,000 x 6 float16 = 24,000 bytes (32,000 in base64). A
network that reads no fluxes (the CNN) gets only ``CLAMPED``.

A checkpoint without a reference (written before it existed) flags only ``MISSING_BANDS`` and
``CLAMPED``, and its values are left as they were, so that it predicts exactly as before:
there ``CLAMPED`` marks the estimates that lie outside `DEFAULT_Z_RANGE` (0..4) or whose sigma
exceeds its width, i.e. that a checkpoint with a reference would have clamped.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from ..io.checkpoint_metadata import DomainReference
from .features import missing_bands, signed_log10

if TYPE_CHECKING:  # scikit-learn is imported on first use
    from sklearn.neighbors import NearestNeighbors

__all__ = [
    "DEFAULT_QUANTILE",
    "DEFAULT_Z_RANGE",
    "FLAG_DTYPE",
    "DomainCheck",
    "DomainFlag",
    "clamp_estimates",
    "fit_domain",
    "flag_description",
]

#: Clamping range of checkpoints without a domain reference.
DEFAULT_Z_RANGE = (0.0, 4.0)
#: Quantile of the training rows below which a galaxy is outside the selection.
DEFAULT_QUANTILE = 0.01
#: Quantile of the training rows' neighbour distance beyond which colours are outside.
DEFAULT_DISTANCE_QUANTILE = 0.99
#: Training colour vectors kept in the reference, and the neighbour whose distance counts.
DEFAULT_REFERENCE_ROWS = 2000
DEFAULT_K = 5
#: Storage type of the flag column.
FLAG_DTYPE = np.uint16


class DomainFlag(enum.IntFlag):
    """Bits of the domain flag (module docstring)."""

    OUTSIDE_SELECTION = 1
    OUTSIDE_COLOUR_SPACE = 2
    MISSING_BANDS = 4
    CLAMPED = 8


def flag_description(column: str) -> str:
    """The description written into the field metadata of a flag column for ``column``."""
    bits = ", ".join(f"{int(flag)} {flag.name}" for flag in DomainFlag)
    return (
        f"domain flag of {column} (bit mask, 0 = inside the training domain): {bits}; "
        "checkpoints without a stored domain reference flag only MISSING_BANDS and CLAMPED"
    )


def _colours(fluxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Signed-log adjacent-band ratios, (n, N - 1) (two zero fluxes: ratio 1, as the features)."""
    numerator, denominator = fluxes[:, :-1], fluxes[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where((numerator == 0) & (denominator == 0), 1.0, numerator / denominator)
    return signed_log10(torch.from_numpy(ratios)).numpy()


def _brightness(
    fluxes: npt.NDArray[np.float64],
    flux_errors: npt.NDArray[np.float64],
    limiting_flux: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Best-band S/N and brightest ``flux / limiting_flux`` over present bands (NaN: none)."""
    absent = _missing(fluxes, flux_errors)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(absent, -np.inf, fluxes / flux_errors)
        scaled = np.where(absent, -np.inf, fluxes / limiting_flux)
    best_snr, brightest = snr.max(axis=1), scaled.max(axis=1)
    empty = absent.all(axis=1)
    return np.where(empty, np.nan, best_snr), np.where(empty, np.nan, brightest)


def _missing(fluxes: npt.NDArray[np.float64], flux_errors: npt.NDArray[np.float64]) -> np.ndarray:
    return missing_bands(torch.from_numpy(fluxes), torch.from_numpy(flux_errors)).numpy()


def _as_rows(name: str, value: npt.ArrayLike | torch.Tensor) -> npt.NDArray[np.float64]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be (n, bands), got shape {array.shape}")
    return array


def fit_domain(
    redshift: npt.ArrayLike,
    fluxes: npt.ArrayLike | None = None,
    flux_errors: npt.ArrayLike | None = None,
    limiting_flux: npt.ArrayLike | None = None,
    *,
    seed: int = 0,
    reference_rows: int = DEFAULT_REFERENCE_ROWS,
    k: int = DEFAULT_K,
) -> DomainReference:
    """The domain reference of a network's training rows.

    Parameters
    ----------
    redshift
        (n,) training redshifts (the clamping range).
    fluxes, flux_errors
        (n, N) training fluxes and errors in the network's unit (None for a stamp network:
        only the redshift range is recorded).
    limiting_flux
        (N,) the network's limiting fluxes.
    seed
        Seed of the reference subsample.
    reference_rows, k
        Size of the stored colour subsample and the neighbour whose distance counts.

    Returns
    -------
    DomainReference
    """
    z = np.asarray(redshift, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size == 0:
        raise ValueError("no finite training redshift to fit the domain from")
    z_min, z_max = float(z.min()), float(z.max())
    fields: dict = {"z_min": z_min, "z_max": z_max, "sigma_max": max(z_max - z_min, 1e-3)}
    fields["n_train"] = int(z.size)
    if fluxes is None or flux_errors is None or limiting_flux is None:
        return DomainReference(**fields)
    flux, error = _as_rows("fluxes", fluxes), _as_rows("flux_errors", flux_errors)
    limits = np.asarray(limiting_flux, dtype=np.float64)
    snr, brightness = _brightness(flux, error, limits)
    fields.update(
        limiting_flux=tuple(limits.tolist()),
        snr_min=float(np.nanquantile(snr, DEFAULT_QUANTILE)),
        flux_min=float(np.nanquantile(brightness, DEFAULT_QUANTILE)),
        quantile=DEFAULT_QUANTILE,
    )
    complete = ~_missing(flux, error).any(axis=1)
    colours = _colours(flux[complete])
    if colours.shape[1] == 0 or colours.shape[0] <= k + 1:
        return DomainReference(**fields)
    mean, std = colours.mean(axis=0), colours.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    rng = np.random.default_rng(seed)
    keep = min(reference_rows, colours.shape[0])
    chosen = rng.choice(colours.shape[0], size=keep, replace=False)
    reference = ((colours[chosen] - mean) / std).astype("<f2")
    from sklearn.neighbors import NearestNeighbors

    stored = reference.astype(np.float64)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(stored).kneighbors(stored)
    fields.update(
        colour_mean=tuple(mean.tolist()),
        colour_std=tuple(std.tolist()),
        reference=base64.b64encode(reference.tobytes()).decode("ascii"),
        reference_rows=keep,
        k=k,
        distance_max=float(np.quantile(distances[:, k], DEFAULT_DISTANCE_QUANTILE)),
        distance_quantile=DEFAULT_DISTANCE_QUANTILE,
    )
    return DomainReference(**fields)


@dataclass(frozen=True)
class DomainCheck:
    """Flags and clamping of one network's predictions (its reference, or None for defaults)."""

    reference: DomainReference | None

    @property
    def z_range(self) -> tuple[float, float]:
        """The clamping range."""
        if self.reference is None:
            return DEFAULT_Z_RANGE
        return self.reference.z_min, self.reference.z_max

    @property
    def sigma_max(self) -> float:
        """The cap on the uncertainty."""
        low, high = self.z_range
        return high - low if self.reference is None else self.reference.sigma_max

    @cached_property
    def _neighbours(self) -> NearestNeighbors | None:
        from sklearn.neighbors import NearestNeighbors

        ref = self.reference
        if ref is None or ref.reference is None or not ref.reference_rows:
            return None
        raw = np.frombuffer(base64.b64decode(ref.reference), dtype="<f2")
        vectors = raw.reshape(ref.reference_rows, -1).astype(np.float64)
        return NearestNeighbors(n_neighbors=int(ref.k or DEFAULT_K)).fit(vectors)

    def input_flags(
        self, fluxes: npt.ArrayLike | None, flux_errors: npt.ArrayLike | None, n: int
    ) -> npt.NDArray[np.uint16]:
        """``OUTSIDE_SELECTION``, ``OUTSIDE_COLOUR_SPACE`` and ``MISSING_BANDS`` of n rows.

        Parameters
        ----------
        fluxes, flux_errors
            (n, N) inputs of a flux network, or None (no input flag).
        n
            Number of rows.
        """
        flags = np.zeros(n, dtype=FLAG_DTYPE)
        if fluxes is None or flux_errors is None:
            return flags
        flux, error = _as_rows("fluxes", fluxes), _as_rows("flux_errors", flux_errors)
        absent = _missing(flux, error)
        flags[absent.any(axis=1)] |= FLAG_DTYPE(DomainFlag.MISSING_BANDS)
        ref = self.reference
        if ref is None or ref.limiting_flux is None:
            return flags
        snr, brightness = _brightness(flux, error, np.asarray(ref.limiting_flux))
        with np.errstate(invalid="ignore"):
            faint = (snr < ref.snr_min) | (brightness < ref.flux_min)
        flags[faint] |= FLAG_DTYPE(DomainFlag.OUTSIDE_SELECTION)
        neighbours = self._neighbours
        complete = ~absent.any(axis=1)
        if neighbours is None or not complete.any():
            return flags
        colours = (_colours(flux[complete]) - np.asarray(ref.colour_mean)) / np.asarray(
            ref.colour_std
        )
        distances, _ = neighbours.kneighbors(colours)
        far = np.zeros(n, dtype=bool)
        far[complete] = distances[:, -1] > ref.distance_max
        flags[far] |= FLAG_DTYPE(DomainFlag.OUTSIDE_COLOUR_SPACE)
        return flags


def clamp_estimates(
    check: DomainCheck, z: npt.NDArray[np.float32], z_err: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.uint16]]:
    """``z`` clamped to the trained range, ``z_err`` capped, and ``CLAMPED`` where either was.

    NaN stays NaN (and is not flagged). Without a reference (an old checkpoint) the values are
    returned unchanged and ``CLAMPED`` marks those outside `DEFAULT_Z_RANGE` (module docstring).
    """
    low, high = check.z_range
    clamped_z = np.clip(z, np.float32(low), np.float32(high))
    capped = np.minimum(z_err, np.float32(check.sigma_max))
    with np.errstate(invalid="ignore"):
        changed = (clamped_z != z) & ~np.isnan(z) | (capped != z_err) & ~np.isnan(z_err)
    flags = np.where(changed, FLAG_DTYPE(DomainFlag.CLAMPED), FLAG_DTYPE(0)).astype(FLAG_DTYPE)
    if check.reference is None:
        return z, z_err, flags
    return clamped_z.astype(np.float32), capped.astype(np.float32), flags
