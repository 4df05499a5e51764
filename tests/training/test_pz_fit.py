"""``fit_pz_head`` / ``csst-photoz pz fit``: a p(z) head for a trained network, nothing else
changed; the head learns; its record and recalibration are saved; other data is refused."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from csst_photoz.cli import main as cli_main
from csst_photoz.models import load_model, read_metadata, save_model
from csst_photoz.training import calibrate_checkpoint, split_rows, train_model
from csst_photoz.training.predict import PredictionError
from csst_photoz.training.pz_fit import REFIT_METHOD, fit_pz_head

_TRAINED: dict[str, tuple] = {}


def _trained(kind, tmp_path_factory, write_folder, fast_config):
    """A folder and a network of ``kind`` trained on it without a p(z) head (once per module)."""
    if kind not in _TRAINED:
        root = tmp_path_factory.mktemp(f"pzfit_{kind}")
        n = 1500 if kind == "mlp" else 200
        folder = write_folder(root / "set", n=n, size=40, seed=3)
        config = fast_config.with_updates(max_epochs=1, pz_head="none", batch_size=256)
        best = train_model(kind, folder, config, root / f"{kind}.pt").paths.best
        _TRAINED[kind] = (folder, best)
    return _TRAINED[kind]


def _inputs(model, n, rng):
    fluxes = np.abs(rng.normal(400.0, 200.0, (n, len(model.bands))))
    errors = np.full_like(fluxes, 10.0)
    stamps = None
    if "stamps" in model.input_names:
        stamps = rng.normal(0.0, 10.0, (n, len(model.bands), 32, 32)).astype(np.float32)
    return fluxes, errors, stamps


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_head_is_added_and_nothing_else_changes(
    kind, tmp_path, tmp_path_factory, write_folder, fast_config
):
    folder, checkpoint = _trained(kind, tmp_path_factory, write_folder, fast_config)
    before = load_model(checkpoint)
    assert before.pz_config is None
    result = fit_pz_head(checkpoint, folder, tmp_path / "pz.pt", max_epochs=3, progress=False)
    after = load_model(result.path)
    assert after.pz_config is not None and after.pz_config.kind == "mixture"

    # every weight of the network is the checkpoint's; only the head is new
    old, new = before.state_dict(), after.state_dict()
    assert {k for k in new if not k.startswith("pz_head.")} == set(old)
    for name, tensor in old.items():
        assert torch.equal(tensor, new[name]), name
    # the point estimate, its error and the flag are bit for bit the checkpoint's
    fluxes, errors, stamps = _inputs(before, 50, np.random.default_rng(5))
    a = before.predict(fluxes, errors, stamps)
    b = after.predict(fluxes, errors, stamps)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(a.z_err, b.z_err)
    np.testing.assert_array_equal(a.flag, b.flag)
    assert a.pz is None
    assert b.pz.shape == (50, after.pz_config.bins)
    np.testing.assert_allclose(b.pz.sum(axis=1), 1.0, rtol=1e-5)

    # the record says how, and the rest of the metadata is the checkpoint's
    meta, old_meta = read_metadata(result.path), read_metadata(checkpoint)
    fit = meta.pz.head_fit
    assert fit is not None and fit.data_hash == old_meta.training.data_hash
    assert fit.galaxies == old_meta.training.split.n_train
    assert fit.copies == old_meta.training.augmentation["copies"]
    assert 1 <= fit.best_epoch <= fit.epochs <= 3
    assert fit.validation_loss == min(h["val_loss"] for h in result.history)
    assert meta.training == old_meta.training
    assert meta.validation_metrics == old_meta.validation_metrics
    assert meta.sigma_calibration.scale == pytest.approx(old_meta.sigma_calibration.scale)


def test_head_learns_and_is_recalibrated(tmp_path, tmp_path_factory, write_folder, fast_config):
    folder, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    result = fit_pz_head(
        checkpoint, folder, tmp_path / "pz.pt", max_epochs=40, batch_size=128,
        learning_rate=3e-3, progress=False,
    )  # fmt: skip
    # the folder's redshifts are uniform on [0.1, 3] whatever the fluxes: the best density has
    # NLL log(2.9) = 1.065; a uniform density on the grid [0, 4] has log(4) = 1.386
    assert result.record.validation_loss < math.log(4.0) - 0.15
    meta = read_metadata(result.path)
    calibration = meta.pz.calibration
    assert calibration is not None and calibration.split == "validation"
    assert calibration.galaxies == meta.training.split.n_validation
    assert result.pit_ks_after <= result.pit_ks_before


def test_refits_are_reproducible_and_replace_the_head(
    tmp_path, tmp_path_factory, write_folder, fast_config
):
    folder, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    first = fit_pz_head(checkpoint, folder, tmp_path / "a.pt", max_epochs=2, progress=False)
    again = fit_pz_head(first.path, folder, tmp_path / "b.pt", max_epochs=2, progress=False)
    a, b = load_model(first.path).state_dict(), load_model(again.path).state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_other_data_is_refused(tmp_path, tmp_path_factory, write_folder, fast_config):
    _, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    other = write_folder(tmp_path / "other", n=1500, size=40, seed=4)
    with pytest.raises(PredictionError, match="trained on other data"):
        fit_pz_head(checkpoint, other, tmp_path / "pz.pt", max_epochs=1, progress=False)
    assert not (tmp_path / "pz.pt").exists()


def test_cli(tmp_path, tmp_path_factory, write_folder, fast_config, capsys):
    folder, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    out = tmp_path / "pz.pt"
    argv = ["pz", "fit", "--checkpoint", str(checkpoint), "--data", str(folder), "--out",
            str(out), "--head", "softmax", "--bins", "50", "--epochs", "2", "--quiet"]  # fmt: skip
    assert cli_main(argv) == 0
    assert "p(z) head fitted on" in capsys.readouterr().out
    model = load_model(out)
    assert model.pz_config.kind == "softmax" and model.pz_config.bins == 50


def test_calibrate_refits_the_pz_recalibration(
    tmp_path, tmp_path_factory, write_folder, fast_config
):
    folder, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    fitted = fit_pz_head(checkpoint, folder, tmp_path / "pz.pt", max_epochs=2, progress=False)
    stripped = load_model(fitted.path)
    stripped.set_pz_calibration(None)
    save_model(stripped, tmp_path / "stripped.pt")
    assert read_metadata(tmp_path / "stripped.pt").pz.calibration is None
    calibrate_checkpoint(tmp_path / "stripped.pt", folder, out=tmp_path / "again.pt")
    again, original = read_metadata(tmp_path / "again.pt").pz, read_metadata(fitted.path).pz
    assert again.calibration is not None
    np.testing.assert_allclose(again.calibration.levels, original.calibration.levels)
    np.testing.assert_allclose(again.calibration.pit_cdf, original.calibration.pit_cdf)
    assert again.head_fit == original.head_fit


def test_training_refits_its_head_on_the_best_network(tmp_path, write_folder, fast_config):
    folder = write_folder(tmp_path / "set", n=300, size=40, seed=6)
    config = fast_config.with_updates(max_epochs=1, batch_size=128)
    best = train_model("mlp", folder, config, tmp_path / "mlp.pt").paths.best
    meta = read_metadata(best)
    fit = meta.pz.head_fit
    assert fit is not None and fit.method == REFIT_METHOD
    assert fit.data_hash == meta.training.data_hash
    assert fit.galaxies == meta.training.split.n_train and fit.copies == 2
    assert 0 <= fit.best_epoch <= fit.epochs


def _rewrite(folder, target, change=None):
    """A copy of the training-set folder whose table file has other bytes (metadata added),
    and, with ``change``, one flux of a validation galaxy changed."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(folder, target)
    table = pq.read_table(target / "stamps.parquet")
    if change is not None:
        column = table["kron_flux_g"].to_numpy().copy()
        column[change] *= 1.5
        table = table.set_column(table.schema.get_field_index("kron_flux_g"), "kron_flux_g",
                                 pa.array(column))  # fmt: skip
    metadata = {**(table.schema.metadata or {}), b"rewritten": b"by a later version"}
    pq.write_table(table.replace_schema_metadata(metadata), target / "stamps.parquet")
    return target


