import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csst_photoz.training import (
    DataColumns,
    TrainingDataError,
    load_training_set,
    select_rows,
    split_rows,
)
from csst_photoz.training.data import centre_crop, estimate_background_rms

SIMULATED_RMS = (10.65, 7.84, 9.93, 10.59, 10.59, 9.56, 11.53)  # the instrument's, e- / pixel


def test_simulated_set_loads_cropped_selected_and_aligned(stamp_set):
    data = load_training_set(stamp_set, stamp_size=32)
    table = pq.read_table(stamp_set / "stamps.parquet")
    assert data.n_table_rows == table.num_rows == 64
    assert data.bands == ("NUV", "u", "g", "r", "i", "z", "y")
    detected = table["detected"].to_numpy(zero_copy_only=False)
    assert np.array_equal(data.rows, np.flatnonzero(detected))
    assert data.stamps.shape == (len(data), 7, 32, 32) and data.stamps.dtype == np.float32
    np.testing.assert_array_equal(
        data.redshift, table["redshift"].to_numpy()[data.rows].astype(np.float32)
    )
    np.testing.assert_array_equal(
        data.fluxes[:, 2], table["kron_flux_g"].to_numpy()[data.rows].astype(np.float32)
    )
    import zarr

    raw = zarr.open_array(stamp_set / "stamps.zarr" / "stamps", mode="r")
    row = int(data.rows[-1])
    np.testing.assert_array_equal(data.stamps[-1], raw[row][:, 8:40, 8:40])
    np.testing.assert_allclose(data.background_rms, SIMULATED_RMS, rtol=0.05)


def test_full_stamps_are_kept_without_a_stamp_size_and_skipped_on_request(stamp_set):
    assert load_training_set(stamp_set, stamp_size=None).stamps.shape[-1] == 48
    no_stamps = load_training_set(stamp_set, stamps=False)
    assert no_stamps.stamps is None and no_stamps.background_rms is None
    # the store still enters the hash, so stamp-less and stamp runs agree on the data
    assert no_stamps.data_hash == load_training_set(stamp_set).data_hash


def test_selection_drops_undetected_rows_and_keeps_rows_with_a_missing_band(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", 20, undetected=(3,))
    table = pq.read_table(folder / "stamps.parquet")
    flux = table["kron_flux_g"].to_numpy().copy()
    flux[5] = np.nan
    error = table["kron_flux_err_r"].to_numpy().copy()
    error[7] = 0.0
    table = table.set_column(table.schema.get_field_index("kron_flux_g"), "kron_flux_g", [flux])
    table = table.set_column(
        table.schema.get_field_index("kron_flux_err_r"), "kron_flux_err_r", [error]
    )
    pq.write_table(table, folder / "stamps.parquet")
    data = load_training_set(folder)
    assert sorted(set(range(20)) - set(data.rows.tolist())) == [3]
    assert len(data.stamps) == 19
    g, r = data.bands.index("g"), data.bands.index("r")
    assert np.isnan(data.fluxes[data.rows.tolist().index(5), g])
    assert data.flux_errors[data.rows.tolist().index(7), r] == 0.0


def test_select_rows_keeps_rows_with_missing_bands_but_not_rows_without_photometry():
    fluxes = np.array([[1.0, -2.0], [1.0, np.inf], [1.0, 2.0], [np.nan, 2.0], [np.nan, 1.0]])
    errors = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [1.0, 0.0], [1.0, 1.0]])
    assert select_rows(fluxes, errors).tolist() == [True, True, True, False, True]
    assert select_rows(fluxes, errors, [True, True, False, True, True]).tolist() == [
        True, True, False, False, True,
    ]  # fmt: skip


def test_split_assignment_survives_a_different_selection(tmp_path, write_folder):
    full = load_training_set(write_folder(tmp_path / "a", 60))
    fewer = load_training_set(write_folder(tmp_path / "b", 60, undetected=tuple(range(0, 60, 4))))
    split = split_rows(60, seed=5)
    test_full = full.rows[full.positions(split.test)]
    test_fewer = fewer.rows[fewer.positions(split.test)]
    assert set(test_fewer) == set(test_full) - set(range(0, 60, 4))


