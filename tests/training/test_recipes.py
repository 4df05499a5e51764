"""One recipe per network kind: inputs, augmentation, schedule and untrained model."""

import subprocess
import sys

import numpy as np
import pytest

from csst_photoz.models import CNN, MLP, Hybrid
from csst_photoz.training import (
    KINDS,
    AugmentPlan,
    Recipe,
    TrainingConfig,
    load_training_set,
    recipe,
    split_rows,
)
from csst_photoz.training.cli import build_parser


def test_registry_names_every_kind_and_an_unknown_one_lists_them():
    assert KINDS == ("mlp", "cnn", "hybrid", "hybrid-transfer")
    for kind in KINDS:
        assert isinstance(recipe(kind), Recipe) and recipe(kind).name == kind
        assert recipe(recipe(kind)) is recipe(kind)
    with pytest.raises(ValueError, match=r"unknown network 'resnet'.*'mlp', 'cnn', 'hybrid'"):
        recipe("resnet")
    kind = next(a for a in build_parser()._actions if a.dest == "kind")  # the CLI offers them
    assert tuple(kind.choices) == KINDS


@pytest.mark.parametrize(
    ("kind", "fluxes", "stamps", "pretrained"),
    [("mlp", True, False, False), ("cnn", False, True, False), ("hybrid", True, True, False),
     ("hybrid-transfer", True, True, True)],
)  # fmt: skip
def test_each_recipe_says_what_its_network_reads(kind, fluxes, stamps, pretrained):
    found = recipe(kind)
    assert (found.reads_fluxes, found.reads_stamps, found.pretrained) == (
        fluxes,
        stamps,
        pretrained,
    )


def test_augmentation_takes_its_copies_from_the_configuration():
    config = TrainingConfig(flux_realisations=7, dihedral_copies=3)
    plans = {kind: recipe(kind).augmentation(config) for kind in KINDS}
    assert plans["mlp"] == AugmentPlan(7, flux_noise=True, dihedral="none")
    assert plans["cnn"] == AugmentPlan(3, flux_noise=False, dihedral="cycle")
    assert plans["hybrid"] == plans["hybrid-transfer"] == AugmentPlan(7, True, "random")
    defaults = TrainingConfig()  # the paper's 50 flux realisations and 8 orientations
    assert [recipe(k).augmentation(defaults).copies for k in KINDS] == [50, 8, 50, 50]
    assert AugmentPlan.for_kind("cnn", config) == plans["cnn"]


def test_schedules_follow_the_configuration_tables():
    config = TrainingConfig.model_validate(
        {"mlp": {"max_epochs": 11}, "cnn": {"max_epochs": 12}, "hybrid": {"max_epochs": 13}}
    )
    assert [recipe(k).schedule(config).max_epochs for k in KINDS] == [11, 12, 13, 13]
    capped = config.with_updates(max_epochs=2)
    assert {recipe(k).schedule(capped).max_epochs for k in KINDS} == {2}


def test_recipes_load_without_torch():
    code = "import sys, csst_photoz.training.cli; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(("kind", "architecture"), [("mlp", MLP), ("cnn", CNN), ("hybrid", Hybrid)])
def test_build_makes_the_network_the_recipe_reads_for(kind, architecture, tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", n=40, size=32)
    data = load_training_set(folder, stamps=recipe(kind).reads_stamps)
    split = split_rows(data.n_table_rows, seed=0)
    train = data.positions(split.train)
    config = TrainingConfig(seed=5)
    model = recipe(kind).build(data, train, config, split)
    again = recipe(kind).build(data, train, config, split)
    assert type(model) is architecture and model.bands == data.bands
    for name, tensor in model.state_dict().items():  # the seed fixes the initial weights
        assert np.array_equal(tensor.numpy(), again.state_dict()[name].numpy()), name
    with pytest.raises(ValueError, match="hybrid-transfer needs a trained MLP"):
        recipe("hybrid-transfer").build(data, train, config, split)
