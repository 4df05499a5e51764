import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zarr

from csst_photoz.models import Hybrid, estimate_limiting_flux, load_model
from csst_photoz.training import (
    DataColumns,
    ResumeError,
    TrainingConfig,
    load_training_set,
    read_log,
    split_rows,
    train_model,
)
from csst_photoz.training.loop import _Run
from csst_photoz.training.state import load_training_state, save_training_state

LOG_KEYS = {
    "epoch", "train_loss", "train_nll", "val_loss", "val_nll", "val_sigma_nmad",
    "val_outlier_fraction", "val_accuracy", "val_bias", "lr", "seconds", "samples_per_second",
}  # fmt: skip
# the paper's frozen layers of hybrid transfer (as in tests/models/test_transfer.py)
FROZEN_PREFIXES = (
    "mlp_trunk.input_layer.",
    "mlp_trunk.blocks.0.",
    "mlp_trunk.blocks.1.",
    "mlp_trunk.blocks.2.",
    "mlp_trunk.blocks.3.",
    "cnn_trunk.convolutions.",
)


def _validation_rows(data, config):
    split = split_rows(data.n_table_rows, seed=config.seed)
    return data.positions(split.validation)


def test_mlp_training_lowers_the_loss_and_keeps_a_loadable_best_model(
    stamp_set, tmp_path, fast_config
):
    config = fast_config.with_updates(max_epochs=4, flux_realisations=4, learning_rate=3e-3)
    result = train_model("mlp", stamp_set, config, tmp_path / "mlp.pt")
    history = result.history
    assert (
        [r["epoch"] for r in history]
        == [1, 2, 3, 4]
        == [r["epoch"] for r in read_log(tmp_path / "mlp.log.jsonl")]
    )
    assert all(LOG_KEYS <= set(r) for r in history)
    assert history[-1]["train_loss"] < 0.9 * history[0]["train_loss"]
    assert min(r["val_loss"] for r in history) < history[0]["val_loss"]
    assert all(r["samples_per_second"] > 0 and r["lr"] == 3e-3 for r in history)
    assert result.epochs_completed == 4 and not result.stopped_early

    best = min(history, key=lambda r: r["val_loss"])
    model = load_model(result.paths.best)
    meta = model.checkpoint_metadata
    data = load_training_set(stamp_set, stamps=False)
    assert meta.training_data_hash == data.data_hash
    assert meta.validation_metrics["epoch"] == best["epoch"] == result.best_epoch
    assert meta.training.split.sha256 == split_rows(64, seed=1).fingerprint()
    assert meta.training.config["learning_rate"] == 3e-3
    # the checkpoint is the best epoch's model: it reproduces that epoch's validation loss
    rows = _validation_rows(data, config)
    estimate = model.predict(data.fluxes[rows], data.flux_errors[rows])
    assert np.all(np.isfinite(estimate.z)) and np.all(estimate.z_err > 0)
    mae = np.mean(np.abs(estimate.z - data.redshift[rows]))
    assert mae == pytest.approx(best["val_loss"], rel=1e-5)
    assert meta.validation_metrics["loss"] == pytest.approx(best["val_loss"])
    assert result.paths.state.is_file()


@pytest.mark.parametrize("kind", ["cnn", "hybrid"])
def test_stamp_networks_train_and_their_checkpoints_read_raw_stamps(
    kind, stamp_set, tmp_path, fast_config
):
    result = train_model(kind, stamp_set, fast_config, tmp_path / f"{kind}.pt")
    assert len(result.history) == 2
    model = load_model(result.paths.best)
    assert model.variant == kind
    table = pq.read_table(stamp_set / "stamps.parquet")
    raw = zarr.open_array(stamp_set / "stamps.zarr" / "stamps", mode="r")[:8]  # 48 x 48 px
    fluxes = np.column_stack([table[f"kron_flux_{b}"].to_numpy()[:8] for b in model.bands])
    errors = np.column_stack([table[f"kron_flux_err_{b}"].to_numpy()[:8] for b in model.bands])
    estimate = model.predict(fluxes, errors, raw)
    assert estimate.z.shape == (8,) and np.all(np.isfinite(estimate.z))
    assert model.checkpoint_metadata.training.augmentation["copies"] == 2


