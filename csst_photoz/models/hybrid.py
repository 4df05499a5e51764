"""The hybrid network of Zhou et al. (2022): MLP and CNN features concatenated, then a 6 x 80 head.

The MLP's last hidden layer (40) and the CNN's ``Dense 40`` layer are concatenated (80) and
followed by ``6 x [Dense 80, BatchNorm, ReLU]`` and ``Dense 1``. Counted as Keras does (batch
norm: 4 per unit) with 7 bands, that is 89,129 parameters: the MLP without its output layer
(9,840) + the CNN without its output layer (38,408) + the head (6 x (6,480 + 320) + 81 =
40,881), the paper's "about 89k". The uncertainty head reads the head's last 80-unit layer and
adds 1,313 parameters (16 hidden units).

Hybrid transfer (`Hybrid.from_pretrained`): the same network initialised from a trained `MLP`
and `CNN` (weights and input transforms copied), with the paper's layers frozen: the MLP's first
five dense layers (with their batch norms) and every CNN layer before global pooling. Trained:
the MLP's last hidden layer, the CNN's ``Dense 40``, the head (and the uncertainty head). Frozen
layers get ``requires_grad = False`` and stay in evaluation mode under ``model.train()``, so
their batch-norm statistics are not updated either (Keras' behaviour for frozen layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import PhotoZModel
from .cnn import CNN, CNNConfig, CNNTrunk, stamp_transform_constants
from .features import FluxFeatures, n_flux_features
from .layers import DenseBlock, keras_init
from .mlp import MLP, MLPConfig, MLPTrunk, flux_transform_constants
from .pz_head import PzConfig, PzHead
from .uncertainty import DEFAULT_SIGMA_HIDDEN, Prediction, UncertaintyHead

__all__ = ["Hybrid", "HybridConfig"]


@dataclass(frozen=True)
class HybridConfig:
    """Hyper-parameters of the hybrid: its two branches' configurations and the head.

    Attributes
    ----------
    mlp, cnn
        Configurations of the two branches (same bands; their ``sigma_hidden`` is unused).
    head_width
        Units per head layer (80).
    n_head_blocks
        ``[Dense, BatchNorm, ReLU]`` blocks in the head (6).
    sigma_hidden
        Hidden units of the uncertainty head.
    freeze_pretrained
        Freeze the paper's transfer layers (hybrid transfer).
    pz
        The hybrid's own p(z) head on its last 80-unit layer, or None (no p(z)); the
        branches' ``pz`` describe the heads they were trained with and are unused here.
    """

    nested_configs: ClassVar[dict[str, type]] = {
        "mlp": MLPConfig,
        "cnn": CNNConfig,
        "pz": PzConfig,
    }

    mlp: MLPConfig
    cnn: CNNConfig
    head_width: int = 80
    n_head_blocks: int = 6
    sigma_hidden: int = DEFAULT_SIGMA_HIDDEN
    freeze_pretrained: bool = False
    pz: PzConfig | None = None

    def __post_init__(self) -> None:
        """Check that both branches see the same bands."""
        if self.mlp.bands != self.cnn.bands:
            raise ValueError(f"MLP bands {self.mlp.bands} differ from CNN bands {self.cnn.bands}")
        if self.head_width < 1 or self.n_head_blocks < 1:
            raise ValueError(
                f"head_width and n_head_blocks must be >= 1, got "
                f"{self.head_width}, {self.n_head_blocks}"
            )

    @property
    def bands(self) -> tuple[str, ...]:
        """Band names in input order."""
        return self.mlp.bands


class Hybrid(PhotoZModel):
    """Fluxes, errors and stamps -> ``Prediction(z, log_sigma)``.

    Parameters
    ----------
    config
        Branch configurations and head sizes.

    Attributes
    ----------
    features, stamp_transform
        The MLP's and the CNN's input transforms.
    mlp_trunk, cnn_trunk
        The two branches up to their last 40-unit layers.
    head_blocks, head, sigma_head
        The ``Dense 80`` blocks, ``Dense 1`` for z, and the uncertainty head.
    pz_head
        The p(z) head (:class:`~csst_photoz.models.pz_head.PzHead`), or None.
    """

    architecture: ClassVar[str] = "hybrid"
    config_class: ClassVar[type] = HybridConfig
    input_names: ClassVar[tuple[str, ...]] = ("fluxes", "flux_errors", "stamps")

    def __init__(self, config: HybridConfig) -> None:
        super().__init__(config)
        mlp, cnn = config.mlp, config.cnn
        self.features = FluxFeatures(mlp.limiting_flux, floor=mlp.log_floor, missing=mlp.missing)
        self.stamp_transform = cnn.stamp_transform()
        self.mlp_trunk = MLPTrunk(
            n_flux_features(len(mlp.bands), mlp.missing), mlp.width, mlp.n_blocks
        )
        self.cnn_trunk = CNNTrunk(len(cnn.bands), cnn.dense_width)
        widths = [mlp.width + cnn.dense_width] + [config.head_width] * config.n_head_blocks
        self.head_blocks = nn.Sequential(
            *(DenseBlock(widths[i], widths[i + 1]) for i in range(config.n_head_blocks))
        )
        self.head = nn.Linear(config.head_width, 1)
        keras_init(self)
        self.sigma_head = UncertaintyHead(config.head_width, config.sigma_hidden)
        self.pz_head = None if config.pz is None else PzHead(config.head_width, config.pz)
        if config.freeze_pretrained:
            for module in self.transfer_frozen():
                module.requires_grad_(False)
                module.eval()

    @classmethod
    def from_pretrained(
        cls,
        mlp: MLP,
        cnn: CNN,
        *,
        freeze: bool = True,
        head_width: int = 80,
        n_head_blocks: int = 6,
        sigma_hidden: int = DEFAULT_SIGMA_HIDDEN,
        pz: PzConfig | Literal["branches"] | None = "branches",
    ) -> Hybrid:
        """Hybrid transfer: a hybrid initialised from a trained MLP and CNN.

        Copies (not shares) both branches' weights, batch-norm statistics and input transforms;
        the head, the uncertainty head and the p(z) head start fresh.

        Parameters
        ----------
        mlp, cnn
            Trained branches with the same bands.
        freeze
            Freeze the paper's layers (see the module docstring); False gives a hybrid that is
            merely initialised from the branches.
        head_width, n_head_blocks, sigma_hidden
            Head sizes.
        pz
            The hybrid's p(z) head (None: none); ``"branches"``: that of the MLP (else the
            CNN), so branches trained with p(z) heads give a hybrid with one.

        Returns
        -------
        Hybrid
            On the MLP's device.
        """
        config = HybridConfig(
            mlp=mlp.config,
            cnn=cnn.config,
            head_width=head_width,
            n_head_blocks=n_head_blocks,
            sigma_hidden=sigma_hidden,
            freeze_pretrained=freeze,
            pz=(mlp.config.pz or cnn.config.pz) if pz == "branches" else pz,
        )
        device = next(mlp.parameters()).device
        hybrid = cls(config).to(device)
        hybrid.features.load_state_dict(mlp.features.state_dict())
        hybrid.mlp_trunk.load_state_dict(mlp.trunk.state_dict())
        hybrid.cnn_trunk.load_state_dict(cnn.trunk.state_dict())
        return hybrid

    @property
    def is_transfer(self) -> bool:
        """Whether the paper's transfer layers are frozen."""
        return bool(self.config.freeze_pretrained)

    @property
    def variant(self) -> str:
        """``"hybrid-transfer"`` when the transfer layers are frozen, else ``"hybrid"``."""
        return "hybrid-transfer" if self.is_transfer else "hybrid"

    def transfer_frozen(self) -> list[nn.Module]:
        """The layers the paper freezes in hybrid transfer."""
        return [*self.mlp_trunk.transfer_frozen(), *self.cnn_trunk.transfer_frozen()]

    def train(self, mode: bool = True) -> Hybrid:
        """Set training mode, keeping frozen transfer layers in evaluation mode."""
        super().train(mode)
        if self.is_transfer:
            for module in self.transfer_frozen():
                module.eval()
        return self

    def input_transform_constants(self) -> dict[str, Any]:
        """Both branches' input-transform constants."""
        return {
            "flux": flux_transform_constants(self.features),
            "stamp": stamp_transform_constants(self.stamp_transform),
        }

    def forward(
        self,
        fluxes: Tensor,
        flux_errors: Tensor,
        stamps: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Prediction:
        """Raw fluxes, errors (n, N) and stamps (n, N, H, W) -> (n,) z and log sigma.

        Under autocast only the convolutions run in reduced precision: the flux branch and the
        head stay in float32 (the flux features are as sensitive to bfloat16 as the MLP, which
        moves most redshifts by more than 0.01 (1 + z) in it; ``benchmarks/README.md``).
        """
        full_precision = torch.autocast(fluxes.device.type, enabled=False)
        with full_precision:
            flux_hidden = self.mlp_trunk(self.features(fluxes.float(), flux_errors.float()))
        stamp_hidden = self.cnn_trunk(self.stamp_transform(stamps, generator=generator))
        with full_precision:
            hidden = self.head_blocks(torch.cat([flux_hidden, stamp_hidden.float()], dim=1))
            pz = None if self.pz_head is None else self.pz_head(hidden)
            return Prediction(self.head(hidden).squeeze(-1), self.sigma_head(hidden), pz)
