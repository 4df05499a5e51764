"""In-memory training tensors and the order in which an epoch visits them.

An epoch of a network with ``c`` augmented copies per galaxy (`AugmentPlan.copies`) visits
``n_train x c`` *samples*: sample ``s`` is copy ``s // n_train`` of galaxy ``s % n_train``.
The samples are shuffled by :class:`torch.utils.data.DistributedSampler` (seeded by the run's
seed and the epoch number, so an epoch's order is the same whether or not the run was
interrupted before it), which also gives each process of a distributed run an equal share.
A final batch of fewer than two samples is dropped (batch normalisation needs two).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .data import TrainingSet

__all__ = ["Batch", "TensorSet", "epoch_batches", "n_epoch_batches"]


@dataclass(frozen=True)
class Batch:
    """Inputs and targets of one batch (tensors on the training device).

    Attributes
    ----------
    redshift
        (n,) true redshifts.
    fluxes, flux_errors
        (n, bands) or None for the CNN.
    stamps
        (n, bands, S, S) or None for the MLP.
    """

    redshift: Tensor
    fluxes: Tensor | None = None
    flux_errors: Tensor | None = None
    stamps: Tensor | None = None

    def inputs(self) -> dict[str, Tensor]:
        """The model's keyword inputs (those that are not None)."""
        given = {"fluxes": self.fluxes, "flux_errors": self.flux_errors, "stamps": self.stamps}
        return {name: value for name, value in given.items() if value is not None}

    def __len__(self) -> int:
        """Rows in the batch."""
        return int(self.redshift.shape[0])


@dataclass(frozen=True)
class TensorSet:
    """One split of a training set as tensors on a device.

    Attributes
    ----------
    redshift, fluxes, flux_errors, stamps
        As in `Batch`, for every galaxy of the split.
    """

    redshift: Tensor
    fluxes: Tensor | None = None
    flux_errors: Tensor | None = None
    stamps: Tensor | None = None

    @classmethod
    def from_training_set(
        cls,
        dataset: TrainingSet,
        positions: npt.ArrayLike,
        *,
        device: torch.device | str = "cpu",
        fluxes: bool = True,
        stamps: bool = False,
    ) -> TensorSet:
        """The rows ``positions`` of ``dataset`` on ``device``.

        Parameters
        ----------
        dataset
            The loaded training set.
        positions
            Positions within ``dataset`` (not table rows).
        device
            Where the tensors live.
        fluxes, stamps
            Which inputs to keep.
        """
        index = np.asarray(positions, dtype=np.int64)

        def take(array: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(array[index])).to(device)

        if stamps and dataset.stamps is None:
            raise ValueError(f"{dataset.source}: the training set was loaded without stamps")
        return cls(
            redshift=take(dataset.redshift),
            fluxes=take(dataset.fluxes) if fluxes else None,
            flux_errors=take(dataset.flux_errors) if fluxes else None,
            stamps=take(dataset.stamps) if stamps and dataset.stamps is not None else None,
        )

    def __len__(self) -> int:
        """Galaxies in the split."""
        return int(self.redshift.shape[0])

    def gather(self, index: Tensor) -> Batch:
        """The galaxies ``index`` (a tensor on the set's device) as a `Batch`."""

        def take(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.index_select(0, index)

        return Batch(
            redshift=self.redshift.index_select(0, index),
            fluxes=take(self.fluxes),
            flux_errors=take(self.flux_errors),
            stamps=take(self.stamps),
        )

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Consecutive batches in row order (for evaluation)."""
        for start in range(0, len(self), batch_size):
            index = torch.arange(start, min(start + batch_size, len(self)))
            yield self.gather(index.to(self.redshift.device))


def _sampler(
    n_samples: int, *, seed: int, epoch: int, rank: int, world_size: int
) -> DistributedSampler:
    sampler = DistributedSampler(
        range(n_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return sampler


def n_epoch_batches(n_samples: int, *, batch_size: int, world_size: int = 1) -> int:
    """Batches each process runs in an epoch of ``n_samples`` samples (see `epoch_batches`)."""
    per_rank = -(-n_samples // world_size)
    full, rest = divmod(per_rank, batch_size)
    return full + (1 if rest >= 2 else 0)


def epoch_batches(
    n_samples: int,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Tensor]:
    """Sample indices of one epoch for one process, batch by batch.

    Parameters
    ----------
    n_samples
        Samples in the epoch (galaxies x copies).
    batch_size
        Samples per batch of this process.
    seed, epoch
        Seed of the shuffle (the same on every process) and the epoch number.
    rank, world_size
        This process and the number of processes (every process gets the same number of
        batches; the sampler repeats a few samples to even out the shares).

    Yields
    ------
    Tensor
        int64 CPU tensors of sample indices.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.as_tensor(
        list(_sampler(n_samples, seed=seed, epoch=epoch, rank=rank, world_size=world_size)),
        dtype=torch.int64,
    )
    for start in range(0, order.numel(), batch_size):
        chunk = order[start : start + batch_size]
        if chunk.numel() >= 2:
            yield chunk