def _interrupt_during_epoch(monkeypatch, epoch: int):
    original = _Run._step
    calls = {"n": 0}

    def step(self, index, n_train, generator):
        if self.progress.epoch + 1 == epoch:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("simulated interruption")
        return original(self, index, n_train, generator)

    monkeypatch.setattr(_Run, "_step", step)


@pytest.mark.parametrize("kind", ["mlp", "hybrid"])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    kind, stamp_set, tmp_path, fast_config, monkeypatch
):
    config = fast_config.with_updates(batch_size=16)
    whole = train_model(kind, stamp_set, config.with_updates(max_epochs=4), tmp_path / "a.pt")

    out = tmp_path / "b.pt"
    first = train_model(kind, stamp_set, config.with_updates(max_epochs=2), out)
    assert first.epochs_completed == 2
    with monkeypatch.context() as patch:  # stop in the middle of epoch 3
        _interrupt_during_epoch(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            train_model(kind, stamp_set, config.with_updates(max_epochs=4), out)
    resumed = train_model(kind, stamp_set, config.with_updates(max_epochs=4), out)

    assert resumed.epochs_completed == 4
    final_a, final_b = whole.model.state_dict(), resumed.model.state_dict()
    assert final_a.keys() == final_b.keys()
    for name in final_a:
        assert torch.equal(final_a[name], final_b[name]), name
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    best_a, best_b = load_model(tmp_path / "a.pt"), load_model(out)
    for name, tensor in best_a.state_dict().items():
        assert torch.equal(tensor, best_b.state_dict()[name]), name


def test_finished_run_is_not_repeated_and_other_settings_are_refused(
    stamp_set, tmp_path, fast_config
):
    out = tmp_path / "mlp.pt"
    train_model("mlp", stamp_set, fast_config, out)
    log_before = (tmp_path / "mlp.log.jsonl").read_text()
    again = train_model("mlp", stamp_set, fast_config, out)
    assert again.epochs_completed == 2 and (tmp_path / "mlp.log.jsonl").read_text() == log_before

    with pytest.raises(ResumeError, match="learning_rate"):
        train_model("mlp", stamp_set, fast_config.with_updates(learning_rate=1e-2), out)
    with pytest.raises(ResumeError, match="mlp run, not cnn"):
        train_model("cnn", stamp_set, fast_config, out)
    fresh = train_model(
        "mlp", stamp_set, fast_config.with_updates(learning_rate=1e-2, max_epochs=1), out,
        resume=False,
    )  # fmt: skip
    assert [r["epoch"] for r in read_log(tmp_path / "mlp.log.jsonl")] == [1]
    assert fresh.epochs_completed == 1


@pytest.fixture(scope="module")
def pretrained(stamp_set, tmp_path_factory):
    """An MLP and a CNN trained for one epoch on the stamp set with seed 1."""
    folder = tmp_path_factory.mktemp("pretrained")
    config = TrainingConfig(seed=1, batch_size=32, learning_rate=1e-3, flux_realisations=2,
                            dihedral_copies=2, max_epochs=1, progress=False)  # fmt: skip
    train_model("mlp", stamp_set, config, folder / "mlp.pt")
    train_model("cnn", stamp_set, config, folder / "cnn.pt")
    return config, folder / "mlp.pt", folder / "cnn.pt"


def test_transfer_trains_only_the_papers_unfrozen_layers(stamp_set, tmp_path, pretrained):
    config, mlp_path, cnn_path = pretrained
    start = Hybrid.from_pretrained(load_model(mlp_path), load_model(cnn_path)).state_dict()
    config = config.with_updates(mlp_checkpoint=mlp_path, cnn_checkpoint=cnn_path)
    result = train_model("hybrid-transfer", stamp_set, config, tmp_path / "transfer.pt")
    trained = result.model.state_dict()
    frozen = [name for name in start if name.startswith(FROZEN_PREFIXES)]
    assert len(frozen) > 50  # weights, biases and batch-norm statistics of the frozen layers
    for name in frozen:
        assert torch.equal(trained[name], start[name]), name
    for name in ("mlp_trunk.blocks.4.dense.weight", "cnn_trunk.dense.0.weight", "head.weight",
                 "head_blocks.0.norm.running_mean", "sigma_head.layers.0.weight",
                 "pz_head.layers.0.weight"):  # fmt: skip
        assert not torch.equal(trained[name], start[name]), name
    saved = load_model(result.paths.best)
    assert saved.variant == "hybrid-transfer" and saved.is_transfer
    # branches trained with their p(z) heads give a transfer with its own, in the checkpoint
    assert load_model(mlp_path).pz_config is not None and saved.pz_config == config.pz_config()
    assert saved.checkpoint_metadata.pz.kind == "mixture"


def test_transfer_needs_checkpoints_of_the_same_split(stamp_set, tmp_path, pretrained):
    config, mlp_path, cnn_path = pretrained
    with pytest.raises(ValueError, match="mlp_checkpoint"):
        train_model("hybrid-transfer", stamp_set, config, tmp_path / "t.pt")
    other_split = config.with_updates(seed=2, mlp_checkpoint=mlp_path, cnn_checkpoint=cnn_path)
    with pytest.raises(ValueError, match="another train/validation/test split"):
        train_model("hybrid-transfer", stamp_set, other_split, tmp_path / "t.pt")
    swapped = config.with_updates(mlp_checkpoint=cnn_path, cnn_checkpoint=mlp_path)
    with pytest.raises(ValueError, match="expected mlp"):
        train_model("hybrid-transfer", stamp_set, swapped, tmp_path / "t.pt")


def test_mlp_trains_from_any_parquet_table(tmp_path, fast_config):
    rng = np.random.default_rng(2)
    n = 80
    z = rng.uniform(0.1, 2.0, n)
    bands = ("J", "H", "K")
    columns = {"zspec": z}
    for i, b in enumerate(bands):
        columns[f"F_{b}"] = 100.0 * (1 + z) ** (i - 1) + rng.normal(0, 2, n)
        columns[f"E_{b}"] = rng.uniform(1.0, 3.0, n)
    path = tmp_path / "survey.parquet"
    pq.write_table(pa.table(columns), path)
    names = DataColumns(bands=bands, flux="F_{band}", flux_err="E_{band}", redshift="zspec")
    config = fast_config.with_updates(columns=names.model_dump(), max_epochs=3)
    result = train_model("mlp", path, config, tmp_path / "survey_mlp.pt")
    model = load_model(result.paths.best, bands=bands)
    data = load_training_set(path, columns=names)
    train = data.positions(split_rows(n, seed=1).train)
    np.testing.assert_allclose(
        model.config.limiting_flux, estimate_limiting_flux(data.flux_errors[train]), rtol=1e-6
    )
    limits = (10.0, 20.0, 30.0)
    given = train_model("mlp", path, config.with_updates(limiting_flux=limits, max_epochs=1),
                        tmp_path / "limits.pt")  # fmt: skip
    assert given.model.config.limiting_flux == limits
    assert model.checkpoint_metadata.training.columns.flux == ("F_J", "F_H", "F_K")


def test_stamp_network_refuses_a_table_without_stamps(tmp_path, write_folder, fast_config):
    folder = write_folder(tmp_path / "set")
    table = tmp_path / "table.parquet"
    table.write_bytes((folder / "stamps.parquet").read_bytes())
    with pytest.raises(ValueError, match="stamps need a training-set folder"):
        train_model("cnn", table, fast_config, tmp_path / "cnn.pt")


def test_plateau_schedule_and_early_stopping_follow_the_validation_loss(
    stamp_set, tmp_path, fast_config, monkeypatch
):
    scripted = iter([1.0, 0.9, 0.95, 0.97, 0.99, 0.2])
    original = _Run.validate

    def validate(self):
        return {**original(self), "loss": next(scripted)}

    monkeypatch.setattr(_Run, "validate", validate)
    schedule = {"max_epochs": 6, "lr_patience": 0, "early_stopping_patience": 2}
    config = TrainingConfig.model_validate(
        {**fast_config.model_dump(), "max_epochs": None, "mlp": schedule}
    )
    result = train_model("mlp", stamp_set, config, tmp_path / "mlp.pt")
    assert result.stopped_early and result.epochs_completed == 4  # two epochs without progress
    assert [r["lr"] for r in result.history] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4])
    assert [r["best"] for r in result.history] == [True, True, False, False]
    assert result.best_epoch == 2 and result.best_metrics["loss"] == 0.9
    assert load_model(result.paths.best).checkpoint_metadata.validation_metrics["epoch"] == 2
    again = train_model("mlp", stamp_set, config, tmp_path / "mlp.pt")  # nothing left to do
    assert again.epochs_completed == 4 and len(again.history) == 4


