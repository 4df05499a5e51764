"""Predictions on a held-out split and the metrics monitored during training.

``loss`` is the paper's validation loss (MAE of z); ``accuracy`` the paper's monitored
"accuracy", the fraction with ``|dz| < 0.15 (1 + z_true)``; ``sigma_nmad``, ``outlier_fraction``
and ``bias`` follow :mod:`csst_photoz.metrics`; ``nll`` is the uncertainty head's Gaussian
negative log-likelihood and ``coverage_68`` the fraction with ``|dz| < sigma`` (0.68 when the
uncertainties are calibrated).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from ..metrics.point import OUTLIER_THRESHOLD, point_metrics
from ..models import Prediction, gaussian_nll
from .batches import TensorSet

__all__ = ["predict_split", "validation_metrics"]


def predict_split(
    model: nn.Module,
    data: TensorSet,
    *,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates and ``log sigma`` of every galaxy of ``data``, in evaluation mode.

    The model's training mode is restored afterwards.

    Returns
    -------
    z, log_sigma : numpy.ndarray
        (n,) float64 each.
    """
    was_training = model.training
    model.eval()
    z, log_sigma = [], []
    try:
        with torch.inference_mode():
            for batch in data.batches(batch_size):
                with autocast():
                    out = model(**batch.inputs())
                z.append(out.z.float().cpu())
                log_sigma.append(out.log_sigma.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(z).double().numpy(), torch.cat(log_sigma).double().numpy()


def validation_metrics(
    z_true: np.ndarray, z_pred: np.ndarray, log_sigma: np.ndarray
) -> dict[str, float]:
    """The monitored metrics (module docstring); all NaN if a prediction is not finite."""
    z_true = np.asarray(z_true, dtype=np.float64)
    z_pred = np.asarray(z_pred, dtype=np.float64)
    log_sigma = np.asarray(log_sigma, dtype=np.float64)
    names = ("loss", "nll", "sigma_nmad", "outlier_fraction", "accuracy", "bias", "coverage_68")
    if not (np.all(np.isfinite(z_pred)) and np.all(np.isfinite(log_sigma))):
        return dict.fromkeys(names, math.nan)
    dz = z_pred - z_true
    point = point_metrics(z_true, z_pred)
    nll = gaussian_nll(
        Prediction(torch.from_numpy(z_pred), torch.from_numpy(log_sigma)), torch.from_numpy(z_true)
    )
    return {
        "loss": float(np.mean(np.abs(dz))),
        "nll": float(nll),
        "sigma_nmad": point["sigma_nmad"],
        "outlier_fraction": point["outlier_fraction"],
        "accuracy": float(np.mean(np.abs(dz) < OUTLIER_THRESHOLD * (1.0 + z_true))),
        "bias": point["bias"],
        "coverage_68": float(np.mean(np.abs(dz) < np.exp(log_sigma))),
    }
