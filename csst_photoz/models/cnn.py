"""The inception CNN of Zhou et al. (2022): (bands, 32, 32) stamps -> z.

* stem: ``conv 3x3, 32 filters, stride 2`` (32 -> 16);
* three inception blocks, each halving the side (16 -> 8 -> 4 -> 2) and concatenating four
  branches to 72 channels: ``[1x1 16, stride 2]``; ``[1x1 16 -> 3x3 32, stride 2]``;
  ``[1x1 8 -> 5x5 16, stride 2]``; ``[maxpool 3x3, stride 1 -> 1x1 8, stride 2]``;
* every convolution (with bias) is followed by BatchNorm and ``LeakyReLU(0.3)``; padding is
  ``kernel // 2`` (max pool: 1), Keras' ``"same"``, so strided layers halve even sides;
* head: global average pool (72), ``Dense 40 + ReLU``, ``Dense 1``.

With 7 bands that is 38,449 parameters counted as Keras does (batch norm: 4 per channel):
2,176 (stem) + 9,824 + 2 x 11,744 (blocks) + 2,920 + 41 (head). The uncertainty head adds 673
(16 hidden units). Any number of bands works (the stem's input channels follow it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .base import PhotoZModel
from .layers import ConvBlock, keras_init
from .pz_head import PzConfig, PzHead
from .stamp_transform import STAMP_SIZE, Scaling, StampTransform
from .uncertainty import DEFAULT_SIGMA_HIDDEN, Prediction, UncertaintyHead

__all__ = ["CNN", "CNNConfig", "CNNTrunk", "InceptionBlock", "stamp_transform_constants"]


@dataclass(frozen=True)
class CNNConfig:
    """Hyper-parameters and input constants of the CNN.

    Attributes
    ----------
    bands
        Band names, in the order of the stamp planes.
    background_rms
        Background noise per pixel of each band [electrons], for padding small stamps (and the
        default asinh softening).
    stamp_size
        Network input side (32).
    scaling
        ``"asinh"`` or ``"none"`` (the paper's raw electrons), see
        :mod:`csst_photoz.models.stamp_transform`.
    scale
        asinh softening per band; ``background_rms`` if None.
    pad_seed
        Seed of the padding noise when no generator is given.
    dense_width
        Units of the dense layer after global pooling (40).
    sigma_hidden
        Hidden units of the uncertainty head.
    pz
        The p(z) head (:class:`~csst_photoz.models.pz_head.PzConfig`), or None: no p(z) (the
        default, so configurations saved before p(z) heads existed rebuild unchanged).
    """

    nested_configs: ClassVar[dict[str, type]] = {"pz": PzConfig}

    bands: tuple[str, ...]
    background_rms: tuple[float, ...]
    stamp_size: int = STAMP_SIZE
    scaling: Scaling = "asinh"
    scale: tuple[float, ...] | None = None
    pad_seed: int = 0
    dense_width: int = 40
    sigma_hidden: int = DEFAULT_SIGMA_HIDDEN
    pz: PzConfig | None = None

    def __post_init__(self) -> None:
        """Check the band list against the noise levels."""
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        object.__setattr__(self, "background_rms", tuple(float(x) for x in self.background_rms))
        if self.scale is not None:
            object.__setattr__(self, "scale", tuple(float(x) for x in self.scale))
        if len(self.bands) < 1 or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands must be non-empty and distinct, got {self.bands}")
        for name in ("background_rms", "scale"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.bands):
                raise ValueError(f"{len(values)} values of {name} for {len(self.bands)} bands")
        if self.stamp_size < 8:
            raise ValueError(f"stamp_size must be >= 8, got {self.stamp_size}")

    def stamp_transform(self) -> StampTransform:
        """The configured stamp transform."""
        return StampTransform(
            self.background_rms,
            size=self.stamp_size,
            scaling=self.scaling,
            scale=self.scale,
            seed=self.pad_seed,
        )


class InceptionBlock(nn.Module):
    """Four stride-2 branches concatenated to 72 channels (16 + 32 + 16 + 8).

    The paper's pooling branch is ``maxpool 3x3 stride 1 -> 1x1 conv stride 2``. A 1x1 stride-2
    convolution only reads the even pixels of the pooled map, so pooling with stride 2 and
    convolving with stride 1 gives the same outputs and gradients with the same parameters, for
    a quarter of the pooling work (max pooling took a third of a CPU training step).

    Parameters
    ----------
    in_channels
        Input channels.
    """

    out_channels: ClassVar[int] = 72

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch_1x1 = ConvBlock(in_channels, 16, 1, stride=2)
        self.branch_3x3 = nn.Sequential(
            ConvBlock(in_channels, 16, 1, stride=1), ConvBlock(16, 32, 3, stride=2)
        )
        self.branch_5x5 = nn.Sequential(
            ConvBlock(in_channels, 8, 1, stride=1), ConvBlock(8, 16, 5, stride=2)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=2, padding=1), ConvBlock(in_channels, 8, 1, stride=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(n, C, L, L) -> (n, 72, L / 2, L / 2)."""
        branches = (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


class CNNTrunk(nn.Module):
    """Transformed stamps -> the ``Dense 40 + ReLU`` layer after global average pooling.

    Parameters
    ----------
    n_bands
        Input channels.
    dense_width
        Units of the dense layer (40).
    """

    #: Layout of the convolutions' inputs and weights: channels-last (NHWC) makes CPU training
    #: steps 1.7x faster than torch's default NCHW (max pooling 6x); the outputs are the same.
    memory_format: ClassVar[torch.memory_format] = torch.channels_last

    def __init__(self, n_bands: int, dense_width: int = 40) -> None:
        super().__init__()
        self.width = dense_width
        self.convolutions = nn.Sequential(
            ConvBlock(n_bands, 32, 3, stride=2),
            InceptionBlock(32),
            InceptionBlock(InceptionBlock.out_channels),
            InceptionBlock(InceptionBlock.out_channels),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Sequential(nn.Linear(InceptionBlock.out_channels, dense_width), nn.ReLU())
        self.convolutions.to(memory_format=self.memory_format)

    def transfer_frozen(self) -> list[nn.Module]:
        """Layers frozen by the paper's transfer: everything before global pooling."""
        return [self.convolutions]

    def forward(self, x: Tensor) -> Tensor:
        """(n, bands, L, L) -> (n, dense_width)."""
        x = x.contiguous(memory_format=self.memory_format)
        return self.dense(self.pool(self.convolutions(x)).flatten(1))


class CNN(PhotoZModel):
    """Raw stamps -> ``Prediction(z, log_sigma)``.

    Parameters
    ----------
    config
        Bands, noise levels, scaling and layer sizes.

    Attributes
    ----------
    stamp_transform
        Crop/pad and scaling (:class:`~csst_photoz.models.stamp_transform.StampTransform`).
    trunk, head, sigma_head
        Convolutions to ``Dense 40``, ``Dense 1`` for z, and the uncertainty head.
    pz_head
        The p(z) head (:class:`~csst_photoz.models.pz_head.PzHead`), or None.
    """

    architecture: ClassVar[str] = "cnn"
    config_class: ClassVar[type] = CNNConfig
    input_names: ClassVar[tuple[str, ...]] = ("stamps",)

    def __init__(self, config: CNNConfig) -> None:
        super().__init__(config)
        self.stamp_transform = config.stamp_transform()
        self.trunk = CNNTrunk(len(config.bands), config.dense_width)
        self.head = nn.Linear(config.dense_width, 1)
        keras_init(self)
        self.sigma_head = UncertaintyHead(config.dense_width, config.sigma_hidden)
        self.pz_head = None if config.pz is None else PzHead(config.dense_width, config.pz)

    def input_transform_constants(self) -> dict[str, Any]:
        """Stamp size, noise levels, scaling and padding seed."""
        return stamp_transform_constants(self.stamp_transform)

    def hidden(self, stamps: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The ``Dense 40`` layer, (n, dense_width)."""
        return self.trunk(self.stamp_transform(stamps, generator=generator))

    def forward(self, stamps: Tensor, *, generator: torch.Generator | None = None) -> Prediction:
        """Raw (n, bands, H, W) stamps in electrons -> (n,) z and log sigma (and p(z) output)."""
        hidden = self.hidden(stamps, generator=generator)
        pz = None
        if self.pz_head is not None:  # float32 under autocast: mixture means need the digits
            with torch.autocast(hidden.device.type, enabled=False):
                pz = self.pz_head(hidden.float())
        return Prediction(self.head(hidden).squeeze(-1), self.sigma_head(hidden), pz)


def stamp_transform_constants(transform: StampTransform) -> dict[str, Any]:
    """JSON-ready constants of a :class:`StampTransform` (for checkpoint metadata)."""
    return {
        "stamp_size": transform.size,
        "background_rms": transform.background_rms.tolist(),
        "scaling": transform.scaling,
        "scale": transform.scale.tolist(),
        "pad_seed": transform.seed,
    }
