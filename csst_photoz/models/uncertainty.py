"""The per-galaxy uncertainty output (beyond the paper): its head, its loss and the output type.

Every network predicts ``(z, log_sigma)``. The redshift ``z`` comes from the paper's network
unchanged (its last hidden layer -> ``Dense 1``), trained with the mean absolute error. The
uncertainty comes from a separate small head, `UncertaintyHead`, that reads the same last hidden
layer *detached* (``Dense hidden -> ReLU -> Dense 1``) and is trained with `gaussian_nll` on the
*detached* residual ``z_true - z``. No gradient of the uncertainty loss reaches the
point-estimate network, so adding ``mae + gaussian_nll`` cannot change how ``z`` is learned and
the paper's parameter counts still describe the point-estimate network exactly; the head's own
parameters are counted separately (673 for a 40-unit layer, 1,313 for the hybrid's 80 units, with
the default 16 hidden units).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor, nn

from .layers import keras_init

#: sigma of every galaxy before training.
INITIAL_SIGMA = 0.1

__all__ = [
    "DEFAULT_SIGMA_HIDDEN",
    "Prediction",
    "UncertaintyHead",
    "gaussian_nll",
]

#: Hidden units of the default uncertainty head.
DEFAULT_SIGMA_HIDDEN = 16
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class Prediction(NamedTuple):
    """A network's output for a batch.

    Attributes
    ----------
    z
        (n,) point estimate of the redshift.
    log_sigma
        (n,) natural log of the 1-sigma redshift uncertainty.
    pz
        (n, n_outputs) raw output of the p(z) head (:mod:`csst_photoz.models.pz_head`), or
        None for a network without one.
    """

    z: Tensor
    log_sigma: Tensor
    pz: Tensor | None = None


class UncertaintyHead(nn.Module):
    """``Dense hidden -> ReLU -> Dense 1`` on the detached last hidden layer: ``log sigma``.

    Parameters
    ----------
    in_features
        Width of the network's last hidden layer.
    hidden
        Hidden units.
    """

    def __init__(self, in_features: int, hidden: int = DEFAULT_SIGMA_HIDDEN) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be positive, got {hidden}")
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        keras_init(self)
        # start every galaxy at sigma = INITIAL_SIGMA: a sane first-epoch NLL (a random start
        # gave log sigma ~ -2.5 and an NLL ~ 100)
        output = self.layers[-1]
        nn.init.zeros_(output.weight)
        nn.init.constant_(output.bias, math.log(INITIAL_SIGMA))

    def forward(self, hidden_features: Tensor) -> Tensor:
        """``log sigma`` (n,) from the (n, in_features) last hidden layer (detached here)."""
        return self.layers(hidden_features.detach()).squeeze(-1)


def gaussian_nll(prediction: Prediction, z_true: Tensor) -> Tensor:
    """Mean Gaussian negative log-likelihood of ``z_true`` under ``N(z, sigma^2)``, ``z`` detached.

    ``log_sigma + (z_true - z)^2 / (2 sigma^2) + log(2 pi) / 2``, averaged over the batch. The
    point estimate is detached so that only the uncertainty head learns from this loss.

    Parameters
    ----------
    prediction
        The network's output.
    z_true
        (n,) true redshifts.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    residual = z_true - prediction.z.detach()
    log_sigma = prediction.log_sigma
    return (log_sigma + 0.5 * (residual * (-log_sigma).exp()) ** 2 + _HALF_LOG_TWO_PI).mean()
