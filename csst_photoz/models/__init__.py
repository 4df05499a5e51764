"""Photo-z networks of Zhou et al. (2022) in torch, with their input transforms.

- :class:`MLP` -- fluxes and errors (``3N - 1`` signed-log features) -> z; 9,881 parameters;
- :class:`CNN` -- (bands, 32, 32) stamps, three inception blocks -> z; 38,449 parameters;
- :class:`Hybrid` -- both branches concatenated, 6 x 80 head -> z; 89,129 parameters, and
  :meth:`Hybrid.from_pretrained` for the paper's hybrid transfer.

(Parameters counted as Keras counts them, for CSST's seven bands; see
:func:`keras_parameter_count`.) Every model also predicts ``log sigma`` from a separate
uncertainty head (:mod:`csst_photoz.models.uncertainty`) and carries its input transforms, so
``model.predict(fluxes, flux_errors, stamps)`` takes raw catalogue values and raw stamps, and
:func:`save_model` / :func:`load_model` need nothing but one file (its metadata, a typed
:class:`CheckpointMetadata`, declares the input columns with their unit and aperture).
"""

from .base import PhotoZEstimate, PhotoZModel, model_class, registered_architectures
from .checkpoint import CheckpointError, CheckpointMetadata, load_model, read_metadata, save_model
from .cnn import CNN, CNNConfig
from .features import FluxFeatures, estimate_limiting_flux, flux_features, signed_log10
from .hybrid import Hybrid, HybridConfig
from .layers import keras_parameter_count
from .mlp import MLP, MLPConfig
from .stamp_transform import StampTransform, dihedral, fit_stamp_size, random_dihedral
from .uncertainty import Prediction, UncertaintyHead, gaussian_nll

__all__ = [
    "CNN",
    "MLP",
    "CNNConfig",
    "CheckpointError",
    "CheckpointMetadata",
    "FluxFeatures",
    "Hybrid",
    "HybridConfig",
    "MLPConfig",
    "PhotoZEstimate",
    "PhotoZModel",
    "Prediction",
    "StampTransform",
    "UncertaintyHead",
    "dihedral",
    "estimate_limiting_flux",
    "fit_stamp_size",
    "flux_features",
    "gaussian_nll",
    "keras_parameter_count",
    "load_model",
    "model_class",
    "random_dihedral",
    "read_metadata",
    "registered_architectures",
    "save_model",
    "signed_log10",
]
