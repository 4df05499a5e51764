"""Data augmentation of Zhou et al. (2022): flux realisations and the dihedral transforms.

* **Flux realisations** (MLP, hybrids): the paper trains on 50 Gaussian realisations of each
  galaxy's fluxes, ``F + N(0, sigma_F)``, with the features recomputed. Here an epoch holds
  ``flux_realisations`` (50) copies of each training galaxy and every copy draws *fresh* noise
  when it is visited, instead of 50 realisations fixed once: the same number of noisy samples
  per epoch (so the paper's epoch counts and patiences keep their meaning) from the same
  distribution, with no 50-fold copy of the set in memory. The models compute their features
  from raw fluxes, so recomputing the features is automatic.
* **Dihedral transforms** (CNN): the eight rotations/flips of each stamp. An epoch holds
  ``dihedral_copies`` (8) copies of each galaxy and copy ``c`` gets transform ``c``, so with
  the default every stamp is seen in each of its eight orientations exactly once per epoch.
* **Hybrids**: every flux realisation is paired with an independent, uniformly random dihedral
  transform of the stamp.
* **Missing bands** (:func:`~csst_photoz.models.features.missing_bands`: NaN flux or error, or an
  error that is not finite and > 0) stay exactly as they are: no noise is added to them, so
  training sees the same missing values as prediction. **Band dropout**
  (``TrainingConfig.band_dropout``, networks whose features have missing indicators only): each
  present band of each sample is removed (its flux set to NaN) with that probability, never the
  last present band of a row, so the network learns to predict from incomplete photometry.

All randomness comes from an explicit :class:`torch.Generator`: `epoch_generator` derives one
per (seed, epoch, process) on the training device, so an epoch's augmentation depends only on
those numbers (an interrupted run resumes with identical draws).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..models.features import missing_bands
from ..models.stamp_transform import N_DIHEDRAL, dihedral
from .batches import Batch
from .config import TrainingConfig
from .recipes import Recipe, recipe

__all__ = [
    "AugmentPlan",
    "DihedralMode",
    "augment_batch",
    "dihedral_choice",
    "drop_bands",
    "epoch_generator",
    "realise_fluxes",
    "with_band_dropout",
]

DihedralMode = Literal["none", "cycle", "random"]
# separates the augmentation streams from any other use of the run's seed
_AUGMENT_KEY = 0x617567


@dataclass(frozen=True)
class AugmentPlan:
    """How one network's training samples are augmented.

    Attributes
    ----------
    copies
        Augmented copies of each training galaxy per epoch.
    flux_noise
        Draw a flux realisation ``F + N(0, sigma_F)`` for every sample.
    dihedral
        ``"none"``; ``"cycle"``: copy ``c`` gets transform ``c % 8``; ``"random"``: uniform.
    band_dropout
        Probability of removing each present band of a sample (`drop_bands`; 0: never).
    """

    copies: int
    flux_noise: bool
    dihedral: DihedralMode
    band_dropout: float = 0.0

    def __post_init__(self) -> None:
        """Check the dropout probability."""
        if not 0.0 <= self.band_dropout < 1.0:
            raise ValueError(f"band_dropout must be in [0, 1), got {self.band_dropout!r}")

    @classmethod
    def for_kind(cls, kind: str | Recipe, config: TrainingConfig) -> AugmentPlan:
        """The paper's augmentation of network ``kind``: ``recipe(kind).augmentation(config)``."""
        return recipe(kind).augmentation(config)


def with_band_dropout(plan: AugmentPlan, model: object, probability: float) -> AugmentPlan:
    """``plan`` with band dropout where it applies: flux noise and missing-band indicators.

    Parameters
    ----------
    plan
        The network's augmentation (:meth:`Recipe.augmentation`).
    model
        The network; only one whose flux features have ``missing = "indicator"`` learns from
        bands removed at random.
    probability
        The dropout probability (``TrainingConfig.band_dropout``).
    """
    features = getattr(model, "features", None)
    if not plan.flux_noise or getattr(features, "missing", None) != "indicator":
        return plan
    return replace(plan, band_dropout=probability)


