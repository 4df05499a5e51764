"""Batched inference of several networks over one catalogue, stamps cut batch by batch.

The batch processor's inference stage, free of I/O and scheduling: fluxes (host) and a function
that cuts the stamps of a batch of rows (on whatever device the tile lives on) go in; redshifts
and uncertainties per model come out. Stamps are cut once per batch and shared by every stamp
network, so a full tile's stamps never sit in memory together. CuPy stamps reach torch without
a host round trip (``torch.as_tensor`` reads the CUDA array interface); on CUDA the networks run
under bfloat16 autocast when asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .base import PhotoZEstimate, PhotoZModel

__all__ = ["StampCutter", "predict_catalog", "select_bands"]

#: Cuts the stamps of the given rows: (n,) int64 host rows -> (n, bands, S, S) array.
StampCutter = Callable[[np.ndarray], Any]


def select_bands(model: PhotoZModel, bands: Sequence[str]) -> list[int]:
    """Indices into ``bands`` of the model's bands, in the model's order.

    Raises
    ------
    ValueError
        When the catalogue lacks a band the model needs.
    """
    missing = [band for band in model.bands if band not in bands]
    if missing:
        raise ValueError(
            f"{model.variant} needs bands {list(model.bands)}; the tile lacks {missing}"
        )
    return [list(bands).index(band) for band in model.bands]


@contextlib.contextmanager
def _precision(device: torch.device, mixed_precision: bool) -> Iterator[None]:
    if mixed_precision and device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def _device_of(model: PhotoZModel) -> torch.device:
    return next(model.parameters()).device


def predict_catalog(
    models: Mapping[str, PhotoZModel],
    bands: Sequence[str],
    fluxes: np.ndarray,
    flux_errors: np.ndarray,
    cut_stamps: StampCutter | None,
    *,
    batch_size: int = 4096,
    mixed_precision: bool = True,
    seed: int = 0,
) -> dict[str, PhotoZEstimate]:
    """Redshifts of every source from every model.

    Parameters
    ----------
    models
        Output name -> network (on the device to run on).
    bands
        Band order of the columns of ``fluxes`` and the planes of the stamps.
    fluxes, flux_errors
        (n, n_bands) host arrays in the networks' flux unit (electrons for CSST checkpoints).
    cut_stamps
        Cuts the stamps of a batch of rows (None if no model needs stamps).
    batch_size
        Rows per batch.
    mixed_precision
        bfloat16 autocast on CUDA for the stamp networks (flux-only networks stay float32).
    seed
        Seed of the stamp transform's padding noise (per batch).

    Returns
    -------
    dict
        Output name -> `PhotoZEstimate` (``z``, ``z_err``; float32, length n).
    """
    n = int(fluxes.shape[0])
    if flux_errors.shape != fluxes.shape or fluxes.ndim != 2 or fluxes.shape[1] != len(bands):
        raise ValueError(
            f"fluxes and errors must both be (n, {len(bands)}); got {fluxes.shape} and "
            f"{flux_errors.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    columns = {name: select_bands(model, bands) for name, model in models.items()}
    needs_stamps = any("stamps" in model.input_names for model in models.values())
    if needs_stamps and cut_stamps is None:
        raise ValueError("a stamp network was given but no stamp cutter")
    z = {name: np.empty(n, dtype=np.float32) for name in models}
    z_err = {name: np.empty(n, dtype=np.float32) for name in models}
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n), dtype=np.int64)
        stamps = cut_stamps(rows) if needs_stamps and cut_stamps is not None else None
        for name, model in models.items():
            device = _device_of(model)
            index = columns[name]
            inputs: dict[str, Any] = {}
            if "fluxes" in model.input_names:
                inputs["fluxes"] = torch.from_numpy(
                    np.ascontiguousarray(fluxes[rows][:, index], dtype=np.float32)
                ).to(device)
                inputs["flux_errors"] = torch.from_numpy(
                    np.ascontiguousarray(flux_errors[rows][:, index], dtype=np.float32)
                ).to(device)
            if "stamps" in model.input_names:
                planes = torch.as_tensor(stamps, device=device)
                inputs["stamps"] = planes[:, index] if index != list(range(len(bands))) else planes
            # bfloat16 only where it pays: the convolutions of stamp networks; flux-only
            # networks are tiny and lose accuracy in bf16 (benchmarks/inference.py: the MLP
            # moves by up to 0.4 in z on 21% of galaxies by > 0.01 (1+z) under bf16)
            low_precision = mixed_precision and "stamps" in model.input_names
            with _precision(device, low_precision):
                estimate = model.predict(**inputs, batch_size=len(rows), seed=seed)
            z[name][rows] = estimate.z
            z_err[name][rows] = estimate.z_err
    return {name: PhotoZEstimate(z=z[name], z_err=z_err[name]) for name in models}
