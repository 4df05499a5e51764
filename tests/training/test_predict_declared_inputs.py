"""``predict`` reads the table columns a checkpoint declares, not a hard-coded template."""

from types import SimpleNamespace

import numpy as np
import pytest

from csst_photoz.io.checkpoint_metadata import FluxInput, InputDeclaration
from csst_photoz.models import load_model, save_model
from csst_photoz.training import load_training_set, split_rows, train_model
from csst_photoz.training.checkpoint_data import _declared_template
from csst_photoz.training.predict import PredictionError, predict_split


@pytest.fixture
def trained(tmp_path, write_folder, fast_config):
    folder = write_folder(tmp_path / "set", n=40)
    config = fast_config.with_updates(max_epochs=1)
    result = train_model("mlp", folder, config, tmp_path / "mlp.pt", calibrate=False)
    return folder, config, result.paths.best


def _declare(path, out, flux, flux_err):
    model = load_model(path)
    inputs = InputDeclaration(
        fluxes=tuple(
            FluxInput(band=b, flux=flux.format(band=b), flux_err=flux_err.format(band=b))
            for b in model.bands
        )
    )
    return save_model(model, out, inputs=inputs)


def test_the_declared_columns_are_read(trained, tmp_path):
    folder, config, mlp = trained
    # fluxes and errors declared the other way round: the predictions follow the declaration
    swapped = _declare(mlp, tmp_path / "swapped.pt", "kron_flux_err_{band}", "kron_flux_{band}")
    table = predict_split([swapped], folder, baselines=())
    data = load_training_set(folder, stamps=False)
    rows = data.positions(split_rows(data.n_table_rows, seed=config.seed).test)
    expected = load_model(swapped).predict(data.flux_errors[rows], data.fluxes[rows])
    np.testing.assert_array_equal(table["z_mlp"].to_numpy(), expected.z)
    original = predict_split([mlp], folder, baselines=())
    assert not (  # a barely trained network's z may all be clamped to the trained range
        np.array_equal(original["z_mlp"].to_numpy(), expected.z)
        and np.array_equal(original["z_mlp_err"].to_numpy(), expected.z_err)
    )


@pytest.mark.parametrize(
    ("names", "template"),
    [
        (["flux_u", "flux_g", "flux_r"], "flux_{band}"),
        (["mag_u_lsst", "mag_g_lsst", "mag_r_lsst"], "mag_{band}_lsst"),
        (["u_gaap", "g_gaap", "r_gaap"], "{band}_gaap"),
    ],
)
def test_declared_template_finds_the_band_anywhere_in_the_names(names, template):
    item = SimpleNamespace(model=SimpleNamespace(bands=("u", "g", "r")), path="x.pt")
    assert _declared_template(item, names) == template


def test_declared_template_refuses_names_that_do_not_share_one():
    item = SimpleNamespace(model=SimpleNamespace(bands=("u", "g")), path="x.pt")
    with pytest.raises(PredictionError, match=r"x\.pt: declares input columns"):
        _declared_template(item, ["flux_u", "mag_g"])