def epoch_generator(
    seed: int, epoch: int, *, rank: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator on ``device`` seeded from (seed, epoch, rank) alone."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), _AUGMENT_KEY, epoch, rank])
    value = int(state.generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1)
    return torch.Generator(device=torch.device(device)).manual_seed(value)


def realise_fluxes(fluxes: Tensor, flux_errors: Tensor, *, generator: torch.Generator) -> Tensor:
    """One Gaussian realisation per row: ``fluxes + N(0, 1) * flux_errors``, missing bands kept.

    A missing band (:func:`~csst_photoz.models.features.missing_bands`) keeps its value (NaN,
    or a flux beside a non-positive error), so it is still missing afterwards.

    Parameters
    ----------
    fluxes, flux_errors
        (n, bands) measured fluxes and their 1-sigma errors.
    generator
        Random stream on the tensors' device.

    Returns
    -------
    Tensor
        (n, bands) realised fluxes (the errors are unchanged).
    """
    if fluxes.shape != flux_errors.shape:
        raise ValueError(
            f"fluxes {tuple(fluxes.shape)} and errors {tuple(flux_errors.shape)} differ in shape"
        )
    noise = torch.randn(fluxes.shape, generator=generator, device=fluxes.device, dtype=fluxes.dtype)
    return torch.where(missing_bands(fluxes, flux_errors), fluxes, fluxes + noise * flux_errors)


def drop_bands(
    fluxes: Tensor, flux_errors: Tensor, probability: float, *, generator: torch.Generator
) -> Tensor:
    """Remove each present band with ``probability`` (flux set to NaN), keeping one per row.

    Parameters
    ----------
    fluxes, flux_errors
        (n, bands) fluxes and their errors (which decide what is present).
    probability
        Chance of removing each present band, in [0, 1).
    generator
        Random stream on the tensors' device.

    Returns
    -------
    Tensor
        (n, bands) fluxes with the dropped bands NaN; a row that would lose every present band
        keeps them all.
    """
    present = ~missing_bands(fluxes, flux_errors)
    draw = torch.rand(fluxes.shape, generator=generator, device=fluxes.device)
    drop = present & (draw < probability)
    emptied = (present & ~drop).sum(dim=1) == 0
    drop &= ~emptied.unsqueeze(1)
    return torch.where(drop, torch.full_like(fluxes, float("nan")), fluxes)


def dihedral_choice(
    copy_index: Tensor, mode: DihedralMode, *, generator: torch.Generator
) -> Tensor | None:
    """The dihedral transform (0-7) of each sample, or None for ``mode="none"``.

    Parameters
    ----------
    copy_index
        (n,) copy number of each sample (used by ``"cycle"``).
    mode
        ``"none"``, ``"cycle"`` or ``"random"`` (see `AugmentPlan`).
    generator
        Random stream (``"random"``), on ``copy_index``'s device.
    """
    if mode == "none":
        return None
    if mode == "cycle":
        return copy_index.remainder(N_DIHEDRAL)
    if mode == "random":
        return torch.randint(
            0, N_DIHEDRAL, copy_index.shape, generator=generator, device=copy_index.device
        )
    raise ValueError(f"unknown dihedral mode {mode!r}")


def augment_batch(
    batch: Batch, copy_index: Tensor, plan: AugmentPlan, *, generator: torch.Generator
) -> tuple[Batch, Tensor | None]:
    """Augment one training batch as ``plan`` says.

    The flux noise is drawn before the band dropout and the transforms, all from
    ``generator``.

    Parameters
    ----------
    batch
        Measured fluxes and errors and/or stamps of the batch's galaxies.
    copy_index
        (n,) copy number of each sample, on the batch's device.
    plan
        The network's augmentation.
    generator
        Random stream on the batch's device.

    Returns
    -------
    batch : Batch
        The augmented batch (inputs the plan does not touch are passed through).
    transforms : Tensor or None
        (n,) dihedral transform applied to each stamp, or None.
    """
    fluxes, stamps = batch.fluxes, batch.stamps
    if plan.flux_noise and fluxes is not None and batch.flux_errors is not None:
        fluxes = realise_fluxes(fluxes, batch.flux_errors, generator=generator)
    if plan.band_dropout > 0 and fluxes is not None and batch.flux_errors is not None:
        fluxes = drop_bands(fluxes, batch.flux_errors, plan.band_dropout, generator=generator)
    transforms = dihedral_choice(copy_index, plan.dihedral, generator=generator)
    if transforms is not None and stamps is not None:
        stamps = dihedral(stamps, transforms)
    return replace(batch, fluxes=fluxes, stamps=stamps), transforms
