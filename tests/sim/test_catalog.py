"""The Arrow truth catalogue: schema, photometric consistency, determinism."""

import json

import numpy as np
import pyarrow as pa
import pytest

from csst_photoz.sim import TRUTH_COLUMNS, simulate_catalog, truth_schema

N = 2000
SEED = 11


@pytest.fixture(scope="module")
def catalog(instrument):
    return simulate_catalog(N, seed=SEED, instrument=instrument)


def _np(table, name):
    return table[name].to_numpy()


def test_schema_equals_truth_schema(catalog, instrument):
    expected = truth_schema(instrument.band_names)
    assert catalog.schema.equals(expected)
    assert catalog.num_rows == N
    for name, (dtype, _, _) in TRUTH_COLUMNS.items():
        assert catalog.schema.field(name).type == dtype
    for band in instrument.band_names:
        for template in ("flux_bulge_{}", "flux_disk_{}", "flux_{}", "mag_{}", "snr_{}"):
            assert template.format(band) in catalog.schema.names
    assert catalog.schema.field("selected").type == pa.bool_()


def test_every_field_has_unit_and_description(catalog):
    for field in catalog.schema:
        assert field.metadata is not None, field.name
        assert b"unit" in field.metadata, field.name
        assert field.metadata[b"description"].strip(), field.name
        assert not field.nullable
        assert catalog[field.name].null_count == 0
    assert catalog.schema.field("flux_g").metadata[b"unit"] == b"electron"
    assert catalog.schema.field("mag_i").metadata[b"unit"] == b"mag(AB)"
    assert catalog.schema.field("bulge_hlr").metadata[b"unit"] == b"arcsec"


def test_schema_metadata_records_seed_and_bands(catalog, instrument):
    meta = catalog.schema.metadata
    assert meta[b"csst_photoz.seed"] == str(SEED).encode()
    assert meta[b"csst_photoz.bands"].decode().split(",") == list(instrument.band_names)
    assert meta[b"csst_photoz.reference_band"] == b"i"
    config = json.loads(meta[b"csst_photoz.population_config"])
    assert config["mag_max"] == 27.5


def test_reference_band_magnitude_is_mag_ref(catalog):
    np.testing.assert_allclose(_np(catalog, "mag_i"), _np(catalog, "mag_ref"), rtol=0, atol=1e-9)


def test_reference_band_follows_argument(instrument):
    table = simulate_catalog(300, seed=5, instrument=instrument, reference_band="r")
    np.testing.assert_allclose(_np(table, "mag_r"), _np(table, "mag_ref"), atol=1e-9)
    assert np.max(np.abs(_np(table, "mag_i") - _np(table, "mag_ref"))) > 0.05


def test_total_flux_is_bulge_plus_disk(catalog, instrument):
    for band in instrument.band_names:
        np.testing.assert_allclose(
            _np(catalog, f"flux_{band}"),
            _np(catalog, f"flux_bulge_{band}") + _np(catalog, f"flux_disk_{band}"),
            rtol=1e-14,
        )
        assert np.all(_np(catalog, f"flux_bulge_{band}") >= 0)
        assert np.all(_np(catalog, f"flux_disk_{band}") >= 0)


def test_magnitudes_match_fluxes(catalog, instrument):
    for band in ("NUV", "g", "y"):
        mag = instrument.electrons_to_mag(_np(catalog, f"flux_{band}"), band)
        np.testing.assert_allclose(_np(catalog, f"mag_{band}"), mag, rtol=1e-12)


def test_reference_band_split_is_bulge_fraction(catalog):
    ratio = _np(catalog, "flux_bulge_i") / _np(catalog, "flux_i")
    np.testing.assert_allclose(ratio, _np(catalog, "bulge_fraction"), rtol=0, atol=1e-12)


def test_galaxy_ids_unique_and_offset(instrument):
    table = simulate_catalog(50, seed=3, instrument=instrument, id_offset=1_000_000)
    ids = _np(table, "galaxy_id")
    np.testing.assert_array_equal(ids, 1_000_000 + np.arange(50))
    assert table.schema.field("galaxy_id").type == pa.int64()


def test_ids_unique_in_catalog(catalog):
    ids = _np(catalog, "galaxy_id")
    assert np.unique(ids).size == N
    assert ids.min() == 0


def test_same_seed_same_table_different_seed_differs(catalog, instrument):
    again = simulate_catalog(N, seed=SEED, instrument=instrument)
    assert again.equals(catalog, check_metadata=True)
    other = simulate_catalog(N, seed=SEED + 1, instrument=instrument)
    assert not other.equals(catalog)
    assert not np.array_equal(_np(other, "redshift"), _np(catalog, "redshift"))


def test_bulge_redder_than_disk(catalog):
    bt = _np(catalog, "bulge_fraction")
    both = (bt > 0.05) & (bt < 0.95)
    assert both.sum() > 200

    def g_minus_i(component):
        flux_g = _np(catalog, f"flux_{component}_g")[both]
        flux_i = _np(catalog, f"flux_{component}_i")[both]
        return -2.5 * np.log10(flux_g / flux_i)

    difference = g_minus_i("bulge") - g_minus_i("disk")
    assert np.mean(difference) > 0.3
    assert np.mean(difference > 0) > 0.85


def test_columns_physical(catalog, instrument):
    assert np.all((_np(catalog, "redshift") >= 0) & (_np(catalog, "redshift") <= 4))
    assert set(catalog["bpz_class"].to_pylist()) == {"E/S0", "Sbc/Scd", "Irr"}
    np.testing.assert_array_equal(_np(catalog, "bulge_sersic_n"), 4.0)
    np.testing.assert_array_equal(_np(catalog, "disk_sersic_n"), 1.0)
    for band in instrument.band_names:
        assert np.all(np.isfinite(_np(catalog, f"snr_{band}")))
    selected = catalog["selected"].to_numpy(zero_copy_only=False)
    expected = (_np(catalog, "snr_g") > 10) | (_np(catalog, "snr_i") > 10)
    np.testing.assert_array_equal(selected, expected)
    assert 0 < selected.sum() < N


def test_unknown_reference_band_raises(instrument):
    with pytest.raises(ValueError, match="reference band"):
        simulate_catalog(10, seed=1, instrument=instrument, reference_band="K")


def test_empty_catalog_has_full_schema(instrument):
    table = simulate_catalog(0, seed=1, instrument=instrument)
    assert table.num_rows == 0
    assert table.schema.equals(truth_schema(instrument.band_names))
    assert table.schema.metadata[b"csst_photoz.seed"] == b"1"
