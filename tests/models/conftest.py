"""Small shared inputs for the model tests (no instrument needed: constants are written out).

Helpers reach the tests as fixtures (``make``, ``make_inputs``) because pytest's importlib
import mode does not put this directory on ``sys.path``.
"""

from types import SimpleNamespace

import pytest
import torch

from csst_photoz.models import CNN, MLP, CNNConfig, Hybrid, HybridConfig, MLPConfig

CSST_BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
# background noise per pixel [e-] and rough 5-sigma limiting fluxes (any unit) per band
CSST_RMS = (10.65, 7.84, 9.93, 10.59, 10.59, 9.56, 11.53)
CSST_LIMITS = (120.0, 90.0, 110.0, 115.0, 118.0, 105.0, 130.0)


def mlp_config(n_bands: int = 7) -> MLPConfig:
    bands = CSST_BANDS if n_bands == 7 else tuple(f"b{i}" for i in range(n_bands))
    return MLPConfig(bands=bands, limiting_flux=[100.0 + 10 * i for i in range(n_bands)])


def cnn_config(n_bands: int = 7) -> CNNConfig:
    bands = CSST_BANDS if n_bands == 7 else tuple(f"b{i}" for i in range(n_bands))
    return CNNConfig(bands=bands, background_rms=[8.0 + i for i in range(n_bands)])


def hybrid_config(n_bands: int = 7) -> HybridConfig:
    return HybridConfig(mlp=mlp_config(n_bands), cnn=cnn_config(n_bands))


def random_inputs(n: int, n_bands: int = 7, size: int = 32, seed: int = 0):
    """Positive-ish fluxes with a few negatives, errors, and noisy stamps with a blob."""
    g = torch.Generator().manual_seed(seed)
    fluxes = torch.exp(torch.randn(n, n_bands, generator=g) * 2 + 6)
    fluxes[0, 0] = -fluxes[0, 0]
    errors = torch.rand(n, n_bands, generator=g) * 20 + 1
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = torch.exp(-((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2) / 8.0)
    stamps = torch.randn(n, n_bands, size, size, generator=g) * 10 + 500 * blob
    return fluxes, errors, stamps


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks run fastest on one thread (and do not contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make() -> SimpleNamespace:
    """Configuration factories: ``make.mlp(n_bands)``, ``make.cnn(...)``, ``make.hybrid(...)``."""
    return SimpleNamespace(mlp=mlp_config, cnn=cnn_config, hybrid=hybrid_config)


@pytest.fixture
def make_inputs():
    """``make_inputs(n, n_bands=7, size=32, seed=0) -> (fluxes, errors, stamps)``."""
    return random_inputs


@pytest.fixture
def trained_like_models():
    """An MLP and a CNN with fitted features and non-trivial weights and BN statistics."""
    torch.manual_seed(1)
    mlp, cnn = MLP(mlp_config()), CNN(cnn_config())
    fluxes, errors, stamps = random_inputs(64)
    mlp.features.fit(fluxes, errors)
    mlp.train()
    cnn.train()
    with torch.no_grad():  # a forward pass in training mode moves the BN running statistics
        mlp(fluxes, errors)
        cnn(stamps)
    return mlp, cnn


@pytest.fixture
def hybrid_model(trained_like_models):
    mlp, cnn = trained_like_models
    return Hybrid.from_pretrained(mlp, cnn)