def test_same_values_under_another_hash_are_accepted_other_values_refused(
    tmp_path, tmp_path_factory, write_folder, fast_config
):
    folder, checkpoint = _trained("mlp", tmp_path_factory, write_folder, fast_config)
    same = _rewrite(folder, tmp_path / "same")
    with pytest.warns(UserWarning, match="reproduces its recorded validation"):
        fit_pz_head(checkpoint, same, tmp_path / "a.pt", max_epochs=1, progress=False)
    training = read_metadata(checkpoint).training
    fractions = {k: training.config[k] for k in ("test_fraction", "validation_fraction")}
    split = split_rows(training.split.n_rows, seed=training.split.seed, **fractions)
    validation_row = int(split.validation[0])
    changed = _rewrite(folder, tmp_path / "changed", change=validation_row)
    with pytest.raises(PredictionError, match="does not reproduce its recorded validation"):
        fit_pz_head(checkpoint, changed, tmp_path / "b.pt", max_epochs=1, progress=False)


def test_a_v0_1_checkpoint_gains_a_head_and_keeps_its_predictions(tmp_path):
    """The checkpoint and training set frozen at v0.1 (format version 1, no head)."""
    fixtures = Path(__file__).parents[1] / "fixtures" / "v0_1"
    result = fit_pz_head(fixtures / "mlp.pt", fixtures / "training_set", tmp_path / "pz.pt",
                         max_epochs=2, progress=False)  # fmt: skip
    before, after = load_model(fixtures / "mlp.pt"), load_model(result.path)
    assert before.pz_config is None and after.pz_config is not None
    assert after.checkpoint_metadata.format_version == 2
    fluxes, errors, _ = _inputs(before, 20, np.random.default_rng(8))
    a, b = before.predict(fluxes, errors), after.predict(fluxes, errors)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(a.z_err, b.z_err)
    np.testing.assert_allclose(b.pz.sum(axis=1), 1.0, rtol=1e-5)
