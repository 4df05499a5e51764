"""Building blocks shared by the networks, and the paper's (Keras) way of counting parameters.

Zhou et al. (2022) built their networks in Keras, whose defaults this module reproduces:

* dense and convolution layers carry a bias and start from Glorot-uniform weights and zero biases;
* batch normalisation uses ``epsilon = 1e-3`` and a moving-average momentum of 0.99 (torch's
  ``momentum`` is the complement, 0.01);
* the CNN's activation is ``LeakyReLU`` with Keras' default slope 0.3.

Keras' ``model.count_params()`` counts a ``BatchNormalization`` layer as four numbers per
feature: the trainable scale and offset *and* the non-trainable moving mean and variance.
`keras_parameter_count` counts the same way, which is the interpretation under which the paper's
9,881 (MLP) and 38,449 (CNN) are matched exactly (torch's own ``numel`` sum of trainable
parameters gives 9,481 and 37,809 for the same networks).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "LEAKY_SLOPE",
    "ConvBlock",
    "DenseBlock",
    "keras_init",
    "keras_parameter_count",
]

#: Keras' ``BatchNormalization`` epsilon.
BN_EPS = 1e-3
#: torch momentum equivalent to Keras' moving-average momentum of 0.99.
BN_MOMENTUM = 0.01
#: Keras' default ``LeakyReLU`` slope, used by the paper's CNN.
LEAKY_SLOPE = 0.3


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every dense and convolution layer in ``module``.

    Parameters
    ----------
    module
        Initialised in place (batch-norm layers keep torch's unit scale and zero offset, which
        are also Keras' defaults).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _batch_norm_1d(width: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(width, eps=BN_EPS, momentum=BN_MOMENTUM)


class DenseBlock(nn.Module):
    """``Dense -> BatchNorm -> ReLU``: one hidden layer of the MLP and of the hybrid head.

    Parameters
    ----------
    in_features, out_features
        Widths of the dense layer.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, out_features)
        self.norm = _batch_norm_1d(out_features)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (n, in_features)."""
        return self.activation(self.norm(self.dense(x)))


class ConvBlock(nn.Module):
    """``Conv2d -> BatchNorm -> LeakyReLU(0.3)``: every convolution of the paper's CNN.

    Parameters
    ----------
    in_channels, out_channels
        Channels in and out.
    kernel_size
        Square kernel side; the padding is ``kernel_size // 2`` so that a stride ``s`` maps an
        even side ``L`` to ``L / s`` (Keras' ``padding="same"``).
    stride
        Convolution stride.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.activation = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (n, in_channels, H, W)."""
        return self.activation(self.norm(self.conv(x)))


def keras_parameter_count(module: nn.Module, *, exclude: Iterable[str] = ()) -> int:
    """Parameters of ``module`` counted as Keras counts them.

    Every parameter (trainable or frozen) plus, for each batch-norm layer, its running mean and
    variance. Input-transform buffers (limiting fluxes, feature statistics, noise levels) and
    torch's ``num_batches_tracked`` counters are not parameters and are not counted.

    Parameters
    ----------
    module
        The network.
    exclude
        Names of direct or nested sub-modules (as in ``named_modules``) left out of the count,
        e.g. ``("sigma_head",)`` to count only the point-estimate network.

    Returns
    -------
    int
        The count.
    """
    skipped = tuple(exclude)

    def kept(name: str) -> bool:
        return not any(name == s or name.startswith(f"{s}.") for s in skipped)

    total = sum(p.numel() for name, p in module.named_parameters() if kept(name))
    for name, sub in module.named_modules():
        if kept(name) and isinstance(sub, nn.modules.batchnorm._BatchNorm):
            if sub.running_mean is not None and sub.running_var is not None:
                total += sub.running_mean.numel() + sub.running_var.numel()
    return total
