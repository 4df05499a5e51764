"""Batched inference of several networks over one catalogue, stamps cut batch by batch.

The batch processor's inference stage, free of I/O and scheduling: fluxes (host) and a function
that cuts the stamps of a batch of rows (on whatever device the tile lives on) go in; redshifts,
uncertainties and domain flags per model come out. Stamps are cut once per batch and shared by
every stamp network, so a full tile's stamps never sit in memory together. CuPy stamps reach
torch without a host round trip (``torch.as_tensor`` reads the CUDA array interface); on CUDA
the networks run under bfloat16 autocast when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..pz.grid import PzGrid
from .base import PhotoZEstimate, PhotoZModel
from .domain import FLAG_DTYPE
from .precision import bf16_autocast

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


def _flux_columns(
    models: Mapping[str, PhotoZModel], flux_index: Mapping[str, Sequence[int]], width: int
) -> dict[str, list[int]]:
    """``flux_index`` checked: every flux network, one column per band, within ``width``."""
    columns = {}
    for name, model in models.items():
        if "fluxes" not in model.input_names:
            continue
        index = [int(k) for k in flux_index.get(name, ())]
        if len(index) != model.n_bands or not all(0 <= k < width for k in index):
            raise ValueError(
                f"{name}: flux_index needs {model.n_bands} columns of the {width} given, "
                f"got {index}"
            )
        columns[name] = index
    return columns


def _device_of(model: PhotoZModel) -> torch.device:
    return next(model.parameters()).device


def predict_catalog(
    models: Mapping[str, PhotoZModel],
    bands: Sequence[str],
    fluxes: np.ndarray,
    flux_errors: np.ndarray,
    cut_stamps: StampCutter | None,
    *,
    flux_index: Mapping[str, Sequence[int]] | None = None,
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
        Band order of the planes of the stamps, and of the columns of ``fluxes`` unless
        ``flux_index`` is given.
    fluxes, flux_errors
        (n, k) host arrays in the networks' flux unit (electrons for CSST checkpoints).
    cut_stamps
        Cuts the stamps of a batch of rows (None if no model needs stamps).
    flux_index
        Per flux network, the columns of ``fluxes`` it reads, in its band order (the
        catalogue columns its checkpoint declares). Default: the columns are ``bands`` and each
        network reads its bands' columns.
    batch_size
        Rows per batch.
    mixed_precision
        bfloat16 autocast on CUDA for the stamp networks (flux-only networks stay float32).
    seed
        Seed of the stamp transform's padding noise (per batch).

    Returns
    -------
    dict
        Output name -> `PhotoZEstimate` (``z``, ``z_err``: float32; ``flag``: uint16 domain
        flag, :mod:`csst_photoz.models.domain`; length n; ``pz``: (n, bins) float32 bin
        probabilities for a network with a p(z) head, else None).
    """
    n = int(fluxes.shape[0])
    width = len(bands) if flux_index is None else fluxes.shape[-1]
    if flux_errors.shape != fluxes.shape or fluxes.ndim != 2 or fluxes.shape[1] != width:
        raise ValueError(
            f"fluxes and errors must both be (n, {width}); got {fluxes.shape} and "
            f"{flux_errors.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    planes = {  # stamp planes of each stamp network (and, by default, flux columns)
        name: select_bands(model, bands)
        for name, model in models.items()
        if flux_index is None or "stamps" in model.input_names
    }
    columns = planes if flux_index is None else _flux_columns(models, flux_index, width)
    needs_stamps = any("stamps" in model.input_names for model in models.values())
    if needs_stamps and cut_stamps is None:
        raise ValueError("a stamp network was given but no stamp cutter")
    z = {name: np.empty(n, dtype=np.float32) for name in models}
    z_err = {name: np.empty(n, dtype=np.float32) for name in models}
    flag = {name: np.empty(n, dtype=FLAG_DTYPE) for name in models}
    pz = {
        name: np.empty((n, model.pz_config.bins), dtype=np.float32)
        for name, model in models.items()
        if model.pz_config is not None
    }
    grids = {
        name: PzGrid(model.pz_config.z_min, model.pz_config.z_max, model.pz_config.bins)
        for name, model in models.items()
        if model.pz_config is not None
    }
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n), dtype=np.int64)
        stamps = cut_stamps(rows) if needs_stamps and cut_stamps is not None else None
        for name, model in models.items():
            device = _device_of(model)
            inputs: dict[str, Any] = {}
            if "fluxes" in model.input_names:
                index = columns[name]
                inputs["fluxes"] = torch.from_numpy(
                    np.ascontiguousarray(fluxes[rows][:, index], dtype=np.float32)
                ).to(device)
                inputs["flux_errors"] = torch.from_numpy(
                    np.ascontiguousarray(flux_errors[rows][:, index], dtype=np.float32)
                ).to(device)
            if "stamps" in model.input_names:
                index = planes[name]
                cube = torch.as_tensor(stamps, device=device)
                inputs["stamps"] = cube[:, index] if index != list(range(len(bands))) else cube
            # bfloat16 only where it pays: the convolutions of stamp networks; flux-only
            # networks are tiny and lose accuracy in bf16 (benchmarks/inference.py: the MLP
            # moves by up to 0.4 in z on 21% of galaxies by > 0.01 (1+z) under bf16)
            low_precision = mixed_precision and "stamps" in model.input_names
            with bf16_autocast(device, low_precision):
                estimate = model.predict(**inputs, batch_size=len(rows), seed=seed)
            z[name][rows] = estimate.z
            z_err[name][rows] = estimate.z_err
            flag[name][rows] = estimate.flag
            if name in pz:
                pz[name][rows] = estimate.pz
    return {
        name: PhotoZEstimate(
            z=z[name], z_err=z_err[name], flag=flag[name], pz=pz.get(name), pz_grid=grids.get(name)
        )
        for name in models
    }
