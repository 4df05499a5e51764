"""`fit_pz_head`: give a trained network a p(z) head, fitted on its frozen last hidden layer.

The p(z) head (:mod:`csst_photoz.models.pz_head`) reads the network's last hidden layer
*detached*: its loss never reaches the point-estimate network. A head can therefore be fitted
after the network, on the trained network's features, without changing anything else: the
weights, ``z``, ``z_err`` and the domain flag stay bit for bit those of the checkpoint. This is
how a checkpoint trained without a head (the shipped ones, anything written before p(z) heads
existed) gains one, and it costs forward passes only:

1. the checkpoint's training set is loaded and its split redrawn and checked as
   ``csst-photoz predict`` does (same data hash, same split fingerprint), so the head sees the
   network's training rows and is selected and recalibrated on its validation rows, never on
   the test rows;
2. the hidden layer of ``copies`` augmented copies of every training galaxy (the network's own
   recipe: flux realisations, stamp rotations and flips, band dropout) is computed once, in
   evaluation mode, together with that of the unaugmented validation galaxies;
3. the head (seeded) is trained with Adam on these features (its cross-entropy or mixture
   negative log-likelihood), keeping the epoch with the lowest validation loss and stopping
   after ``patience`` epochs without improvement;
4. the p(z) is recalibrated on the validation split (and the uncertainty factor refitted on
   the same galaxies: the same value, as ``z`` and ``sigma`` are unchanged) by
   :func:`~csst_photoz.training.calibrate.calibrate_model`, and the checkpoint is written with
   a :class:`~csst_photoz.io.checkpoint_metadata.PzHeadFit` record saying how.

A network trained with its head from the start learns the head on features that move while
the network trains; here the head sees the final features, the ones it will be used on.

::

    csst-photoz pz fit --checkpoint mlp.pt --data DIR --out mlp-pz.pt
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import __version__
from ..io.checkpoint_metadata import PzHeadFit
from ..models import PhotoZModel, model_class
from ..models.base import config_to_dict
from ..models.pz_head import PzConfig, pz_loss
from .augment import AugmentPlan, augment_batch, epoch_generator, with_band_dropout
from .batches import TensorSet
from .calibrate import calibrate_model
from .config import TrainingConfig
from .data import TrainingDataError
from .recipes import recipe

__all__ = ["METHOD", "REFIT_METHOD", "PzFitResult", "fit_pz_head", "refit_head"]

#: What `fit_pz_head` trains on what (recorded in the checkpoint).
METHOD = "p(z) head fitted on the frozen network's last hidden layer (training split)"
#: What `~csst_photoz.training.train_model` does with a head trained with its network.
REFIT_METHOD = (
    "p(z) head trained with the network, then refitted on the frozen best network's last "
    "hidden layer (training split)"
)
_HEAD_PREFIX = "pz_head."


@dataclass(frozen=True)
class PzFitResult:
    """What `fit_pz_head` wrote.

    Attributes
    ----------
    path
        The checkpoint written.
    record
        How the head was fitted (also in the checkpoint's ``pz.head_fit``).
    history
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``.
    pit_ks_before, pit_ks_after
        KS distance of the validation PIT to uniform before and after the recalibration.
    """

    path: Path
    record: PzHeadFit
    history: list[dict[str, float]]
    pit_ks_before: float | None
    pit_ks_after: float | None


def _with_new_head(model: PhotoZModel, pz: PzConfig, seed: int) -> PhotoZModel:
    """A copy of ``model`` (weights, calibration, domain, metadata) with a fresh, seeded head."""
    config = {**config_to_dict(model.config), "pz": dataclasses.asdict(pz)}
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        fresh = model_class(model.architecture).from_config_dict(config)
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith(_HEAD_PREFIX)}
    missing, unexpected = fresh.load_state_dict(weights, strict=False)
    if unexpected or any(not key.startswith(_HEAD_PREFIX) for key in missing):
        raise RuntimeError(f"cannot move the weights: missing {missing}, unexpected {unexpected}")
    fresh.set_sigma_calibration(model.sigma_calibration)
    fresh.set_domain(model.domain)
    fresh.checkpoint_metadata = model.checkpoint_metadata
    return fresh.eval()


def _hidden_features(
    model: PhotoZModel,
    data: TensorSet,
    *,
    copies: int,
    plan: AugmentPlan | None,
    seed: int,
    batch_size: int,
    progress: bool,
    label: str,
) -> tuple[Tensor, Tensor]:
    """The head's input for ``copies`` augmented copies of every galaxy of ``data``.

    Copy ``c`` of galaxy ``i`` is augmented as the network's training saw copy ``c``
    (``plan``; a random stream per copy, seeded), in evaluation mode. Returns the (n x copies,
    width) features and the matching (n x copies,) true redshifts.
    """
    head = model.pz_head
    captured: list[Tensor] = []
    hook = head.register_forward_hook(
        lambda _module, args, _out: captured.append(args[0].detach().float())
    )
    n, device = len(data), data.redshift.device
    redshifts = []
    try:
        bar = tqdm(total=copies * math.ceil(n / batch_size), desc=f"{label} features",
                   unit="batch", leave=False, disable=not progress)  # fmt: skip
        with bar, torch.inference_mode():
            for copy in range(copies):
                generator = epoch_generator(seed, copy + 1, device=device)
                for start in range(0, n, batch_size):
                    index = torch.arange(start, min(start + batch_size, n), device=device)
                    batch = data.gather(index)
                    if plan is not None:
                        copy_index = torch.full_like(index, copy)
                        batch, _ = augment_batch(batch, copy_index, plan, generator=generator)
                    inputs: dict[str, Any] = batch.inputs()
                    if batch.stamps is not None:
                        inputs["generator"] = generator
                    model(**inputs)
                    redshifts.append(batch.redshift.float())
                    bar.update()
    finally:
        hook.remove()
    return torch.cat(captured), torch.cat(redshifts)


def _train_head(
    model: PhotoZModel,
    train: tuple[Tensor, Tensor],
    validation: tuple[Tensor, Tensor],
    *,
    max_epochs: int,
    patience: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool,
) -> tuple[int, float, list[dict[str, float]]]:
    """Adam on the head alone; keeps the best epoch's weights. Returns (best, loss, history).

    Epoch 0 is the head as it starts: a head trained with its network is kept as it is if no
    epoch on the final features improves its validation loss.
    """
    head, pz = model.pz_head, model.pz_config
    features, redshift = train
    optimizer = torch.optim.Adam(head.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    head.eval()
    with torch.inference_mode():  # epoch 0: the head as it starts (kept if nothing improves)
        best_loss = float(pz_loss(pz, head(validation[0]), validation[1]))
    best_epoch, history = 0, []
    best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    bar = tqdm(range(1, max_epochs + 1), desc="p(z) head", unit="epoch", disable=not progress)
    for epoch in bar:
        head.train()
        order = torch.randperm(len(redshift), generator=generator).to(redshift.device)
        total = 0.0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = pz_loss(pz, head(features[index]), redshift[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        head.eval()
        with torch.inference_mode():
            val_loss = float(pz_loss(pz, head(validation[0]), validation[1]))
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"p(z) head: validation loss {val_loss} at epoch {epoch}")
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_loss": val_loss})
        if val_loss < best_loss:
            best_epoch, best_loss = epoch, val_loss
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        bar.set_postfix(val=f"{val_loss:.4f}", best=best_epoch)
        if epoch - best_epoch >= patience:
            break
    head.load_state_dict(best_state)
    return best_epoch, best_loss, history


def refit_head(
    model: PhotoZModel,
    train_set: TensorSet,
    validation_set: TensorSet,
    *,
    plan: AugmentPlan,
    copies: int,
    seed: int,
    data: str,
    data_hash: str,
    method: str,
    max_epochs: int = 200,
    patience: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    progress: bool = True,
) -> tuple[PzHeadFit, list[dict[str, float]]]:
    """Train ``model``'s p(z) head, in place, on the frozen network's last hidden layer.

    Steps 2 and 3 of the module docstring: the features of ``copies`` augmented copies of the
    training galaxies (``plan``) and of the unaugmented validation galaxies, computed once in
    evaluation mode; Adam on the head alone, keeping the epoch of lowest validation loss
    (epoch 0: the head as it starts). Every other weight is left as it is.

    Parameters
    ----------
    model
        A trained network with a p(z) head (fresh, or trained with the network).
    train_set, validation_set
        Its training and validation galaxies (the inputs it reads).
    plan
        The network's augmentation (copy ``c`` is drawn as its training drew copy ``c``).
    copies
        Augmented copies of each training galaxy.
    seed
        Seed of the augmentation and the batch order.
    data, data_hash, method
        Recorded in the returned record.
    max_epochs, patience, batch_size, learning_rate, progress
        As in `fit_pz_head`.

    Returns
    -------
    record : PzHeadFit
        How the head was fitted (set it as ``model.pz_head_fit`` to save it).
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``.
    """
    if model.pz_config is None:
        raise ValueError(f"this {model.variant} network has no p(z) head to fit")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    was_training = model.training
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith(_HEAD_PREFIX))
        model.eval()
        common = {"seed": seed, "batch_size": max(batch_size, 4096), "progress": progress}
        train_features = _hidden_features(
            model, train_set, copies=copies, plan=plan, label="training", **common
        )
        validation_features = _hidden_features(
            model, validation_set, copies=1, plan=None, label="validation", **common
        )
        best_epoch, best_loss, history = _train_head(
            model, train_features, validation_features, max_epochs=max_epochs,
            patience=patience, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
            progress=progress,
        )  # fmt: skip
    finally:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(requires[name])
        model.train(was_training)
    record = PzHeadFit(
        method=method,
        data=data,
        data_hash=data_hash,
        galaxies=len(train_set),
        copies=copies,
        epochs=len(history),
        best_epoch=best_epoch,
        validation_loss=best_loss,
        seed=seed,
        package_version=__version__,
    )
    return record, history


def fit_pz_head(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    pz: PzConfig | None = None,
    copies: int | None = None,
    max_epochs: int = 200,
    patience: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> PzFitResult:
    """Fit a p(z) head on the frozen network of ``checkpoint``; see the module docstring.

    Parameters
    ----------
    checkpoint
        A checkpoint written by ``train_model`` (with or without a p(z) head; an existing head
        is replaced).
    data
        The training set it was trained on (checked: data hash and split fingerprint).
    out
        The checkpoint to write (may be ``checkpoint`` itself; written atomically).
    pz
        The head and its grid (default: the checkpoint's own head, else `PzConfig()`: a
        mixture of 5 Gaussians on 200 bins over 0 <= z <= 4).
    copies
        Augmented copies of each training galaxy (default: the network's recorded copies per
        epoch, e.g. 50 flux realisations for the MLP, 8 rotations/flips for the CNN).
    max_epochs, patience
        Epoch budget and early stopping on the validation loss.
    batch_size
        Rows per optimiser step (and per forward pass of the network).
    learning_rate
        Adam's learning rate.
    seed
        Seed of the head's weights, the augmentation and the batch order.
    progress
        Show progress bars.

    Returns
    -------
    PzFitResult

    Raises
    ------
    csst_photoz.training.checkpoint_data.PredictionError
        If the checkpoint records no training, or was trained on other data or another split.
    TrainingDataError
        If the training or validation split has no galaxy.
    """
    from .checkpoint_data import checkpoint_training_set

    network, dataset, split = checkpoint_training_set(checkpoint, data)
    training = network.checkpoint_metadata.training
    config = TrainingConfig.model_validate(training.config)
    kind = recipe(training.kind)
    pz = pz if pz is not None else (network.pz_config or PzConfig())
    model = _with_new_head(network, pz, seed)
    plan = with_band_dropout(kind.augmentation(config), model, config.band_dropout)
    copies = int(copies if copies is not None else plan.copies)
    select = {"fluxes": kind.reads_fluxes, "stamps": kind.reads_stamps}
    train_rows, validation_rows = (dataset.positions(split.train),
                                   dataset.positions(split.validation))  # fmt: skip
    if train_rows.size == 0 or validation_rows.size == 0:
        raise TrainingDataError(
            f"{dataset.source}: {train_rows.size} training and {validation_rows.size} "
            "validation galaxies after selection; the head needs both"
        )
    train_set = TensorSet.from_training_set(dataset, train_rows, **select)
    validation_set = TensorSet.from_training_set(dataset, validation_rows, **select)
    record, history = refit_head(
        model, train_set, validation_set, plan=plan, copies=copies, seed=seed,
        data=str(dataset.source), data_hash=dataset.data_hash, method=METHOD,
        max_epochs=max_epochs, patience=patience, batch_size=batch_size,
        learning_rate=learning_rate, progress=progress,
    )  # fmt: skip
    calibrate_model(model, validation_set, data=str(dataset.source))
    model.pz_head_fit = record
    from ..models import save_model

    path = save_model(model, out)
    calibration = model.pz_calibration
    return PzFitResult(
        path=path,
        record=record,
        history=history,
        pit_ks_before=None if calibration is None else calibration.pit_ks_before,
        pit_ks_after=None if calibration is None else calibration.pit_ks_after,
    )