def _same_checkpoint(one, two) -> None:
    first, second = load_model(one), load_model(two)
    assert first.checkpoint_metadata == second.checkpoint_metadata
    weights = second.state_dict()
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_the_checkpoint_is_written_once_and_a_run_stopped_before_it_ends_calibrated(
    stamp_set, tmp_path, fast_config, monkeypatch
):
    whole = train_model("mlp", stamp_set, fast_config, tmp_path / "a.pt")
    assert whole.sigma_calibration is not None

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("after the last epoch, before the checkpoint")

    out = tmp_path / "b.pt"
    with monkeypatch.context() as patch:
        patch.setattr("csst_photoz.training.loop.calibrate_model", stopped)
        with pytest.raises(KeyboardInterrupt):
            train_model("mlp", stamp_set, fast_config, out)
    assert not out.exists() and load_training_state(tmp_path / "b.last.pt")["epoch"] == 2
    resumed = train_model("mlp", stamp_set, fast_config, out)
    assert resumed.epochs_completed == 2 and len(read_log(tmp_path / "b.log.jsonl")) == 2
    assert resumed.sigma_calibration == whole.sigma_calibration
    _same_checkpoint(tmp_path / "a.pt", out)


def test_a_state_without_best_weights_takes_them_from_the_checkpoint_file(
    stamp_set, tmp_path, fast_config
):
    """Training states written before issue 15 kept the best weights in the checkpoint only."""

    def forget_best_weights(path):
        state = load_training_state(path)
        dropped = ("best_model", "format", "format_version")
        save_training_state(path, {k: v for k, v in state.items() if k not in dropped})

    three = fast_config.with_updates(max_epochs=3)
    train_model("mlp", stamp_set, three, tmp_path / "a.pt")
    out, state = tmp_path / "b.pt", tmp_path / "b.last.pt"
    train_model("mlp", stamp_set, fast_config, out, calibrate=False)
    forget_best_weights(state)
    train_model("mlp", stamp_set, three, out)
    _same_checkpoint(tmp_path / "a.pt", out)

    forget_best_weights(state)
    out.unlink()
    with pytest.raises(ResumeError, match="keeps no best weights"):
        train_model("mlp", stamp_set, three, out)


