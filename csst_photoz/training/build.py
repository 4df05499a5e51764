"""Untrained networks sized and normalised for a training set (and the hybrid-transfer start).

`build_model` makes the network a `~csst_photoz.training.recipes.Recipe` describes: an MLP when
it reads fluxes alone, a CNN for stamps alone, a hybrid for both, or a hybrid transfer from
trained checkpoints when the recipe is ``pretrained``.

* MLP and hybrid: limiting fluxes from the configuration, else 5 x the median flux error of the
  training rows (:func:`~csst_photoz.models.estimate_limiting_flux`); the feature
  standardisation is fitted on the training rows' measured fluxes; features with missing-band
  indicators (``MLPConfig.missing = "indicator"``, :mod:`csst_photoz.models.features`).
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

from ..io.checkpoint_metadata import TrainingRecord
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
from . import recipes
from .config import TrainingConfig
from .data import TrainingSet
from .recipes import Recipe
from .split import Split

__all__ = ["build_model", "training_metadata"]


def training_metadata(
    kind: str,
    config: TrainingConfig,
    dataset: TrainingSet,
    split: Split,
    *,
    epoch: int | None = None,
    world_size: int | None = None,
    device: str | None = None,
    augmentation: dict[str, Any] | None = None,
) -> TrainingRecord:
    """What a checkpoint records about its training (``save_model(..., training=...)``).

    ``epoch``, ``world_size``, ``device`` and ``augmentation`` describe the saved epoch, the
    processes, the device type and the augmentation plan (None when not given).
    """
    return TrainingRecord.model_validate(
        {
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
            "epoch": epoch,
            "world_size": world_size,
            "device": device,
            "augmentation": augmentation,
        }
    )


def _mlp_config(
    dataset: TrainingSet, train: npt.NDArray[np.int64], config: TrainingConfig
) -> MLPConfig:
    limits = config.limiting_flux
    if limits is None:
        limits = tuple(estimate_limiting_flux(dataset.flux_errors[train]).tolist())
    if len(limits) != len(dataset.bands):
        raise ValueError(f"{len(limits)} limiting fluxes for bands {dataset.bands}")
    return MLPConfig(
        bands=dataset.bands, limiting_flux=limits, missing="indicator", pz=config.pz_config()
    )


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
        pz=config.pz_config(),
    )


def _fit_features(model: MLP | Hybrid, dataset: TrainingSet, train: np.ndarray) -> None:
    model.features.fit(
        torch.from_numpy(dataset.fluxes[train]), torch.from_numpy(dataset.flux_errors[train])
    )


def _pretrained(
    path: Path | None, architecture: str, dataset: TrainingSet, split: Split, name: str
) -> Any:
    if path is None:
        raise ValueError(
            f"{name} needs a trained {architecture.upper()}: set {architecture}_checkpoint"
        )
    model = load_model(path, bands=dataset.bands)
    if model.architecture != architecture:
        raise ValueError(f"{path}: a {model.architecture} checkpoint, expected {architecture}")
    recorded = model.checkpoint_metadata.training
    if recorded is None:
        warnings.warn(
            f"{path} records no training data or split; make sure it never saw this run's "
            "validation or test galaxies",
            stacklevel=3,
        )
        return model
    if recorded.data_hash != dataset.data_hash:
        raise ValueError(f"{path} was trained on other data than {dataset.source}")
    if recorded.split.sha256 != split.fingerprint():
        raise ValueError(
            f"{path} was trained on another train/validation/test split (seed or fractions "
            "differ): its layers may have learnt from this run's test galaxies"
        )
    return model


def build_model(
    recipe: Recipe | str,
    dataset: TrainingSet,
    train: npt.ArrayLike,
    config: TrainingConfig,
    split: Split,
) -> PhotoZModel:
    """The untrained network of ``recipe`` for ``dataset``, on the CPU.

    Parameters
    ----------
    recipe
        The network's `~csst_photoz.training.recipes.Recipe`, or its name.
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
    recipe = recipes.recipe(recipe)
    train = np.asarray(train, dtype=np.int64)
    torch.manual_seed(config.seed)
    if recipe.pretrained:
        mlp = _pretrained(config.mlp_checkpoint, "mlp", dataset, split, recipe.name)
        cnn = _pretrained(config.cnn_checkpoint, "cnn", dataset, split, recipe.name)
        return Hybrid.from_pretrained(mlp, cnn, freeze=True, pz=config.pz_config())
    if not recipe.reads_fluxes:
        return CNN(_cnn_config(dataset, config))
    model: MLP | Hybrid
    if recipe.reads_stamps:
        hybrid_config = HybridConfig(
            mlp=_mlp_config(dataset, train, config),
            cnn=_cnn_config(dataset, config),
            pz=config.pz_config(),
        )
        model = Hybrid(hybrid_config)
    else:
        model = MLP(_mlp_config(dataset, train, config))
    _fit_features(model, dataset, train)
    return model
