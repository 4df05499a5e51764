"""Training of the photo-z networks (Zhou et al. 2022): data, augmentation, loop, DDP, CLI.

- :mod:`.config` -- `TrainingConfig`, the paper's recipe as a frozen pydantic model (TOML);
- :mod:`.recipes` -- `recipe`: per network kind what it reads, how it augments, its schedule;
- :mod:`.data` -- `load_training_set`: the Parquet table (+ zarr stamps), validated and selected;
- :mod:`.split` -- `split_rows`: train / validation / test rows by a seed;
- :mod:`.augment` -- flux realisations and dihedral transforms with explicit generators;
- :mod:`.batches` -- in-memory tensors and the epoch's sample order;
- :mod:`.build` -- untrained networks for a training set, hybrid transfer's start;
- :mod:`.validation` -- validation predictions and monitored metrics;
- :mod:`.calibrate` -- the uncertainty factor fitted on validation (`fit_sigma_calibration`),
  in memory at the end of training or on a checkpoint (`calibrate_checkpoint`);
- :mod:`.state`, :mod:`.log` -- resumable training state and the JSON-lines log;
- :mod:`.loop` -- `train_model`: trains, calibrates and writes the checkpoint;
- :mod:`.distributed` -- the same under ``torchrun`` (DDP);
- :mod:`.cli` -- ``csst-photoz train`` / ``python -m csst_photoz.training``.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

__all__ = [
    "KINDS",
    "AugmentPlan",
    "DataColumns",
    "DistributedContext",
    "Recipe",
    "ResumeError",
    "RunPaths",
    "Schedule",
    "Split",
    "TrainingConfig",
    "TrainingDataError",
    "TrainingResult",
    "TrainingSet",
    "augment_batch",
    "build_model",
    "calibrate_checkpoint",
    "distributed_context",
    "epoch_generator",
    "fit_sigma_calibration",
    "load_config",
    "load_training_set",
    "read_log",
    "realise_fluxes",
    "recipe",
    "select_rows",
    "split_rows",
    "train_model",
]

# Names load on first use: ``csst-photoz --help`` (which imports the ``train`` parser) must not
# pay for importing torch.
_SOURCES = {
    "AugmentPlan": "augment",
    "augment_batch": "augment",
    "epoch_generator": "augment",
    "realise_fluxes": "augment",
    "build_model": "build",
    "calibrate_checkpoint": "calibrate",
    "fit_sigma_calibration": "calibrate",
    "DataColumns": "config",
    "Schedule": "config",
    "TrainingConfig": "config",
    "load_config": "config",
    "TrainingDataError": "data",
    "TrainingSet": "data",
    "load_training_set": "data",
    "select_rows": "data",
    "DistributedContext": "distributed",
    "distributed_context": "distributed",
    "read_log": "log",
    "KINDS": "recipes",
    "Recipe": "recipes",
    "recipe": "recipes",
    "TrainingResult": "loop",
    "train_model": "loop",
    "Split": "split",
    "split_rows": "split",
    "ResumeError": "state",
    "RunPaths": "state",
}


__getattr__, __dir__ = lazy_attributes(__name__, _SOURCES, __all__)
