import numpy as np
import pytest
import torch

from csst_photoz.models import CNN, MLP, Hybrid, gaussian_nll, keras_parameter_count


def test_paper_parameter_counts_for_csst_bands(make):
    assert MLP(make.mlp()).paper_parameter_count() == 9_881
    assert CNN(make.cnn()).paper_parameter_count() == 38_449
    assert Hybrid(make.hybrid()).paper_parameter_count() == 89_129


def test_uncertainty_heads_are_counted_separately(make):
    mlp, cnn, hybrid = MLP(make.mlp()), CNN(make.cnn()), Hybrid(make.hybrid())
    assert mlp.sigma_head_parameter_count() == 673
    assert cnn.sigma_head_parameter_count() == 673
    assert hybrid.sigma_head_parameter_count() == 1_313
    assert keras_parameter_count(mlp) == 9_881 + 673


def test_keras_count_is_torch_parameters_plus_batchnorm_statistics(make):
    mlp = MLP(make.mlp())
    torch_count = sum(p.numel() for n, p in mlp.named_parameters() if "sigma" not in n)
    assert torch_count == 9_881 - 5 * 2 * 40


@pytest.mark.parametrize("n_bands", [7, 5])
def test_output_shapes(n_bands, make, make_inputs):
    fluxes, errors, stamps = make_inputs(6, n_bands)
    for model, args in (
        (MLP(make.mlp(n_bands)), (fluxes, errors)),
        (CNN(make.cnn(n_bands)), (stamps,)),
        (Hybrid(make.hybrid(n_bands)), (fluxes, errors, stamps)),
    ):
        out = model(*args)
        assert out.z.shape == out.log_sigma.shape == (6,)
        assert torch.isfinite(out.z).all()


def test_mlp_input_width_follows_the_band_count(make):
    assert MLP(make.mlp(5)).trunk.input_layer[0].in_features == 14
    assert MLP(make.mlp(2)).trunk.input_layer[0].in_features == 5


def test_cnn_halves_the_side_at_every_stage(make):
    cnn = CNN(make.cnn())
    x = torch.zeros(2, 7, 32, 32)
    sides = []
    for layer in cnn.trunk.convolutions:
        x = layer(x)
        sides.append(x.shape[-1])
    assert sides == [16, 8, 4, 2]
    assert x.shape[1] == 72


def test_pooling_branch_equals_the_papers_stride_1_pool_then_stride_2_convolution(make):
    torch.manual_seed(11)
    block = CNN(make.cnn()).trunk.convolutions[1]
    x = torch.randn(4, 32, 16, 16, requires_grad=True)
    pooled_conv = block.branch_pool[1]
    ours = block.branch_pool(x)
    paper = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1)
    conv = pooled_conv.conv
    paper = torch.nn.functional.conv2d(paper, conv.weight, conv.bias, stride=2)
    paper = pooled_conv.activation(pooled_conv.norm(paper))
    torch.testing.assert_close(ours, paper)
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (grad_paper,) = torch.autograd.grad(paper.square().sum(), x)
    torch.testing.assert_close(grad_ours, grad_paper)


