"""`train_model`: the paper's training recipe for one network, resumable and data-parallel.

One call trains ``"mlp"``, ``"cnn"``, ``"hybrid"`` or ``"hybrid-transfer"`` on a training set,
as the network's recipe (:mod:`.recipes`) says:

1. load and select the data the network reads (:mod:`.data`), split the table's rows by the
   seed (:mod:`.split`);
2. build the network (:mod:`.build`), or rebuild it from the training state of an interrupted
   run (:mod:`.state`) and continue after its last completed epoch;
3. every epoch: visit ``n_train x copies`` augmented samples (:mod:`.augment`, with
   ``band_dropout`` for networks with missing-band indicators; :mod:`.batches`) with Adam on
   ``MAE + uncertainty_weight x gaussian_nll (+ pz_weight x the p(z) head's loss)``, a
   progress bar, then validate
   (:mod:`.validation`; a non-finite validation loss stops the run with an error naming the
   cause), step the learning-rate schedule, keep a copy of the best weights, append a log line
   (:mod:`.log`) and write the training state (with the best weights);
4. stop after the schedule's epochs or when early stopping says so;
5. refit the best model's p(z) head (if it has one) on its frozen last hidden layer
   (:func:`~csst_photoz.training.pz_fit.refit_head`: features of the epoch's augmented copies
   computed once, the head alone trained from where it stands, early stopping on the
   validation loss; on RAIL's DC2 data this takes the PIT KS from 0.019 to 0.010 and the
   CRPS from 0.0417 to 0.0399, ``benchmarks/pz_heads.py``), then
   calibrate its uncertainties (and recalibrate its p(z)) on the validation
   tensors in memory
   (:func:`~csst_photoz.training.calibrate.calibrate_model`; ``calibrate=False`` skips it),
   fit its domain reference on the training rows (:func:`~csst_photoz.models.domain.fit_domain`:
   trained redshift range, selection, colour-space neighbours; the per-galaxy flag and the
   clamping of predictions) and write the checkpoint, once
   (:func:`~csst_photoz.models.save_model`, with its validation metrics, the data hash, the
   split and the configuration in the metadata).

Step 5 runs whenever a call ends, also one that resumes a run whose epochs are all done, so an
interruption between the last epoch and the checkpoint costs nothing, and the checkpoint
written by ``csst-photoz train`` is the one `train_model` writes.

Under ``torchrun`` the same call runs data-parallel (:mod:`.distributed`). On CUDA the forward
passes run under bfloat16 autocast (``mixed_precision``); on the CPU everything is float32 and
deterministic, so an interrupted and resumed run ends with the same weights as an uninterrupted
one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..io.checkpoint_metadata import DomainReference
from ..models import PhotoZModel, Prediction, gaussian_nll, load_model, model_class, save_model
from ..models.base import config_to_dict
from ..models.domain import fit_domain
from ..models.precision import bf16_autocast
from ..models.pz_head import pz_loss
from .augment import augment_batch, epoch_generator, with_band_dropout
from .batches import TensorSet, epoch_batches, n_epoch_batches
from .build import training_metadata
from .calibrate import calibrate_model
from .config import Schedule, TrainingConfig
from .data import TrainingDataError, TrainingSet, load_training_set
from .distributed import DistributedContext, distributed_context
from .log import EpochLog, read_log
from .pz_fit import REFIT_METHOD, refit_head
from .recipes import Recipe, recipe
from .split import Split, split_rows
from .state import (
    ResumeError,
    RunPaths,
    capture_rng,
    check_resumable,
    load_training_state,
    restore_rng,
    save_training_state,
)
from .validation import predict_split, validation_metrics

__all__ = ["TrainingResult", "train_model"]


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced.

    Attributes
    ----------
    kind
        The network trained.
    paths
        Best model, training state and log files.
    model
        The network after the last epoch run (not necessarily the best; load ``paths.best``).
    best_epoch
        Epoch of the kept model (0 if no epoch ran).
    best_metrics
        Its validation metrics.
    epochs_completed
        Epochs completed, including those of an interrupted run resumed here.
    stopped_early
        Whether early stopping ended the run.
    history
        The log's records (rank 0; empty on other processes).
    sigma_calibration
        The uncertainty calibration saved with the best model (rank 0; None with
        ``calibrate=False`` and on other processes).
    """

    kind: str
    paths: RunPaths
    model: PhotoZModel
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_completed: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    sigma_calibration: dict[str, Any] | None = None