def test_a_failed_calibration_names_the_checkpoint_and_the_state_writes_it_uncalibrated(
    stamp_set, tmp_path, fast_config, monkeypatch
):
    def unusable(*args, **kwargs):
        raise ValueError("no galaxy with finite values and sigma > 0 to calibrate on")

    out = tmp_path / "mlp.pt"
    with monkeypatch.context() as patch:
        patch.setattr("csst_photoz.training.calibrate.coverage_scale", unusable)
        with pytest.raises(ValueError, match=r"mlp\.pt: the best model's .* --no-calibrate"):
            train_model("mlp", stamp_set, fast_config, out)
    assert not out.exists()
    result = train_model("mlp", stamp_set, fast_config, out, calibrate=False)
    assert result.sigma_calibration is None and load_model(out).sigma_scale == 1.0
    assert len(read_log(tmp_path / "mlp.log.jsonl")) == 2  # no epoch was run again


def _table_with_missing_bands(path, n=120):
    """Four bands on a colour track; the two bluest are 0 +- 1 in a sixth of the rows (the
    GALEX case of issue 16: 0/0 ratios in the old features) and NaN in the next sixth."""
    rng = np.random.default_rng(4)
    z = rng.uniform(0.1, 2.0, n)
    bands = ("A", "B", "C", "D")
    columns = {"zspec": z}
    for i, b in enumerate(bands):
        columns[f"F_{b}"] = 100.0 * (1 + z) ** (i - 1) + rng.normal(0, 2, n)
        columns[f"E_{b}"] = rng.uniform(1.0, 3.0, n)
    for b in bands[:2]:
        columns[f"F_{b}"][: n // 6] = 0.0
        columns[f"E_{b}"][: n // 6] = 1.0
        columns[f"F_{b}"][n // 6 : n // 3] = np.nan
    pq.write_table(pa.table(columns), path)
    return DataColumns(bands=bands, flux="F_{band}", flux_err="E_{band}", redshift="zspec")


def test_rows_with_two_adjacent_bands_missing_train_and_predict_finite_redshifts(
    tmp_path, fast_config
):
    path = tmp_path / "gaps.parquet"
    names = _table_with_missing_bands(path)
    config = fast_config.with_updates(columns=names.model_dump(), max_epochs=3, band_dropout=0.1)
    result = train_model("mlp", path, config, tmp_path / "gaps.pt")
    assert result.best_epoch >= 1 and result.paths.best.is_file()
    assert all(np.isfinite(r["val_loss"]) for r in result.history)
    model = load_model(result.paths.best)
    assert model.config.missing == "indicator"
    meta = model.checkpoint_metadata
    assert meta.training.augmentation["band_dropout"] == 0.1
    table = pq.read_table(path)
    fluxes = np.stack([table[f"F_{b}"].to_numpy() for b in names.bands], axis=1)[:40]
    errors = np.stack([table[f"E_{b}"].to_numpy() for b in names.bands], axis=1)[:40]
    estimate = model.predict(fluxes, errors)
    assert np.isfinite(estimate.z).all() and np.isfinite(estimate.z_err).all()
    assert ((estimate.flag[20:] & 4) > 0).all() and not (estimate.flag[:20] & 4).any()
    data = load_training_set(path, columns=names)  # rows with missing bands are trained on too
    assert len(data) == 120
    train = data.redshift[data.positions(split_rows(120, seed=1).train)]
    assert (meta.domain.z_min, meta.domain.z_max) == pytest.approx((train.min(), train.max()))
    assert np.all((estimate.z >= meta.domain.z_min) & (estimate.z <= meta.domain.z_max))


def test_a_non_finite_validation_loss_stops_training_at_the_first_epoch(
    tmp_path, fast_config, monkeypatch
):
    from csst_photoz.training import loop

    path = tmp_path / "gaps.parquet"
    names = _table_with_missing_bands(path)
    monkeypatch.setattr(loop, "validation_metrics", lambda *a: {"loss": float("nan")})
    config = fast_config.with_updates(columns=names.model_dump(), max_epochs=5)
    with pytest.raises(FloatingPointError, match="validation loss is nan after epoch 1"):
        train_model("mlp", path, config, tmp_path / "nan.pt")
