"""The MLP's input features: signed-log fluxes, adjacent-band flux ratios and relative errors.

For ``N`` bands (Zhou et al. 2022 use CSST's seven, giving 20 features) the ``3N - 1`` features
are, in this order and each passed through `signed_log10`:

1. ``N`` fluxes divided by the band's limiting flux (the paper: the 5-sigma depth),
2. ``N - 1`` ratios of adjacent bands, ``F[b] / F[b + 1]`` (NUV/u, u/g, ..., z/y for CSST),
3. ``N`` relative errors ``|sigma[b] / F[b]|``.

Missing bands
-------------
One convention for the whole package (training, augmentation, prediction, domain flags): a
band is **missing** in a row when its flux or its error is NaN, or its error is not a positive
finite number (`missing_bands`). A flux of exactly 0 with a positive error is a measurement (a
non-detection), not a missing band. Tables that mark missing values otherwise (a 0 flux with a
sentinel error such as -1 or 99, a magnitude of 99 / -99) are converted to NaN where they are
read; the features only see NaN (or a non-positive error).

Two feature layouts, recorded in the model configuration (``MLPConfig.missing``):

* ``"indicator"`` (new training): ``4N - 1`` features, the ``3N - 1`` above followed by ``N``
  per-band missing indicators (1 missing, 0 present). A missing band's scaled flux, its two
  ratios with its neighbours and its relative error are set, after standardisation, to the
  neutral value 0 (the training mean), so no feature is ever NaN; the statistics are fitted on
  the rows where the band is present. Neutral values plus indicators were chosen over ratios to
  the nearest present band because each feature keeps one meaning in every row (a u/r ratio in
  the u/g slot would be a different colour with a different distribution), and the indicator
  lets the network learn what a missing band implies; the training's band dropout
  (``TrainingConfig.band_dropout``) shows it rows with bands removed. Two present adjacent
  fluxes that are both exactly 0 have ratio 1 (not 0/0).
* ``"propagate"`` (checkpoints written before this layout): the ``3N - 1`` features; NaN
  propagates, so a row with a missing band gets a NaN prediction. Kept unchanged so that those
  checkpoints predict exactly as before.

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

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LOG_FLOOR",
    "MISSING_LAYOUTS",
    "FluxFeatures",
    "MissingLayout",
    "estimate_limiting_flux",
    "flux_features",
    "missing_bands",
    "n_flux_features",
    "signed_log10",
]

#: How the features treat missing bands (see the module docstring).
MissingLayout = Literal["propagate", "indicator"]
#: The layouts, oldest first.
MISSING_LAYOUTS: tuple[str, ...] = get_args(MissingLayout)

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


def _check_layout(missing: str) -> None:
    if missing not in MISSING_LAYOUTS:
        raise ValueError(f"unknown missing-band layout {missing!r}; known: {list(MISSING_LAYOUTS)}")


def n_flux_features(n_bands: int, missing: MissingLayout = "propagate") -> int:
    """Number of MLP features: ``3N - 1`` (``"propagate"``) or ``4N - 1`` (``"indicator"``)."""
    if n_bands < 1:
        raise ValueError(f"need at least one band, got {n_bands}")
    _check_layout(missing)
    return 3 * n_bands - 1 + (n_bands if missing == "indicator" else 0)


def missing_bands(fluxes: Tensor, flux_errors: Tensor) -> Tensor:
    """Boolean (n, N) mask of missing bands: NaN flux or error, or an error not finite and > 0."""
    return ~(torch.isfinite(fluxes) & torch.isfinite(flux_errors) & (flux_errors > 0))


def flux_features(
    fluxes: Tensor,
    flux_errors: Tensor,
    limiting_flux: Tensor,
    *,
    floor: float = DEFAULT_LOG_FLOOR,
    missing: MissingLayout = "propagate",
) -> Tensor:
    """The signed-log features of the module docstring (not standardised).

    Parameters
    ----------
    fluxes, flux_errors
        (n, N) fluxes and their 1-sigma errors, bands in the model's order.
    limiting_flux
        (N,) limiting flux of each band, same unit as ``fluxes``.
    floor
        Clipping floor of `signed_log10`.
    missing
        Feature layout. ``"indicator"``: the features a missing band enters are NaN here
        (`FluxFeatures` replaces them by the neutral value after standardising) and ``N``
        missing indicators follow.

    Returns
    -------
    Tensor
        (n, 3N - 1) or, with ``"indicator"``, (n, 4N - 1) features.
    """
    _check_layout(missing)
    if fluxes.ndim != 2 or fluxes.shape != flux_errors.shape:
        raise ValueError(
            "fluxes and flux_errors must both be (n, n_bands), got "
            f"{tuple(fluxes.shape)} and {tuple(flux_errors.shape)}"
        )
    if limiting_flux.shape != fluxes.shape[1:]:
        raise ValueError(
            f"limiting_flux has shape {tuple(limiting_flux.shape)}, expected ({fluxes.shape[1]},)"
        )
    if missing == "propagate":
        scaled = fluxes / limiting_flux
        ratios = fluxes[:, :-1] / fluxes[:, 1:]
        relative_errors = (flux_errors / fluxes).abs()
        return signed_log10(torch.cat([scaled, ratios, relative_errors], dim=1), floor=floor)
    absent = missing_bands(fluxes, flux_errors)
    present = torch.where(absent, torch.full_like(fluxes, math.nan), fluxes)
    numerator, denominator = present[:, :-1], present[:, 1:]
    both_zero = (numerator == 0) & (denominator == 0)
    ratios = torch.where(both_zero, torch.ones_like(numerator), numerator / denominator)
    relative_errors = (flux_errors / present).abs()
    features = signed_log10(
        torch.cat([present / limiting_flux, ratios, relative_errors], dim=1), floor=floor
    )
    return torch.cat([features, absent.to(features.dtype)], dim=1)


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
    missing
        Feature layout for missing bands (module docstring); ``"propagate"`` for checkpoints
        written before ``"indicator"`` existed.

    Attributes
    ----------
    mean, std
        (n_features,) feature statistics (persistent buffers; 0 and 1 until `fit` is called).
    fitted
        Scalar bool buffer, true once `fit` has run.
    """

    def __init__(
        self,
        limiting_flux: Sequence[float],
        *,
        floor: float = DEFAULT_LOG_FLOOR,
        missing: MissingLayout = "propagate",
    ) -> None:
        super().__init__()
        limits = torch.as_tensor(limiting_flux, dtype=torch.float32)
        if limits.ndim != 1 or limits.numel() < 1:
            raise ValueError(f"limiting_flux must be a non-empty 1-D sequence, got {limiting_flux}")
        if not bool(torch.all(torch.isfinite(limits) & (limits > 0))):
            raise ValueError(f"limiting fluxes must be positive and finite, got {limits.tolist()}")
        if not 0.0 < floor < 1.0:
            raise ValueError(f"floor must be in (0, 1), got {floor!r}")
        self.floor = float(floor)
        self.missing: MissingLayout = missing
        n_features = n_flux_features(limits.numel(), missing)
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
        """Number of features, `n_flux_features` of the bands and layout."""
        return int(self.mean.numel())

    def raw(self, fluxes: Tensor, flux_errors: Tensor) -> Tensor:
        """The signed-log features before standardisation, (n, n_features) (`flux_features`)."""
        return flux_features(
            fluxes, flux_errors, self.limiting_flux, floor=self.floor, missing=self.missing
        )

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
        """Standardised features, (n, n_features); never NaN with the ``"indicator"`` layout."""
        features = (self.raw(fluxes, flux_errors) - self.mean) / self.std
        if self.missing == "indicator":  # a missing band's features take the neutral value
            features = torch.nan_to_num(features, nan=0.0)
        return features
