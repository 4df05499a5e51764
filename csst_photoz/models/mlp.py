"""The flux MLP of Zhou et al. (2022): ``3N - 1`` features -> 6 hidden layers of 40 -> z.

With the ``"indicator"`` missing-band layout (``MLPConfig.missing``, used by new training) the
input has ``4N - 1`` features (:mod:`csst_photoz.models.features`).

Layers (N = 7 bands, 20 features): ``Dense 40 + ReLU``, then ``5 x [Dense 40, BatchNorm,
ReLU]``, then ``Dense 1``: 9,881 parameters counted as Keras does (batch norm: 4 per unit, see
:mod:`csst_photoz.models.layers`), i.e. 840 + 5 x (1,640 + 160) + 41. The uncertainty head
(:mod:`csst_photoz.models.uncertainty`) adds 673 parameters with 16 hidden units. Any band set
works: the input width follows the number of bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from .base import PhotoZModel
from .features import (
    DEFAULT_LOG_FLOOR,
    MISSING_LAYOUTS,
    FluxFeatures,
    MissingLayout,
    n_flux_features,
)
from .layers import DenseBlock, keras_init
from .pz_head import PzConfig, PzHead
from .uncertainty import DEFAULT_SIGMA_HIDDEN, Prediction, UncertaintyHead

__all__ = ["MLP", "MLPConfig", "MLPTrunk", "flux_transform_constants"]


@dataclass(frozen=True)
class MLPConfig:
    """Hyper-parameters and input constants of the MLP.

    Attributes
    ----------
    bands
        Band names, in the order of the flux columns.
    limiting_flux
        Limiting flux of each band (the paper: 5-sigma depth), in the unit of the fluxes.
    width
        Units per hidden layer (40).
    n_blocks
        ``[Dense, BatchNorm, ReLU]`` blocks after the first hidden layer (5).
    log_floor
        Clipping floor of the signed log (:func:`~csst_photoz.models.features.signed_log10`).
    sigma_hidden
        Hidden units of the uncertainty head.
    missing
        Missing-band feature layout: ``"propagate"`` (``3N - 1`` features, NaN propagates; the
        default, so configurations saved before the layout existed rebuild unchanged) or
        ``"indicator"`` (``4N - 1`` features, never NaN; what training builds).
    pz
        The p(z) head (:class:`~csst_photoz.models.pz_head.PzConfig`), or None: no p(z) (the
        default, so configurations saved before p(z) heads existed rebuild unchanged).
    """

    nested_configs: ClassVar[dict[str, type]] = {"pz": PzConfig}

    bands: tuple[str, ...]
    limiting_flux: tuple[float, ...]
    width: int = 40
    n_blocks: int = 5
    log_floor: float = DEFAULT_LOG_FLOOR
    sigma_hidden: int = DEFAULT_SIGMA_HIDDEN
    missing: MissingLayout = "propagate"
    pz: PzConfig | None = None

    def __post_init__(self) -> None:
        """Check the band list against the limits and the layer sizes."""
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        object.__setattr__(self, "limiting_flux", tuple(float(f) for f in self.limiting_flux))
        if len(self.bands) < 1 or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands must be non-empty and distinct, got {self.bands}")
        if len(self.limiting_flux) != len(self.bands):
            raise ValueError(
                f"{len(self.limiting_flux)} limiting fluxes for {len(self.bands)} bands"
            )
        if self.width < 1 or self.n_blocks < 1:
            raise ValueError(f"width and n_blocks must be >= 1, got {self.width}, {self.n_blocks}")
        if self.missing not in MISSING_LAYOUTS:
            raise ValueError(
                f"unknown missing-band layout {self.missing!r}; known: {list(MISSING_LAYOUTS)}"
            )


class MLPTrunk(nn.Module):
    """Standardised features -> the MLP's last hidden layer (``width`` units).

    Parameters
    ----------
    n_features
        Input width (``3N - 1``, or ``4N - 1`` with missing indicators).
    width
        Units per hidden layer.
    n_blocks
        ``[Dense, BatchNorm, ReLU]`` blocks after ``Dense + ReLU``.
    """

    def __init__(self, n_features: int, width: int = 40, n_blocks: int = 5) -> None:
        super().__init__()
        self.width = width
        self.input_layer = nn.Sequential(nn.Linear(n_features, width), nn.ReLU())
        self.blocks = nn.ModuleList(DenseBlock(width, width) for _ in range(n_blocks))

    def transfer_frozen(self) -> list[nn.Module]:
        """Layers frozen by the paper's transfer: every dense layer but the last hidden one."""
        return [self.input_layer, *self.blocks[:-1]]

    def forward(self, features: Tensor) -> Tensor:
        """(n, n_features) -> (n, width)."""
        hidden = self.input_layer(features)
        for block in self.blocks:
            hidden = block(hidden)
        return hidden


class MLP(PhotoZModel):
    """Fluxes and errors -> ``Prediction(z, log_sigma)``.

    Parameters
    ----------
    config
        Bands, limiting fluxes and layer sizes.

    Attributes
    ----------
    features
        :class:`~csst_photoz.models.features.FluxFeatures`; call
        ``model.features.fit(fluxes, flux_errors)`` on the training set before training.
    trunk, head, sigma_head
        Hidden layers, ``Dense 1`` for z, and the uncertainty head.
    pz_head
        The p(z) head (:class:`~csst_photoz.models.pz_head.PzHead`), or None.
    """

    architecture: ClassVar[str] = "mlp"
    config_class: ClassVar[type] = MLPConfig
    input_names: ClassVar[tuple[str, ...]] = ("fluxes", "flux_errors")

    def __init__(self, config: MLPConfig) -> None:
        super().__init__(config)
        self.features = FluxFeatures(
            config.limiting_flux, floor=config.log_floor, missing=config.missing
        )
        self.trunk = MLPTrunk(
            n_flux_features(len(config.bands), config.missing), config.width, config.n_blocks
        )
        self.head = nn.Linear(config.width, 1)
        keras_init(self)
        self.sigma_head = UncertaintyHead(config.width, config.sigma_hidden)
        self.pz_head = None if config.pz is None else PzHead(config.width, config.pz)

    def input_transform_constants(self) -> dict[str, Any]:
        """Limiting fluxes, log floor and the fitted feature statistics."""
        return flux_transform_constants(self.features)

    def hidden(self, fluxes: Tensor, flux_errors: Tensor) -> Tensor:
        """The last hidden layer, (n, width)."""
        return self.trunk(self.features(fluxes, flux_errors))

    def forward(self, fluxes: Tensor, flux_errors: Tensor) -> Prediction:
        """Raw (n, N) fluxes and errors -> (n,) z and log sigma (and the p(z) head's output)."""
        hidden = self.hidden(fluxes, flux_errors)
        pz = None if self.pz_head is None else self.pz_head(hidden)
        return Prediction(self.head(hidden).squeeze(-1), self.sigma_head(hidden), pz)


def flux_transform_constants(features: FluxFeatures) -> dict[str, Any]:
    """JSON-ready constants of a :class:`FluxFeatures` (for checkpoint metadata)."""
    return {
        "limiting_flux": features.limiting_flux.tolist(),
        "log_floor": features.floor,
        "feature_mean": features.mean.tolist(),
        "feature_std": features.std.tolist(),
        "features_fitted": bool(features.fitted),
    }
