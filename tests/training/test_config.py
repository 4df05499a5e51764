from pathlib import Path

import pydantic
import pytest

from csst_photoz.training import TrainingConfig, load_config, recipe

FIXTURES = Path(__file__).parents[1] / "fixtures" / "v0_1"


def test_defaults_are_the_papers_recipe():
    config = TrainingConfig()
    assert (config.loss, config.learning_rate, config.batch_size) == ("mae", 1e-4, 512)
    mlp = recipe("mlp").schedule(config)
    assert (mlp.max_epochs, mlp.lr_patience, mlp.early_stopping_patience) == (150, None, None)
    for kind in ("cnn", "hybrid", "hybrid-transfer"):
        schedule = recipe(kind).schedule(config)
        assert (schedule.lr_patience, schedule.early_stopping_patience) == (5, 10)
    assert config.lr_factor == 0.1
    assert (config.flux_realisations, config.dihedral_copies) == (50, 8)


def test_max_epochs_overrides_every_schedule():
    config = TrainingConfig(max_epochs=3)
    assert {config.schedule(k).max_epochs for k in ("mlp", "cnn", "hybrid")} == {3}
    assert config.schedule("cnn").lr_patience == 5


def test_configuration_is_frozen_and_validated():
    config = TrainingConfig()
    with pytest.raises(pydantic.ValidationError):
        config.seed = 3
    with pytest.raises(pydantic.ValidationError, match="batch_size"):
        TrainingConfig(batch_size=0)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        TrainingConfig(learning_rte=1e-3)
    with pytest.raises(ValueError, match="unknown schedule 'resnet'"):
        config.schedule("resnet")
    with pytest.raises(pydantic.ValidationError, match="dihedral_copies"):
        config.with_updates(dihedral_copies=9)
    assert config.with_updates(seed=4, max_epochs=None).seed == 4


def test_toml_with_nested_tables_and_relative_checkpoints(tmp_path):
    path = tmp_path / "conf" / "train.toml"
    path.parent.mkdir()
    path.write_text(
        "[training]\nseed = 7\nbatch_size = 256\nmlp_checkpoint = 'ckpt/mlp.pt'\n"
        "[training.cnn]\nmax_epochs = 40\nlr_patience = 3\n"
        "[training.columns]\nflux = 'flux_{band}'\nflux_err = 'flux_err_{band}'\n"
    )
    config = load_config(path)
    assert (config.seed, config.batch_size) == (7, 256)
    assert config.schedule("cnn").max_epochs == 40 and config.schedule("cnn").lr_patience == 3
    assert config.schedule("cnn").early_stopping_patience == 10  # the CNN default, kept
    assert config.columns.flux_columns(("g",)) == ["flux_g"]
    assert config.mlp_checkpoint == path.parent / "ckpt" / "mlp.pt"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[training]\nlearning_rte = 0.1\n", "learning_rte"),
        ("[training.cnn]\nmax_epochs = 4\npatience = 2\n", "patience"),
        ("[training]\nseed = 1\n[model]\nwidth = 3\n", "model"),
        ("seed = 1\n", "seed"),
        ("[trainng]\nseed = 1\n", "trainng"),
        ("[training]\nseed = \n", "invalid TOML"),
        ("[training.columns]\nflux = 'kron_flux'\n", "band"),
    ],
)
def test_unknown_keys_and_bad_values_are_errors_naming_the_file(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_config(path)
    assert "bad.toml" in str(info.value)


def test_missing_training_table_and_missing_file(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    with pytest.raises(ValueError, match="no \\[training\\] table"):
        load_config(path)
    with pytest.raises(FileNotFoundError):
        load_config(Path(tmp_path / "absent.toml"))


def test_fingerprint_ignores_the_epoch_budget_but_not_the_recipe():
    base = TrainingConfig()
    assert base.fingerprint() == TrainingConfig(max_epochs=9, progress=False).fingerprint()
    assert base.fingerprint() == base.with_updates(mlp={"max_epochs": 3}).fingerprint()
    assert base.fingerprint() != TrainingConfig(learning_rate=1e-3).fingerprint()
    assert base.fingerprint() != TrainingConfig(seed=1).fingerprint()


def test_a_partial_schedule_table_keeps_the_networks_other_defaults(tmp_path):
    from csst_photoz.training.config import load_config

    path = tmp_path / "train.toml"
    path.write_text("[training.cnn]\nmax_epochs = 120\n\n[training.hybrid]\nlr_patience = false\n")
    config = load_config(path)
    assert config.cnn.max_epochs == 120
    assert config.cnn.lr_patience == 5
    assert config.cnn.early_stopping_patience == 10
    assert config.hybrid.lr_patience is None
    assert config.hybrid.max_epochs == 200
    assert config.hybrid.early_stopping_patience == 10
    assert config.mlp == TrainingConfig().mlp


def test_a_run_interrupted_under_v0_1_keeps_its_resume_fingerprint():
    """The fingerprint of the v0.1 fixture's recorded settings, computed as 0.1.0 did."""
    import hashlib
    import json

    from csst_photoz.models import read_metadata

    recorded = dict(read_metadata(FIXTURES / "mlp.pt").training.config)
    old = json.loads(json.dumps(recorded))
    for name in ("max_epochs", "progress", "eval_batch_size", "mixed_precision"):
        old.pop(name)
    for name in ("mlp", "cnn", "hybrid"):
        old[name].pop("max_epochs")
    fingerprint_0_1 = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    config = TrainingConfig.model_validate(recorded)
    assert config.fingerprint() == fingerprint_0_1
    assert config.with_updates(augment=False).fingerprint() != fingerprint_0_1
