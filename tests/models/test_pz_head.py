"""The p(z) head: its losses and bin probabilities against scipy, its detachment, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special, stats

from csst_photoz.checkpoints import __file__ as _shipped
from csst_photoz.models import CNN, MLP, Hybrid, load_model, save_model
from csst_photoz.models.checkpoint import CheckpointError
from csst_photoz.models.pz_head import PzConfig, PzHead, bin_probabilities, pz_loss
from csst_photoz.pz import PzGrid, fit_pz_calibration

SOFTMAX = PzConfig(kind="softmax", bins=40, hidden=8)
MIXTURE = PzConfig(kind="mixture", bins=40, hidden=8, components=3)
SHIPPED = sorted(Path(_shipped).parent.glob("*.pt"))
V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1" / "mlp.pt"


def _raw(config: PzConfig, n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, config.n_outputs, generator=torch.Generator().manual_seed(seed)) * 2


def test_softmax_loss_is_the_cross_entropy_of_the_true_bin():
    raw, z = _raw(SOFTMAX), torch.linspace(-0.5, 4.5, 16)
    log_p = special.log_softmax(raw.double().numpy(), axis=1)
    target = np.clip(np.floor(z.double().numpy() / 0.1).astype(int), 0, 39)
    expected = -np.mean(log_p[np.arange(16), target])
    assert float(pz_loss(SOFTMAX, raw, z)) == pytest.approx(expected, rel=1e-5)


def test_mixture_loss_and_bins_follow_scipy():
    raw, z = _raw(MIXTURE), torch.rand(16) * 4
    values = raw.double().numpy()
    weights = special.softmax(values[:, :3], axis=1)
    means, widths = values[:, 3:6], np.exp(np.maximum(values[:, 6:], np.log(1e-3)))
    density = (weights * stats.norm.pdf(z.double().numpy()[:, None], means, widths)).sum(1)
    assert float(pz_loss(MIXTURE, raw, z)) == pytest.approx(-np.mean(np.log(density)), rel=1e-4)
    edges = np.linspace(0, 4, 41)
    cdf = (
        weights[:, None, :] * stats.norm.cdf(edges[None, :, None], means[:, None], widths[:, None])
    ).sum(2)
    mass = np.diff(cdf, axis=1)
    expected = mass / mass.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        bin_probabilities(MIXTURE, raw).double().numpy(), expected, atol=1e-5
    )


@pytest.mark.parametrize("config", [SOFTMAX, MIXTURE])
def test_bin_probabilities_are_a_distribution(config):
    probabilities = bin_probabilities(config, _raw(config, seed=1))
    assert probabilities.shape == (16, 40) and torch.all(probabilities >= 0)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(16))


def test_head_reads_the_hidden_layer_detached():
    hidden = torch.randn(4, 10, requires_grad=True)
    pz_loss(SOFTMAX, PzHead(10, SOFTMAX)(hidden), torch.rand(4)).backward()
    assert hidden.grad is None


def test_the_point_estimate_trains_exactly_as_without_the_head(make, make_inputs):
    """Same seed, one optimiser step with the p(z) loss added: identical z weights."""
    fluxes, errors, _ = make_inputs(64)
    z_true = torch.rand(64) * 3
    models = []
    for pz in (None, SOFTMAX):
        torch.manual_seed(0)
        model = MLP(dataclasses.replace(make.mlp(), pz=pz))
        model.features.fit(fluxes, errors)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        out = model(fluxes, errors)
        loss = (out.z - z_true).abs().mean()
        if pz is not None:
            loss = loss + pz_loss(pz, out.pz, z_true)
        loss.backward()
        optimiser.step()
        models.append(model)
    without, with_head = (m.state_dict() for m in models)
    assert set(with_head) - set(without) == {k for k in with_head if k.startswith("pz_head.")}
    for name, tensor in without.items():
        torch.testing.assert_close(with_head[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("which", ["mlp", "cnn", "hybrid"])
def test_round_trip_keeps_head_and_calibration(which, tmp_path, make, make_inputs):
    fluxes, errors, stamps = make_inputs(30)
    if which == "mlp":
        model = MLP(dataclasses.replace(make.mlp(), pz=SOFTMAX))
        model.features.fit(fluxes, errors)
    elif which == "cnn":
        model = CNN(dataclasses.replace(make.cnn(), pz=MIXTURE))
    else:
        model = Hybrid(dataclasses.replace(make.hybrid(), pz=SOFTMAX))
        model.features.fit(fluxes, errors)
    estimate = model.predict(fluxes, errors, stamps)
    grid = PzGrid(0.0, 4.0, 40)
    model.set_pz_calibration(fit_pz_calibration(estimate.pz, grid, np.linspace(0.1, 3, 30)))
    path = save_model(model, tmp_path / f"{which}.pt")
    loaded = load_model(path)
    again = loaded.predict(fluxes, errors, stamps)
    assert loaded.checkpoint_metadata.pz == model.pz_record
    assert loaded.checkpoint_metadata.pz.calibration is not None
    np.testing.assert_allclose(again.pz, model.predict(fluxes, errors, stamps).pz, atol=1e-6)
    np.testing.assert_allclose(again.pz.sum(1), 1.0, atol=1e-5)


def test_hybrid_transfer_from_branches_with_heads_gets_its_own(make, make_inputs):
    mlp = MLP(dataclasses.replace(make.mlp(), pz=SOFTMAX))
    cnn = CNN(dataclasses.replace(make.cnn(), pz=SOFTMAX))
    hybrid = Hybrid.from_pretrained(mlp, cnn)
    assert hybrid.pz_config == SOFTMAX and hybrid.pz_head is not None
    assert all(p.requires_grad for p in hybrid.pz_head.parameters())
    assert Hybrid.from_pretrained(mlp, cnn, pz=None).pz_head is None
    fluxes, errors, stamps = make_inputs(5)
    assert hybrid.predict(fluxes, errors, stamps).pz.shape == (5, 40)


def test_old_checkpoints_load_and_state_no_pz():
    model = load_model(V0_1)
    assert model.checkpoint_metadata.pz is None and model.pz_head is None
    assert model.pz_config is None and model.pz_record is None


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoints_have_a_fitted_recalibrated_head(path):
    """The shipped networks got their heads from ``pz fit`` (their other weights unchanged:
    ``test_shipped_checkpoints_predict_as_before``)."""
    model = load_model(path)
    record = model.checkpoint_metadata.pz
    assert record is not None and record.kind == "mixture" and record.bins == 200
    assert record.head_fit is not None and record.head_fit.galaxies == 26740
    assert record.calibration is not None and record.calibration.split == "validation"
    assert record.calibration.pit_ks_after < record.calibration.pit_ks_before


def test_metadata_and_network_must_agree_on_the_head(tmp_path, make, monkeypatch):
    model = MLP(dataclasses.replace(make.mlp(), pz=SOFTMAX))
    path = save_model(model, tmp_path / "mlp.pt")
    monkeypatch.setattr(MLP, "pz_record", property(lambda self: None))
    with pytest.raises(CheckpointError, match="states the p\\(z\\)"):
        load_model(path)


def test_calibrating_a_network_without_head_is_refused(make):
    with pytest.raises(ValueError, match="no p\\(z\\) head"):
        MLP(make.mlp()).set_pz_calibration({"levels": [0, 1], "pit_cdf": [0, 1]})


def test_stamp_network_head_runs_in_float32_under_autocast(make, make_inputs):
    """bfloat16 has 8 bits of mantissa: mixture means near z = 2 would move by ~0.01."""
    model = CNN(dataclasses.replace(make.cnn(), pz=MIXTURE)).eval()
    _, _, stamps = make_inputs(4)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(stamps)
    assert out.pz.dtype == torch.float32
