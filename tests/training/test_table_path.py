"""Training and prediction on any table: formats, columns, units, magnitudes, splits, ids."""

import re
import shlex
from pathlib import Path

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from csst_photoz.cli import main as csst_photoz
from csst_photoz.instrument import Instrument
from csst_photoz.io.tables import TableReadError, read_columns
from csst_photoz.models import load_model
from csst_photoz.training import TrainingConfig, train_model
from csst_photoz.training.config import DataColumns
from csst_photoz.training.data import TrainingDataError, load_training_set
from csst_photoz.training.predict import PredictionError, predict_table
from csst_photoz.units import (
    UnitError,
    convert_fluxes,
    csst_electrons_per_njy,
    magnitudes_to_fluxes,
    normalise_unit,
)

BANDS = ("g", "r", "i", "z")
README = Path(__file__).parents[2] / "README.md"


def _catalogue(n: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    """Fluxes in nJy that follow the redshift, with an id and a spec-z column."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.1, 2.0, n)
    columns = {"objid": np.arange(n, dtype=np.int64) + 7000, "zspec": z}
    for k, band in enumerate(BANDS):
        flux = 2000.0 * (1 + z) ** (k - 1.5) * rng.lognormal(0.0, 0.05, n)
        columns[f"flux_{band}"] = flux
        columns[f"flux_err_{band}"] = 0.05 * flux + 10.0
    return columns


def _parquet(path: Path, columns: dict, units: dict | None = None) -> Path:
    fields = [
        pa.field(name, pa.array(values).type, metadata={"unit": (units or {}).get(name, "")})
        for name, values in columns.items()
    ]
    pq.write_table(pa.table(columns, schema=pa.schema(fields)), path)
    return path


def _config(**updates) -> TrainingConfig:
    settings = dict(seed=1, batch_size=32, learning_rate=1e-3, flux_realisations=2)
    return TrainingConfig(max_epochs=1, progress=False, **{**settings, **updates})


# -- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".csv"])
def test_parquet_fits_and_csv_tables_read_alike(tmp_path, suffix):
    columns = _catalogue(20)
    path = tmp_path / f"cat{suffix}"
    if suffix == ".parquet":
        _parquet(path, columns, {"flux_g": "nJy"})
    else:
        table = Table(columns)
        table["flux_g"].unit = u.nJy if suffix == ".fits" else None
        table.write(path, format="fits" if suffix == ".fits" else "ascii.csv")
    read = read_columns(path, ["objid", "flux_g", "zspec"], optional=["absent"])
    assert read.n_rows == 20 and set(read.values) == {"objid", "flux_g", "zspec"}
    np.testing.assert_allclose(read["flux_g"], columns["flux_g"], rtol=1e-12)
    np.testing.assert_array_equal(read["objid"], columns["objid"])
    assert read.units["flux_g"] == (None if suffix == ".csv" else "nJy")


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    path = tmp_path / "cat.csv"
    Table(_catalogue(5)).write(path)
    with pytest.raises(TableReadError, match=r"cat\.csv: no column 'flux_u'.*'flux_g'"):
        read_columns(path, ["flux_u"])
    with pytest.raises(TableReadError, match="unknown table format"):
        read_columns(Path(__file__), ["x"])
    with pytest.raises(TrainingDataError, match=r"cat\.csv: no column 'kron_flux_g'"):
        load_training_set(path, columns=DataColumns(bands=BANDS, redshift="zspec"))


# -- units ---------------------------------------------------------------------------------


def test_magnitudes_and_flux_densities_convert_as_astropy_does():
    mag = np.array([18.0, 22.5, 27.0])
    flux, error = magnitudes_to_fluxes(mag, [0.01, 0.1, 0.3])
    np.testing.assert_allclose(flux, (mag * u.ABmag).to_value(u.nJy), rtol=1e-4)  # 3631 Jy
    upper = (mag - np.array([0.01, 0.1, 0.3])) * u.ABmag  # brighter by one error
    np.testing.assert_allclose(error, upper.to_value(u.nJy) - flux, rtol=0.2)
    micro, _ = convert_fluxes([[1.5]], [[0.1]], "uJy", "nJy")
    assert micro[0, 0] == pytest.approx((1.5 * u.uJy).to_value(u.nJy))
    assert normalise_unit("mag") == "ABmag" and normalise_unit("e-") == "electron"


def test_electrons_use_the_zero_point_and_exposure_of_the_instrument():
    instrument = Instrument.default()
    per_njy = csst_electrons_per_njy(["g", "i"])
    for k, band in enumerate(["g", "i"]):
        expected = instrument.zero_point_rate(band) * instrument.exposure_time(band) / 3631e9
        assert per_njy[k] == pytest.approx(expected, rel=1e-12)
        mag = 23.0  # the instrument's own magnitude -> electrons
        njy = magnitudes_to_fluxes([mag], [0.1])[0][0]
        assert njy * per_njy[k] == pytest.approx(float(instrument.mag_to_electrons(mag, band)))
    electrons, errors = convert_fluxes([[100.0, 200.0]], [[1.0, 2.0]], "nJy", "electron",
                                       bands=["g", "i"])  # fmt: skip
    np.testing.assert_allclose(electrons, [[100.0 * per_njy[0], 200.0 * per_njy[1]]])
    back, _ = convert_fluxes(electrons, errors, "electron", "nJy", bands=["g", "i"])
    np.testing.assert_allclose(back, [[100.0, 200.0]])


def test_unknown_units_and_bands_are_refused_naming_the_column(tmp_path):
    with pytest.raises(UnitError, match="column 'flux_g': unknown flux unit 'furlong'"):
        normalise_unit("furlong", "flux_g")
    with pytest.raises(UnitError, match=r"column 'flux_W1'.*\['W1'\]"):
        convert_fluxes([[1.0]], [[0.1]], "nJy", "electron", bands=["W1"], column="flux_W1")
    path = _parquet(tmp_path / "cat.parquet", _catalogue(20), {"flux_g": "furlong"})
    columns = DataColumns(bands=BANDS, flux="flux_{band}", flux_err="flux_err_{band}",
                          redshift="zspec")  # fmt: skip
    with pytest.raises(TrainingDataError, match=r"cat\.parquet: column 'flux_g': unknown"):
        load_training_set(path, columns=columns)


def test_magnitude_sentinels_are_missing_bands_of_selected_rows(tmp_path):
    columns = _catalogue(30)
    table = {"objid": columns["objid"], "zspec": columns["zspec"]}
    for band in BANDS:
        mag = (columns[f"flux_{band}"] * u.nJy).to_value(u.ABmag)
        table[f"mag_{band}"], table[f"magerr_{band}"] = mag, np.full(30, 0.05)
    table["mag_g"][[1, 2]] = [99.0, -99.0]
    table["magerr_r"][3] = np.nan
    path = tmp_path / "mags.csv"
    Table(table).write(path)
    names = DataColumns(bands=BANDS, flux="mag_{band}", flux_err="magerr_{band}",
                        redshift="zspec", unit="mag")  # fmt: skip
    data = load_training_set(path, columns=names)
    assert data.flux_unit == "ABmag" and len(data) == 30
    g, r = BANDS.index("g"), BANDS.index("r")
    assert np.isnan(data.fluxes[[1, 2], g]).all() and np.isnan(data.flux_errors[3, r])
    present = np.setdiff1d(data.rows, [1, 2])
    np.testing.assert_allclose(data.fluxes[present, g], columns["flux_g"][present], rtol=1e-4)
    flux, error = magnitudes_to_fluxes([99.0, -99.0, np.nan, 20.0], [0.1, 0.1, 0.1, 99.0])
    assert np.isnan(flux).all() and np.isnan(error).all()


# -- training and prediction ---------------------------------------------------------------


def test_predictions_agree_for_electrons_and_nanojansky(tmp_path):
    columns = _catalogue(150)
    per_njy = csst_electrons_per_njy(BANDS)
    electrons = {"objid": columns["objid"], "redshift": columns["zspec"]}
    for k, band in enumerate(BANDS):
        electrons[f"kron_flux_{band}"] = columns[f"flux_{band}"] * per_njy[k]
        electrons[f"kron_flux_err_{band}"] = columns[f"flux_err_{band}"] * per_njy[k]
    source = _parquet(tmp_path / "electrons.parquet", electrons)
    config = _config(columns={"bands": BANDS})
    result = train_model("mlp", source, config, tmp_path / "mlp.pt", calibrate=False)
    declared = load_model(result.paths.best).checkpoint_metadata.inputs
    assert {(f.unit, f.aperture) for f in declared.fluxes} == {("electron", "kron_1")}

    njy = _parquet(tmp_path / "njy.parquet", columns, {f"flux_{b}": "nJy" for b in BANDS})
    as_electrons = predict_table([result.paths.best], source, id_column="objid")
    as_njy = predict_table([result.paths.best], njy, flux_columns="flux_{band}",
                           error_columns="flux_err_{band}", id_column="objid")  # fmt: skip
    assert as_njy["objid"].to_pylist() == columns["objid"].tolist()
    np.testing.assert_allclose(as_njy["z_mlp"].to_numpy(), as_electrons["z_mlp"].to_numpy(),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    with pytest.raises(PredictionError, match=r"njy\.parquet.*column 'flux_g'.*furlong"):
        predict_table([result.paths.best], njy, flux_columns="flux_{band}",
                      error_columns="flux_err_{band}", flux_unit="furlong")  # fmt: skip
    with pytest.raises(PredictionError, match=r"no column 'kron_flux_g'"):
        predict_table([result.paths.best], njy)


def test_cli_trains_on_a_table_with_no_test_rows_and_predicts_another(tmp_path, capsys):
    train = _parquet(tmp_path / "train.parquet", _catalogue(160, seed=1))
    test = tmp_path / "test.fits"
    Table(_catalogue(40, seed=2)).write(test)
    out = tmp_path / "mlp.pt"
    columns = ["--bands", ",".join(BANDS), "--flux-columns", "flux_{band}",
               "--error-columns", "flux_err_{band}", "--flux-unit", "nJy"]  # fmt: skip
    code = csst_photoz(["train", "mlp", "--table", str(train), *columns,
                        "--redshift-column", "zspec", "--id-column", "objid", "--epochs", "1",
                        "--no-augment", "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert re.search(r"160 of 160 rows of \S*train\.parquet selected, fluxes in nJy", printed)
    assert re.search(r"144 train / 16 validation / 0 test.*no test rows held back", printed)
    metadata = load_model(out).checkpoint_metadata
    assert (metadata.training.split.n_test, metadata.training.split.n_validation) == (0, 16)
    config = metadata.training.config
    assert config["test_fraction"] == 0 and config["mlp"]["early_stopping_patience"] == 10
    assert not config["augment"] and metadata.training.augmentation["copies"] == 1
    assert {f.unit for f in metadata.inputs.fluxes} == {"nJy"}

    predictions = tmp_path / "p.parquet"
    assert csst_photoz(["predict", "--checkpoint", str(out), "--table", str(test),
                        "--out", str(predictions), "--redshift-column", "zspec"]) == 0  # fmt: skip
    table = pq.read_table(predictions)
    assert table["objid"].to_pylist() == _catalogue(40, seed=2)["objid"].tolist()
    assert {"redshift", "z_mlp", "z_mlp_err"} <= set(table.column_names)
    assert np.isfinite(table["z_mlp"].to_numpy()).all()

    paper = tmp_path / "paper.pt"
    assert csst_photoz(["train", "mlp", "--table", str(train), *columns, "--recipe", "paper",
                        "--test-fraction", "0.2", "--redshift-column", "zspec", "--epochs", "1",
                        "--quiet", "--out", str(paper)]) == 0  # fmt: skip
    assert "115 train / 13 validation / 32 test" in capsys.readouterr().out
    recorded = load_model(paper).checkpoint_metadata.training
    assert recorded.split.n_test == 32 and recorded.config["mlp"]["early_stopping_patience"] is None


def test_readme_example_for_your_own_catalogue_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Photo-z for your own catalogue", 1)[1].split("\n## ")[0]
    python, shell = re.findall(r"```(?:python|bash)\n(.*?)```", section, re.S)[:2]
    monkeypatch.chdir(tmp_path)
    exec(compile(python, "README", "exec"), {})
    commands = [line for line in shell.replace("\\\n", " ").splitlines() if line.strip()]
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "csst-photoz"
        assert csst_photoz([*words[1:], "--epochs", "2"] if words[1] == "train" else words[1:]) == 0
    assert pq.read_table("my_photoz.parquet").num_rows == 200
