import argparse
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from csst_photoz.evaluation.cli import add_evaluate_parser
from csst_photoz.evaluation.columns import read_predictions
from csst_photoz.models import load_model
from csst_photoz.training import load_training_set, split_rows, train_model
from csst_photoz.training.cli import add_predict_parser
from csst_photoz.training.predict import METADATA_KEY, PredictionError, predict_split

_TRAINED: dict[str, tuple] = {}


@pytest.fixture
def trained(tmp_path_factory, write_folder, fast_config):
    """A 60-galaxy folder (3 undetected) with an MLP and a CNN trained on it for one epoch.

    Trained once per module (the conftest helpers are function-scoped fixtures).
    """
    if "v" not in _TRAINED:
        root = tmp_path_factory.mktemp("predict")
        folder = write_folder(root / "set", n=60, size=40, undetected=(0, 7, 33, 45))
        config = fast_config.with_updates(max_epochs=1)
        mlp = train_model("mlp", folder, config, root / "mlp.pt").paths.best
        cnn = train_model("cnn", folder, config, root / "cnn.pt").paths.best
        _TRAINED["v"] = (folder, config, mlp, cnn)
    return _TRAINED["v"]


def _expected_rows(folder, config, part="test"):
    data = load_training_set(folder, stamps=True, stamp_size=config.stamp_size)
    split = split_rows(data.n_table_rows, seed=config.seed)
    return data, data.positions(getattr(split, part))


def test_table_holds_each_selected_split_galaxy_and_the_models_predictions(trained):
    folder, config, mlp, cnn = trained
    table = predict_split([mlp, cnn, mlp], folder, baselines=("knn",))
    data, positions = _expected_rows(folder, config)
    assert table.num_rows == positions.size > 0
    np.testing.assert_array_equal(table["row"].to_numpy(), data.rows[positions])
    assert not set(table["row"].to_numpy()) & {0, 7, 33, 45}  # undetected rows are dropped
    np.testing.assert_allclose(table["redshift"].to_numpy(), data.redshift[positions], rtol=1e-6)
    pz = ("mode", "median", "mean", "std", "odds", "pz")  # networks trained with a p(z) head
    assert table.column_names == [
        "row", "redshift",
        *(f"z_{m}{s}" for m in ("mlp", "cnn", "mlp_2")
          for s in ("", "_err", "_flag", *(f"_{p}" for p in pz))),
        "z_knn", "z_knn_err",
    ]  # fmt: skip
    fluxes, errors = data.fluxes[positions], data.flux_errors[positions]
    for name, path in (("mlp", mlp), ("cnn", cnn), ("mlp_2", mlp)):
        model = load_model(path)
        estimate = model.predict(fluxes, errors, data.stamps[positions])
        np.testing.assert_array_equal(table[f"z_{name}"].to_numpy(), estimate.z)
        np.testing.assert_array_equal(table[f"z_{name}_err"].to_numpy(), estimate.z_err)
        np.testing.assert_array_equal(table[f"z_{name}_flag"].to_numpy(), estimate.flag)
    assert np.all(np.isfinite(table["z_knn"].to_numpy()))
    record = json.loads(table.schema.metadata[METADATA_KEY])
    assert [c["name"] for c in record["checkpoints"]] == ["mlp", "cnn", "mlp_2"]
    assert (
        record["checkpoints"][0]["state_dict_sha256"]
        == load_model(mlp).checkpoint_metadata.state_dict_sha256
    )
    assert record["baselines"] == {"knn": "knn"} and record["split"] == "test"

    validation = predict_split([mlp], folder, split="validation", baselines=())
    data, positions = _expected_rows(folder, config, "validation")
    np.testing.assert_array_equal(validation["row"].to_numpy(), data.rows[positions])
    assert validation.column_names[:5] == ["row", "redshift", "z_mlp", "z_mlp_err", "z_mlp_flag"]
    assert validation.column_names[5:] == [
        f"z_mlp_{s}" for s in ("mode", "median", "mean", "std", "odds", "pz")
    ]


def test_checkpoints_of_other_data_or_another_split_are_refused(
    trained, tmp_path, write_folder, fast_config
):
    folder, config, mlp, _ = trained
    other = write_folder(tmp_path / "other", n=60, size=40, seed=5)
    with pytest.raises(PredictionError, match=r"mlp\.pt: trained on other data"):
        predict_split([mlp], other, baselines=())
    reseeded = train_model(
        "mlp", folder, config.with_updates(seed=9), tmp_path / "seed9.pt"
    ).paths.best
    with pytest.raises(PredictionError, match=r"seed9\.pt: trained on another .*split"):
        predict_split([mlp, reseeded], folder, baselines=())
    with pytest.raises(ValueError, match="split must be"):
        predict_split([mlp], folder, split="train")


def test_cli_round_trip_feeds_evaluate(trained, tmp_path, capsys):
    folder, _, mlp, cnn = trained
    parser = argparse.ArgumentParser(prog="csst-photoz")
    commands = parser.add_subparsers(dest="command")
    add_predict_parser(commands)
    add_evaluate_parser(commands)
    out = tmp_path / "out" / "predictions.parquet"
    args = parser.parse_args(["predict", "--checkpoint", str(mlp), "--checkpoint", str(cnn),
                              "--data", str(folder), "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    assert "mlp, cnn, knn, gbr" in capsys.readouterr().out
    table = pq.read_table(out)
    record = json.loads(table.schema.metadata[METADATA_KEY])
    assert [c["path"] for c in record["checkpoints"]] == [str(mlp), str(cnn)]
    read = read_predictions(out)
    assert read.truth_column == "redshift"
    assert list(read.predictions) == ["mlp", "cnn", "knn", "gbr"]
    assert all(sigma is not None for _, sigma in read.predictions.values())

    # every model, including one-epoch networks that may predict all galaxies below z = 0
    report = str(tmp_path / "report")
    args = parser.parse_args(["evaluate", "--predictions", str(out), "--out", report,
                              "--paper-training-size", "none"])  # fmt: skip
    assert args.func(args) == 0
    assert (tmp_path / "report" / "metrics.json").is_file()
    assert (tmp_path / "report" / "zphot_vs_ztrue_mlp.png").is_file()
    assert "evaluated 4 model(s)" in capsys.readouterr().out

    args = parser.parse_args(["predict", "--checkpoint", str(mlp), "--data", str(folder), "--out",
                              str(out), "--no-baselines", "--split", "validation"])  # fmt: skip
    assert args.func(args) == 0
    assert list(read_predictions(out).predictions) == ["mlp"]
