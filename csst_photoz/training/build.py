"""Untrained networks sized and normalised for a training set (and the hybrid-transfer start).

* MLP and hybrid: limiting fluxes from the configuration, else 5 x the median flux error of the
  training rows (:func:`~csst_photoz.models.estimate_limiting_flux`); the feature
  standardisation is fitted on the training rows' measured fluxes.
* CNN and hybrid: background noise from the configuration, else estimated from the stamps'
  borders (:func:`~csst_photoz.training.data.estimate_background_rms`).
* Hybrid transfer: :meth:`Hybrid.from_pretrained` of the MLP and CNN checkpoints named in the
  configuration, which must have been trained on the same data and split (otherwise the
  transferred layers may have learnt from this run's validation or test galaxies).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..models import (
    CNN,
    MLP,
    CNNConfig,
    Hybrid,
    HybridConfig,
    MLPConfig,
    PhotoZModel,
    estimate_limiting_flux,
    load_model,
)
from .config import TrainingConfig, check_kind
from .data import TrainingSet
from .split import Split

__all__ = ["build_model", "training_metadata"]


def training_metadata(
    kind: str, config: TrainingConfig, dataset: TrainingSet, split: Split
) -> dict[str, Any]:
    """What a checkpoint records about its training (the ``extra["training"]`` entry)."""
    return {
        "kind": kind,
        "config": config.model_dump(mode="json"),
        "data_source": str(dataset.source),
        "data_hash": dataset.data_hash,
        "split": split.describe(),
        "columns": {
            "flux": config.columns.flux_columns(dataset.bands),
            "flux_err": config.columns.error_columns(dataset.bands),
            "redshift": config.columns.redshift,
        },
        "n_selected": len(dataset),
    }


def _mlp_config(
    dataset: TrainingSet, train: npt.NDArray[np.int64], config: TrainingConfig
) -> MLPConfig:
    limits = config.limiting_flux
    if limits is None:
        limits = tuple(estimate_limiting_flux(dataset.flux_errors[train]).tolist())
    if len(limits) != len(dataset.bands):
        raise ValueError(f"{len(limits)} limiting fluxes for bands {dataset.bands}")
    return MLPConfig(bands=dataset.bands, limiting_flux=limits)


def _cnn_config(dataset: TrainingSet, config: TrainingConfig) -> CNNConfig:
    rms = config.background_rms
    if rms is None:
        if dataset.background_rms is None:
            raise ValueError(f"{dataset.source}: no stamps to estimate the background noise from")
        rms = tuple(float(x) for x in dataset.background_rms)
    if len(rms) != len(dataset.bands):
        raise ValueError(f"{len(rms)} background noise levels for bands {dataset.bands}")
    return CNNConfig(
        bands=dataset.bands,
        background_rms=rms,
        stamp_size=config.stamp_size,
        scaling=config.stamp_scaling,
        pad_seed=config.seed,
    )


def _fit_features(model: MLP | Hybrid, dataset: TrainingSet, train: np.ndarray) -> None:
    model.features.fit(
        torch.from_numpy(dataset.fluxes[train]), torch.from_numpy(dataset.flux_errors[train])
    )


def _pretrained(path: Path | None, architecture: str, dataset: TrainingSet, split: Split) -> Any:
    if path is None:
        raise ValueError(
            f"hybrid-transfer needs a trained {architecture.upper()}: set {architecture}_checkpoint"
        )
    model = load_model(path, bands=dataset.bands)
    if model.architecture != architecture:
        raise ValueError(f"{path}: a {model.architecture} checkpoint, expected {architecture}")
    recorded = model.checkpoint_metadata.get("extra", {}).get("training", {})
    if not recorded:
        warnings.warn(
            f"{path} records no training data or split; make sure it never saw this run's "
            "validation or test galaxies",
            stacklevel=3,
        )
        return model
    if recorded.get("data_hash") != dataset.data_hash:
        raise ValueError(f"{path} was trained on other data than {dataset.source}")
    if recorded.get("split", {}).get("sha256") != split.fingerprint():
        raise ValueError(
            f"{path} was trained on another train/validation/test split (seed or fractions "
            "differ): its layers may have learnt from this run's test galaxies"
        )
    return model


def build_model(
    kind: str, dataset: TrainingSet, train: npt.ArrayLike, config: TrainingConfig, split: Split
) -> PhotoZModel:
    """The untrained network ``kind`` for ``dataset``, on the CPU.

    Parameters
    ----------
    kind
        ``"mlp"``, ``"cnn"``, ``"hybrid"`` or ``"hybrid-transfer"``.
    dataset
        The training set.
    train
        Positions of the training rows in ``dataset`` (for the fitted input statistics).
    config
        Training configuration; its seed fixes the initial weights.
    split
        The run's split (hybrid transfer checks its checkpoints against it).

    Returns
    -------
    PhotoZModel
    """
    kind = check_kind(kind)
    train = np.asarray(train, dtype=np.int64)
    torch.manual_seed(config.seed)
    if kind == "mlp":
        model = MLP(_mlp_config(dataset, train, config))
        _fit_features(model, dataset, train)
        return model
    if kind == "cnn":
        return CNN(_cnn_config(dataset, config))
    if kind == "hybrid":
        hybrid = Hybrid(
            HybridConfig(mlp=_mlp_config(dataset, train, config), cnn=_cnn_config(dataset, config))
        )
        _fit_features(hybrid, dataset, train)
        return hybrid
    mlp = _pretrained(config.mlp_checkpoint, "mlp", dataset, split)
    cnn = _pretrained(config.cnn_checkpoint, "cnn", dataset, split)
    return Hybrid.from_pretrained(mlp, cnn, freeze=True)
