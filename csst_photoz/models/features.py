"""The MLP's input features: signed-log fluxes, adjacent-band flux ratios and relative errors.

For ``N`` bands (Zhou et al. 2022 use CSST's seven, giving 20 features) the ``3N - 1`` features
are, in this order and each passed through `signed_log10`:

1. ``N`` fluxes divided by the band's limiting flux (the paper: the 5-sigma depth),
2. ``N - 1`` ratios of adjacent bands, ``F[b] / F[b + 1]`` (NUV/u, u/g, ..., z/y for CSST),
3. ``N`` relative errors ``|sigma[b] / F[b]|``.

Fluxes, errors and limiting fluxes may be in any one unit (electrons, nJy): only ratios enter.
`FluxFeatures` adds a per-feature standardisation, ``(f - mean) / std``, whose statistics are
fitted from data with `FluxFeatures.fit` and travel in the state dict.

Zero and tiny values
--------------------
The paper's signed log, ``log10(x)`` for ``x > 0`` and ``-log10(-x)`` for ``x < 0``, diverges at
zero (and a ratio or relative error diverges at zero flux). Here ``|x|`` is clipped to
``[floor, 1 / floor]`` before the logarithm, so every finite or infinite input gives a value in
``[log10(floor), -log10(floor)]`` (``[-6, 6]`` with the default floor of ``1e-6``); exact zero
(either sign) counts as positive and maps to ``log10(floor)``. NaN (a missing measurement)
propagates, so that rows without photometry stay visible as NaN predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LOG_FLOOR",
    "FluxFeatures",
    "estimate_limiting_flux",
    "flux_features",
    "n_flux_features",
    "signed_log10",
]

#: Default clipping floor of `signed_log10`: features lie in [-6, 6].
DEFAULT_LOG_FLOOR = 1e-6
# a standard deviation below this (a constant feature) standardises with std = 1 instead
_MIN_STD = 1e-12


def signed_log10(x: Tensor, *, floor: float = DEFAULT_LOG_FLOOR) -> Tensor:
    """``sign(x) * log10(clip(|x|, floor, 1 / floor))``, with ``sign(0) = +1``.

    Parameters
    ----------
    x
        Any floating tensor.
    floor
        Clipping floor, ``0 < floor < 1``.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``; NaN where ``x`` is NaN.
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"floor must be in (0, 1), got {floor!r}")
    magnitude = torch.log10(x.abs().clamp(min=floor, max=1.0 / floor))
    return torch.where(x < 0, -magnitude, magnitude)


def n_flux_features(n_bands: int) -> int:
    """Number of MLP features for ``n_bands`` bands: ``3 * n_bands - 1``."""
    if n_bands < 1:
        raise ValueError(f"need at least one band, got {n_bands}")
    return 3 * n_bands - 1


def flux_features(
    fluxes: Tensor,
    flux_errors: Tensor,
    limiting_flux: Tensor,
    *,
    floor: float = DEFAULT_LOG_FLOOR,
) -> Tensor:
    """The ``3N - 1`` signed-log features of the module docstring (not standardised).

    Parameters
    ----------
    fluxes, flux_errors
        (n, N) fluxes and their 1-sigma errors, bands in the model's order.
    limiting_flux
        (N,) limiting flux of each band, same unit as ``fluxes``.
    floor
        Clipping floor of `signed_log10`.

    Returns
    -------
    Tensor
        (n, 3N - 1) features.
    """
    if fluxes.ndim != 2 or fluxes.shape != flux_errors.shape:
        raise ValueError(
            "fluxes and flux_errors must both be (n, n_bands), got "
            f"{tuple(fluxes.shape)} and {tuple(flux_errors.shape)}"
        )
    if limiting_flux.shape != fluxes.shape[1:]:
        raise ValueError(
            f"limiting_flux has shape {tuple(limiting_flux.shape)}, expected ({fluxes.shape[1]},)"
        )
    scaled = fluxes / limiting_flux
    ratios = fluxes[:, :-1] / fluxes[:, 1:]
    relative_errors = (flux_errors / fluxes).abs()
    return signed_log10(torch.cat([scaled, ratios, relative_errors], dim=1), floor=floor)


