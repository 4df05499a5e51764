import torch

from csst_photoz.models import Hybrid

# the paper's frozen layers: the MLP's first five dense layers (input layer + four of the five
# [Dense, BatchNorm, ReLU] blocks) and every CNN layer before global pooling
FROZEN_PREFIXES = (
    "mlp_trunk.input_layer.",
    "mlp_trunk.blocks.0.",
    "mlp_trunk.blocks.1.",
    "mlp_trunk.blocks.2.",
    "mlp_trunk.blocks.3.",
    "cnn_trunk.convolutions.",
)
TRAINED_PREFIXES = (
    "mlp_trunk.blocks.4.",
    "cnn_trunk.dense.",
    "head_blocks.",
    "head.",
    "sigma_head.",
)


def test_transfer_freezes_exactly_the_papers_layers(hybrid_model):
    names = [name for name, _ in hybrid_model.named_parameters()]
    assert all(name.startswith(FROZEN_PREFIXES + TRAINED_PREFIXES) for name in names)
    for name, parameter in hybrid_model.named_parameters():
        assert parameter.requires_grad == (not name.startswith(FROZEN_PREFIXES)), name
    frozen_dense = [
        name
        for name, p in hybrid_model.named_parameters()
        if name.startswith("mlp_trunk") and name.endswith("weight") and p.ndim == 2
        if not p.requires_grad
    ]
    assert len(frozen_dense) == 5
    trained = sum(p.numel() for p in hybrid_model.parameters() if p.requires_grad)
    # MLP last hidden (1,640 + 80) + CNN Dense 40 (2,920) + head (6 x (6,480 + 160) + 81)
    # + uncertainty head (1,313)
    assert trained == 1_720 + 2_920 + 39_921 + 1_313


def test_transfer_copies_weights_statistics_and_feature_scaling(trained_like_models, hybrid_model):
    mlp, cnn = trained_like_models
    for source, copy in ((mlp.trunk, hybrid_model.mlp_trunk), (cnn.trunk, hybrid_model.cnn_trunk)):
        for (name, a), (_, b) in zip(
            source.state_dict().items(), copy.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(a, b, msg=name)
            assert a.data_ptr() != b.data_ptr()  # copied, not shared
    torch.testing.assert_close(hybrid_model.features.mean, mlp.features.mean)
    assert bool(hybrid_model.features.fitted)
    running_mean = mlp.trunk.blocks[0].norm.running_mean
    assert not torch.equal(running_mean, torch.zeros_like(running_mean))  # really trained-like


def test_training_step_leaves_frozen_layers_and_their_statistics_unchanged(
    hybrid_model, make_inputs
):
    frozen_before = {
        name: value.clone()
        for name, value in hybrid_model.state_dict().items()
        if name.startswith(FROZEN_PREFIXES)
    }
    trained_before = hybrid_model.mlp_trunk.blocks[4].dense.weight.clone()
    hybrid_model.train()
    assert not hybrid_model.cnn_trunk.convolutions.training
    assert not hybrid_model.mlp_trunk.blocks[3].training
    assert hybrid_model.mlp_trunk.blocks[4].training and hybrid_model.head_blocks.training
    optimiser = torch.optim.Adam([p for p in hybrid_model.parameters() if p.requires_grad], lr=1e-2)
    fluxes, errors, stamps = make_inputs(8)
    loss = (hybrid_model(fluxes, errors, stamps).z - 1.0).abs().mean()
    loss.backward()
    optimiser.step()
    for name, value in hybrid_model.state_dict().items():
        if name in frozen_before:
            torch.testing.assert_close(value, frozen_before[name], msg=name)
    assert not torch.equal(hybrid_model.mlp_trunk.blocks[4].dense.weight, trained_before)


def test_unfrozen_initialisation_trains_everything(trained_like_models):
    hybrid = Hybrid.from_pretrained(*trained_like_models, freeze=False)
    assert all(p.requires_grad for p in hybrid.parameters())
    assert not hybrid.is_transfer