@dataclass
class _Progress:
    """The bookkeeping that survives an interruption."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    epochs_without_improvement: int = 0
    stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Progress:
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class _EpochStats:
    """Training figures of one epoch, summed over processes."""

    mae: float
    nll: float
    samples: int
    steps: int
    seconds: float


class _Run:
    """One training run's objects and its epoch loop."""

    def __init__(
        self,
        recipe: Recipe,
        data: TrainingSet,
        split: Split,
        config: TrainingConfig,
        paths: RunPaths,
        context: DistributedContext,
        model: PhotoZModel,
        state: dict[str, Any] | None,
    ) -> None:
        self.recipe, self.kind = recipe, recipe.name
        self.data, self.split, self.config = data, split, config
        self.paths, self.ctx = paths, context
        self.schedule: Schedule = recipe.schedule(config)
        self.plan = with_band_dropout(recipe.augmentation(config), model, config.band_dropout)
        self.autocast = partial(bf16_autocast, context.device, config.mixed_precision)
        self.module = model.to(context.device)
        self.model = context.wrap(self.module)
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=config.learning_rate)
        self.scheduler = None
        if self.schedule.lr_patience is not None:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=config.lr_factor,
                patience=self.schedule.lr_patience,
            )  # fmt: skip
        select = {"fluxes": recipe.reads_fluxes, "stamps": recipe.reads_stamps}
        device = context.device
        self.train_set = TensorSet.from_training_set(
            data, data.positions(split.train), device=device, **select
        )
        self.validation_set = TensorSet.from_training_set(
            data, data.positions(split.validation), device=device, **select
        )
        self.progress = _Progress()
        # the best epoch's weights on the CPU (rank 0, which writes the state and checkpoint)
        self.best_weights: dict[str, Tensor] | None = None
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.progress = _Progress.from_state(state)
            restore_rng(state["rng"])
            if context.is_main:
                self.best_weights = _best_weights(state, paths, self.progress.best_epoch)
        self.log = EpochLog(paths.log, enabled=context.is_main)

    # -- one epoch -------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> _EpochStats:
        """One pass over the epoch's samples; mean losses and counts over all processes."""
        ctx, n_train = self.ctx, len(self.train_set)
        n_samples = n_train * self.plan.copies
        per_rank = max(1, self.config.batch_size // ctx.world_size)
        generator = epoch_generator(self.config.seed, epoch, rank=ctx.rank, device=ctx.device)
        total_mae = torch.zeros((), dtype=torch.float64, device=ctx.device)
        total_nll = torch.zeros_like(total_mae)
        seen = steps = 0
        self.model.train()
        start = time.perf_counter()
        bar = tqdm(
            total=n_epoch_batches(n_samples, batch_size=per_rank, world_size=ctx.world_size),
            desc=f"{self.kind} epoch {epoch}/{self.schedule.max_epochs}",
            unit="batch", leave=False, dynamic_ncols=True,
            disable=not (ctx.is_main and self.config.progress),
        )  # fmt: skip
        with bar:
            for step, index in enumerate(
                epoch_batches(n_samples, batch_size=per_rank, seed=self.config.seed,
                              epoch=epoch, rank=ctx.rank, world_size=ctx.world_size)
            ):  # fmt: skip
                mae, nll, n = self._step(index.to(ctx.device), n_train, generator)
                total_mae += mae.double() * n
                total_nll += nll.double() * n
                seen += n
                steps += 1
                bar.update()
                if step % 25 == 0 and not bar.disable:
                    bar.set_postfix(mae=f"{float(mae):.4f}")
        sums = ctx.sum([float(total_mae), float(total_nll), float(seen)])  # waits for the device
        seconds = time.perf_counter() - start
        if not math.isfinite(sums[0] + sums[1]):
            raise FloatingPointError(
                f"{self.kind}: non-finite training loss in epoch {epoch}; "
                "lower the learning rate or check the inputs"
            )
        count = max(sums[2], 1.0)
        return _EpochStats(sums[0] / count, sums[1] / count, int(sums[2]), steps, seconds)

    def _step(
        self, index: Tensor, n_train: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, int]:
        batch = self.train_set.gather(index.remainder(n_train))
        batch, _ = augment_batch(
            batch, index.div(n_train, rounding_mode="floor"), self.plan, generator=generator
        )
        inputs: dict[str, Any] = batch.inputs()
        if batch.stamps is not None:
            inputs["generator"] = generator  # padding noise of stamps smaller than the input
        with self.autocast():
            out = self.model(**inputs)
        prediction = Prediction(out.z.float(), out.log_sigma.float())
        mae = (prediction.z - batch.redshift).abs().mean()
        nll = gaussian_nll(prediction, batch.redshift)
        loss = mae + self.config.uncertainty_weight * nll
        pz = self.module.pz_config
        if pz is not None:  # the p(z) head reads the detached hidden layer: z is unaffected
            loss = loss + self.config.pz_weight * pz_loss(pz, out.pz, batch.redshift)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return mae.detach(), nll.detach(), len(batch)

    def validate(self) -> dict[str, float]:
        """Validation metrics computed by rank 0 and broadcast to every process."""
        metrics: dict[str, float] | None = None
        if self.ctx.is_main:
            z, log_sigma = predict_split(
                self.module, self.validation_set,
                batch_size=self.config.eval_batch_size, autocast=self.autocast,
            )  # fmt: skip
            truth = self.validation_set.redshift.double().cpu().numpy()
            metrics = validation_metrics(truth, z, log_sigma)
        return self.ctx.broadcast(metrics)

    # -- bookkeeping -----------------------------------------------------------------------
    def _save_best(self, calibrate: bool) -> dict[str, Any] | None:
        """Write the best model, calibrated if asked; returns the calibration (rank 0 only)."""
        if self.best_weights is None:  # no epoch improved on the start: nothing to keep
            return None
        best = _new_model(
            self.module.architecture, config_to_dict(self.module.config), self.best_weights
        ).to(self.ctx.device)
        if best.pz_config is not None:  # the head, refitted on the best network's features
            best.pz_head_fit, _ = refit_head(
                best, self.train_set, self.validation_set, plan=self.plan,
                copies=self.plan.copies, seed=self.config.seed, data=str(self.data.source),
                data_hash=self.data.data_hash, method=REFIT_METHOD,
                progress=self.config.progress,
            )  # fmt: skip
        record = None
        if calibrate:
            try:
                record = calibrate_model(
                    best, self.validation_set, data=str(self.data.source),
                    batch_size=self.config.eval_batch_size,
                )  # fmt: skip
            except ValueError as error:
                raise ValueError(
                    f"{self.paths.best}: the best model's uncertainties cannot be calibrated on "
                    f"the validation split ({error}); rerun with --no-calibrate "
                    "(calibrate=False) to write it uncalibrated from the saved state"
                ) from error
        best.set_domain(_fit_domain(best, self.train_set, self.config.seed))
        epoch, metrics = self.progress.best_epoch, self.progress.best_metrics
        training = training_metadata(
            self.kind, self.config, self.data, self.split, epoch=epoch,
            world_size=self.ctx.world_size, device=self.ctx.device.type,
            augmentation=dataclasses.asdict(self.plan),
        )  # fmt: skip
        save_model(
            best, self.paths.best, training=training,
            inputs=self.data.input_declaration(best),
            validation_metrics={**metrics, "epoch": epoch},
        )  # fmt: skip
        return record

    def _save_state(self) -> None:
        state = {
            "kind": self.kind,
            "data_hash": self.data.data_hash,
            "settings": _settings_json(self.config),
            "architecture": self.module.architecture,
            "model_config": _json(config_to_dict(self.module.config)),
            "model": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "rng": capture_rng(),
            "best_model": self.best_weights,
            **self.progress.as_dict(),
        }
        save_training_state(self.paths.state, state)

    def _end_epoch(self, epoch: int, train: _EpochStats, lr: float) -> bool:
        """Validate, schedule, keep the best, log, save state; True when training should stop."""
        started = time.perf_counter()
        self.ctx.average_batch_norm_statistics(self.module)
        metrics = self.validate()
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(
                f"{self.kind}: validation loss is {metrics['loss']} after epoch {epoch} (some "
                "validation predictions are not finite); no epoch can be kept as the best. Check "
                f"the inputs of {self.data.source} (missing bands must be NaN or have a "
                "non-positive error; old feature layouts propagate NaN) or lower the learning rate"
            )
        progress = self.progress
        improved = metrics["loss"] < progress.best_loss
        if self.scheduler is not None:
            self.scheduler.step(metrics["loss"])
        progress.epoch = epoch
        if improved:
            progress.best_loss, progress.best_epoch = metrics["loss"], epoch
            progress.best_metrics = dict(metrics)
            progress.epochs_without_improvement = 0
        else:
            progress.epochs_without_improvement += 1
        patience = self.schedule.early_stopping_patience
        progress.stopped = patience is not None and progress.epochs_without_improvement >= patience
        record = {
            "epoch": epoch,
            "train_loss": train.mae,
            "train_nll": train.nll,
            **{f"val_{name}": value for name, value in metrics.items()},
            "lr": lr,
            "seconds": train.seconds + time.perf_counter() - started,
            "samples_per_second": train.samples / train.seconds if train.seconds > 0 else math.nan,
            "steps": train.steps,
            "best": improved,
            "world_size": self.ctx.world_size,
        }
        if self.ctx.is_main:
            if improved:
                self.best_weights = {
                    name: tensor.detach().to("cpu", copy=True)
                    for name, tensor in self.module.state_dict().items()
                }
            self.log.append(record)
            self._save_state()
            if self.config.progress:
                tqdm.write(_summary(self.kind, record, self.schedule.max_epochs))
        self.ctx.barrier()
        return progress.stopped

    def fit(self, *, calibrate: bool) -> TrainingResult:
        """Run the remaining epochs, then write the best model (calibrated if asked)."""
        if self.ctx.is_main:
            self.log.start(after_epoch=self.progress.epoch)
        self.ctx.barrier()
        while not self.progress.stopped and self.progress.epoch < self.schedule.max_epochs:
            epoch = self.progress.epoch + 1
            lr = float(self.optimizer.param_groups[0]["lr"])
            self._end_epoch(epoch, self.train_epoch(epoch), lr)
        record = self._save_best(calibrate) if self.ctx.is_main else None
        self.ctx.barrier()
        return TrainingResult(
            kind=self.kind,
            paths=self.paths,
            model=self.module,
            best_epoch=self.progress.best_epoch,
            best_metrics=dict(self.progress.best_metrics),
            epochs_completed=self.progress.epoch,
            stopped_early=self.progress.stopped,
            history=read_log(self.paths.log) if self.ctx.is_main else [],
            sigma_calibration=record,
        )


def _fit_domain(model: PhotoZModel, train: TensorSet, seed: int) -> DomainReference:
    """The domain reference of ``model`` from its training rows (fluxes if it reads them)."""
    redshift = train.redshift.double().cpu().numpy()
    features = getattr(model, "features", None)
    if features is None or train.fluxes is None or train.flux_errors is None:
        return fit_domain(redshift, seed=seed)
    return fit_domain(
        redshift,
        train.fluxes.double().cpu().numpy(),
        train.flux_errors.double().cpu().numpy(),
        features.limiting_flux.double().cpu().numpy(),
        seed=seed,
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _settings_json(config: TrainingConfig) -> str:
    return _json(config.fingerprint_dict())


def _summary(kind: str, record: dict[str, Any], max_epochs: int) -> str:
    return (
        f"{kind} epoch {record['epoch']}/{max_epochs}: train {record['train_loss']:.4f}  "
        f"val {record['val_loss']:.4f}  sigma_NMAD {record['val_sigma_nmad']:.4f}  "
        f"eta {record['val_outlier_fraction']:.2%}  acc {record['val_accuracy']:.2%}  "
        f"lr {record['lr']:.1e}  {record['seconds']:.1f} s  "
        f"{record['samples_per_second']:.0f} samples/s" + ("  *" if record["best"] else "")
    )


def _new_model(
    architecture: str, model_config: dict[str, Any], weights: dict[str, Tensor]
) -> PhotoZModel:
    model = model_class(architecture).from_config_dict(model_config)
    model.load_state_dict(weights, strict=True)
    return model


def _model_from_state(state: dict[str, Any]) -> PhotoZModel:
    return _new_model(state["architecture"], json.loads(state["model_config"]), state["model"])


def _best_weights(
    state: dict[str, Any], paths: RunPaths, best_epoch: int
) -> dict[str, Tensor] | None:
    """The best weights kept in a training state, on the CPU (None if no epoch improved).

    A state written before the states kept them has them in the best-model file, which was then
    written at every improvement.
    """
    if "best_model" in state or best_epoch == 0:
        return state.get("best_model")
    if not paths.best.is_file():
        raise ResumeError(
            f"{paths.state} keeps no best weights (an older version wrote it) and {paths.best} "
            "with them is missing; train with --no-resume"
        )
    return load_model(paths.best).state_dict()


def _load_data(
    recipe: Recipe, dataset: TrainingSet | str | Path, config: TrainingConfig
) -> TrainingSet:
    if isinstance(dataset, TrainingSet):
        if recipe.reads_stamps and dataset.stamps is None:
            raise TrainingDataError(f"{dataset.source}: {recipe.name} needs stamps; load them")
        return dataset
    return load_training_set(
        dataset,
        columns=config.columns,
        stamps=recipe.reads_stamps,
        stamp_size=config.stamp_size,
    )


def train_model(
    kind: str | Recipe,
    dataset: TrainingSet | str | Path,
    config: TrainingConfig | None,
    out: str | Path,
    *,
    resume: bool = True,
    device: str | torch.device | None = None,
    calibrate: bool = True,
) -> TrainingResult:
    """Train network ``kind`` with the paper's recipe; see the module docstring.

    Parameters
    ----------
    kind
        ``"mlp"``, ``"cnn"``, ``"hybrid"`` or ``"hybrid-transfer"`` (the latter needs
        ``config.mlp_checkpoint`` and ``config.cnn_checkpoint``), or a `Recipe`.
    dataset
        A loaded `TrainingSet`, a training-set folder, or (MLP) a Parquet file.
    config
        Training configuration (None: the defaults).
    out
        Best-model checkpoint to write; the training state and log go beside it
        (`RunPaths.for_checkpoint`).
    resume
        Continue from ``out``'s training state if there is one (it must come from the same
        network, data and settings; only the epoch budget may differ). False starts afresh,
        replacing the state and the log.
    device
        Training device (default: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU).
    calibrate
        Fit the best model's uncertainty factor on the validation split before writing it
        (:mod:`.calibrate`); False writes it uncalibrated.

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDataError
        On an unusable training set (too few rows in a split included).
    ResumeError
        On a training state of another run.
    """
    network = recipe(kind)
    config = config if config is not None else TrainingConfig()
    paths = RunPaths.for_checkpoint(out)
    with distributed_context(device) as ctx:
        data = _load_data(network, dataset, config)
        split = split_rows(
            data.n_table_rows,
            seed=config.seed,
            test_fraction=config.test_fraction,
            validation_fraction=config.validation_fraction,
        )
        train, validation = data.positions(split.train), data.positions(split.validation)
        if train.size < 2 or validation.size < 1:
            raise TrainingDataError(
                f"{data.source}: {train.size} training and {validation.size} validation rows "
                "after selection; need at least 2 and 1"
            )
        state = None
        if resume and paths.state.is_file():
            state = load_training_state(paths.state)
            check_resumable(
                paths.state, state, kind=network.name, data_hash=data.data_hash,
                settings=config.fingerprint_dict(),
            )  # fmt: skip
        ctx.barrier()  # every process has read the state before rank 0 may replace it
        if state is None and ctx.is_main:
            paths.state.unlink(missing_ok=True)
        if state is not None:
            model = _model_from_state(state)
        else:
            model = network.build(data, train, config, split)
        run = _Run(network, data, split, config, paths, ctx, model, state)
        return run.fit(calibrate=calibrate)