def test_missing_columns_are_named_with_the_file(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", drop=("kron_flux_u", "kron_flux_err_y"))
    with pytest.raises(TrainingDataError, match=r"stamps\.parquet.*kron_flux_u, kron_flux_err_y"):
        load_training_set(folder)


def test_nan_redshifts_are_an_error_naming_the_file(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", nan_redshift=(2, 9))
    with pytest.raises(TrainingDataError, match=r"stamps\.parquet: 2 row\(s\).*'redshift'"):
        load_training_set(folder)


def test_stamp_count_must_match_the_table(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", 40, n_stamps=39)
    with pytest.raises(TrainingDataError, match=r"stamps\.zarr.*39.*40 rows"):
        load_training_set(folder)


def test_stamp_bands_must_match_the_table(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", bands=("g", "r"), stamp_bands=("r", "g"))
    with pytest.raises(TrainingDataError, match=r"stamps\.zarr.*differ"):
        load_training_set(folder)


def test_missing_files_are_reported(tmp_path, write_folder):
    with pytest.raises(FileNotFoundError, match="training table"):
        load_training_set(tmp_path / "nothing")
    folder = write_folder(tmp_path / "set")
    table_only = tmp_path / "table_only"
    table_only.mkdir()
    (table_only / "stamps.parquet").write_bytes((folder / "stamps.parquet").read_bytes())
    with pytest.raises(FileNotFoundError, match="stamp store"):
        load_training_set(table_only, stamps=True)
    assert load_training_set(table_only).stamps is None


def test_no_usable_row_is_an_error(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set", 5, undetected=tuple(range(5)))
    with pytest.raises(TrainingDataError, match="no row"):
        load_training_set(folder)


def test_any_parquet_table_with_named_columns_and_bands(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "survey.parquet"
    pq.write_table(
        pa.table({
            "zspec": rng.uniform(0, 2, 30),
            **{f"FLUX_{b}": rng.lognormal(3, 1, 30) for b in "JHK"},
            **{f"FLUXERR_{b}": rng.uniform(1, 2, 30) for b in "JHK"},
        }),
        path,
    )  # fmt: skip
    columns = DataColumns(bands=("J", "H", "K"), flux="FLUX_{band}", flux_err="FLUXERR_{band}",
                          redshift="zspec")  # fmt: skip
    data = load_training_set(path, columns=columns)
    assert data.bands == ("J", "H", "K") and data.fluxes.shape == (30, 3) and data.stamps is None
    with pytest.raises(TrainingDataError, match="names no bands"):
        load_training_set(path, columns=columns.model_copy(update={"bands": None}))


def test_data_hash_is_stable_and_sees_table_and_stamp_changes(tmp_path, write_folder):
    folder = write_folder(tmp_path / "set")
    first = load_training_set(folder).data_hash
    assert load_training_set(folder).data_hash == first
    import zarr

    array = zarr.open_array(folder / "stamps.zarr" / "stamps", mode="r+")
    array[0] = array[0] + 1.0
    assert load_training_set(folder).data_hash != first
    other = write_folder(tmp_path / "other", seed=1)
    assert load_training_set(other).data_hash != first


def test_centre_crop_is_symmetric_and_commutes_with_rotation():
    stamps = np.arange(2 * 1 * 9 * 9, dtype=np.float32).reshape(2, 1, 9, 9)
    cropped = centre_crop(stamps, 4)  # 9 - 4 is odd: a 5-pixel symmetric window
    assert cropped.shape[-1] == 5
    np.testing.assert_array_equal(
        centre_crop(np.rot90(stamps, axes=(-2, -1)), 4), np.rot90(cropped, axes=(-2, -1))
    )
    assert centre_crop(stamps, 16) is stamps


def test_background_estimate_recovers_the_noise_under_a_central_source():
    rng = np.random.default_rng(1)
    stamps = rng.normal(0.0, [3.0, 7.0], (200, 16, 16, 2)).transpose(0, 3, 1, 2)
    stamps[:, :, 6:10, 6:10] += 1e4
    np.testing.assert_allclose(estimate_background_rms(stamps), [3.0, 7.0], rtol=0.05)


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    path = tmp_path / "table.parquet"
    path.write_text("redshift,flux\n0.1,2\n")
    with pytest.raises(TrainingDataError, match=r"table\.parquet: not a readable Parquet file"):
        load_training_set(path)


def test_training_set_written_by_v0_1_still_loads_with_its_hash():
    from pathlib import Path

    from csst_photoz.io.training_set import open_stamps

    folder = Path(__file__).parents[1] / "fixtures" / "v0_1" / "training_set"
    data = load_training_set(folder, stamp_size=None)
    # the value the code before issue 15 gave (also recorded in the fixture's mlp.pt)
    assert data.data_hash == "8ecf3794ea3be9246d7dca161dc20870f64a0840cb792522dc9f1874e7a7ad85"
    assert data.bands == ("NUV", "u", "g", "r", "i", "z", "y") and data.n_table_rows == 24
    assert data.stamps.shape == (len(data), 7, 16, 16)
    np.testing.assert_array_equal(data.stamps, open_stamps(folder).read(data.rows))
    cropped = load_training_set(folder, stamp_size=8)
    assert cropped.stamps.shape == (len(data), 7, 8, 8)
    np.testing.assert_array_equal(cropped.stamps, data.stamps[..., 4:12, 4:12])
    assert load_training_set(folder, stamps=False).data_hash == data.data_hash