def estimate_limiting_flux(
    flux_errors: npt.ArrayLike, *, n_sigma: float = 5.0
) -> npt.NDArray[np.float64]:
    """A band's limiting flux from data: ``n_sigma`` times its median finite flux error.

    For tables that do not state their depths. The median error of detected galaxies slightly
    exceeds the background-only error of a faint point source, so this is a rough (somewhat
    shallow) depth; only its consistency between training and inference matters to the MLP.

    Parameters
    ----------
    flux_errors
        (n, N) flux errors.
    n_sigma
        Significance of the limit (5 for the paper's 5-sigma depths).

    Returns
    -------
    numpy.ndarray
        (N,) positive limiting fluxes.
    """
    errors = np.asarray(flux_errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"flux_errors must be (n, n_bands), got shape {errors.shape}")
    errors = np.where(np.isfinite(errors) & (errors > 0), errors, np.nan)
    missing = np.all(np.isnan(errors), axis=0)
    if missing.any():
        raise ValueError(f"bands {np.flatnonzero(missing).tolist()} have no positive finite error")
    return n_sigma * np.nanmedian(errors, axis=0)


class FluxFeatures(nn.Module):
    """Raw fluxes and errors -> standardised MLP features, with the constants as buffers.

    Parameters
    ----------
    limiting_flux
        (N,) limiting flux of each band, in the unit of the fluxes the model will see; must be
        positive and finite. A non-persistent buffer: the model's configuration records it.
    floor
        Clipping floor of `signed_log10`.

    Attributes
    ----------
    mean, std
        (3N - 1,) feature statistics (persistent buffers; 0 and 1 until `fit` is called).
    fitted
        Scalar bool buffer, true once `fit` has run.
    """

    def __init__(self, limiting_flux: Sequence[float], *, floor: float = DEFAULT_LOG_FLOOR) -> None:
        super().__init__()
        limits = torch.as_tensor(limiting_flux, dtype=torch.float32)
        if limits.ndim != 1 or limits.numel() < 1:
            raise ValueError(f"limiting_flux must be a non-empty 1-D sequence, got {limiting_flux}")
        if not bool(torch.all(torch.isfinite(limits) & (limits > 0))):
            raise ValueError(f"limiting fluxes must be positive and finite, got {limits.tolist()}")
        if not 0.0 < floor < 1.0:
            raise ValueError(f"floor must be in (0, 1), got {floor!r}")
        self.floor = float(floor)
        n_features = n_flux_features(limits.numel())
        self.register_buffer("limiting_flux", limits, persistent=False)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return int(self.limiting_flux.numel())

    @property
    def n_features(self) -> int:
        """Number of features, ``3 * n_bands - 1``."""
        return int(self.mean.numel())

    def raw(self, fluxes: Tensor, flux_errors: Tensor) -> Tensor:
        """The signed-log features before standardisation, (n, 3N - 1)."""
        return flux_features(fluxes, flux_errors, self.limiting_flux, floor=self.floor)

    @torch.no_grad()
    def fit(self, fluxes: Tensor, flux_errors: Tensor) -> FluxFeatures:
        """Set ``mean`` and ``std`` from a training sample (NaN rows are ignored per feature).

        Statistics are accumulated in float64. A feature with zero spread keeps ``std = 1``.

        Parameters
        ----------
        fluxes, flux_errors
            (n, N) training fluxes and errors.

        Returns
        -------
        FluxFeatures
            ``self``.
        """
        features = self.raw(fluxes.to(self.mean.device), flux_errors.to(self.mean.device))
        features = features.to(torch.float64)
        finite = torch.isfinite(features)
        count = finite.sum(dim=0)
        if bool((count == 0).any()):
            bad = torch.nonzero(count == 0).flatten().tolist()
            raise ValueError(f"features {bad} have no finite value to fit statistics from")
        values = torch.where(finite, features, torch.zeros_like(features))
        mean = values.sum(dim=0) / count
        centred = torch.where(finite, features - mean, torch.zeros_like(features))
        std = torch.sqrt((centred**2).sum(dim=0) / count)
        std = torch.where(std > _MIN_STD, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        self.fitted.fill_(True)
        return self

    def forward(self, fluxes: Tensor, flux_errors: Tensor) -> Tensor:
        """Standardised features, (n, 3N - 1)."""
        return (self.raw(fluxes, flux_errors) - self.mean) / self.std
