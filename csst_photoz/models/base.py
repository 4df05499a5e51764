"""What every photo-z network shares: configuration handling, the registry and `predict`.

A model object holds its input transforms (flux features and their standardisation, stamp
crop/pad and scaling) next to the network, so ``model.predict(fluxes, flux_errors, stamps)``
runs on raw catalogue values and raw stamps, and one checkpoint file is enough for inference
(:mod:`csst_photoz.models.checkpoint`). Subclasses declare

* ``architecture``: the name written into checkpoints (and used by ``load_model``),
* ``config_class``: a frozen dataclass of hyper-parameters and input-transform constants,
  round-tripped through JSON by `config_to_dict` / `config_from_dict`,
* ``input_names``: which of ``fluxes``, ``flux_errors``, ``stamps`` ``forward`` takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from ..io.checkpoint_metadata import (
    CheckpointMetadata,
    DomainReference,
    PzCalibration,
    PzHeadFit,
    PzRecord,
    SigmaCalibration,
)
from ..pz.grid import PzGrid, recalibrate
from .domain import FLAG_DTYPE, DomainCheck, clamp_estimates
from .layers import keras_parameter_count
from .pz_head import PzConfig, bin_probabilities
from .uncertainty import Prediction

__all__ = [
    "PhotoZEstimate",
    "PhotoZModel",
    "config_from_dict",
    "config_to_dict",
    "json_ready",
    "model_class",
    "registered_architectures",
]

_REGISTRY: dict[str, type[PhotoZModel]] = {}
_INPUTS = ("fluxes", "flux_errors", "stamps")


class PhotoZEstimate(NamedTuple):
    """`PhotoZModel.predict`'s result: NumPy arrays, one entry per galaxy.

    Attributes
    ----------
    z
        (n,) float32 point estimate, clamped to the trained redshift range when the model has a
        domain reference (NaN where an input was NaN and the network's feature layout
        propagates it).
    z_err
        (n,) float32 1-sigma uncertainty, ``sigma_scale * exp(log_sigma)``, capped at the
        width of the trained range when the model has a domain reference.
    flag
        (n,) uint16 domain flag (:class:`~csst_photoz.models.domain.DomainFlag` bits).
    pz
        (n, bins) float32 probability of each bin of the model's p(z) grid (rows sum to 1,
        recalibrated when the model has a p(z) calibration), or None: a model without a p(z)
        head, or ``predict(..., pz=False)``. Not clamped: it is the network's distribution.
    pz_grid
        The grid of ``pz`` (:class:`~csst_photoz.pz.PzGrid`), or None with ``pz``.
    """

    z: npt.NDArray[np.float32]
    z_err: npt.NDArray[np.float32]
    flag: npt.NDArray[np.uint16]
    pz: npt.NDArray[np.float32] | None = None
    pz_grid: PzGrid | None = None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A configuration dataclass as a JSON-ready dict (tuples become lists, nesting kept)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    """Tuples -> lists, recursively, so that ``json.dumps`` round-trips the value."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def config_from_dict(config_class: type, data: Mapping[str, Any]) -> Any:
    """Build ``config_class`` from a dict, refusing unknown keys and turning lists into tuples.

    Fields whose default is itself a dataclass (nested configurations) are built recursively.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"{config_class.__name__} needs a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} keys {unknown}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        nested = _nested_class(config_class, name)
        if nested is not None and isinstance(value, Mapping):
            kwargs[name] = config_from_dict(nested, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return config_class(**kwargs)


def _nested_class(config_class: type, name: str) -> type | None:
    nested = getattr(config_class, "nested_configs", {})
    return nested.get(name)


def model_class(architecture: str) -> type[PhotoZModel]:
    """The model class registered under ``architecture`` (``"mlp"``, ``"cnn"``, ``"hybrid"``)."""
    try:
        return _REGISTRY[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {registered_architectures()}"
        ) from None


def registered_architectures() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_REGISTRY)


class PhotoZModel(nn.Module):
    """Base class of the networks: a registry entry, a configuration and `predict`.

    Parameters
    ----------
    config
        An instance of the subclass's ``config_class``.
    """

    architecture: ClassVar[str] = ""
    config_class: ClassVar[type]
    input_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.architecture:
            if cls.architecture in _REGISTRY:
                raise RuntimeError(f"architecture {cls.architecture!r} registered twice")
            _REGISTRY[cls.architecture] = cls

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config
        #: Post-hoc recalibration of the uncertainties (`set_sigma_calibration`), or None.
        self.sigma_calibration: SigmaCalibration | None = None
        #: The metadata of the checkpoint this model was loaded from or last saved to, or None.
        self.checkpoint_metadata: CheckpointMetadata | None = None
        #: Recalibration of the p(z) (`set_pz_calibration`), or None.
        self.pz_calibration: PzCalibration | None = None
        #: How the p(z) head was fitted after the network (``csst-photoz pz fit``), or None.
        self.pz_head_fit: PzHeadFit | None = None
        self._domain = DomainCheck(None)

    @property
    def pz_config(self) -> PzConfig | None:
        """The p(z) head's configuration, or None for a network without one."""
        return getattr(self.config, "pz", None)

    @property
    def pz_record(self) -> PzRecord | None:
        """What the checkpoint states about the p(z): grid, head kind, recalibration (or None)."""
        config = self.pz_config
        if config is None:
            return None
        return PzRecord(
            kind=config.kind,
            bins=config.bins,
            z_min=config.z_min,
            z_max=config.z_max,
            calibration=self.pz_calibration,
            head_fit=self.pz_head_fit,
        )

    def set_pz_calibration(self, calibration: PzCalibration | Mapping[str, Any] | None) -> None:
        """Set (or, with None, remove) the p(z) recalibration; it is saved in the checkpoint.

        Parameters
        ----------
        calibration
            A `PzCalibration` (:func:`csst_photoz.pz.calibration.fit_pz_calibration`) or its
            dict.

        Raises
        ------
        ValueError
            If the model has no p(z) head, or the record is invalid.
        """
        if calibration is not None and self.pz_config is None:
            raise ValueError(f"this {self.variant} network has no p(z) head to calibrate")
        if calibration is not None and not isinstance(calibration, PzCalibration):
            calibration = PzCalibration.model_validate(json_ready(dict(calibration)))
        self.pz_calibration = calibration

    @property
    def domain(self) -> DomainReference | None:
        """The training domain of the flag and the clamping (`set_domain`), or None."""
        return self._domain.reference

    def set_domain(self, domain: DomainReference | Mapping[str, Any] | None) -> None:
        """Set (or, with None, remove) the domain reference; it is saved in the checkpoint.

        Parameters
        ----------
        domain
            A `DomainReference` (:func:`~csst_photoz.models.domain.fit_domain`) or its dict.
        """
        if domain is not None and not isinstance(domain, DomainReference):
            domain = DomainReference.model_validate(json_ready(dict(domain)))
        self._domain = DomainCheck(domain)

    @property
    def sigma_scale(self) -> float:
        """Factor applied to ``exp(log_sigma)`` by `predict` (1 when uncalibrated)."""
        if self.sigma_calibration is None:
            return 1.0
        return float(self.sigma_calibration.scale)

    def set_sigma_calibration(
        self, calibration: SigmaCalibration | Mapping[str, Any] | None
    ) -> None:
        """Set (or, with None, remove) the uncertainty calibration.

        Parameters
        ----------
        calibration
            A `SigmaCalibration`, or its record as a dict with at least ``"scale"``, a finite
            factor > 0 on the network's ``exp(log_sigma)``
            (``csst_photoz.training.calibrate_checkpoint`` writes one, with how it was
            fitted); it is saved in the checkpoint's metadata.

        Raises
        ------
        ValueError
            If ``"scale"`` is missing, not finite or not > 0, or the record has unknown keys.
        """
        if calibration is None or isinstance(calibration, SigmaCalibration):
            self.sigma_calibration = calibration
            return
        if not isinstance(calibration, Mapping):
            raise ValueError(f"sigma calibration needs a numeric 'scale', got {calibration!r}")
        self.sigma_calibration = SigmaCalibration.model_validate(json_ready(dict(calibration)))

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> PhotoZModel:
        """Build an untrained model from `config_to_dict` output."""
        return cls(config_from_dict(cls.config_class, data))

    @property
    def variant(self) -> str:
        """The paper's name for this network (the architecture, unless a subclass refines it)."""
        return self.architecture

    @property
    def bands(self) -> tuple[str, ...]:
        """Band names in input order."""
        return tuple(self.config.bands)

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return len(self.config.bands)

    def input_transform_constants(self) -> dict[str, Any]:
        """Input-transform constants and fitted statistics, JSON-ready (checkpoint metadata)."""
        return {}

    def paper_parameter_count(self) -> int:
        """Parameters of the point-estimate network, counted as Keras (and the paper) count."""
        return keras_parameter_count(self, exclude=("sigma_head", "pz_head"))

    def sigma_head_parameter_count(self) -> int:
        """Parameters of the uncertainty head, counted separately."""
        return keras_parameter_count(self.sigma_head)

    def forward(self, *args: Tensor, **kwargs: Any) -> Prediction:  # pragma: no cover
        """Implemented by subclasses."""
        raise NotImplementedError

    def predict(
        self,
        fluxes: npt.ArrayLike | Tensor | None = None,
        flux_errors: npt.ArrayLike | Tensor | None = None,
        stamps: npt.ArrayLike | Tensor | None = None,
        *,
        batch_size: int = 4096,
        seed: int | None = None,
        pz: bool = True,
    ) -> PhotoZEstimate:
        """Redshifts and uncertainties from raw catalogue values and raw stamps.

        Runs in evaluation mode without gradients, batch by batch (the model's training mode is
        restored afterwards). Inputs the model does not use may be given and are ignored.

        Parameters
        ----------
        fluxes, flux_errors
            (n, n_bands) in the unit of the model's limiting fluxes (flux models).
        stamps
            (n, n_bands, H, W) in electrons (stamp models); anything sliceable with ``.shape``
            (NumPy, torch, zarr) is read one batch at a time.
        batch_size
            Rows per forward pass (run on the model's device; move the model to choose).
        seed
            Seed of the stamp-padding noise (the stamp transform's seed if None).
        pz
            Return the p(z) (for a model with a p(z) head; ``bins`` floats per galaxy).

        Returns
        -------
        PhotoZEstimate
            NumPy ``z``, ``z_err`` and ``flag`` of length n; ``z_err`` includes the calibration
            factor `sigma_scale`; with a domain reference ``z`` is clamped to the trained range
            and ``z_err`` capped (:mod:`csst_photoz.models.domain`, flag ``CLAMPED``); ``pz``
            the recalibrated bin probabilities, or None.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        given = {"fluxes": fluxes, "flux_errors": flux_errors, "stamps": stamps}
        inputs = {name: _with_shape(name, given[name]) for name in self.input_names}
        n = self._check_inputs(inputs)
        run_on = _device_of(self)
        generator = None
        if "stamps" in self.input_names:
            stream_seed = self.stamp_transform.seed if seed is None else int(seed)
            generator = torch.Generator(device=run_on).manual_seed(stream_seed)
        z = np.empty(n, dtype=np.float32)
        z_err = np.empty(n, dtype=np.float32)
        pz_config = self.pz_config if pz else None
        probabilities = None if pz_config is None else np.empty((n, pz_config.bins), np.float32)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    stop = min(start + batch_size, n)
                    batch = {k: _to_tensor(v[start:stop], run_on) for k, v in inputs.items()}
                    if generator is not None:
                        out = self(**batch, generator=generator)
                    else:
                        out = self(**batch)
                    z[start:stop] = out.z.float().cpu().numpy()
                    z_err[start:stop] = out.log_sigma.float().exp().cpu().numpy()
                    if probabilities is not None:
                        mass = bin_probabilities(pz_config, out.pz)
                        probabilities[start:stop] = mass.cpu().numpy()
        finally:
            self.train(was_training)
        z_err *= np.float32(self.sigma_scale)
        z, z_err, clamped = clamp_estimates(self._domain, z, z_err)
        flux_inputs = "fluxes" in self.input_names
        flag = self._domain.input_flags(
            inputs["fluxes"] if flux_inputs else None,
            inputs["flux_errors"] if flux_inputs else None,
            n,
        )
        if probabilities is not None and self.pz_calibration is not None:
            probabilities = recalibrate(probabilities, self.pz_calibration).astype(np.float32)
        grid = (
            None if pz_config is None else PzGrid(pz_config.z_min, pz_config.z_max, pz_config.bins)
        )
        return PhotoZEstimate(
            z=z,
            z_err=z_err,
            flag=(flag | clamped).astype(FLAG_DTYPE),
            pz=probabilities,
            pz_grid=grid,
        )

    def _check_inputs(self, inputs: Mapping[str, Any]) -> int:
        missing = [name for name, value in inputs.items() if value is None]
        if missing:
            raise ValueError(
                f"{self.architecture} needs {list(self.input_names)}; missing {missing}"
            )
        lengths = {name: int(value.shape[0]) for name, value in inputs.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"inputs have different numbers of rows: {lengths}")
        for name, value in inputs.items():
            shape = tuple(value.shape)
            expected_ndim = 4 if name == "stamps" else 2
            if len(shape) != expected_ndim or shape[1] != self.n_bands:
                layout = "(n, bands, H, W)" if name == "stamps" else "(n, bands)"
                raise ValueError(
                    f"{name} must be {layout} with {self.n_bands} bands {self.bands}, "
                    f"got shape {shape}"
                )
        return next(iter(lengths.values()))


def _with_shape(name: str, value: Any) -> Any:
    if value is None or hasattr(value, "shape"):
        return value
    if name not in _INPUTS:  # pragma: no cover - internal misuse
        raise ValueError(f"unknown input {name!r}")
    return np.asarray(value)


def _to_tensor(value: Any, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)


def _device_of(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")