def test_cnn_memory_format_changes_speed_not_results(make):
    torch.manual_seed(12)
    cnn = CNN(make.cnn())
    assert cnn.trunk.convolutions[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    stamps = torch.randn(5, 7, 32, 32) * 30
    channels_last = cnn(stamps)
    cnn.trunk.memory_format = torch.contiguous_format
    cnn.trunk.convolutions.to(memory_format=torch.contiguous_format)
    nchw = cnn(stamps)
    torch.testing.assert_close(channels_last.z, nchw.z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(channels_last.log_sigma, nchw.log_sigma, rtol=1e-5, atol=1e-6)


def test_hybrid_autocast_reduces_only_the_convolutions(make, make_inputs):
    torch.manual_seed(13)
    model = Hybrid(make.hybrid()).eval()
    fluxes, errors, stamps = make_inputs(8)
    dtypes = {}

    def record(name):
        return lambda module, args, output: dtypes.__setitem__(name, output.dtype)

    model.mlp_trunk.register_forward_hook(record("flux branch"))
    model.cnn_trunk.convolutions.register_forward_hook(record("convolutions"))
    model.head_blocks.register_forward_hook(record("head"))
    with torch.no_grad():
        reference = model(fluxes, errors, stamps)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model(fluxes, errors, stamps)
    assert dtypes == {
        "flux branch": torch.float32,
        "convolutions": torch.bfloat16,
        "head": torch.float32,
    }
    assert reduced.z.dtype == torch.float32
    torch.testing.assert_close(reduced.z, reference.z, rtol=0, atol=0.05)


def test_uncertainty_loss_trains_only_the_uncertainty_head(make, make_inputs):
    model = MLP(make.mlp())
    fluxes, errors, _ = make_inputs(16)
    loss = gaussian_nll(model(fluxes, errors), torch.rand(16))
    loss.backward()
    trained = set()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None and bool(parameter.grad.abs().sum() > 0):
            trained.add(name)
    assert trained and all(name.startswith("sigma_head") for name in trained), trained
    # the head starts at sigma = INITIAL_SIGMA for every galaxy (zero output weights)
    log_sigma = model(fluxes, errors).log_sigma.detach()
    assert torch.allclose(log_sigma, torch.full_like(log_sigma, float(np.log(0.1))))


def test_gaussian_nll_value():
    from csst_photoz.models import Prediction

    pred = Prediction(torch.tensor([1.0]), torch.tensor([np.log(2.0)]))
    expected = np.log(2.0) + 0.5 * (0.5 / 2.0) ** 2 + 0.5 * np.log(2 * np.pi)
    assert gaussian_nll(pred, torch.tensor([1.5])).item() == pytest.approx(expected, rel=1e-6)


def test_predict_on_raw_numpy_inputs_matches_forward_in_eval_mode(make, make_inputs):
    model = Hybrid(make.hybrid())
    fluxes, errors, stamps = make_inputs(10, size=40)
    model.train()
    estimate = model.predict(fluxes.numpy(), errors.numpy(), stamps.numpy(), batch_size=3)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        out = model(fluxes, errors, stamps)
    np.testing.assert_allclose(estimate.z, out.z.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(estimate.z_err, out.log_sigma.exp().numpy(), rtol=1e-5)


def test_predict_pads_deterministically_and_handles_empty_input(make, make_inputs):
    model = CNN(make.cnn())
    _, _, stamps = make_inputs(4, size=20)
    first, second = model.predict(stamps=stamps), model.predict(stamps=stamps)
    np.testing.assert_array_equal(first.z, second.z)
    assert not np.array_equal(first.z, model.predict(stamps=stamps, seed=1).z)
    empty = model.predict(stamps=np.zeros((0, 7, 32, 32), np.float32))
    assert empty.z.shape == empty.z_err.shape == (0,)


def test_predict_ignores_unused_inputs_and_keeps_nan_rows(make, make_inputs):
    model = MLP(make.mlp())
    fluxes, errors, stamps = make_inputs(3)
    fluxes[1, 2] = float("nan")
    estimate = model.predict(fluxes, errors, stamps)
    assert np.isnan(estimate.z[1]) and np.isfinite(estimate.z[[0, 2]]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fluxes": np.ones((3, 7))}, "missing \\['flux_errors'\\]"),
        ({"fluxes": np.ones((3, 5)), "flux_errors": np.ones((3, 5))}, "7 bands"),
        ({"fluxes": np.ones((3, 7)), "flux_errors": np.ones((2, 7))}, "different numbers of rows"),
        ({"fluxes": np.ones(7), "flux_errors": np.ones(7)}, "must be \\(n, bands\\)"),
    ],
)
def test_predict_rejects_bad_inputs(kwargs, message, make):
    with pytest.raises(ValueError, match=message):
        MLP(make.mlp()).predict(**kwargs)


def test_configs_reject_inconsistent_values(make):
    from csst_photoz.models import HybridConfig, MLPConfig

    with pytest.raises(ValueError, match="limiting fluxes"):
        MLPConfig(bands=("g", "r"), limiting_flux=(1.0,))
    with pytest.raises(ValueError, match="differ"):
        HybridConfig(mlp=make.mlp(5), cnn=make.cnn(7))
